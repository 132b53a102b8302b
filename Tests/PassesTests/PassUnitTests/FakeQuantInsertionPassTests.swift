// FakeQuantInsertionPass (QDQ layout): the inserted nodes, and scales, zero points and integer weights computed by hand
// from SEMANTICS §4 for given clips.

import XCTest

@testable import Graph
@testable import Passes

final class FakeQuantInsertionPassUnitTests: XCTestCase {
    /// oneConv with clips [−2, 6]: s_d = 8/255, o_d = round(−128 + 2/(8/255)) = round(−64.25) = −64.
    /// w channel 0 = [0.5, −0.3]: s = 0.5/127, q = [127, round(−76.2)] = [127, −76];
    /// w channel 1 = [0.2, −0.8]: |min| > |max|, s = 0.8/128 = 0.00625, q = [32, −128].
    func testConvGetsQDQOnItsInputAndIntegerWeightsPerChannel() throws {
        var g = UnitGraphs.oneConv()
        var context = try planned(&g, UnitConfigs.quant(clipMin: -2, clipMax: 6))
        try Pipeline([FakeQuantInsertionPass()]).run(&g, &context)

        XCTAssertEqual(opTypes(g), ["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv"])
        let q = try nodeNamed(g, "conv/input_QuantizeLinear"), dq = try nodeNamed(g, "conv/input_DequantizeLinear")
        XCTAssertEqual(q.inputs, ["x", "x_scale", "x_zero_point"])
        XCTAssertEqual(dq.inputs, [q.outputs[0], "x_scale", "x_zero_point"])
        XCTAssertEqual(try floatsOf(g, "x_scale"), [Float(8) / 255])
        XCTAssertEqual(g.constantTensor("x_zero_point")?.dataType, .int8)
        XCTAssertEqual(try elementsOf(g, "x_zero_point", as: Int8.self), [-64])

        let wdq = try nodeNamed(g, "conv/weight_DequantizeLinear")
        XCTAssertEqual(wdq.inputs, ["w_quantized", "w_scale", "w_zero_point"])
        XCTAssertEqual(wdq.int("axis"), 0)
        XCTAssertEqual(g.constantTensor("w_quantized")?.dataType, .int8)
        XCTAssertEqual(g.constantTensor("w_quantized")?.dims, [2, 2, 1, 1])
        XCTAssertEqual(try elementsOf(g, "w_quantized", as: Int8.self), [127, -76, 32, -128])
        assertClose(try floatsOf(g, "w_scale"), [Float(0.5) / 127, 0.00625], accuracy: 1e-9)
        XCTAssertEqual(try elementsOf(g, "w_zero_point", as: Int8.self), [0, 0])

        let conv = try nodeNamed(g, "conv")
        XCTAssertEqual(conv.inputs, [dq.outputs[0], wdq.outputs[0], "b"])
        XCTAssertEqual(try floatsOf(g, "b"), [0.1, -0.2], "the bias stays float")
        XCTAssertEqual(context.requiredOpset, 13)
        XCTAssertEqual(context.record.entries.map(\.offsetD), [-64])
    }

