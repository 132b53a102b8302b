// BatchNormFoldingPass: W' = W·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β per output channel, by hand.

import Foundation
import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class BatchNormFoldingPassUnitTests: XCTestCase {
    /// x[1,2,1,1] ─▶ Conv (w[2,2,1,1], b?) ─▶ c ─▶ BatchNormalization(γ, β, μ, σ², ε) ─▶ z
    func convBN(bias: Bool, epsilon: Float?) -> Graph {
        var t = TestGraph()
        t.input("x", [1, 2, 1, 1])
        t.floats("w", [2, 2, 1, 1], [1, 2, 3, 4])
        if bias { t.floats("b", [2], [0.5, -0.5]) }
        t.floats("gamma", [2], [2, 0.5])
        t.floats("beta", [2], [0.1, -0.1])
        t.floats("mean", [2], [1, -1])
        t.floats("var", [2], [3, 3])
        t.node("Conv", "conv", ["x", "w"] + (bias ? ["b"] : []), ["c"])
        t.node("BatchNormalization", "bn", ["c", "gamma", "beta", "mean", "var"], ["z"],
               epsilon.map { [.float("epsilon", $0)] } ?? [])
        t.output("z")
        return t.graph
    }

    /// ε = 1: k = γ/√(σ²+1) = 2/2, 0.5/2 = 1, 0.25. W' = [1, 2, 0.75, 1];
    /// b' = (0.5 − 1)·1 + 0.1 = −0.4, (−0.5 + 1)·0.25 − 0.1 = 0.025.
    func testFoldsIntoWeightAndBias() throws {
        var g = convBN(bias: true, epsilon: 1)
        let original = g
        var context = PassContext(opsetImports: [OpsetImport(domain: "", version: 13)])
        try Pipeline([BatchNormFoldingPass()]).run(&g, &context)
        XCTAssertEqual(opTypes(g), ["Conv"])
        let conv = try nodeNamed(g, "conv")
        XCTAssertEqual(conv.outputs, ["z"])
        XCTAssertEqual(conv.inputs, ["x", "w_bnfolded", "w_bias_bnfolded"])
        assertClose(try floatsOf(g, "w_bnfolded"), [1, 2, 0.75, 1])
        assertClose(try floatsOf(g, "w_bias_bnfolded"), [-0.4, 0.025])
        XCTAssertEqual(try floatsOf(g, "w"), [1, 2, 3, 4], "the original weight is left as it was")
        XCTAssertEqual(context.log.last?.summary, "1 Conv+BatchNormalization pairs folded")

        // The folded graph computes what the original does.
        let x = DenseTensor(shape: [1, 2, 1, 1], floats: [0.3, -1.7])
        let before = try XCTUnwrap(GraphExecutor(graph: original, opset: 13).run(["x": x])["z"]).floats
        let after = try XCTUnwrap(GraphExecutor(graph: g, opset: 13).run(["x": x])["z"]).floats
        assertClose(after, before, accuracy: 1e-5)
    }

    /// Default ε = 1e-5 and no Conv bias: k = γ/√(σ² + 1e-5) in double, b' = −μ·k + β.
    func testDefaultEpsilonWithoutBias() throws {
        var g = convBN(bias: false, epsilon: nil)
        var context = PassContext()
        try BatchNormFoldingPass().run(&g, &context)
        let k = [2 / (3 + 1e-5).squareRoot(), 0.5 / (3 + 1e-5).squareRoot()]
        let w: [Double] = [1, 2, 3, 4]
        assertClose(try floatsOf(g, "w_bnfolded"), (0..<4).map { Float(w[$0] * k[$0 / 2]) })
        let bias = try nodeNamed(g, "conv").inputs[2]
        assertClose(try floatsOf(g, bias), [Float(-1 * k[0] + 0.1), Float(1 * k[1] - 0.1)])
    }

    /// The Conv's output is also read elsewhere: folding would change that reader, so the pair stays.
    func testLeavesAPairWhoseConvOutputHasAnotherReader() throws {
        var g = convBN(bias: true, epsilon: 1)
        g.appendNode(Node(opType: "Relu", name: "other", inputs: ["c"], outputs: ["o"]))
        g.outputs.append(ValueInfo(name: "o", type: nil))
        var context = PassContext()
        try BatchNormFoldingPass().run(&g, &context)
        XCTAssertEqual(opTypes(g), ["Conv", "BatchNormalization", "Relu"])
        XCTAssertEqual(try nodeNamed(g, "conv").inputs, ["x", "w", "b"])
    }

    /// A BN parameter whose size is not the Conv's output channels is an error naming the BN.
    func testRefusesAParameterOfTheWrongSize() throws {
        var g = convBN(bias: true, epsilon: 1)
        g.setInitializer(Tensor(name: "gamma", dims: [3], floats: [1, 1, 1]))
        var context = PassContext()
        let error = expectError(PassError.self) { try BatchNormFoldingPass().run(&g, &context) }
        XCTAssertEqual(error?.node, "bn")
        XCTAssertTrue(error?.message.contains("2 output channels") ?? false, error?.message ?? "")
    }
}
