import XCTest

@testable import Graph
@testable import Passes

// The channel rules (ChannelRules.swift) on graphs built in code: what ChannelCoupling.analyse records through each
// op family, what each rule's prune edit says, and FilterPruningPass end to end on channels chosen by construction.
//
//   x ─▶ Conv a[4,2,1,1] ─▶ <op under test> ─▶ Relu ─▶ Conv b[3,4,1,1] ─▶ y

/// A graph built in code: x [1, 2, 4, 4] in, named nodes, float weights with distinct values.
struct CouplingGraph {
    var graph = Graph(name: "coupling")
    private var next: Float = 1

    init(inputChannels: Int64 = 2) {
        graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, [1, inputChannels, 4, 4]))]
    }

    /// An initializer whose values are 1, 2, 3, … continuing from the last one (so every slice is recognisable).
    mutating func constant(_ name: String, _ dims: [Int64], values: [Float]? = nil) -> String {
        let count = dims.reduce(1, *)
        let data = values ?? (0..<Int(count)).map { Float($0) + next }
        next += Float(count)
        graph.setInitializer(Tensor(name: name, dims: dims, floats: data))
        return name
    }

    @discardableResult
    mutating func node(_ op: String, _ name: String, _ inputs: [String], _ attributes: [Attribute] = [],
                       domain: String? = nil) -> String {
        graph.appendNode(Node(opType: op, domain: domain, name: name, inputs: inputs, outputs: [name + ".out"],
                              attributes: attributes))
        return name + ".out"
    }

    /// A Conv with a [cout, cin/group, 1, 1] weight and a bias.
    mutating func conv(_ name: String, _ input: String, cout: Int64, cin: Int64, group: Int64 = 1) -> String {
        let w = constant(name + ".weight", [cout, cin / group, 1, 1])
        let b = constant(name + ".bias", [cout])
        return node("Conv", name, [input, w, b], group == 1 ? [] : [.int("group", group)])
    }

    mutating func output(_ value: String) {
        graph.outputs = [ValueInfo(name: value, type: nil)]
    }

    func analyse() throws -> ChannelCoupling {
        try ChannelCoupling.analyse(graph, layers: Layer.find(in: graph))
    }

    func id(_ name: String) throws -> NodeID { try XCTUnwrap(graph.firstNode(named: name)) }

    /// The edit the rule of node `name` gives for its dependent.
    func edit(_ coupling: ChannelCoupling, _ name: String) throws -> ChannelEdit {
        let dependent = try XCTUnwrap(coupling.dependent(try id(name)), "\(name) is no dependent")
        let node = graph[dependent.node]
        let prune = try XCTUnwrap(coupling.rules.rule(for: node)?.prune, "\(node.op) has no prune rule")
        return try prune(node, dependent.kind)
    }
}

/// The group a layer's output channels belong to (its root after unions).
func group(of layer: String, _ coupling: ChannelCoupling, _ graph: Graph) throws -> ChannelGroup {
    let layers = try Layer.find(in: graph)
    let index = try XCTUnwrap(layers.firstIndex { $0.name == layer })
    return try XCTUnwrap(coupling.groups.first { $0.producers.contains(index) }, "no group has \(layer)")
}

final class ChannelRulesTests: XCTestCase {
    /// Conv a → <middle> → Relu → Conv b → y; `middle` adds nodes after Conv a and returns the value Relu reads.
    func chain(_ middle: (inout CouplingGraph, String) -> String) -> CouplingGraph {
        var g = CouplingGraph()
        let a = g.conv("a", "x", cout: 4, cin: 2)
        let m = middle(&g, a)
        let r = g.node("Relu", "relu", [m])
        g.output(g.conv("b", r, cout: 3, cin: 4))
        return g
    }

    func testBatchNormFollowsAndConvReads() throws {
        let g = chain { g, a in
            let p = ["scale", "B", "mean", "var"].map { g.constant("bn." + $0, [4]) }
            return g.node("BatchNormalization", "bn", [a] + p)
        }
        let coupling = try g.analyse()
        let a = try group(of: "a", coupling, g.graph)
        XCTAssertNil(a.blocked)
        XCTAssertEqual(a.channels, 4)
        // b's own channels reach the graph output.
        XCTAssertEqual(try group(of: "b", coupling, g.graph).blocked, "its channels reach graph output 'b.out'")
        XCTAssertEqual(coupling.dependents.map { g.graph[$0.node].displayName }, ["bn", "b"])
        XCTAssertEqual(coupling.dependent(try g.id("bn"))?.kind, .follows)
        XCTAssertEqual(coupling.dependent(try g.id("b"))?.kind, .reads)
        // BN: its four parameters on axis 0; Conv b: weight [Cout, Cin, kh, kw] on axis 1.
        XCTAssertEqual(try g.edit(coupling, "bn"), ChannelEdit((1...4).map { .init($0, axis: 0) }))
        XCTAssertEqual(try g.edit(coupling, "b"), ChannelEdit([.init(1, axis: 1)]))
        XCTAssertEqual(coupling.values["relu.out"]?.axis, 1)
        XCTAssertEqual(coupling.values["relu.out"]?.segments.map(\.count), [4])
    }