    /// Relu → Gemm (per tensor, fixed_min from the Relu): s_d = 6/255, o_d = round(−128 − 0) = −128;
    /// w = [0.5, −0.3, 0.2, −0.8] as one tensor: |min| > |max|, s = 0.8/128 = 0.00625, q = [80, −48, 32, −128].
    func testGemmAfterReluPerTensorWithFixedMin() throws {
        var t = TestGraph()
        t.input("x", [1, 2])
        t.floats("w", [2, 2], [0.5, -0.3, 0.2, -0.8])
        t.node("Relu", "relu", ["x"], ["r"])
        t.node("Gemm", "fc", ["r", "w"], ["y"], [.int("transB", 1)])
        t.output("y")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.quant(clipMin: -2, clipMax: 6))
        XCTAssertEqual(context.plan?.layers[0].quant?.act.fixedMin, true)
        try FakeQuantInsertionPass().run(&g, &context)
        XCTAssertEqual(opTypes(g), ["Relu", "QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Gemm"])
        XCTAssertEqual(try floatsOf(g, "r_scale"), [Float(6) / 255])
        XCTAssertEqual(try elementsOf(g, "r_zero_point", as: Int8.self), [-128])
        XCTAssertEqual(try elementsOf(g, "w_quantized", as: Int8.self), [80, -48, 32, -128])
        XCTAssertEqual(try floatsOf(g, "w_scale"), [0.00625])
        XCTAssertEqual(g.constantTensor("w_scale")?.dims, [])
        XCTAssertNil(try nodeNamed(g, "fc/weight_DequantizeLinear").attribute("axis"))
    }

    /// Two layers reading the same value with the same settings share one activation quantizer.
    func testLayersReadingOneValueShareTheQuantizer() throws {
        var t = TestGraph()
        t.input("x", [1, 2])
        t.floats("w1", [2, 2], [1, 2, 3, 4])
        t.floats("w2", [2, 2], [4, 3, 2, 1])
        t.node("Gemm", "g1", ["x", "w1"], ["y1"], [.int("transB", 1)])
        t.node("Gemm", "g2", ["x", "w2"], ["y2"], [.int("transB", 1)])
        t.output("y1")
        t.output("y2")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.quant(clipMin: -1, clipMax: 1))
        try FakeQuantInsertionPass().run(&g, &context)
        XCTAssertEqual(opTypes(g).filter { $0 == "QuantizeLinear" }.count, 1)
        XCTAssertEqual(try nodeNamed(g, "g1").inputs[0], try nodeNamed(g, "g2").inputs[0])
        XCTAssertEqual(context.log.last?.summary, "2 layers quantized, 1 activation quantizers")
    }

    /// ConvTranspose w[Cin=2, Cout=2, 1, 1] = [[0.5, 0.2], [−0.3, −0.8]]: output channels run along axis 1, so
    /// channel 0 is [0.5, −0.3] (s = 0.5/127, q = [127, −76]) and channel 1 is [0.2, −0.8] (s = 0.00625,
    /// q = [32, −128]); the integers stay in the weight's layout and the DequantizeLinear takes axis 1.
    func testConvTransposeScalesRunAlongAxisOne() throws {
        var t = TestGraph()
        t.input("x", [1, 2, 1, 1])
        t.floats("w", [2, 2, 1, 1], [0.5, 0.2, -0.3, -0.8])
        t.node("ConvTranspose", "deconv", ["x", "w"], ["y"])
        t.output("y")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.quant(clipMin: -1, clipMax: 1))
        try FakeQuantInsertionPass().run(&g, &context)
        XCTAssertEqual(try elementsOf(g, "w_quantized", as: Int8.self), [127, 32, -76, -128])
        assertClose(try floatsOf(g, "w_scale"), [Float(0.5) / 127, 0.00625], accuracy: 1e-9)
        XCTAssertEqual(try nodeNamed(g, "deconv/weight_DequantizeLinear").int("axis"), 1)
    }

    /// INT4 weights: an INT4 tensor packed two per byte (low nibble first) and opset 21. w[1,4,1,1] =
    /// [0.7, −0.28, 0.1, −0.42]: s = 0.7/7, q = [7, −3, 1, −4] → bytes 0xD7, 0xC1.
    func testINT4WeightsArePackedAndNeedOpset21() throws {
        var t = TestGraph()
        t.input("x", [1, 4, 1, 1])
        t.floats("w", [1, 4, 1, 1], [0.7, -0.28, 0.1, -0.42])
        t.node("Conv", "conv", ["x", "w"], ["y"])
        t.output("y")
        var g = t.graph
        var context = try planned(&g, """
            retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 1 clip_min: -1 } } }
            retrain_weight_quant_config { arq_retrain { dst_type: INT4 } }
            """)
        try FakeQuantInsertionPass().run(&g, &context)
        let w = try XCTUnwrap(g.constantTensor("w_quantized"))
        XCTAssertEqual(w.dataType, .int4)
        XCTAssertEqual(w.dims, [1, 4, 1, 1])
        XCTAssertEqual(w.withElements(as: UInt8.self) { Array($0) }, [0xD7, 0xC1])
        XCTAssertEqual(g.constantTensor("w_zero_point")?.dataType, .int4)
        XCTAssertEqual(context.requiredOpset, 21)
    }

    /// FORCE_FP16_QUANT: the written s_d is 8/255 rounded to float16: 2^−5 · 1028/1024 = 0.0313720703125 (8/255 =
    /// 2^−5 · 1.0039216, and 1.0039216·1024 = 1028.016); o_d stays −64, computed from the unrounded scale.
    func testForceFP16RoundsTheWrittenScale() throws {
        var g = UnitGraphs.oneConv()
        let config = UnitConfigs.quant(clipMin: -2, clipMax: 6) + "\nfakequant_precision_mode: FORCE_FP16_QUANT"
        var context = try planned(&g, config)
        try FakeQuantInsertionPass().run(&g, &context)
        XCTAssertEqual(try floatsOf(g, "x_scale"), [0.0313720703125])
        XCTAssertEqual(try elementsOf(g, "x_zero_point", as: Int8.self), [-64])
        XCTAssertEqual(context.record.entries.first?.scaleD, 0.0313720703125)
    }
}
