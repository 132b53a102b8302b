// AffineFoldingPass: Conv → Mul(s) [→ Add(t)] with per-output-channel constants folds into W' = W·s, b' = b·s + t,
// by hand and against the executor; shapes that are not per channel, and values read twice, are left alone.

import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class AffineFoldingPassUnitTests: XCTestCase {
    /// x[1,2,2,2] ─▶ Conv(w[2,2,1,1], b) ─▶ c ─▶ Mul(c, s) ─▶ m ─▶ Add(t, m) ─▶ z
    func convAffine(scale: (dims: [Int64], values: [Float]), shift: (dims: [Int64], values: [Float])?,
                    bias: Bool = true) -> Graph {
        var t = TestGraph()
        t.input("x", [1, 2, 2, 2])
        t.floats("w", [2, 2, 1, 1], [1, 2, 3, 4])
        if bias { t.floats("b", [2], [0.5, -0.5]) }
        t.floats("s", scale.dims, scale.values)
        t.node("Conv", "conv", ["x", "w"] + (bias ? ["b"] : []), ["c"])
        t.node("Mul", "mul", ["c", "s"], ["m"])
        if let shift {
            t.floats("t", shift.dims, shift.values)
            t.node("Add", "add", ["t", "m"], ["z"])
            t.output("z")
        } else {
            t.output("m")
        }
        return t.graph
    }

    func fold(_ g: inout Graph) throws -> PassContext {
        var context = PassContext(opsetImports: [OpsetImport(domain: "", version: 13)])
        try Pipeline([AffineFoldingPass()]).run(&g, &context)
        return context
    }

    func assertSameOutputs(_ a: Graph, _ b: Graph, _ output: String, file: StaticString = #filePath,
                           line: UInt = #line) throws {
        let x = DenseTensor(shape: [1, 2, 2, 2], floats: [0.3, -1.7, 2, 0.1, -0.4, 1.1, 0.6, -2.2])
        let before = try XCTUnwrap(GraphExecutor(graph: a, opset: 13).run(["x": x])[output]).floats
        let after = try XCTUnwrap(GraphExecutor(graph: b, opset: 13).run(["x": x])[output]).floats
        assertClose(after, before, accuracy: 1e-5, file: file, line: line)
    }

    /// s = [2, −0.5], t = [0.1, 1]: W' = [2, 4, −1.5, −2]; b' = 0.5·2 + 0.1 = 1.1, −0.5·−0.5 + 1 = 1.25.
    func testFoldsScaleAndShiftIntoWeightAndBias() throws {
        var g = convAffine(scale: ([1, 2, 1, 1], [2, -0.5]), shift: ([2, 1, 1], [0.1, 1]))
        let original = g
        let context = try fold(&g)
        XCTAssertEqual(opTypes(g), ["Conv"])
        let conv = try nodeNamed(g, "conv")
        XCTAssertEqual(conv.outputs, ["z"])
        assertClose(try floatsOf(g, conv.inputs[1]), [2, 4, -1.5, -2])
        assertClose(try floatsOf(g, conv.inputs[2]), [1.1, 1.25])
        XCTAssertEqual(try floatsOf(g, "w"), [1, 2, 3, 4], "the original weight is left as it was")
        XCTAssertEqual(context.log.last?.summary, "1 Conv+Mul(+Add) per-channel affines folded")
        try assertSameOutputs(original, g, "z")
    }

    func testScaleAloneAndNoBiasAndAScalar() throws {
        var g = convAffine(scale: ([], [3]), shift: nil, bias: false)
        let original = g
        _ = try fold(&g)
        XCTAssertEqual(opTypes(g), ["Conv"])
        assertClose(try floatsOf(g, try nodeNamed(g, "conv").inputs[2]), [0, 0])
        try assertSameOutputs(original, g, "m")
    }

    func testWhatIsNotPerChannelOrIsReadTwiceStays() throws {
        // [2] broadcasts along the last (width) axis, not the channels.
        var lastAxis = convAffine(scale: ([2], [2, -0.5]), shift: nil)
        _ = try fold(&lastAxis)
        XCTAssertEqual(opTypes(lastAxis), ["Conv", "Mul"])
        // Two values per channel.
        var spatial = convAffine(scale: ([1, 2, 1, 2], [1, 2, 3, 4]), shift: nil)
        _ = try fold(&spatial)
        XCTAssertEqual(opTypes(spatial), ["Conv", "Mul"])
        // The Conv's output is also a graph output.
        var seen = convAffine(scale: ([1, 2, 1, 1], [2, 3]), shift: nil)
        seen.outputs.append(ValueInfo(name: "c", type: nil))
        _ = try fold(&seen)
        XCTAssertEqual(opTypes(seen), ["Conv", "Mul"])
        // A Mul by a graph input is not a constant.
        var t = TestGraph()
        t.input("x", [1, 2, 2, 2])
        t.input("s", [1, 2, 1, 1])
        t.floats("w", [2, 2, 1, 1], [1, 2, 3, 4])
        t.node("Conv", "conv", ["x", "w"], ["c"])
        t.node("Mul", "mul", ["c", "s"], ["m"])
        t.output("m")
        var input = t.graph
        _ = try fold(&input)
        XCTAssertEqual(opTypes(input), ["Conv", "Mul"])
    }
}
