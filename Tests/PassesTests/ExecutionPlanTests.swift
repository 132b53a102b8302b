import Foundation
import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

/// The plan borrows weights (no copy, not per batch), reuses buffers, folds constants and fuses chains without
/// changing numbers.
final class ExecutionPlanTests: XCTestCase {
    /// x[1,4,6,6] → Conv(w, b) → BatchNormalization → Relu → Mul(γ) → Add(β) → Clip(0, 6) → y
    func graph() -> Graph {
        var g = Graph(name: "g")
        func floats(_ name: String, _ dims: [Int64], _ f: (Int) -> Float) {
            let n = Int(dims.reduce(1, *))
            g.setInitializer(Tensor(name: name, dims: dims, floats: (0..<n).map(f)))
        }
        floats("w", [3, 4, 3, 3]) { Float(($0 * 7) % 11) / 11 - 0.5 }
        floats("b", [3]) { Float($0) * 0.1 }
        floats("s", [3]) { 1 + Float($0) * 0.2 }
        floats("o", [3]) { Float($0) * -0.1 }
        floats("m", [3]) { Float($0) * 0.05 }
        floats("v", [3]) { 0.5 + Float($0) }
        floats("gamma", [1, 3, 1, 1]) { 2 - Float($0) * 0.5 }
        floats("beta", [1, 3, 1, 1]) { Float($0) }
        floats("lo", []) { _ in 0 }
        floats("hi", []) { _ in 6 }
        g.inputs = [ValueInfo(name: "x", type: .tensor(.float, [1, 4, 6, 6]))]
        g.outputs = [ValueInfo(name: "y", type: nil)]
        for node in [
            Node(opType: "Conv", name: "conv", inputs: ["x", "w", "b"], outputs: ["c"],
                 attributes: [.ints("pads", [1, 1, 1, 1])]),
            Node(opType: "BatchNormalization", name: "bn", inputs: ["c", "s", "o", "m", "v"], outputs: ["n"]),
            Node(opType: "Relu", name: "relu", inputs: ["n"], outputs: ["r"]),
            Node(opType: "Mul", name: "mul", inputs: ["r", "gamma"], outputs: ["p"]),
            Node(opType: "Add", name: "add", inputs: ["p", "beta"], outputs: ["q"]),
            Node(opType: "Clip", name: "clip", inputs: ["q", "lo", "hi"], outputs: ["y"]),
        ] { _ = g.appendNode(node) }
        return g
    }

    func input() -> DenseTensor { DenseTensor(shape: [1, 4, 6, 6], floats: (0..<144).map { Float($0 % 13) / 6 - 1 }) }

    func testWeightsAreViewsOfTheModelsBytes() throws {
        let g = graph()
        let w = try XCTUnwrap(g.initializers["w"])
        let dense = try ExecutionPlan.dense(w).get()
        guard case .floatView(let view) = dense.elements, case .bytes(let buffer) = w.data else {
            return XCTFail("a float initializer should be a view, not a copy")
        }
        XCTAssertEqual(UnsafeRawPointer(view.base), UnsafeRawPointer(buffer.baseAddress))
        XCTAssertEqual(dense.floats, w.floatArray)
    }

    func testFusedPlanEqualsTheUnfusedOneOverSeveralBatches() throws {
        let fused = try GraphExecutor(graph: graph(), opset: 13)
        let plain = try GraphExecutor(graph: graph(), opset: 13, fuse: false)
        for _ in 0..<3 {
            let a = try XCTUnwrap(fused.run(["x": input()])["y"]).floats
            let b = try XCTUnwrap(plain.run(["x": input()])["y"]).floats
            XCTAssertEqual(a.count, 108)
            for (u, v) in zip(a, b) { XCTAssertEqual(u, v, accuracy: 1e-5) }
        }
        fused.profiling = true
        _ = try fused.run(["x": input()])
        // Conv+BN+Relu is one step, Mul+Add+Clip another.
        XCTAssertEqual(Set(fused.profile.calls.keys), ["Conv", "Mul+Add+Clip"])
    }

    func testObservedValuesStopFusion() throws {
        let executor = try GraphExecutor(graph: graph(), opset: 13)
        var seen: [String: [Float]] = [:]
        _ = try executor.run(["x": input()], observe: ["n", "p"]) { name, value in seen[name] = value.floats }
        XCTAssertEqual(Set(seen.keys), ["n", "p"])
        let plain = try GraphExecutor(graph: graph(), opset: 13, fuse: false)
        var expected: [String: [Float]] = [:]
        _ = try plain.run(["x": input()], observe: ["n", "p"]) { name, value in expected[name] = value.floats }
        for name in ["n", "p"] {
            for (u, v) in zip(seen[name]!, expected[name]!) { XCTAssertEqual(u, v, accuracy: 1e-5) }
        }
    }
}
