import Foundation
import XCTest

@testable import Graph
@testable import Passes

func planFor(_ modelName: String, _ configText: String) throws -> PassContext {
    var model = try ModelFile.load(fixtures.appendingPathComponent(modelName).path)
    let parsed = try TextFormat.parse(configText, file: "test.cfg", schema: .amctRetrainConfig)
    return try plan(&model, config: try CompressionConfig(parsed.message, file: "test.cfg"))
}

func planFor(_ modelName: String, configFile: String) throws -> PassContext {
    var model = try ModelFile.load(fixtures.appendingPathComponent(modelName).path)
    return try plan(&model, config: try CompressionConfig.load(fixtures.appendingPathComponent("configs/\(configFile)").path))
}

final class PlanTests: XCTestCase {
    func testModuleNamesFromTorchScopes() {
        XCTAssertEqual(Layer.moduleName(fromNodeName: "/layer1/layer1.0/conv1/Conv"), "layer1.0.conv1")
        XCTAssertEqual(Layer.moduleName(fromNodeName: "/conv1/Conv"), "conv1")
        XCTAssertEqual(Layer.moduleName(fromNodeName: "/features/features.1/conv/conv.0/conv.0.0/Conv"), "features.1.conv.0.0")
        XCTAssertNil(Layer.moduleName(fromNodeName: "Conv_12"))
    }

    func testQuantCfgOnResidual() throws {
        let context = try planFor("residual.onnx", configFile: "quant.cfg")
        let plan = try XCTUnwrap(context.plan)
        // Skipped by skip_layers.
        let stem = try XCTUnwrap(plan.layer(named: "conv1"))
        XCTAssertNil(stem.quant)
        XCTAssertEqual(stem.quantSource.key, "skipped_by_name:skip_layers")
        // Override by name: its own clips, INT4 weights; input from Relu → fixed_min.
        let o = try XCTUnwrap(plan.layer(named: "layer1.0.conv1"))
        XCTAssertEqual(o.quantSource.key, "override_by_name")
        XCTAssertEqual(o.quant?.act, ActivationPlan(type: .int8, clips: Clips(min: -3, max: 3), fixedMin: true, fixedMinOrigin: .inputFromRelu))
        XCTAssertEqual(o.quant?.wts, WeightPlan(algorithm: .arq, type: .int4, channelWise: true, notes: []))
        // Global.
        let g = try XCTUnwrap(plan.layer(named: "layer1.0.conv2"))
        XCTAssertEqual(g.quantSource, .global)
        XCTAssertEqual(g.quant?.act.clips?.max, 6)
        // quant_skip_layers and skip_layers are a union.
        XCTAssertEqual(try XCTUnwrap(plan.layer(named: "layer1.1.conv2")).quantSource.key, "skipped_by_name:quant_skip_layers")
        // Override by type Linear with its own clips; its weights per tensor.
        let fc = try XCTUnwrap(plan.layer(named: "fc"))
        XCTAssertEqual(fc.quantSource.key, "override_by_type")
        XCTAssertEqual(fc.quant?.act.clips?.max, 8)
        XCTAssertEqual(fc.quant?.act.fixedMin, false)  // Flatten feeds it, not a Relu
        XCTAssertEqual(fc.quant?.wts.channelWise, false)
        XCTAssertTrue(plan.forceFP16Quant)
        XCTAssertEqual(plan.batchNum, 2)
    }