    func testBatchNormOnAnotherAxisBlocks() throws {
        // MatMul [1, 4, 2] × [2, 4] → [1, 4, 4]: channels on axis 2, but BatchNormalization normalizes axis 1.
        var g = CouplingGraph()
        g.graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, [1, 4, 2]))]
        let w = g.constant("w", [2, 4])
        let m = g.node("MatMul", "mm", ["x", w])
        g.graph.valueInfo = [ValueInfo(name: m, type: .tensor(.float, [1, 4, 4]))]
        let p = ["scale", "B", "mean", "var"].map { g.constant("bn." + $0, [4]) }
        g.node("BatchNormalization", "bn", [m] + p)
        let coupling = try g.analyse()
        XCTAssertEqual(try group(of: "mm", coupling, g.graph).blocked,
                       "BatchNormalization at 'bn' normalizes axis 1, not the channel axis 2")
        XCTAssertTrue(coupling.dependents.isEmpty)
    }

    func testInstanceNormalizationFollowsWithScaleAndB() throws {
        let g = chain { g, a in
            g.node("InstanceNormalization", "in", [a, g.constant("in.scale", [4]), g.constant("in.B", [4])])
        }
        let coupling = try g.analyse()
        XCTAssertNil(try group(of: "a", coupling, g.graph).blocked)
        XCTAssertEqual(coupling.dependent(try g.id("in"))?.kind, .follows)
        XCTAssertEqual(try g.edit(coupling, "in"), ChannelEdit([.init(1, axis: 0), .init(2, axis: 0)]))

        let computed = chain { g, a in g.node("InstanceNormalization", "in", [a, "x", g.constant("in.B", [4])]) }
        XCTAssertEqual(try group(of: "a", try computed.analyse(), computed.graph).blocked,
                       "InstanceNormalization at 'in' has parameters that are not constants")
        let wrong = chain { g, a in
            g.node("InstanceNormalization", "in", [a, g.constant("in.scale", [3]), g.constant("in.B", [4])])
        }
        XCTAssertThrowsError(try wrong.analyse()) { error in
            XCTAssertEqual("\(error)", "node 'in': its scale 'in.scale' has dims [3]; its input has 4 channels")
        }
    }

    func testPReluSlopeFollowsWhenPerChannel() throws {
        // Slope [4,1,1] against [N,4,H,W]: axis 0 of the slope; [1] is one slope for all channels.
        let perChannel = chain { g, a in g.node("PRelu", "prelu", [a, g.constant("slope", [4, 1, 1])]) }
        let coupling = try perChannel.analyse()
        XCTAssertNil(try group(of: "a", coupling, perChannel.graph).blocked)
        XCTAssertEqual(try perChannel.edit(coupling, "prelu"), ChannelEdit([.init(1, axis: 0)]))

        let shared = chain { g, a in g.node("PRelu", "prelu", [a, g.constant("slope", [1])]) }
        let sharedCoupling = try shared.analyse()
        XCTAssertNil(try group(of: "a", sharedCoupling, shared.graph).blocked)
        XCTAssertNil(sharedCoupling.dependent(try shared.id("prelu")))

        let computed = chain { g, a in
            g.node("PRelu", "prelu", [a, g.node("Abs", "abs", [g.constant("s", [4, 1, 1])])])
        }
        XCTAssertEqual(try group(of: "a", try computed.analyse(), computed.graph).blocked,
                       "PRelu at 'prelu' has a slope that is not a constant")
    }

    func testResidualAddUnitesGroups() throws {
        var g = CouplingGraph()
        let a = g.conv("a", "x", cout: 4, cin: 2)
        let c = g.conv("c", "x", cout: 4, cin: 2)
        let sum = g.node("Add", "add", [a, c])
        g.output(g.conv("b", sum, cout: 3, cin: 4))
        let coupling = try g.analyse()
        let joined = try group(of: "a", coupling, g.graph)
        XCTAssertEqual(joined.producers.count, 2)
        XCTAssertNil(joined.blocked)
        XCTAssertEqual(coupling.groups.filter { !$0.producers.isEmpty }.count, 2)  // {a, c} and {b}
    }

    func testBroadcastConstants() throws {
        // A constant [4,1,1] against [N,4,H,W] lines up with axis 0 of the constant; [1,4,1,1] with axis 1; a scalar
        // and [1,1,1] hold one value for all channels; [3,1,1] has the wrong count on the channel axis.
        let cases: [([Int64], ChannelDependent.Kind?, String?)] = [
            ([4, 1, 1], .constant(input: 1, axis: 0), nil),
            ([1, 4, 1, 1], .constant(input: 1, axis: 1), nil),
            ([], nil, nil),
            ([1, 1, 1], nil, nil),
            ([3, 1, 1], nil, "Mul at 'mul' has a constant of shape [3, 1, 1] on the channel axis"),
        ]
        for (dims, kind, blocked) in cases {
            let g = chain { g, a in g.node("Mul", "mul", [a, g.constant("k", dims)]) }
            let coupling = try g.analyse()
            XCTAssertEqual(try group(of: "a", coupling, g.graph).blocked, blocked, "\(dims)")
            XCTAssertEqual(coupling.dependent(try g.id("mul"))?.kind, kind, "\(dims)")
            if let kind, case .constant(let input, let axis) = kind {
                XCTAssertEqual(try g.edit(coupling, "mul"), ChannelEdit([.init(input, axis: axis)]))
            }
        }
    }

    func testDepthwiseConvFollowsWithItsGroupCount() throws {
        let g = chain { g, a in g.conv("dw", a, cout: 4, cin: 4, group: 4) }
        let coupling = try g.analyse()
        XCTAssertNil(try group(of: "a", coupling, g.graph).blocked)
        XCTAssertEqual(coupling.dependent(try g.id("dw"))?.kind, .follows)
        // Weight [C, 1, kh, kw] on axis 0, bias on axis 0, and group becomes the channels kept.
        XCTAssertEqual(try g.edit(coupling, "dw"), ChannelEdit([.init(1, axis: 0), .init(2, axis: 0)], setsGroup: true))

        let grouped = chain { g, a in g.conv("gc", a, cout: 4, cin: 4, group: 2) }
        XCTAssertEqual(try group(of: "a", try grouped.analyse(), grouped.graph).blocked,
                       "grouped Conv 'gc' (group 2) mixes channels across groups")
    }

    func testGemmReadsOnTheAxisLayerSays() throws {
        // GAP → Flatten → Gemm: the weight is [K, N] (transB 0) or [N, K] (transB 1).
        for transB: Int64 in [0, 1] {
            var g = CouplingGraph()
            let a = g.conv("a", "x", cout: 4, cin: 2)
            let pool = g.node("GlobalAveragePool", "gap", [a])
            let flat = g.node("Flatten", "flatten", [pool])
            let w = g.constant("fc.weight", transB == 1 ? [5, 4] : [4, 5])
            g.output(g.node("Gemm", "fc", [flat, w, g.constant("fc.bias", [5])], [.int("transB", transB)]))
            let coupling = try g.analyse()
            XCTAssertNil(try group(of: "a", coupling, g.graph).blocked)
            XCTAssertEqual(coupling.values[flat]?.axis, 1)
            XCTAssertEqual(try g.edit(coupling, "fc"), ChannelEdit([.init(1, axis: transB == 1 ? 1 : 0)]))
        }
    }

    func testConcatAppendsAFixedSegmentForAnInputNobodyPrunes() throws {
        var g = CouplingGraph()
        let a = g.conv("a", "x", cout: 4, cin: 2)
        let cat = g.node("Concat", "cat", [a, "x"], [.int("axis", 1)])
        g.output(g.conv("b", cat, cout: 3, cin: 6))
        let coupling = try g.analyse()
        let segments = try XCTUnwrap(coupling.dependent(try g.id("b"))?.segments)
        XCTAssertEqual(segments.map(\.count), [4, 2])
        XCTAssertNotNil(segments[0].group)
        XCTAssertNil(segments[1].group)
    }

    func testOpsWithoutARuleBlockWithTheirName() throws {
        let transposed = chain { g, a in g.node("Transpose", "t", [a], [.ints("perm", [0, 1, 3, 2])]) }
        XCTAssertEqual(try group(of: "a", try transposed.analyse(), transposed.graph).blocked,
                       "Transpose at 't' (channels cannot follow through it)")
        let custom = chain { g, a in g.node("Relu", "mine", [a], domain: "com.example") }
        XCTAssertEqual(try group(of: "a", try custom.analyse(), custom.graph).blocked,
                       "custom op Relu at 'mine' reads the channels")
    }

    func testARegisteredRuleIsAllAnOpNeeds() throws {
        let g = chain { g, a in g.node("Softsign", "soft", [a]) }
        XCTAssertNotNil(try group(of: "a", try g.analyse(), g.graph).blocked)
        var rules = ChannelRuleTable.standard
        rules.register("Softsign", ChannelRules.unary)
        let coupling = try ChannelCoupling.analyse(g.graph, layers: Layer.find(in: g.graph), rules: rules)
        XCTAssertNil(try group(of: "a", coupling, g.graph).blocked)
        XCTAssertEqual(coupling.dependent(try g.id("b"))?.segments.map(\.count), [4])
        // The pass takes the table too: a's 4 channels go to 2, and b reads 2.
        let standard = try prune(g.graph).1.pruneEvents.map(\.description)
        XCTAssertTrue(standard.contains { $0.hasPrefix("left alone: a (4 channels): Softsign") }, "\(standard)")
        let (pruned, context) = try prune(g.graph, rules: rules)
        XCTAssertTrue(context.pruneEvents.map(\.description).contains("pruned: a: 4 → 2 channels (ratio 0.5)"), "\(context.pruneEvents.map(\.description))")
        XCTAssertEqual(try floats(pruned, "b", input: 1).0, [3, 2, 1, 1])
    }

    /// Prunes `graph` at ratio 0.5 (no 16-alignment) with every layer but `b` filter-pruned; returns the result.
    func prune(_ graph: Graph, rules: ChannelRuleTable = .standard) throws -> (Graph, PassContext) {
        var model = Model(graph: graph)
        let config = try CompressionConfig(
            TextFormat.parse(
                """
                prune_config {
                  filter_pruner { balanced_l2_norm_filter_prune { prune_ratio: 0.5 ascend_optimized: false } }
                }
                regular_prune_skip_layers: "b"
                """, file: "t.cfg", schema: .amctRetrainConfig
            ).message, file: "t.cfg")
        var context = try plan(&model, config: config)
        try FilterPruningPass(rules: rules).run(&model.graph, &context)
        return (model.graph, context)
    }

    func floats(_ graph: Graph, _ node: String, input: Int) throws -> ([Int64], [Float]) {
        let n = graph[try XCTUnwrap(graph.firstNode(named: node))]
        let t = try XCTUnwrap(graph.constantTensor(n.inputs[input]))
        return (t.dims, t.floatArray)
    }

    func testPruningBatchNormChainKeepsTheChannelsWithWeight() throws {
        // Conv a's channels 1 and 3 have zero weights: the L2 scores put them last, so ratio 0.5 keeps 0 and 2.
        var g = CouplingGraph()
        let w = g.constant("a.weight", [4, 2, 1, 1], values: [1, 2, 0, 0, 3, 4, 0, 0])
        let a = g.node("Conv", "a", ["x", w, g.constant("a.bias", [4], values: [10, 11, 12, 13])])
        let p = ["scale", "B", "mean", "var"].map { g.constant("bn." + $0, [4]) }  // 13…16, 17…20, 21…24, 25…28
        let bn = g.node("BatchNormalization", "bn", [a] + p)
        let b = g.conv("b", g.node("Relu", "relu", [bn]), cout: 3, cin: 4)  // weight [3, 4, 1, 1] 29…40
        g.output(b)
        let (pruned, context) = try prune(g.graph)
        XCTAssertTrue(context.pruneEvents.map(\.description).contains("pruned: a: 4 → 2 channels (ratio 0.5)"), "\(context.pruneEvents.map(\.description))")
        XCTAssertEqual(try floats(pruned, "a", input: 1).1, [1, 2, 3, 4])
        XCTAssertEqual(try floats(pruned, "a", input: 2).1, [10, 12])
        XCTAssertEqual(try floats(pruned, "bn", input: 1).1, [13, 15])
        XCTAssertEqual(try floats(pruned, "bn", input: 2).1, [17, 19])
        XCTAssertEqual(try floats(pruned, "bn", input: 3).1, [21, 23])
        XCTAssertEqual(try floats(pruned, "bn", input: 4).1, [25, 27])
        let (dims, values) = try floats(pruned, "b", input: 1)
        XCTAssertEqual(dims, [3, 2, 1, 1])
        XCTAssertEqual(values, [29, 31, 33, 35, 37, 39])
    }

    func testPruningDepthwiseSetsItsGroupCount() throws {
        var g = CouplingGraph()
        let w = g.constant("a.weight", [4, 2, 1, 1], values: [0, 0, 5, 6, 0, 0, 7, 8])
        let a = g.node("Conv", "a", ["x", w, g.constant("a.bias", [4])])  // bias 9…12
        let dw = g.conv("dw", a, cout: 4, cin: 4, group: 4)  // weight 13…16, bias 17…20
        g.output(g.conv("b", dw, cout: 3, cin: 4))
        let (pruned, _) = try prune(g.graph)
        let node = pruned[try XCTUnwrap(pruned.firstNode(named: "dw"))]
        XCTAssertEqual(node.int("group"), 2)
        XCTAssertEqual(try floats(pruned, "dw", input: 1).1, [14, 16])
        XCTAssertEqual(try floats(pruned, "dw", input: 2).1, [18, 20])
        XCTAssertEqual(try floats(pruned, "b", input: 1).0, [3, 2, 1, 1])
    }
}
