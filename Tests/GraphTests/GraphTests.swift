import Foundation
import XCTest

@testable import Graph

/// The repository's fixtures folder.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("fixtures")

/// x → Relu(a) → Relu(b) → y, with an unused initializer.
func chain() -> Graph {
    var g = Graph(name: "chain")
    g.inputs = [ValueInfo(name: "x", type: .tensor(.float, [2]))]
    g.outputs = [ValueInfo(name: "y", type: .tensor(.float, [2]))]
    g.appendNode(Node(opType: "Relu", name: "a", inputs: ["x"], outputs: ["t"]))
    g.appendNode(Node(opType: "Relu", name: "b", inputs: ["t"], outputs: ["y"]))
    g.setInitializer(Tensor(name: "unused", dims: [2], floats: [1, 2]))
    return g
}

final class UseListTests: XCTestCase {
    func testProducersAndConsumers() throws {
        let g = chain()
        let a = try XCTUnwrap(g.firstNode(named: "a"))
        let b = try XCTUnwrap(g.firstNode(named: "b"))
        XCTAssertEqual(g.producer(of: "t"), a)
        XCTAssertEqual(g.consumers(of: "t"), [b])
        XCTAssertEqual(g.consumers(of: "x"), [a])
        XCTAssertNil(g.producer(of: "x"))
    }

    func testInsertBeforeAndAfterKeepOrderAndUses() throws {
        var g = chain()
        let a = try XCTUnwrap(g.firstNode(named: "a"))
        let b = try XCTUnwrap(g.firstNode(named: "b"))
        let q = g.insertNode(Node(opType: "Neg", name: "q", inputs: ["t"], outputs: ["t2"]), after: a)
        g.updateNode(b) { $0.inputs = ["t2"] }
        let p = g.insertNode(Node(opType: "Abs", name: "p", inputs: ["x"], outputs: ["x2"]), before: a)
        XCTAssertEqual(g.order, [p, a, q, b])
        XCTAssertEqual(g.consumers(of: "t"), [q])
        XCTAssertEqual(g.consumers(of: "t2"), [b])
        XCTAssertEqual(g.consumers(of: "x"), [a, p])
        XCTAssertNoThrow(try g.validate())
    }

    func testReplaceAllUses() throws {
        var g = chain()
        let b = try XCTUnwrap(g.firstNode(named: "b"))
        g.appendNode(Node(opType: "Relu", name: "c", inputs: ["x"], outputs: ["t9"]))
        g.replaceAllUses(of: "t", with: "t9")
        XCTAssertEqual(g[b].inputs, ["t9"])
        XCTAssertEqual(g.consumers(of: "t"), [])
        XCTAssertEqual(g.consumers(of: "t9"), [b])
        XCTAssertThrowsError(try g.validate()) { error in
            XCTAssertEqual(error as? GraphError, .notTopologicallySorted(node: "b", value: "t9"))
        }
        try g.sortTopologically()
        XCTAssertEqual(g.nodes.map { $0.name! }, ["a", "c", "b"])
        XCTAssertNoThrow(try g.validate())
        // A graph output is renamed only when asked.
        g.replaceAllUses(of: "y", with: "y2")
        XCTAssertEqual(g.outputs.map(\.name), ["y"])
        g.replaceAllUses(of: "y", with: "y2", includingGraphOutputs: true)
        XCTAssertEqual(g.outputs.map(\.name), ["y2"])
    }

    func testReplaceUsesReachesIntoSubgraphs() throws {
        var g = chain()
        var body = Graph(name: "then")
        body.outputs = [ValueInfo(name: "o", type: nil)]
        body.appendNode(Node(opType: "Identity", name: "inner", inputs: ["t"], outputs: ["o"]))
        var branch = Attribute(name: "then_branch")
        branch.type = Attribute.Kind.graph.rawValue
        branch.g = body
        let ifNode = g.appendNode(Node(opType: "If", name: "if", inputs: ["x"], outputs: ["z"], attributes: [branch]))
        XCTAssertTrue(g.consumers(of: "t").contains(ifNode), "an outer value read by a subgraph is a use")
        g.appendNode(Node(opType: "Relu", name: "c", inputs: ["x"], outputs: ["u"]))
        g.replaceAllUses(of: "t", with: "u")
        XCTAssertEqual(g[ifNode].attribute("then_branch")?.g?.nodes.first?.inputs, ["u"])
        XCTAssertFalse(g.consumers(of: "t").contains(ifNode))
    }