    func testOverrideWithoutDataPartGetsTheDefaultAndAWarning() throws {
        let context = try planFor("residual.onnx", """
            retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 6 clip_min: -6 } } }
            override_layer_types {
              layer_type: "Linear"
              retrain_weight_quant_config { arq_retrain { channel_wise: false } }
            }
            """)
        let fc = try XCTUnwrap(context.plan?.layer(named: "fc"))
        XCTAssertEqual(fc.quantSource.key, "override_by_type")
        XCTAssertEqual(fc.quant?.act.initialization, .ifmr)
        XCTAssertEqual(fc.quant?.act.type, .int8)
        XCTAssertEqual(context.plan?.layer(named: "conv1")?.quant?.act.clips?.max, 6)
        let warnings = context.diagnostics.filter { $0.message.contains("override 'Linear' has no retrain_data_quant_config") }
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].message.hasPrefix("test.cfg:3:15:"), warnings[0].message)
    }

    func testOverrideBeatsSkipForQuantButSkipBeatsOverrideForPrune() throws {
        let context = try planFor("residual.onnx", """
            retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 1 clip_min: -1 } } }
            prune_config { filter_pruner { balanced_l2_norm_filter_prune { prune_ratio: 0.3 } } }
            skip_layers: "layer1.0.conv2"
            override_layer_configs {
              layer_name: "layer1.0.conv2"
              retrain_data_quant_config { ulq_quantize { dst_type: INT16 } }
              prune_config { filter_pruner { balanced_l2_norm_filter_prune { prune_ratio: 0.5 } } }
            }
            """)
        let p = try XCTUnwrap(context.plan?.layer(named: "layer1.0.conv2"))
        XCTAssertNotNil(p.quant)
        XCTAssertEqual(p.quantSource.key, "override_by_name")
        XCTAssertEqual(p.quant?.act.type, .int16)
        XCTAssertEqual(p.quant?.act.initialization, .ifmr)
        XCTAssertNil(p.prune)
        XCTAssertEqual(p.pruneSource.key, "skipped_by_name:skip_layers")
        // The others get the global prune config.
        XCTAssertEqual(context.plan?.layer(named: "layer1.0.conv1")?.prune?.kind, .filter(ratio: 0.3, ascendOptimized: true))
    }

    func testTypesInAllThreeVocabularies() throws {
        for (type, expectConv, expectFC) in [("Conv", true, false), ("Conv2d", true, false), ("Convolution", true, false),
                                             ("Gemm", false, true), ("Linear", false, true), ("InnerProduct", false, true),
                                             ("Conv1d", false, false)] {
            let context = try planFor("conv_bn_relu.onnx", """
                retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 1 clip_min: -1 } } }
                quant_skip_types: "\(type)"
                """)
            let plan = try XCTUnwrap(context.plan)
            XCTAssertEqual(plan.layer(named: "conv2")?.quant != nil, !expectConv, type)
            XCTAssertEqual(plan.layer(named: "fc")?.quant != nil, !expectFC, type)
            if !expectConv && !expectFC {
                XCTAssertTrue(context.diagnostics.contains { $0.message.contains("matches no layer") }, type)
            }
        }
    }

    func testFixedMinFollowsTheProducer() throws {
        let context = try planFor("conv_bn_relu.onnx", "retrain_data_quant_config { ulq_quantize { } }")
        let plan = try XCTUnwrap(context.plan)
        XCTAssertEqual(plan.layer(named: "conv1")?.quant?.act.fixedMin, false)  // graph input
        XCTAssertEqual(plan.layer(named: "conv2")?.quant?.act.fixedMin, true)  // after Relu
        XCTAssertEqual(plan.layer(named: "fc")?.quant?.act.fixedMin, false)  // after Flatten
        let explicit = try planFor("conv_bn_relu.onnx", "retrain_data_quant_config { ulq_quantize { fixed_min: false } }")
        XCTAssertEqual(explicit.plan?.layer(named: "conv2")?.quant?.act.fixedMin, false)
        XCTAssertEqual(explicit.plan?.layer(named: "conv2")?.quant?.act.fixedMinOrigin, .config)
    }

    func testInt4FallsBackOnDepthwiseAndOddChannels() throws {
        let context = try planFor("depthwise.onnx", """
            retrain_data_quant_config { ulq_quantize { } }
            retrain_weight_quant_config { arq_retrain { dst_type: INT4 } }
            """)
        let plan = try XCTUnwrap(context.plan)
        let dw = try XCTUnwrap(plan.layer(named: "features.1.conv.0.0"))
        XCTAssertEqual(dw.quant?.wts.type, .int8)
        XCTAssertTrue(dw.quant?.wts.notes.first?.contains("group 32") ?? false)
        let stem = try XCTUnwrap(plan.layer(named: "features.0.0"))  // 3 input channels: odd
        XCTAssertEqual(stem.quant?.wts.type, .int8)
        let pw = try XCTUnwrap(plan.layer(named: "features.1.conv.1"))
        XCTAssertEqual(pw.quant?.wts.type, .int4)
        XCTAssertEqual(context.diagnostics.filter { $0.message.contains("fall back") }.count, 2)
    }

    func testFilterPruningIsNotApplicableToDepthwise() throws {
        let context = try planFor("depthwise.onnx", "prune_config { filter_pruner { balanced_l2_norm_filter_prune { prune_ratio: 0.3 } } }")
        let dw = try XCTUnwrap(context.plan?.layer(named: "features.1.conv.0.0"))
        XCTAssertNil(dw.prune)
        XCTAssertEqual(dw.pruneSource.key, "not_applicable")
    }

    func testGlobalChannelWiseOnGemmIsPerTensorWithANote() throws {
        let context = try planFor("digits_mlp.onnx", """
            retrain_data_quant_config { ulq_quantize { } }
            retrain_weight_quant_config { arq_retrain { channel_wise: true } }
            """)
        let fc1 = try XCTUnwrap(context.plan?.layer(named: "fc1"))
        XCTAssertEqual(fc1.quant?.wts.channelWise, false)
        XCTAssertEqual(fc1.quant?.wts.notes, ["global channel_wise ignored: Gemm has one weight scale"])
    }

    func testOverrideWithOnlyPruneDoesNotTurnOnQuantization() throws {
        let context = try planFor("residual.onnx", configFile: "prune.cfg")
        let plan = try XCTUnwrap(context.plan)
        XCTAssertTrue(plan.layers.allSatisfy { $0.quant == nil })
        XCTAssertEqual(plan.layer(named: "layer1.0.conv1")?.prune?.kind, .filter(ratio: 0.5, ascendOptimized: false))
        XCTAssertEqual(plan.layer(named: "fc")?.pruneSource.key, "skipped_by_name:regular_prune_skip_layers")
    }

    func testNameMatchingByNodeModuleAndWeight() throws {
        for name in ["/layer1/layer1.0/conv1/Conv", "layer1.0.conv1"] {
            let context = try planFor("residual.onnx", """
                retrain_data_quant_config { ulq_quantize { } }
                quant_skip_layers: "\(name)"
                """)
            XCTAssertEqual(context.plan?.layer(named: "layer1.0.conv1")?.quant != nil, false, name)
        }
        // Weight-name matching where the node has no torch scope name.
        let context = try planFor("typed_fields.onnx", """
            retrain_data_quant_config { ulq_quantize { } }
            quant_skip_layers: "conv"
            """)
        XCTAssertEqual(context.plan?.layers.first?.quant != nil, false)
    }

    func testAmbiguousName() throws {
        var g = Graph()
        g.inputs = [ValueInfo(name: "x", type: .tensor(.float, [1, 4]))]
        g.setInitializer(Tensor(name: "w1", dims: [4, 4], floats: Array(repeating: 1, count: 16)))
        g.setInitializer(Tensor(name: "w2", dims: [4, 4], floats: Array(repeating: 1, count: 16)))
        g.appendNode(Node(opType: "MatMul", name: "same", inputs: ["x", "w1"], outputs: ["y"]))
        g.appendNode(Node(opType: "MatMul", name: "same", inputs: ["y", "w2"], outputs: ["z"]))
        g.outputs = [ValueInfo(name: "z", type: nil)]
        var model = Model(graph: g)
        let parsed = try TextFormat.parse("retrain_data_quant_config { ulq_quantize { } }\nskip_layers: \"same\"", file: "t.cfg", schema: .amctRetrainConfig)
        XCTAssertThrowsError(try plan(&model, config: try CompressionConfig(parsed.message, file: "t.cfg"))) { error in
            XCTAssertEqual((error as? ConfigErrors)?.errors.first?.kind, .ambiguousLayerName)
            XCTAssertEqual((error as? ConfigErrors)?.errors.first?.location.line, 2)
        }
    }

    func testAllSixExampleConfigsPlanOnTheirModels() throws {
        for (config, model) in [("quant.cfg", "residual.onnx"), ("prune.cfg", "residual.onnx"), ("selective_prune.cfg", "conv_bn_relu.onnx"),
                                ("compressed1.cfg", "residual.onnx"), ("compressed2.cfg", "conv_bn_relu.onnx"), ("caffe_quant.cfg", "conv_bn_relu.onnx")] {
            let context = try planFor(model, configFile: config)
            XCTAssertFalse(context.plan?.layers.isEmpty ?? true, config)
        }
        // compressed2: Conv2d override → INT4 act and weights, except the 3-channel stem (odd Cin → INT8 weights).
        let c2 = try XCTUnwrap(try planFor("conv_bn_relu.onnx", configFile: "compressed2.cfg").plan)
        XCTAssertEqual(c2.layer(named: "conv2")?.quant?.wts.type, .int4)
        XCTAssertEqual(c2.layer(named: "conv2")?.quant?.act.type, .int4)
        XCTAssertEqual(c2.layer(named: "conv1")?.quant?.wts.type, .int8)
        XCTAssertEqual(c2.layer(named: "fc")?.quant?.wts.algorithm, .ulq)
        XCTAssertEqual(c2.layer(named: "fc")?.pruneSource.key, "skipped_by_type:regular_prune_skip_types")
        XCTAssertEqual(c2.layer(named: "conv2")?.prune?.kind, .twoOfFour(updateFreq: 0))
        // Caffe dialect: Convolution override with fixed_min, InnerProduct skipped.
        let caffe = try XCTUnwrap(try planFor("conv_bn_relu.onnx", configFile: "caffe_quant.cfg").plan)
        XCTAssertEqual(caffe.layer(named: "conv1")?.quant?.act, ActivationPlan(type: .int8, clips: Clips(min: -2, max: 2), fixedMin: true, fixedMinOrigin: .config))
        XCTAssertEqual(caffe.layer(named: "fc")?.quantSource.key, "skipped_by_type:skip_layer_types")
    }
}
