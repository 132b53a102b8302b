// OpsetUpgradePass: opset 11 → 13 moves Squeeze/Unsqueeze axes and Split's split from attributes to inputs; → 18 the
// Reduce* axes too; below 11 and removed ops are refused.

import Foundation
import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class OpsetUpgradePassUnitTests: XCTestCase {
    /// x[1,3] ─▶ Squeeze{axes=[0]} ─▶ Unsqueeze{axes=[1]} ─▶ Split{axis=0, split=[1,2]} ─▶ a, b;
    /// x ─▶ ReduceMean{axes=[1]} ─▶ m
    func opset11Graph() -> Graph {
        var t = TestGraph()
        t.input("x", [1, 3])
        t.node("Squeeze", "squeeze", ["x"], ["s"], [.ints("axes", [0])])
        t.node("Unsqueeze", "unsqueeze", ["s"], ["u"], [.ints("axes", [1])])
        t.node("Split", "split", ["u"], ["a", "b"], [.int("axis", 0), .ints("split", [1, 2])])
        t.node("ReduceMean", "mean", ["x"], ["m"], [.ints("axes", [1])])
        for o in ["a", "b", "m"] { t.output(o) }
        return t.graph
    }

    func upgrade(_ graph: inout Graph, from: Int64, to: Int64) throws -> PassContext {
        var context = PassContext(opsetImports: [OpsetImport(domain: "ai.onnx", version: from)])
        context.requiredOpset = to
        try Pipeline([OpsetUpgradePass()]).run(&graph, &context)
        return context
    }

    func testOpset11To13MovesAxesAndSplitToInputs() throws {
        var g = opset11Graph()
        let context = try upgrade(&g, from: 11, to: 13)
        XCTAssertEqual(context.opsetImports.version(), 13)
        let squeeze = try nodeNamed(g, "squeeze"), unsqueeze = try nodeNamed(g, "unsqueeze")
        let split = try nodeNamed(g, "split")
        XCTAssertEqual(squeeze.inputs.count, 2)
        XCTAssertNil(squeeze.attribute("axes"))
        XCTAssertEqual(g.constantTensor(squeeze.inputs[1])?.int64Array, [0])
        XCTAssertNil(unsqueeze.attribute("axes"))
        XCTAssertEqual(g.constantTensor(unsqueeze.inputs[1])?.int64Array, [1])
        XCTAssertNil(split.attribute("split"))
        XCTAssertEqual(split.int("axis"), 0, "other attributes stay")
        XCTAssertEqual(g.constantTensor(split.inputs[1])?.int64Array, [1, 2])
        // ReduceMean keeps its attribute until opset 18.
        XCTAssertEqual(try nodeNamed(g, "mean").ints("axes"), [1])
        XCTAssertEqual(try nodeNamed(g, "mean").inputs, ["x"])
        XCTAssertEqual(context.log.last?.summary, "opset 11 → 13; 3 nodes converted")
    }

    /// The converted Squeeze/Unsqueeze run at opset 13 as the originals do at 11.
    func testConvertedNodesComputeTheSame() throws {
        var t = TestGraph()
        t.input("x", [1, 3])
        t.node("Squeeze", "squeeze", ["x"], ["s"], [.ints("axes", [0])])
        t.node("Unsqueeze", "unsqueeze", ["s"], ["u"], [.ints("axes", [1])])
        t.output("u")
        var g = t.graph
        let original = g
        _ = try upgrade(&g, from: 11, to: 13)
        let x = DenseTensor(shape: [1, 3], floats: [1, 2, 3])
        let before = try XCTUnwrap(GraphExecutor(graph: original, opset: 11).run(["x": x])["u"])
        let after = try XCTUnwrap(GraphExecutor(graph: g, opset: 13).run(["x": x])["u"])
        XCTAssertEqual(before.shape, [3, 1])
        XCTAssertEqual(after.shape, [3, 1])
        XCTAssertEqual(after.floats, [1, 2, 3])
    }

    func testTo18AlsoMovesReduceAxes() throws {
        var g = opset11Graph()
        let context = try upgrade(&g, from: 11, to: 18)
        let mean = try nodeNamed(g, "mean")
        XCTAssertNil(mean.attribute("axes"))
        XCTAssertEqual(g.constantTensor(mean.inputs[1])?.int64Array, [1])
        XCTAssertEqual(context.opsetImports.version(), 18)
    }

    func testRefusesModelsBelowOpset11() throws {
        var g = opset11Graph()
        let error = expectError(PassError.self) { try upgrade(&g, from: 10, to: 13) }
        XCTAssertEqual(error?.node, "model")
        XCTAssertTrue(error?.message.hasPrefix("its opset is 10;") ?? false, error?.message ?? "")
        XCTAssertNotNil(try nodeNamed(g, "squeeze").attribute("axes"), "nothing is converted")
    }

    func testNothingToDoWhenTheOpsetIsHighEnough() throws {
        var g = opset11Graph()
        let context = try upgrade(&g, from: 13, to: 13)
        XCTAssertEqual(context.opsetImports.version(), 13)
        XCTAssertEqual(try nodeNamed(g, "squeeze").inputs, ["x"], "an opset-13 model is taken as it is")
        XCTAssertTrue(context.log.isEmpty)
    }

    func testRefusesAnOpRemovedOnTheWay() throws {
        var t = TestGraph()
        t.input("x", [1, 1, 2, 2])
        t.floats("scales", [4], [1, 1, 2, 2])
        t.node("Upsample", "up", ["x", "scales"], ["y"])
        t.output("y")
        var g = t.graph
        let error = expectError(PassError.self) { try upgrade(&g, from: 11, to: 13) }
        XCTAssertEqual(error?.node, "up")
    }

    /// Dropout's ratio became an input at opset 12: a float scalar.
    func testDropoutRatioBecomesAnInput() throws {
        var t = TestGraph()
        t.input("x", [1, 2])
        t.node("Dropout", "drop", ["x"], ["y"], [.float("ratio", 0.3)])
        t.output("y")
        var g = t.graph
        _ = try upgrade(&g, from: 11, to: 13)
        let drop = try nodeNamed(g, "drop")
        XCTAssertNil(drop.attribute("ratio"))
        XCTAssertEqual(drop.inputs.count, 2)
        XCTAssertEqual(g.constantTensor(drop.inputs[1])?.dims, [])
        XCTAssertEqual(try floatsOf(g, drop.inputs[1]), [0.3])
    }

    /// Softmax on [1, 3] with the old default axis 1: the last axis, written out (the default became −1).
    func testSoftmaxOnItsLastAxisGetsTheAxisWrittenOut() throws {
        var t = TestGraph()
        t.input("x", [1, 3])
        t.node("Softmax", "softmax", ["x"], ["y"])
        t.output("y")
        var g = t.graph
        _ = try upgrade(&g, from: 11, to: 13)
        XCTAssertEqual(opTypes(g), ["Softmax"])
        XCTAssertEqual(try nodeNamed(g, "softmax").int("axis"), -1)
    }

    /// Softmax over x[1,2,2,2] at axis 1 before opset 13 normalises all 8 values together (the input flattened to
    /// [1, 8]); at 13 the same node would normalise each of the 4 pixels over 2 channels. The conversion keeps the
    /// old meaning: Flatten → Softmax(−1) → Reshape, so the 8 outputs still sum to 1.
    func testSoftmaxOnAnInnerAxisIsFlattenedAndReshaped() throws {
        var t = TestGraph()
        t.input("x", [1, 2, 2, 2])
        t.node("Softmax", "softmax", ["x"], ["y"], [.int("axis", 1)])
        t.output("y")
        var g = t.graph
        let original = g
        _ = try upgrade(&g, from: 11, to: 13)
        XCTAssertEqual(opTypes(g), ["Shape", "Flatten", "Softmax", "Reshape"])
        XCTAssertEqual(try nodeNamed(g, "softmax/Flatten").int("axis"), 1)
        XCTAssertEqual(try nodeNamed(g, "softmax").int("axis"), -1)
        XCTAssertEqual(try nodeNamed(g, "softmax/Reshape").outputs, ["y"])

        let xs: [Float] = [0.5, -1, 2, 0, 1, 1.5, -0.5, 0.25]
        let x = DenseTensor(shape: [1, 2, 2, 2], floats: xs)
        let after = try XCTUnwrap(GraphExecutor(graph: g, opset: 13).run(["x": x])["y"])
        XCTAssertEqual(after.shape, [1, 2, 2, 2])
        let total = xs.map { exp(Double($0)) }.reduce(0, +)
        assertClose(after.floats, xs.map { Float(exp(Double($0)) / total) }, accuracy: 1e-6)
        let before = try XCTUnwrap(GraphExecutor(graph: original, opset: 11).run(["x": x])["y"])
        assertClose(after.floats, before.floats, accuracy: 1e-6)
    }

    /// From opset 18 a Split needs a `split` input or `num_outputs`: an equal Split gets num_outputs = its outputs;
    /// one with sizes (moved to an input at 13) keeps them and gets no num_outputs.
    func testEqualSplitGetsNumOutputsAt18() throws {
        var t = TestGraph()
        t.input("x", [1, 6])
        t.node("Split", "equal", ["x"], ["a", "b", "c"], [.int("axis", 1)])
        t.node("Split", "sized", ["x"], ["d", "e"], [.int("axis", 1), .ints("split", [2, 4])])
        for o in ["a", "b", "c", "d", "e"] { t.output(o) }
        var g = t.graph
        let context = try upgrade(&g, from: 11, to: 21)
        XCTAssertEqual(try nodeNamed(g, "equal").int("num_outputs"), 3)
        XCTAssertEqual(try nodeNamed(g, "equal").inputs, ["x"])
        let sized = try nodeNamed(g, "sized")
        XCTAssertNil(sized.attribute("num_outputs"))
        XCTAssertEqual(g.constantTensor(sized.inputs[1])?.int64Array, [2, 4])
        XCTAssertEqual(context.log.last?.summary, "opset 11 → 21; 2 nodes converted")
    }
}