    func testDeadCodeRemoval() throws {
        var g = chain()
        g.appendNode(Node(opType: "Neg", name: "dead1", inputs: ["t"], outputs: ["d1"]))
        g.appendNode(Node(opType: "Neg", name: "dead2", inputs: ["d1"], outputs: ["d2"]))
        let removed = g.removeDeadCode()
        XCTAssertEqual(removed.nodes, 2)
        XCTAssertEqual(removed.initializers, 1)
        XCTAssertEqual(g.nodes.map { $0.name! }, ["a", "b"])
        XCTAssertEqual(g.consumers(of: "t").count, 1)
    }

    func testUniqueNames() {
        var g = chain()
        XCTAssertEqual(g.uniqueValueName("t"), "t_1")
        XCTAssertEqual(g.uniqueValueName("fresh"), "fresh")
        let name = g.addInitializer(Tensor(name: nil, dims: [1], floats: [3]), preferredName: "unused")
        XCTAssertEqual(name, "unused_1")
        XCTAssertEqual(g.initializers["unused_1"]?.floatArray, [3])
        XCTAssertEqual(g.uniqueNodeName("a"), "a_1")
    }

    func testDuplicateProducerAndUndefinedValue() {
        var g = chain()
        g.appendNode(Node(opType: "Relu", name: "again", inputs: ["x"], outputs: ["t"]))
        XCTAssertThrowsError(try g.checkReferences()) {
            XCTAssertEqual($0 as? GraphError, .duplicateProducer(value: "t", first: "a", second: "again"))
        }
        var h = chain()
        h.appendNode(Node(opType: "Relu", name: "lost", inputs: ["nowhere"], outputs: ["w"]))
        XCTAssertThrowsError(try h.checkReferences()) {
            XCTAssertEqual($0 as? GraphError, .undefinedValue(node: "lost", value: "nowhere"))
        }
    }

    func testCycleIsReported() {
        var g = Graph()
        g.appendNode(Node(opType: "Relu", name: "p", inputs: ["q_out"], outputs: ["p_out"]))
        g.appendNode(Node(opType: "Relu", name: "q", inputs: ["p_out"], outputs: ["q_out"]))
        XCTAssertThrowsError(try g.sortTopologically()) {
            guard case .cycle(let nodes)? = $0 as? GraphError else { return XCTFail("\($0)") }
            XCTAssertEqual(Set(nodes), ["p", "q"])
        }
    }
}

final class TensorTests: XCTestCase {
    func testCopyOnWriteLeavesSharedBufferAlone() {
        let a = Tensor(name: "w", dims: [3], floats: [1, 2, 3])
        var b = a
        b.withMutableElements(as: Float.self) { $0[0] = 9 }
        XCTAssertEqual(a.floatArray, [1, 2, 3])
        XCTAssertEqual(b.floatArray, [9, 2, 3])
    }

    func testByteCounts() {
        XCTAssertEqual(DataType.float.byteCount(elements: 3), 12)
        XCTAssertEqual(DataType.int4.byteCount(elements: 3), 2)
        XCTAssertEqual(DataType.float16.byteCount(elements: 5), 10)
        XCTAssertNil(DataType.string.byteCount(elements: 1))
    }

    /// Typed fields are converted to raw layout on load and back on save, for every narrow type.
    func testTypedFieldEncodingRoundTrips() throws {
        var g = Graph(name: "typed")
        let cases: [(DataType, [UInt8])] = [
            (.int8, [0xFB, 0x03]), (.uint8, [0xFF, 0x00]), (.int16, [0xFE, 0xFF, 0x01, 0x00]),
            (.float16, [0x00, 0x3C, 0x00, 0xC0]), (.bool, [1, 0]), (.int4, [0xE1, 0x03]),
        ]
        for (i, (type, bytes)) in cases.enumerated() {
            let elements: Int64 = type == .int4 ? 3 : 2
            var t = bytes.withUnsafeBytes { Tensor(name: "t\(i)", dataType: type, dims: [elements], rawBytes: $0) }
            t.encoding = .typedFields
            g.setInitializer(t)
        }
        let model = Model(graph: g)
        let bytes = ModelFile.encode(model)
        let back = try bytes.withUnsafeBytes { try ModelFile.decode($0) }
        for (i, (type, raw)) in cases.enumerated() {
            let t = try XCTUnwrap(back.graph.initializers["t\(i)"])
            XCTAssertEqual(t.dataType, type)
            XCTAssertEqual(t.encoding, .typedFields)
            XCTAssertEqual(Array(t.rawBytes), raw, "\(type)")
        }
        XCTAssertEqual(ModelFile.encode(back), bytes)
    }

