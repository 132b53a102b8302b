// LayerMatchingPass, SkipMarkingPass and OverrideResolutionPass (steps 3–5) on a 6-node graph:
//
//   x ─▶ Conv "/layer1/layer1.0/conv1/Conv" (w1) ─▶ Relu ─▶ Conv "conv2" (conv2_w) ─▶ GlobalAveragePool ─▶ Flatten
//     ─▶ Gemm "gemm_node" (fc.weight, transB=1) ─▶ y
//
// Layer 0 is named by its node name or module "layer1.0.conv1", layer 1 by node name "conv2", layer 2 by node name or
// by its weight's module "fc".

import XCTest

@testable import Graph
@testable import Passes

final class PlanPassUnitTests: XCTestCase {
    static let globalQuant = UnitConfigs.quant(clipMin: -6, clipMax: 6)

    func graph() -> Graph {
        var t = TestGraph()
        t.input("x", [1, 2, 2, 2])
        t.floats("w1", [2, 2, 1, 1], [1, 2, 3, 4])
        t.floats("conv2_w", [2, 2, 1, 1], [1, 0, 0, 1])
        t.floats("fc.weight", [3, 2], [1, 2, 3, 4, 5, 6])
        t.node("Conv", "/layer1/layer1.0/conv1/Conv", ["x", "w1"], ["a"])
        t.node("Relu", "relu", ["a"], ["r"])
        t.node("Conv", "conv2", ["r", "conv2_w"], ["c"])
        t.node("GlobalAveragePool", "gap", ["c"], ["p"])
        t.node("Flatten", "flatten", ["p"], ["f"])
        t.node("Gemm", "gemm_node", ["f", "fc.weight"], ["y"], [.int("transB", 1)])
        t.output("y")
        return t.graph
    }

    // MARK: LayerMatchingPass

    func testLayerMatchingResolvesNodeModuleAndWeightNames() throws {
        var g = graph()
        var context = try unitContext(Self.globalQuant + """

            skip_layers: "layer1.0.conv1"
            quant_skip_layers: "conv2"
            regular_prune_skip_layers: "fc"
            quant_skip_layers: "gemm_node"
            """)
        try Pipeline([LayerMatchingPass()]).run(&g, &context)
        XCTAssertEqual(context.layers.map(\.name), ["/layer1/layer1.0/conv1/Conv", "conv2", "gemm_node"])
        XCTAssertEqual(context.layers.map(\.op), [.conv, .conv, .gemm])
        XCTAssertEqual(context.layers[0].moduleName, "layer1.0.conv1")
        XCTAssertEqual(context.layers[2].transB, true)
        XCTAssertEqual(context.layers[2].inputChannels, 2)
        XCTAssertEqual(context.layers[2].outputChannels, 3)
        XCTAssertEqual(context.layers[1].inputProducerOp, "Relu")
        XCTAssertEqual(context.layerForName, ["layer1.0.conv1": 0, "conv2": 1, "fc": 2, "gemm_node": 2])
        XCTAssertTrue(context.provided.contains(.layers))
    }

    func testLayerMatchingUnknownNameIsAnErrorAtItsPlace() throws {
        var g = graph()
        var context = try unitContext(Self.globalQuant + """

            quant_skip_layers: "conv3"
            """)
        let errors = expectError(ConfigErrors.self) { try LayerMatchingPass().run(&g, &context) }
        let e = try XCTUnwrap(errors?.errors.first)
        XCTAssertEqual(errors?.errors.count, 1)
        XCTAssertEqual(e.kind, .unknownLayerName)
        XCTAssertEqual(e.location, SourceLocation(file: "unit.cfg", line: 3, column: 20))
        XCTAssertTrue(e.description.hasPrefix("unit.cfg:3:20:"), e.description)
        XCTAssertTrue(e.message.contains("Closest: 'conv2'"), e.message)
        XCTAssertTrue(context.layers.isEmpty, "nothing is stored when a name fails")
    }

