// GraphExecutor on a 4-node Conv → Flatten → Gemm → Add graph, against outputs computed by hand.

import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class GraphExecutorPassUnitTests: XCTestCase {
    /// x[1,1,3,3] = 1…9 ─▶ Conv(w [[1, 2], [0, −1]], b 0.5, conv attributes) ─▶ c ─▶ Flatten ─▶ f
    ///   ─▶ Gemm(W[4,2], transB=0, C [1, −1]) ─▶ g ─▶ Add([10, 20]) ─▶ y
    func graph(convAttributes: [Attribute] = []) -> Graph {
        var t = TestGraph()
        t.input("x", [1, 1, 3, 3])
        t.floats("w", [1, 1, 2, 2], [1, 2, 0, -1])
        t.floats("b", [1], [0.5])
        t.floats("W", [4, 2], [1, 0, 0, 1, 1, 1, -1, 2])
        t.floats("C", [2], [1, -1])
        t.floats("k", [2], [10, 20])
        t.node("Conv", "conv", ["x", "w", "b"], ["c"], convAttributes)
        t.node("Flatten", "flatten", ["c"], ["f"])
        t.node("Gemm", "gemm", ["f", "W", "C"], ["g"])
        t.node("Add", "add", ["g", "k"], ["y"])
        t.output("y")
        return t.graph
    }

    let x = DenseTensor(shape: [1, 1, 3, 3], floats: [1, 2, 3, 4, 5, 6, 7, 8, 9])

    /// c(i,j) = x(i,j) + 2·x(i,j+1) − x(i+1,j+1) + 0.5 = 0.5, 2.5, 6.5, 8.5;
    /// g = [0.5 + 6.5 − 8.5 + 1, 2.5 + 6.5 + 17 − 1] = [−0.5, 25]; y = g + [10, 20] = [9.5, 45].
    func testConvGemmAddByHand() throws {
        var seen: [String: DenseTensor] = [:]
        let out = try GraphExecutor(graph: graph(), opset: 13).run(["x": x], observe: ["c"]) { seen[$0] = $1 }
        let y = try XCTUnwrap(out["y"])
        XCTAssertEqual(y.shape, [1, 2])
        assertClose(y.floats, [9.5, 45], accuracy: 1e-5)
        XCTAssertEqual(seen["c"]?.shape, [1, 1, 2, 2])
        assertClose(seen["c"]?.floats ?? [], [0.5, 2.5, 6.5, 8.5], accuracy: 1e-5)
    }

    /// Padding 1 and stride 2: windows over the zero-padded 5×5 input at rows/cols 0 and 2:
    /// c = [−1, −3, 8 − 7, 5 + 12 − 9] + 0.5 = [−0.5, −2.5, 1.5, 8.5];
    /// g = [−0.5 + 1.5 − 8.5 + 1, −2.5 + 1.5 + 17 − 1] = [−6.5, 15]; y = [3.5, 35].
    func testPaddedStridedConv() throws {
        let g = graph(convAttributes: [.ints("pads", [1, 1, 1, 1]), .ints("strides", [2, 2])])
        var seen: [String: DenseTensor] = [:]
        let out = try GraphExecutor(graph: g, opset: 13).run(["x": x], observe: ["c"]) { seen[$0] = $1 }
        assertClose(seen["c"]?.floats ?? [], [-0.5, -2.5, 1.5, 8.5], accuracy: 1e-5)
        assertClose(try XCTUnwrap(out["y"]).floats, [3.5, 35], accuracy: 1e-5)
    }

    /// The same executor over several batches of 2 samples gives each sample its own result.
    func testBatchOfTwo() throws {
        var g = graph()
        g.inputs = [ValueInfo(name: "x", type: .tensor(.float, [2, 1, 3, 3]))]
        let executor = try GraphExecutor(graph: g, opset: 13)
        let zeros = [Float](repeating: 0, count: 9)
        let two = DenseTensor(shape: [2, 1, 3, 3], floats: [1, 2, 3, 4, 5, 6, 7, 8, 9] + zeros)
        for _ in 0..<2 {
            let y = try XCTUnwrap(executor.run(["x": two])["y"])
            XCTAssertEqual(y.shape, [2, 2])
            // Sample 2 is all zeros: c = 0.5 everywhere,
            // g = [0.5·(1 + 0 + 1 − 1) + 1, 0.5·(0 + 1 + 1 + 2) − 1] = [1.5, 1], y = [11.5, 21].
            assertClose(y.floats, [9.5, 45, 11.5, 21], accuracy: 1e-5)
        }
    }
}
