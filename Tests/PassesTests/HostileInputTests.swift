import Foundation
import XCTest

@testable import Graph
@testable import Passes

/// Inputs a fuzzer or an unusual exporter writes: non-finite config numbers, dims of -1, shapes given on the command
/// line, sizes that overflow, and graphs edited node by node at scale.
final class HostileInputTests: XCTestCase {
    func config(_ text: String) throws -> CompressionConfig {
        let parsed = try TextFormat.parse(text, file: "h.cfg", schema: .amctRetrainConfig)
        return try CompressionConfig(parsed.message, file: "h.cfg")
    }

    func configErrors(_ text: String) -> [ConfigError] {
        do {
            _ = try config(text)
            XCTFail("accepted: \(text)")
        } catch let e as ConfigErrors {
            return e.errors
        } catch {
            XCTFail("\(error)")
        }
        return []
    }

    func testNonFiniteClipsAreRejectedAtTheirPlace() {
        // -1e309 overflows double and -3.5e38 overflows float32: both read as -inf.
        for value in ["-inf", "-1e309", "-3.5e38", "nan", "-nan"] {
            let prefix = "retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 6 clip_min: "
            let errors = configErrors(prefix + value + " } } }")
            XCTAssertEqual(errors.map(\.kind), [.clipRange], value)
            XCTAssertEqual(errors.first?.location.column, prefix.count + 1, value)  // at the value
            XCTAssertTrue(errors.first?.message.contains("clip_min must be a finite number") ?? false, value)
        }
        let prefix = "retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: "
        let inf = configErrors(prefix + "inf clip_min: -1 } } }")
        XCTAssertEqual(inf.map(\.kind), [.clipRange])
        XCTAssertEqual(inf.first?.location.column, prefix.count + 1)
        // Finite clips whose range overflows float32 give an infinite scale.
        let wide = configErrors("retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 3e38 clip_min: -3e38 } } }")
        XCTAssertTrue(wide.first?.message.contains("overflows float32") ?? false)
        XCTAssertNoThrow(try config("retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 1e38 clip_min: -1e38 } } }"))
    }

    func testNonFinitePruneRatioIsRejected() {
        for value in ["nan", "inf", "-inf"] {
            let errors = configErrors("prune_config { filter_pruner { balanced_l2_norm_filter_prune { prune_ratio: \(value) } } }")
            XCTAssertEqual(errors.map(\.kind), [.pruneRatio], value)
            XCTAssertTrue(errors.first?.message.contains("finite") ?? false, value)
        }
    }

    func testDimensionsAtOrBelowZeroAreUnknown() {
        XCTAssertNil(Dimension(.known(-1)).size)
        XCTAssertNil(Dimension(.known(0)).size)
        XCTAssertNil(Dimension(.symbolic("N")).size)
        XCTAssertNil(Dimension(.unknown).size)
        XCTAssertEqual(Dimension(.known(48)).size, 48)
        XCTAssertNil(Shape([Dimension(.known(-1)), Dimension(.known(3))]).sizes)
        XCTAssertEqual(Shape(known: [1, 3]).sizes, [1, 3])
    }

    func paddleModel() -> Model {
        var g = Graph()
        let dims = [Dimension(.known(-1)), Dimension(.known(3)), Dimension(.symbolic("h")), Dimension(.symbolic("w"))]
        g.inputs = [ValueInfo(name: "x", type: ValueType(.tensor(elemType: 1, shape: Shape(dims), unknownFields: UnknownFields())))]
        g.appendNode(Node(opType: "Relu", name: "r", inputs: ["x"], outputs: ["y"]))
        g.outputs = [ValueInfo(name: "y", type: nil)]
        return Model(graph: g)
    }