    func testLayerMatchingWarnsOfATypeWithNoLayer() throws {
        var g = graph()
        var context = try unitContext(Self.globalQuant + """

            quant_skip_types: "ConvTranspose"
            """)
        try LayerMatchingPass().run(&g, &context)
        XCTAssertEqual(context.diagnostics.map(\.message),
                       ["unit.cfg:3:19: layer type 'ConvTranspose' matches no layer of this model"])
    }

    // MARK: SkipMarkingPass

    /// Feature lists win over skip_layers whatever the file order; names win over types.
    func testSkipMarkingReportsTheListThatWins() throws {
        var g = graph()
        var context = try unitContext(Self.globalQuant + "\n" + UnitConfigs.filter(0.5) + """

            skip_layers: "conv2"
            quant_skip_layers: "conv2"
            skip_layer_types: "Conv2d"
            regular_prune_skip_layers: "layer1.0.conv1"
            quant_skip_types: "Linear"
            """)
        try Pipeline([LayerMatchingPass(), SkipMarkingPass()]).run(&g, &context)
        // conv2: quant_skip_layers (line 5) beats skip_layers (line 4); pruning only has skip_layers.
        XCTAssertEqual(context.quantSkips[1]?.list, "quant_skip_layers")
        XCTAssertEqual(context.quantSkips[1]?.location.line, 5)
        XCTAssertEqual(context.pruneSkips[1]?.list, "skip_layers")
        XCTAssertEqual(context.pruneSkips[1]?.location.line, 4)
        // conv1: skipped for quantization by type Conv2d; for pruning its name (regular_prune_skip_layers) wins.
        XCTAssertEqual(context.quantSkips[0]?.list, "skip_layer_types")
        XCTAssertEqual(context.quantSkips[0]?.type, "Conv2d")
        XCTAssertEqual(context.quantSkips[0]?.source.key, "skipped_by_type:skip_layer_types")
        XCTAssertEqual(context.pruneSkips[0]?.list, "regular_prune_skip_layers")
        XCTAssertNil(context.pruneSkips[0]?.type)
        // gemm: quant_skip_types Linear; Conv2d does not name it, so it is pruned.
        XCTAssertEqual(context.quantSkips[2]?.list, "quant_skip_types")
        XCTAssertEqual(context.quantSkips[2]?.type, "Linear")
        XCTAssertNil(context.pruneSkips[2])
        XCTAssertEqual(context.log.last?.summary, "3 layers skip quantization, 2 skip pruning")
    }

    // MARK: OverrideResolutionPass

    /// By name beats by type beats skip beats global; fixed_min defaults to true only after a Relu.
    func testOverrideResolutionPrecedenceAndFixedMin() throws {
        var g = graph()
        let context = try planned(&g, Self.globalQuant + """

            quant_skip_layers: "conv2"
            override_layer_types {
              layer_type: "Conv"
              retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 4 clip_min: -4 } } }
            }
            override_layer_configs {
              layer_name: "conv2"
              retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 2 clip_min: -1 } } }
            }
            """)
        let plan = try XCTUnwrap(context.plan)
        XCTAssertEqual(plan.layers.count, 3)
        let conv1 = plan.layers[0], conv2 = plan.layers[1], gemm = plan.layers[2]
        let typeLine = SourceLocation(file: "unit.cfg", line: 5, column: 15)
        XCTAssertEqual(conv1.quantSource, .overrideByType("Conv", typeLine))
        XCTAssertEqual(conv1.quant?.act, ActivationPlan(type: .int8, clips: Clips(min: -4, max: 4), fixedMin: false,
                                                       fixedMinOrigin: .inputNotFromRelu))
        XCTAssertEqual(conv2.quantSource, .overrideByName(SourceLocation(file: "unit.cfg", line: 9, column: 15)))
        XCTAssertEqual(conv2.quant?.act, ActivationPlan(type: .int8, clips: Clips(min: -1, max: 2), fixedMin: true,
                                                       fixedMinOrigin: .inputFromRelu))
        XCTAssertEqual(gemm.quantSource, .global)
        XCTAssertEqual(gemm.quant?.act.clips?.max, 6)
        XCTAssertEqual(gemm.quant?.act.fixedMin, false)
        // channel_wise unset: per channel on convolutions, per tensor on Gemm.
        XCTAssertEqual(conv1.quant?.wts, WeightPlan(algorithm: .arq, type: .int8, channelWise: true, notes: []))
        XCTAssertEqual(gemm.quant?.wts, WeightPlan(algorithm: .arq, type: .int8, channelWise: false, notes: []))
        XCTAssertEqual(context.log.last?.summary, "3 of 3 layers quantized, 0 pruned")
    }

