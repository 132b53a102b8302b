// FilterPruningPass and ChannelCoupling.analyse on 3–5 node graphs, against balanced-L2 scores computed by hand
// (SEMANTICS §4: score_c = ‖W_c‖₂ / elements per channel, min-max normalised per producer, mean over a group's
// producers; remain = C − round_half_even(C·ratio); the lowest scores go).

import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class FilterPruningPassUnitTests: XCTestCase {
    /// x[1,2,1,1] ─▶ Conv conv_a (wa[4,2,1,1], ba) ─▶ BN ─▶ Relu ─▶ Conv conv_b (wb[3,4,1,1]) ─▶ y (graph output)
    ///
    /// wa rows (0.6, 0.8), (6, 8), (0.3, 0.4), (3, 4): ‖W_c‖₂ = 1, 10, 0.5, 5; scores (÷2) 0.5, 5, 0.25, 2.5;
    /// normalised (s − 0.25)/4.75 = 0.053, 1, 0, 0.474. Ratio 0.5: remain 2, so channels 2 and 0 go, 1 and 3 stay.
    /// wb reads channels 0 and 2 with weight 0, so the pruned model computes exactly what the original does.
    func convBNReluConv() -> Graph {
        var t = TestGraph()
        t.input("x", [1, 2, 1, 1])
        t.floats("wa", [4, 2, 1, 1], [0.6, 0.8, 6, 8, 0.3, 0.4, 3, 4])
        t.floats("ba", [4], [10, 11, 12, 13])
        t.floats("gamma", [4], [1, 2, 3, 4])
        t.floats("beta", [4], [0.1, 0.2, 0.3, 0.4])
        t.floats("mean", [4], [5, 6, 7, 8])
        t.floats("var", [4], [1, 1, 2, 2])
        t.floats("wb", [3, 4, 1, 1], [0, 1, 0, 3, 0, 5, 0, 7, 0, 9, 0, 11])
        t.node("Conv", "conv_a", ["x", "wa", "ba"], ["a"])
        t.node("BatchNormalization", "bn", ["a", "gamma", "beta", "mean", "var"], ["n"])
        t.node("Relu", "relu", ["n"], ["r"])
        t.node("Conv", "conv_b", ["r", "wb"], ["y"])
        t.output("y")
        t.graph.valueInfo = [ValueInfo(name: "a", type: .tensor(.float, [1, 4, 1, 1]))]
        return t.graph
    }

    func testConvBNReluConvKeepsTheHighestBalancedScores() throws {
        var g = convBNReluConv()
        let original = g
        var context = try planned(&g, UnitConfigs.filter(0.5))
        try Pipeline([FilterPruningPass()]).run(&g, &context)

        let conv = try nodeNamed(g, "conv_a"), bn = try nodeNamed(g, "bn"), consumer = try nodeNamed(g, "conv_b")
        XCTAssertEqual(try floatsOf(g, conv.inputs[1]), [6, 8, 3, 4])  // rows 1 and 3 of wa
        XCTAssertEqual(g.constantTensor(conv.inputs[1])?.dims, [2, 2, 1, 1])
        XCTAssertEqual(try floatsOf(g, conv.inputs[2]), [11, 13])
        XCTAssertEqual(try floatsOf(g, bn.inputs[1]), [2, 4])
        XCTAssertEqual(try floatsOf(g, bn.inputs[2]), [0.2, 0.4])
        XCTAssertEqual(try floatsOf(g, bn.inputs[3]), [6, 8])
        XCTAssertEqual(try floatsOf(g, bn.inputs[4]), [1, 2])
        // The consumer keeps input channels 1 and 3 of each of its 3 filters.
        XCTAssertEqual(try floatsOf(g, consumer.inputs[1]), [1, 3, 5, 7, 9, 11])
        XCTAssertEqual(g.constantTensor(consumer.inputs[1])?.dims, [3, 2, 1, 1])
        XCTAssertEqual(g.valueInfo[0].type, .tensor(.float, [1, 2, 1, 1]))
        // The originals are left for PruneFusionPass to release; the record keeps the indices.
        XCTAssertEqual(Set(context.replacedTensors), ["wa", "ba", "gamma", "beta", "mean", "var", "wb"])
        XCTAssertEqual(context.record.prune["conv_a"], PruneRecord(keptChannels: [1, 3]))
        XCTAssertTrue(context.pruneEvents.map(\.description).contains("pruned: conv_a: 4 → 2 channels (ratio 0.5)"),
                      "\(context.pruneEvents.map(\.description))")

        // The pruned channels fed conv_b with weight 0: both graphs compute the same y.
        let x = DenseTensor(shape: [1, 2, 1, 1], floats: [0.7, -1.3])
        let before = try XCTUnwrap(GraphExecutor(graph: original, opset: 13).run(["x": x])["y"]).floats
        let after = try XCTUnwrap(GraphExecutor(graph: g, opset: 13).run(["x": x])["y"]).floats
        assertClose(after, before, accuracy: 1e-5)
    }

    /// conv_b's channels reach the graph output: its group is left alone, and the report says why.
    func testABlockedGroupIsLeftAloneWithItsReason() throws {
        var g = convBNReluConv()
        var context = try planned(&g, UnitConfigs.filter(0.5))
        try FilterPruningPass().run(&g, &context)
        XCTAssertEqual(g.constantTensor(try nodeNamed(g, "conv_b").inputs[1])?.dims.first, 3)
        let reason = "left alone: conv_b (3 channels): its channels reach graph output 'y'"
        XCTAssertTrue(context.pruneEvents.map(\.description).contains(reason), "\(context.pruneEvents.map(\.description))")
        XCTAssertNil(context.record.prune["conv_b"])
    }

    /// After the pass the pipeline recomputes the layers: context.layers and the plan see the pruned shapes.
    func testRefreshLayersAfterPruningGivesThePrunedShapes() throws {
        var g = convBNReluConv()
        var context = try planned(&g, UnitConfigs.filter(0.5))
        XCTAssertEqual(context.layers[0].weightShape, [4, 2, 1, 1])
        try Pipeline([FilterPruningPass()]).run(&g, &context)
        XCTAssertEqual(context.layers[0].weightShape, [2, 2, 1, 1])
        XCTAssertEqual(context.layers[0].outputChannels, 2)
        XCTAssertEqual(context.layers[0].weight, try nodeNamed(g, "conv_a").inputs[1])
        XCTAssertEqual(context.layers[1].weightShape, [3, 2, 1, 1])
        XCTAssertEqual(context.layers[1].inputChannels, 2)
        XCTAssertEqual(context.plan?.layers[0].layer.weightShape, [2, 2, 1, 1])
        XCTAssertEqual(context.plan?.layers[1].layer.inputChannels, 2)
    }

    /// x ─┬─▶ conv_a (wa) ─┐
    ///    └─▶ conv_c (wc) ─┴─▶ Add ─▶ Relu ─▶ conv_d (wd[1,4,1,1]) ─▶ y
    ///
    /// wa norms 1, 5, 2, 3 → normalised (n − 1)/4 = 0, 1, 0.25, 0.5; wc norms 4, 1, 6, 2 → (n − 1)/5 = 0.6, 0, 1, 0.2;
    /// mean 0.3, 0.5, 0.625, 0.35: channels 0 and 3 go (wa alone would drop 0 and 2, wc alone 1 and 3).
    func residual() -> Graph {
        var t = TestGraph()
        t.input("x", [1, 2, 1, 1])
        t.floats("wa", [4, 2, 1, 1], [0.6, 0.8, 3, 4, 1.2, 1.6, 1.8, 2.4])
        t.floats("wc", [4, 2, 1, 1], [2.4, 3.2, 0.6, 0.8, 3.6, 4.8, 1.2, 1.6])
        t.floats("wd", [1, 4, 1, 1], [1, 2, 3, 4])
        t.node("Conv", "conv_a", ["x", "wa"], ["a"])
        t.node("Conv", "conv_c", ["x", "wc"], ["c"])
        t.node("Add", "add", ["a", "c"], ["s"])
        t.node("Relu", "relu", ["s"], ["r"])
        t.node("Conv", "conv_d", ["r", "wd"], ["y"])
        t.output("y")
        return t.graph
    }

    func testCouplingUnitesTheResidualAddIntoOneGroup() throws {
        var g = residual()
        let context = try planned(&g, UnitConfigs.filter(0.5))
        let coupling = try ChannelCoupling.analyse(g, layers: context.layers)
        let live = coupling.groups.filter { !$0.producers.isEmpty }
        XCTAssertEqual(live.count, 2)
        XCTAssertEqual(live[0].producers.sorted(), [0, 1])  // conv_a and conv_c
        XCTAssertEqual(live[0].channels, 4)
        XCTAssertNil(live[0].blocked)
        XCTAssertEqual(live[1].producers, [2])  // conv_d, whose output is the graph's
        XCTAssertEqual(live[1].blocked, "its channels reach graph output 'y'")
        // The Relu after the Add carries the one group on axis 1 (conv_d reads it).
        let root = try XCTUnwrap(coupling.groups.firstIndex { $0.producers.sorted() == [0, 1] })
        XCTAssertEqual(coupling.values["r"]?.axis, 1)
        XCTAssertEqual(coupling.values["r"]?.segments, [ChannelSegment(group: root, count: 4)])
    }

    func testResidualGroupIsScoredByTheMeanOfItsProducers() throws {
        var g = residual()
        var context = try planned(&g, UnitConfigs.filter(0.5))
        try Pipeline([FilterPruningPass()]).run(&g, &context)
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "conv_a").inputs[1]), [3, 4, 1.2, 1.6])
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "conv_c").inputs[1]), [0.6, 0.8, 3.6, 4.8])
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "conv_d").inputs[1]), [2, 3])
        XCTAssertEqual(context.record.prune["conv_a"], PruneRecord(keptChannels: [1, 2]))
        XCTAssertEqual(context.record.prune["conv_c"], PruneRecord(keptChannels: [1, 2]))
    }

    /// Equal scores: the lower index goes first. wa rows of norm 2, 2, 2, 4: ratio 0.25 keeps 3, so channel 0 goes.
    func testTiesPruneTheLowerIndex() throws {
        var t = TestGraph()
        t.input("x", [1, 2, 1, 1])
        t.floats("wa", [4, 2, 1, 1], [0, 2, 2, 0, 1.2, 1.6, 2.4, 3.2])
        t.floats("wb", [1, 4, 1, 1], [1, 2, 3, 4])
        t.node("Conv", "conv_a", ["x", "wa"], ["a"])
        t.node("Conv", "conv_b", ["a", "wb"], ["y"])
        t.output("y")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.filter(0.25))
        try FilterPruningPass().run(&g, &context)
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "conv_b").inputs[1]), [2, 3, 4])
    }

    /// Gemm(transB=1) ─▶ Relu ─▶ Gemm(transB=0) ─▶ MatMul: output channels on axis 0 of w1 and axis 1 of w2 (and of the
    /// MatMul weight), input channels on axis 0 of w2 and w3. Ratio 0.3: w1 rows (3,4), (0.3,0.4), (6,8), (0.6,0.8)
    /// have norms 5, 0.5, 10, 1, and 4 − round(1.2) = 3 stay, so channel 1 goes; the MatMul is skipped.
    func testGemmAndMatMulAxes() throws {
        var t = TestGraph()
        t.input("x", [1, 2])
        t.floats("w1", [4, 2], [3, 4, 0.3, 0.4, 6, 8, 0.6, 0.8])
        // w2 [K=4, N=3]: column norms 0.1, 2, 3 → column 0 goes at ratio 0.3 (remain 3 − round(0.9) = 2).
        t.floats("w2", [4, 3], [0.1, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0])
        t.floats("w3", [3, 1], [7, 8, 9])
        t.node("Gemm", "g1", ["x", "w1"], ["h"], [.int("transB", 1)])
        t.node("Relu", "relu", ["h"], ["r"])
        t.node("Gemm", "g2", ["r", "w2"], ["h2"])
        t.node("MatMul", "mm", ["h2", "w3"], ["y"])
        t.output("y")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.filter(0.3) + "\nregular_prune_skip_layers: \"mm\"")
        try FilterPruningPass().run(&g, &context)
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "g1").inputs[1]), [3, 4, 6, 8, 0.6, 0.8])
        // g2 loses input row 1 and output column 0.
        let w2 = try nodeNamed(g, "g2").inputs[1]
        XCTAssertEqual(g.constantTensor(w2)?.dims, [3, 2])
        XCTAssertEqual(try floatsOf(g, w2), [2, 0, 0, 0, 0, 0])
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "mm").inputs[1]), [8, 9])
    }

    /// x ─┬─▶ conv_a (wa[2,2,1,1]) ─┐
    ///    └─▶ conv_b (wb[2,2,1,1]) ─┴─▶ Concat(axis 1) ─▶ conv_d (wd[1,4,1,1]) ─▶ y
    /// Ratio 0.5 keeps 1 of 2 channels per producer: wa norms 1, 5 keep channel 1; wb norms 4, 2 keep channel 0. In the
    /// concatenation those are channels 1 and 2 + 0 = 2, so conv_d keeps input channels 1 and 2.
    func testConcatMapsEachInputAtItsOffset() throws {
        var t = TestGraph()
        t.input("x", [1, 2, 1, 1])
        t.floats("wa", [2, 2, 1, 1], [0.6, 0.8, 3, 4])
        t.floats("wb", [2, 2, 1, 1], [2.4, 3.2, 1.2, 1.6])
        t.floats("wd", [1, 4, 1, 1], [1, 2, 3, 4])
        t.node("Conv", "conv_a", ["x", "wa"], ["a"])
        t.node("Conv", "conv_b", ["x", "wb"], ["b"])
        t.node("Concat", "concat", ["a", "b"], ["c"], [.int("axis", 1)])
        t.node("Conv", "conv_d", ["c", "wd"], ["y"])
        t.output("y")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.filter(0.5))
        try FilterPruningPass().run(&g, &context)
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "conv_a").inputs[1]), [3, 4])
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "conv_b").inputs[1]), [2.4, 3.2])
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "conv_d").inputs[1]), [2, 3])
    }

    /// conv_a (the 4-channel weight of convBNReluConv, keeping channels 1 and 3) ─▶ depthwise Conv (group 4,
    /// w [1, 2, 3, 4], b [0.1, 0.2, 0.3, 0.4]) ─▶ conv_b (w [5, 6, 7, 8]) ─▶ y: the depthwise conv keeps weights and
    /// bias of channels 1 and 3 with group 2, and conv_b reads those two.
    func testDepthwiseConvFollowsWithItsGroupCount() throws {
        var t = TestGraph()
        t.input("x", [1, 2, 1, 1])
        t.floats("wa", [4, 2, 1, 1], [0.6, 0.8, 6, 8, 0.3, 0.4, 3, 4])
        t.floats("wdw", [4, 1, 1, 1], [1, 2, 3, 4])
        t.floats("bdw", [4], [0.1, 0.2, 0.3, 0.4])
        t.floats("wb", [1, 4, 1, 1], [5, 6, 7, 8])
        t.node("Conv", "conv_a", ["x", "wa"], ["a"])
        t.node("Conv", "dw", ["a", "wdw", "bdw"], ["d"], [.int("group", 4)])
        t.node("Conv", "conv_b", ["d", "wb"], ["y"])
        t.output("y")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.filter(0.5))
        try Pipeline([FilterPruningPass()]).run(&g, &context)
        let dw = try nodeNamed(g, "dw")
        XCTAssertEqual(try floatsOf(g, dw.inputs[1]), [2, 4])
        XCTAssertEqual(try floatsOf(g, dw.inputs[2]), [0.2, 0.4])
        XCTAssertEqual(dw.int("group"), 2)
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "conv_b").inputs[1]), [6, 8])
        XCTAssertEqual(context.layers[1].group, 2, "the refreshed depthwise layer")
    }

    /// conv_a (keeping channels 1 and 3, as above) ─▶ Mul(s[1,4,1,1]) ─▶ GlobalAveragePool ─▶ Flatten
    ///   ─▶ Gemm (w[2,4], transB=1) ─▶ y: the broadcast constant loses channels 0 and 2, and channel c of the pool
    /// is feature c of the Gemm, whose weight keeps columns 1 and 3.
    func testBroadcastConstantAndPoolFlattenGemm() throws {
        var t = TestGraph()
        t.input("x", [1, 2, 1, 1])
        t.floats("wa", [4, 2, 1, 1], [0.6, 0.8, 6, 8, 0.3, 0.4, 3, 4])
        t.floats("s", [1, 4, 1, 1], [10, 20, 30, 40])
        t.floats("wfc", [2, 4], [1, 2, 3, 4, 5, 6, 7, 8])
        t.node("Conv", "conv_a", ["x", "wa"], ["a"])
        t.node("Mul", "scale", ["a", "s"], ["m"])
        t.node("GlobalAveragePool", "gap", ["m"], ["p"])
        t.node("Flatten", "flatten", ["p"], ["f"])
        t.node("Gemm", "fc", ["f", "wfc"], ["y"], [.int("transB", 1)])
        t.output("y")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.filter(0.5))
        try FilterPruningPass().run(&g, &context)
        let s = try nodeNamed(g, "scale").inputs[1]
        XCTAssertEqual(g.constantTensor(s)?.dims, [1, 2, 1, 1])
        XCTAssertEqual(try floatsOf(g, s), [20, 40])
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "fc").inputs[1]), [2, 4, 6, 8])
    }
}