    func testConstantTensorFollowsIdentityAndConstantNodes() throws {
        var g = Graph()
        g.setInitializer(Tensor(name: "zero_bias", dims: [2], floats: [0, 0]))
        g.appendNode(Node(opType: "Identity", name: "id", inputs: ["zero_bias"], outputs: ["bias"]))
        g.appendNode(
            Node(opType: "Constant", name: "c", inputs: [], outputs: ["w"],
                 attributes: [.tensor("value", Tensor(name: nil, dims: [2], floats: [4, 5]))]))
        g.appendNode(Node(opType: "Constant", name: "k", inputs: [], outputs: ["k"], attributes: [.float("value_float", 0.5)]))
        g.appendNode(Node(opType: "Constant", name: "s", inputs: [], outputs: ["s"], attributes: [.ints("value_ints", [1, -1])]))
        XCTAssertEqual(g.constantTensor("bias")?.floatArray, [0, 0])
        XCTAssertEqual(g.constantTensor("w")?.floatArray, [4, 5])
        XCTAssertEqual(g.constantTensor("w")?.name, "w")
        XCTAssertEqual(g.constantTensor("k")?.floatArray, [0.5])
        XCTAssertEqual(g.constantTensor("s")?.int64Array, [1, -1])
        XCTAssertNil(g.constantTensor("nothing"))
    }
}

final class ModelFileTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("amct-graph-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func testLoadEditSave() throws {
        var model = try ModelFile.load(fixtures.appendingPathComponent("gap_gemm.onnx").path)
        let g = model.graph
        XCTAssertEqual(g.nodeCount, 5)
        let conv = try XCTUnwrap(g.firstNode(named: "/conv1/Conv"))
        XCTAssertEqual(g[conv].ints("kernel_shape"), [3, 3])
        let weight = try XCTUnwrap(g.constantTensor(g[conv].inputs[1]))
        XCTAssertEqual(weight.dims, [24, 3, 3, 3])
        XCTAssertEqual(weight.encoding, .raw)
        // Scale the weight and save; reading it back gives the new values.
        var scaled = weight
        scaled.withMutableElements(as: Float.self) { w in for i in w.indices { w[i] *= 2 } }
        model.graph.setInitializer(scaled)
        let out = directory.appendingPathComponent("scaled.onnx").path
        try ModelFile.save(model, to: out)
        let back = try ModelFile.load(out)
        XCTAssertEqual(back.graph.initializers["conv1.weight"]?.floatArray, weight.floatArray.map { $0 * 2 })
        XCTAssertEqual(back.graph.nodeCount, 5)
    }

    func testBadBytesAreTypedErrors() {
        let cases: [([UInt8], GraphError)] = [
            ([], .emptyFile(path: "<memory>")),
            ([0xFF, 0xFF, 0xFF, 0xFF, 0x0F], .notAModel(path: "<memory>")),
            ([0x08, 0x08], .noGraph(path: "<memory>")),  // ir_version 8 and nothing else
        ]
        for (bytes, expected) in cases {
            XCTAssertThrowsError(try bytes.withUnsafeBytes { try ModelFile.decode($0) }) {
                XCTAssertEqual($0 as? GraphError, expected)
            }
        }
    }

    func testEveryPrefixOfAModelFailsCleanly() throws {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("depthwise.onnx"))
        // Every truncation either fails with a GraphError or (rarely, at a field boundary) decodes; never crashes.
        var failures = 0
        for cut in stride(from: 0, to: data.count, by: 97) {
            do {
                _ = try data.prefix(cut).withUnsafeBytes { try ModelFile.decode($0) }
            } catch is GraphError {
                failures += 1
            }
        }
        XCTAssertGreaterThan(failures, 0)
    }

    func testFailedSaveLeavesNothing() throws {
        let model = try ModelFile.load(fixtures.appendingPathComponent("gap_gemm.onnx").path)
        let missing = directory.appendingPathComponent("no/such/dir/out.onnx").path
        XCTAssertThrowsError(try ModelFile.save(model, to: missing))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }

    func testSaveRefusesToOverwriteTheInput() throws {
        let copy = directory.appendingPathComponent("m.onnx")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("gap_gemm.onnx"), to: copy)
        let model = try ModelFile.load(copy.path)
        XCTAssertThrowsError(try ModelFile.save(model, to: copy.path)) {
            XCTAssertEqual($0 as? GraphError, .outputIsInput(path: copy.path))
        }
    }

    func testUnknownFieldsSurviveInMemory() throws {
        var bytes = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent("gap_gemm.onnx")))
        bytes += [0xA0, 0x38, 0x2A]  // field 900, varint 42, at the top level
        let model = try bytes.withUnsafeBytes { try ModelFile.decode($0) }
        XCTAssertEqual(model.unknownFields.fields, [UnknownFields.Field(tag: 900, wireType: 0, bytes: [0x2A])])
        XCTAssertEqual(ModelFile.encode(model), bytes)
    }
}