    func testOverrideResolutionSkipBeatsGlobalAndFixedMinFromConfig() throws {
        var g = graph()
        let context = try planned(&g, """
            retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 6 clip_min: -6 } fixed_min: false } }
            quant_skip_layers: "fc"
            """)
        let plan = try XCTUnwrap(context.plan)
        XCTAssertEqual(plan.layers[2].quant != nil, false)
        XCTAssertEqual(plan.layers[2].quantSource.key, "skipped_by_name:quant_skip_layers")
        // fixed_min given: false even after the Relu.
        XCTAssertEqual(plan.layers[1].quant?.act.fixedMin, false)
        XCTAssertEqual(plan.layers[1].quant?.act.fixedMinOrigin, .config)
    }

    /// INT4 weights need an even input-channel count and group 1: a Conv with Cin = 3 falls back to INT8 with a note
    /// and a warning; channel_wise: true from the global config is dropped on a Gemm (one weight scale).
    func testOverrideResolutionAdjustsWeightPlansPerLayer() throws {
        var t = TestGraph()
        t.input("img", [1, 3, 1, 1])
        t.floats("w3", [2, 3, 1, 1], [1, 2, 3, 4, 5, 6])
        t.floats("wg", [2, 2], [1, 2, 3, 4])
        t.node("Conv", "odd", ["img", "w3"], ["c"])
        t.node("Flatten", "flat", ["c"], ["f"])
        t.node("Gemm", "fc", ["f", "wg"], ["y"], [.int("transB", 1)])
        t.output("y")
        var g = t.graph
        let context = try planned(&g, """
            retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 1 clip_min: -1 } } }
            retrain_weight_quant_config { arq_retrain { dst_type: INT4 channel_wise: true } }
            """)
        let plan = try XCTUnwrap(context.plan)
        let odd = try XCTUnwrap(plan.layer(named: "odd")), fc = try XCTUnwrap(plan.layer(named: "fc"))
        XCTAssertEqual(odd.quant?.wts.type, .int8)
        XCTAssertEqual(odd.quant?.wts.notes, ["INT4 weights fall back to INT8: odd input-channel count (3)"])
        XCTAssertEqual(context.diagnostics.filter { $0.node == "odd" }.count, 1)
        XCTAssertEqual(fc.quant?.wts.type, .int4)
        XCTAssertEqual(fc.quant?.wts.channelWise, false)
        XCTAssertEqual(fc.quant?.wts.notes, ["global channel_wise ignored: Gemm has one weight scale"])
    }

    /// channel_wise: true in an override that names a Gemm is an error at the place it is set.
    func testOverrideResolutionRefusesChannelWiseOnAGemmOverride() throws {
        var g = graph()
        let errors = expectError(ConfigErrors.self) {
            try planned(&g, Self.globalQuant + """

                override_layer_configs {
                  layer_name: "fc"
                  retrain_weight_quant_config { arq_retrain { channel_wise: true } }
                }
                """)
        }
        XCTAssertEqual(errors?.errors.map(\.kind), [.channelWiseOnLinear])
        XCTAssertEqual(errors?.errors.first?.location.line, 5)
    }
}