    func testInputShapeFixesUnknownDims() throws {
        var model = paddleModel()
        try InputShape.apply(parsing: ["x:2,3,48,320"], to: &model)
        XCTAssertEqual(model.graph.inputs[0].type?.tensorShape?.sizes, [2, 3, 48, 320])
        // The calibration batch follows the fixed batch, not --batch-size.
        let data = try CalibrationData.random(for: model, batches: 3, batchSize: 7)
        XCTAssertEqual(data.samplesPerBatch(batchSize: 7), 2)
        XCTAssertEqual(data.samples.count, 6)
        XCTAssertEqual(data.samples.samples["x"]?.shape, [3, 48, 320])
        XCTAssertEqual(try data.batch(2, batchSize: 7)["x"]?.shape, [2, 3, 48, 320])
        // `applied` leaves the model as it was.
        let shaped = try InputShape.applied(parsing: ["x:1,3,8,8"], to: paddleModel())
        XCTAssertEqual(shaped.graph.inputs[0].type?.tensorShape?.sizes, [1, 3, 8, 8])
        XCTAssertNil(paddleModel().graph.inputs[0].type?.tensorShape?.sizes)
    }

    func testInputShapeErrors() {
        let cases: [(String, String)] = [
            ("x", "write NAME:D0,D1,..."), (":1,2", "write NAME:D0,D1,..."), ("x:1,,3", "dimension '' is not"),
            ("x:1,3,a,4", "dimension 'a' is not"), ("x:1,3,-4,4", "dimension '-4' is not"),
            ("x:1,3,99999999999999999999,4", "is not a positive integer"), ("z:1,3,4,4", "not an input of the model (inputs: x)"),
            ("x:1,3,4", "the model's input has rank 4 ([-1, 3, h, w])"), ("x:1,2,4,4", "the model fixes it to 3"),
        ]
        for (text, message) in cases {
            var model = paddleModel()
            XCTAssertThrowsError(try InputShape.apply(parsing: [text], to: &model), text) {
                XCTAssertTrue("\($0)".contains(message), "\(text): \($0)")
            }
        }
        var model = paddleModel()
        XCTAssertThrowsError(try InputShape.apply(parsing: ["x:1,3,4,4", "x:1,3,4,4"], to: &model))
    }

    func testMinusOneBatchUsesTheBatchSize() throws {
        let model = paddleModel()
        var shaped = model
        try InputShape.apply(parsing: ["x:5,3,2,2"], to: &shaped)
        let data = try CalibrationData.random(for: shaped, samples: 4)
        let dynamic = try CalibrationData(samples: data.samples, isRandom: true, for: model)
        XCTAssertEqual(dynamic.samplesPerBatch(batchSize: 2), 2)
        XCTAssertNoThrow(try dynamic.checkBatches(count: 2, batchSize: 2))
        XCTAssertThrowsError(try dynamic.checkBatches(count: 3, batchSize: 2)) {
            XCTAssertTrue("\($0)".contains("has 4 samples; batch_num 3 × 2 samples per batch needs 6"), "\($0)")
        }
        XCTAssertThrowsError(try dynamic.checkBatches(count: Int.max, batchSize: 2)) {
            XCTAssertTrue("\($0)".contains("needs more"), "\($0)")
        }
    }

    func testRandomCalibrationTooLargeForMemoryIsRefusedBeforeAllocating() throws {
        var model = paddleModel()
        try InputShape.apply(parsing: ["x:1,3,4096,4096"], to: &model)
        XCTAssertThrowsError(try CalibrationData.random(for: model, batches: 1 << 31, batchSize: 1)) {
            XCTAssertTrue("\($0)".contains("of memory is available"), "\($0)")
        }
        XCTAssertThrowsError(try CalibrationData.random(for: model, batches: Int.max, batchSize: 1))
    }

    func testSizesThatOverflowAreCaught() {
        XCTAssertEqual(checkedElementCount([2, 3, 4]), 24)
        XCTAssertEqual(checkedElementCount([]), 1)
        XCTAssertNil(checkedElementCount([1 << 32, 1 << 32, 4]))
        XCTAssertNil(checkedElementCount([3, -1]))
        XCTAssertEqual(saturatingInt32(3e10), .max)
        XCTAssertEqual(saturatingInt32(-3e10), .min)
        XCTAssertEqual(saturatingInt32(-2_147_483_648), .min)
        XCTAssertEqual(saturatingInt32(2_147_483_520), 2_147_483_520)
        XCTAssertEqual(saturatingInt32(-7), -7)
        XCTAssertEqual(saturatingInt32(.infinity), .max)
    }

