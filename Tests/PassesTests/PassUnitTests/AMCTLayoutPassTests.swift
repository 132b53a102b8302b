// QuantParametersPass, AMCTFakeQuantPass and AscendDeployPass (SEMANTICS §6, AMCT layout) on the one-Conv graph with
// clips [−2, 6], against numbers computed by hand:
//   s_d = 8/255, o_d = −64; s_w = [0.5/127, 0.8/128]; W_int = [127, −76, 32, −128];
//   bias b = [0.1, −0.2] in the integer domain: round(b/(s_w·s_d)) = round(0.1·127·255/4) = round(809.625) = 810,
//   round(−0.2·128·255/(0.8·8)) = −1020.

import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class AMCTLayoutPassUnitTests: XCTestCase {
    static let sD = Float(8) / 255
    static let sW: [Float] = [Float(0.5) / 127, Float(0.8) / 128]

    /// The graph after steps 2–5 and QuantParametersPass.
    func parametrized() throws -> (Graph, PassContext) {
        var g = UnitGraphs.oneConv()
        var context = try planned(&g, UnitConfigs.quant(clipMin: -2, clipMax: 6))
        try Pipeline([QuantParametersPass()]).run(&g, &context)
        return (g, context)
    }

    func testQuantParametersAreTheHandComputedOnes() throws {
        let (_, context) = try parametrized()
        XCTAssertEqual(context.quantParameters.count, 1)
        let q = context.quantParameters[0]
        XCTAssertEqual(q.scaleD, Self.sD)
        XCTAssertEqual(q.offsetD, -64)
        XCTAssertEqual(q.clipMin, -2)
        XCTAssertEqual(q.clipMax, 6)
        XCTAssertEqual(q.clipsFrom, .config)
        assertClose(q.scaleW, Self.sW, accuracy: 1e-9)
        XCTAssertEqual(q.integers, [127, -76, 32, -128])
        XCTAssertEqual(q.outputChannels, 2)
        XCTAssertEqual(context.record.entries.count, 1)
        XCTAssertEqual(context.requiredOpset, 11)
        XCTAssertTrue(context.provided.contains(.quantParameters))
    }

    func testFakeQuantModelNodesAndIntegerTensors() throws {
        var (g, context) = try parametrized()
        try Pipeline([AMCTFakeQuantPass()]).run(&g, &context)
        XCTAssertEqual(opTypes(g), ["Mul", "Round", "Add", "Clip", "Sub", "Conv", "Mul"])
        XCTAssertEqual(g.nodes.map { $0.name ?? "" }, [
            "conv.quant.fakequant.mul", "conv.quant.fakequant.round", "conv.quant.fakequant.add",
            "conv.quant.fakequant.clip", "conv.quant.fakequant.sub", "conv", "conv.fakedequant.mul",
        ])
        XCTAssertEqual(try floatsOf(g, "conv.quant.scale_reciprocal"), [1 / Self.sD])
        XCTAssertEqual(try floatsOf(g, "conv.quant.offset"), [-64])
        XCTAssertEqual(try floatsOf(g, "conv.quant.clip_min"), [-128])
        XCTAssertEqual(try floatsOf(g, "conv.quant.clip_max"), [127])
        let conv = try nodeNamed(g, "conv")
        XCTAssertEqual(try floatsOf(g, conv.inputs[1]), [127, -76, 32, -128])
        XCTAssertEqual(try floatsOf(g, conv.inputs[2]), [810, -1020])
        let deq = try nodeNamed(g, "conv.fakedequant.mul")
        XCTAssertEqual(deq.inputs[0], conv.outputs[0])
        XCTAssertEqual(deq.outputs, ["y"])
        XCTAssertEqual(g.constantTensor(deq.inputs[1])?.dims, [1, 2, 1, 1])
        assertClose(try floatsOf(g, deq.inputs[1]), Self.sW.map { $0 * Self.sD }, accuracy: 1e-10)
    }

    func testDeployModelNodesAndIntegerTensors() throws {
        var (g, context) = try parametrized()
        try Pipeline([AscendDeployPass()]).run(&g, &context)
        XCTAssertEqual(opTypes(g), ["AscendQuant", "Conv", "AscendDequant"])
        let quant = try nodeNamed(g, "conv.quant")
        XCTAssertEqual(quant.domain, "amct")
        XCTAssertEqual(quant.inputs, ["x"])
        XCTAssertEqual(quant.float("scale"), 1 / Self.sD)
        XCTAssertEqual(quant.float("offset"), -64)
        XCTAssertEqual(quant.string("dst_type"), "INT8")
        let conv = try nodeNamed(g, "conv")
        XCTAssertEqual(conv.inputs[0], quant.outputs[0])
        XCTAssertEqual(g.constantTensor(conv.inputs[1])?.dataType, .int8)
        XCTAssertEqual(try elementsOf(g, conv.inputs[1], as: Int8.self), [127, -76, 32, -128])
        XCTAssertEqual(g.constantTensor(conv.inputs[2])?.dataType, .int32)
        XCTAssertEqual(try elementsOf(g, conv.inputs[2], as: Int32.self), [810, -1020])
        let dequant = try nodeNamed(g, "conv.dequant")
        XCTAssertEqual(dequant.domain, "amct")
        XCTAssertEqual(dequant.inputs[0], conv.outputs[0])
        XCTAssertEqual(dequant.outputs, ["y"])
        // deq_scale: the float32 bits of s_w·s_d with the low 13 mantissa bits cleared; the offset byte is 0.
        let expected = Self.sW.map { UInt64(($0 * Self.sD).bitPattern & 0xFFFF_E000) }
        XCTAssertEqual(try elementsOf(g, dequant.inputs[1], as: UInt64.self), expected)
        XCTAssertTrue(context.opsetImports.contains(OpsetImport(domain: "amct", version: 1)))
    }

    /// INT4 weights, packed two per byte along Cin (low nibble the even index): w[1,4,1,1] = [0.7, −0.28, 0.1, −0.42],
    /// s_w = 0.7/7 = 0.1, q = [7, −3, 1, −4] → bytes 0x7 | 0xD<<4 = 0xD7, 0x1 | 0xC<<4 = 0xC1.
    func testDeployPacksINT4WeightsAlongCin() throws {
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
        try Pipeline([QuantParametersPass(), AscendDeployPass()]).run(&g, &context)
        XCTAssertEqual(context.quantParameters.first?.integers, [7, -3, 1, -4])
        let w = try XCTUnwrap(g.constantTensor(try nodeNamed(g, "conv").inputs[1]))
        XCTAssertEqual(w.dataType, .int8)
        XCTAssertEqual(w.dims, [1, 2, 1, 1])
        XCTAssertEqual(w.withElements(as: UInt8.self) { Array($0) }, [0xD7, 0xC1])
    }
}
