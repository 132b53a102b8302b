// The trainer's loss and gradients on graphs built in code, against central finite differences of its own loss:
// a weight read by two layers (through Identities in the file: one parameter after the canonical form) gets the sum
// of both gradients; distillation takes the KL on the logits before a final Softmax → Identity, the normalised MSE
// elsewhere; labels and logits that do not fit are refused when the plan is built.

import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class DistillationUnitTests: XCTestCase {
    /// x[N,3] → MatMul(w) → Tanh → MatMul(w) (w read twice through Identities) → Softmax → Identity → p
    /// and, as a second output, the Tanh value t.
    func sharedWeightGraph(_ w: [Float]) -> Graph {
        var t = TestGraph()
        t.graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, [1, 3]))]  // a fixed batch of 1
        t.graph.appendNode(Node(opType: "Constant", name: "k", inputs: [], outputs: ["w"],
                                attributes: [.tensor("value", Tensor(name: nil, dims: [3, 3], floats: w))]))
        t.node("Identity", "i1", ["w"], ["w_a"])
        t.node("Identity", "i2", ["w"], ["w_b"])
        t.node("MatMul", "m1", ["x", "w_a"], ["h"])
        t.node("Tanh", "tanh", ["h"], ["t"])
        t.node("MatMul", "m2", ["t", "w_b"], ["z"])
        t.node("Softmax", "softmax", ["z"], ["s"], [.int("axis", -1)])
        t.node("Identity", "out", ["s"], ["p"])
        t.output("p")
        t.output("t")
        var model = Model(graph: t.graph, irVersion: 8)
        model.canonicalize()
        return model.graph
    }

    /// INT8 asked for, every MatMul skipped: the training graph is the float one.
    static let floatOnly = UnitConfigs.quant(clipMin: -1, clipMax: 1) + "\nskip_layer_types: \"MatMul\""

    let studentW: [Float] = [0.3, -0.2, 0.5, 0.1, 0.4, -0.6, -0.3, 0.2, 0.25]
    let teacherW: [Float] = [0.5, -0.1, 0.2, 0.3, 0.1, -0.4, -0.5, 0.6, 0.1]
    let x: [Float] = [0.5, -1, 0.25, 1, 0.5, -0.5, -0.2, 0.3, 0.9, 0.7, -0.8, 0.1]  // 4 samples

    func trainer(labels: Bool) throws -> Trainer {
        var g = sharedWeightGraph(studentW)
        let context = try planned(&g, Self.floatOnly)  // nothing quantized: the loss is smooth in w
        XCTAssertEqual(g.consumers(of: "w").count, 2, "one initializer read by both MatMuls")
        return try Trainer(graph: g, opset: 13, plan: try XCTUnwrap(context.plan), clips: [:],
                           teacher: labels ? nil : sharedWeightGraph(teacherW), options: TrainingOptions())
    }

    /// The loss at the current parameters, and the gradient of parameter `p`.
    func lossAndGradient(_ tr: Trainer, _ p: Int, labels: [Int64]?) throws -> (Float, [Float]) {
        let feeds = ["x": DenseTensor(shape: [4, 3], floats: x)]
        let tp = try tr.trainingPlan(feeds, labels: labels != nil)
        var tape = try tr.forward(tp, feeds)
        var clock: UInt64?
        let (loss, _, seeds) = try tr.loss(tp, tape, labels: labels, feeds: feeds, gradient: true, clock: &clock)
        return (loss, try XCTUnwrap(try tr.backward(tp, &tape, seeds: seeds).gradient(p, in: tr.store)))
    }

    func assertGradientMatchesDifferences(labels: [Int64]?, file: StaticString = #filePath, line: UInt = #line) throws {
        let tr = try trainer(labels: labels != nil)
        let p = try XCTUnwrap(tr.store.index(of: "w"))
        let (loss, g) = try lossAndGradient(tr, p, labels: labels)
        XCTAssertGreaterThan(loss, 1e-4, file: file, line: line)
        let base = tr.store[p]
        for i in base.indices {
            let h: Float = 1e-3
            tr.store[p] = base
            tr.store[p, i] += h
            let up = try lossAndGradient(tr, p, labels: labels).0
            tr.store[p, i] -= 2 * h
            let down = try lossAndGradient(tr, p, labels: labels).0
            let numeric = (up - down) / (2 * h)
            XCTAssertEqual(g[i], numeric, accuracy: 2e-3 * max(g.map(abs).max()!, 1e-3), "∂w[\(i)]", file: file, line: line)
        }
        tr.store[p] = base
    }

    func testSharedWeightGradientSumsBothReadersWithLabels() throws {
        try assertGradientMatchesDifferences(labels: [0, 2, 1, 2])
    }

    func testDistillationGradientMatchesDifferences() throws {
        try assertGradientMatchesDifferences(labels: nil)
    }

    func testDistillationPicksKLBeforeTheSoftmaxAndMSEElsewhere() throws {
        let tr = try trainer(labels: false)
        let tp = try tr.trainingPlan(["x": DenseTensor(shape: [4, 3], floats: x)], labels: false)
        let byTeacherValue = Dictionary(uniqueKeysWithValues: tp.targets.map { ($0.teacherValue, $0.kind) })
        XCTAssertEqual(byTeacherValue["z"], .softmaxKL(Loss.SoftmaxLayout(outer: 4, classes: 3, inner: 1)),
                       "through the final Identity to the Softmax's input")
        XCTAssertEqual(byTeacherValue["t"], .normalizedMSE)
        XCTAssertEqual(tp.targets.count, 2)
        // The teacher runs as far as the values the loss reads: the final Softmax and Identity are not run.
        let teacher = try XCTUnwrap(tp.teacherRun).graph
        XCTAssertEqual(Set(teacher.outputs.compactMap(\.name)), ["z", "t"])
        XCTAssertEqual(teacher.nodes.map(\.op).sorted(), ["MatMul", "MatMul", "Tanh"])
        XCTAssertTrue(tr.distillationSummary.contains("KL divergence over softmax(3 classes)"), tr.distillationSummary)
    }

    func testTheDistillationLossIsTheMeanOfTheOutputTerms() throws {
        let tr = try trainer(labels: false)
        let feeds = ["x": DenseTensor(shape: [4, 3], floats: x)]
        let tp = try tr.trainingPlan(feeds, labels: false)
        let tape = try tr.forward(tp, feeds)
        var clock: UInt64?
        let loss = try tr.loss(tp, tape, labels: nil, feeds: feeds, gradient: false, clock: &clock).loss
        // The teacher's values by hand: tanh(x·W_t), then z = t·W_t.
        func matmul(_ a: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: 12)
            for r in 0..<4 {
                for c in 0..<3 {
                    for k in 0..<3 { out[r * 3 + c] += a[r * 3 + k] * b[k * 3 + c] }
                }
            }
            return out
        }
        let tt = matmul(x, teacherW).map(tanhf), zt = matmul(tt, teacherW)
        let ts = matmul(x, studentW).map(tanhf), zs = matmul(ts, studentW)
        let kl = try zs.withUnsafeBufferPointer { s in
            try zt.withUnsafeBufferPointer { try Loss.softmaxKL(student: s, teacher: $0, .init(outer: 4, classes: 3, inner: 1), gradient: nil) }
        }
        let mse = try ts.withUnsafeBufferPointer { s in
            try tt.withUnsafeBufferPointer { try Loss.normalizedMSE(s, target: $0, gradient: nil) }
        }
        XCTAssertEqual(loss, (kl + mse) / 2, accuracy: 1e-5)
    }

    func testLogitsThatDoNotFitOneLabelPerSampleAreRefused() throws {
        var t = TestGraph()
        t.graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, [2, 3, 4]))]
        t.floats("w", [4, 4], [Float](repeating: 0.1, count: 16))
        t.node("MatMul", "m", ["x", "w"], ["y"])
        t.output("y")
        var g = t.graph
        let context = try planned(&g, Self.floatOnly)
        let tr = try Trainer(graph: g, opset: 13, plan: try XCTUnwrap(context.plan), clips: [:], teacher: nil,
                             options: TrainingOptions())
        XCTAssertThrowsError(try tr.trainingPlan(specs: ["x": TensorSpec(.float, [2, 3, 4])], labels: true)) {
            XCTAssertTrue("\($0)".contains("needs logits [N, classes]"), "\($0)")
        }
    }
}