    func testNodeChecksNameTheNode() throws {
        let conv = Node(opType: "Conv", name: "c", inputs: ["x"], outputs: ["y"])
        XCTAssertThrowsError(try requiredInput(conv, 1, "weight")) {
            XCTAssertEqual("\($0)", "node 'c': Conv has 1 input; its weight (input 1) is missing")
        }
        var g = Graph()
        g.setInitializer(Tensor(name: "w", dims: [2], floats: [1, .nan]))
        g.setInitializer(Tensor(name: "short", dataType: .float, dims: [3], data: .bytes(TensorBuffer(zeroed: 8))))
        let w = try XCTUnwrap(try floatConstant(g, "w", node: "c", role: "weight"))
        XCTAssertThrowsError(try requireFinite(w, "w", node: "c", role: "weight")) {
            XCTAssertEqual("\($0)", "node 'c': its weight 'w' holds nan at element 1; NaN and infinity cannot be quantized or pruned")
        }
        XCTAssertThrowsError(try floatConstant(g, "short", node: "c", role: "bias")) {
            XCTAssertEqual("\($0)", "node 'c': its bias 'short' has dims [3] (3 elements) but holds 8 bytes of FLOAT")
        }
        XCTAssertNil(try floatConstant(g, "not-there", node: "c", role: "bias"))
    }
}

/// The graph's order and use lists under many edits, against a plain array doing the same edits.
final class GraphEditScaleTests: XCTestCase {
    func testOrderMatchesAnArrayUnderRandomEdits() {
        var g = Graph()
        var reference: [NodeID] = []
        var rng = SeededGenerator(state: 42)
        var counter = 0
        func node() -> Node {
            counter += 1
            return Node(opType: "Identity", name: "n\(counter % 50)", inputs: ["v\(counter / 2)"], outputs: ["o\(counter)"])
        }
        for _ in 0..<200 { reference.append(g.appendNode(node())) }
        for step in 0..<3000 {
            let i = Int.random(in: 0..<reference.count, using: &rng)
            switch step % 4 {
            case 0: reference.insert(g.insertNode(node(), before: reference[i]), at: i)
            case 1: reference.insert(g.insertNode(node(), after: reference[i]), at: i + 1)
            case 2 where reference.count > 10:
                g.removeNode(reference[i])
                reference.remove(at: i)
            default: reference.append(g.appendNode(node()))
            }
            if step % 500 == 0 { XCTAssertEqual(g.order, reference) }
        }
        XCTAssertEqual(g.order, reference)
        XCTAssertEqual(g.nodeCount, reference.count)
        // Use lists agree with a recount.
        for id in reference {
            let out = g[id].outputs[0]
            XCTAssertEqual(g.producer(of: out), id)
            XCTAssertEqual(Set(g.consumers(of: g[id].inputs[0])), Set(reference.filter { g[$0].inputs[0] == g[id].inputs[0] }))
        }
        // Node names: counted, so a name is free again when its last node goes.
        let names = Set(reference.compactMap { g[$0].name })
        for k in 0..<50 { XCTAssertEqual(g.uniqueNodeName("n\(k)") == "n\(k)", !names.contains("n\(k)")) }
    }

    func testManyNamesOfOneBaseStayLinearAndSmallest() throws {
        // 20,000 nodes and initializers of one preferred name: probing from 1 each time would be 2·10⁸ lookups.
        let n = 20_000
        var g = Graph()
        g.inputs = [ValueInfo(name: "x", type: nil)]
        let start = Date()
        g.appendNode(Node(opType: "Relu", name: "n", inputs: ["x"], outputs: ["y"]))
        for _ in 1...n {
            g.appendNode(Node(opType: "Relu", name: g.uniqueNodeName("n"), inputs: ["x"], outputs: [g.uniqueValueName("y")]))
            g.addInitializer(Tensor(name: nil, dims: [1], floats: [0]), preferredName: "w")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
        XCTAssertEqual(g.uniqueNodeName("n"), "n_\(n + 1)")
        XCTAssertEqual(g.uniqueValueName("y"), "y_\(n + 1)")
        XCTAssertEqual(g.uniqueValueName("w"), "w_\(n)")
        XCTAssertEqual(Set(g.order.map { g[$0].name }).count, n + 1)
        // A name freed is the smallest again.
        g.removeNode(try XCTUnwrap(g.firstNode(named: "n_5")))
        XCTAssertEqual(g.uniqueNodeName("n"), "n_5")
        XCTAssertEqual(g.uniqueValueName("y"), "y_5")
        g.removeInitializer("w_7")
        XCTAssertEqual(g.uniqueValueName("w"), "w_7")
        g.updateNode(try XCTUnwrap(g.firstNode(named: "n_9"))) { $0.name = "m" }
        XCTAssertEqual(g.uniqueNodeName("n"), "n_5")
        g.appendNode(Node(opType: "Relu", name: "n_5", inputs: ["x"], outputs: ["z"]))
        XCTAssertEqual(g.uniqueNodeName("n"), "n_9")
    }

    func testCopiesKeepTheirOwnOrder() {
        // Copies share the materialized order until one edits; whichever reads first, each sees its own.
        for readOriginalFirst in [false, true] {
            var g = Graph()
            let a = g.appendNode(Node(opType: "Relu", name: "a", inputs: ["x"], outputs: ["y"]))
            var copy = g
            let b = copy.insertNode(Node(opType: "Relu", name: "b", inputs: ["x"], outputs: ["z"]), before: a)
            if readOriginalFirst { XCTAssertEqual(g.order, [a]) }
            XCTAssertEqual(copy.order, [b, a])
            XCTAssertEqual(g.order, [a])
            var third = copy
            third.removeNode(a)
            XCTAssertEqual(third.order, [b])
            XCTAssertEqual(copy.order, [b, a])
        }
    }

    func testUpdateNodeKeepsUseListsRight() {
        var g = Graph()
        let a = g.appendNode(Node(opType: "Add", name: "a", inputs: ["x", "y"], outputs: ["s"]))
        g.updateNode(a) { n in
            n.inputs = ["y", "z", "y"]
            n.outputs = ["t"]
            n.name = "b"
        }
        XCTAssertEqual(g.consumers(of: "x"), [])
        XCTAssertEqual(g.consumers(of: "y"), [a])
        XCTAssertEqual(g.consumers(of: "z"), [a])
        XCTAssertNil(g.producer(of: "s"))
        XCTAssertEqual(g.producer(of: "t"), a)
        XCTAssertEqual(g.uniqueNodeName("a"), "a")
        XCTAssertEqual(g.uniqueNodeName("b"), "b_1")
    }

    func testReversedChainSortsInLinearishTime() throws {
        // 50,000 nodes in reverse order: the old sweep sorted one node per sweep (quadratic).
        let n = 50_000
        var g = Graph()
        g.inputs = [ValueInfo(name: "v0", type: nil)]
        g.setNodes((1...n).reversed().map { Node(opType: "Relu", name: "r\($0)", inputs: ["v\($0 - 1)"], outputs: ["v\($0)"]) })
        XCTAssertThrowsError(try g.validate()) {
            guard case .notTopologicallySorted? = $0 as? GraphError else { return XCTFail("\($0)") }
        }
        let start = Date()
        try g.sortTopologically()
        XCTAssertLessThan(Date().timeIntervalSince(start), 20)
        XCTAssertEqual(g.order.map { g[$0].name }, (1...n).map { "r\($0)" })
        XCTAssertNoThrow(try g.validate())
    }

    func testValidateReportsReferencesBeforeOrder() {
        var g = Graph()
        g.inputs = [ValueInfo(name: "x", type: nil)]
        g.appendNode(Node(opType: "Relu", name: "early", inputs: ["late_out"], outputs: ["e"]))
        g.appendNode(Node(opType: "Relu", name: "late", inputs: ["x"], outputs: ["late_out"]))
        g.appendNode(Node(opType: "Relu", name: "lost", inputs: ["nowhere"], outputs: ["w"]))
        XCTAssertThrowsError(try g.validate()) {
            XCTAssertEqual($0 as? GraphError, .undefinedValue(node: "lost", value: "nowhere"))
        }
        var h = Graph()
        h.inputs = [ValueInfo(name: "x", type: nil)]
        h.appendNode(Node(opType: "Relu", name: "a", inputs: ["x"], outputs: ["t"]))
        h.appendNode(Node(opType: "Relu", name: "again", inputs: ["x"], outputs: ["t"]))
        XCTAssertThrowsError(try h.validate()) {
            XCTAssertEqual($0 as? GraphError, .duplicateProducer(value: "t", first: "a", second: "again"))
        }
    }
}

/// A fixed-seed generator (SplitMix64), so the random edits are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
