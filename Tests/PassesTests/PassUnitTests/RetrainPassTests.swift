// RetrainPass on a one-Gemm classifier: a few steps of quantization-aware training lower the cross-entropy, and the
// learned weights and clips come back on the graph and the context.

import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class RetrainPassUnitTests: XCTestCase {
    /// x[N,4] ─▶ Gemm fc (w[3,4], transB=1, b[3]) ─▶ logits; labels: the class of the largest of x0, x1, x2.
    func testAFewStepsLowerTheLoss() throws {
        var t = TestGraph()
        t.graph.inputs = [ValueInfo(name: "x", type: ValueType(.tensor(
            elemType: DataType.float.rawValue, shape: Shape([Dimension(.symbolic("N")), Dimension(.known(4))]),
            unknownFields: UnknownFields())))]
        t.floats("w", [3, 4], [0.05, -0.02, 0.01, 0.03, -0.04, 0.02, 0.05, -0.01, 0.01, 0.04, -0.03, 0.02])
        t.floats("b", [3], [0, 0, 0])
        t.node("Gemm", "fc", ["x", "w", "b"], ["logits"], [.int("transB", 1)])
        t.output("logits")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.quant(clipMin: -2, clipMax: 2))

        let n = 48
        var xs: [Float] = [], labels: [Int64] = []
        for i in 0..<n {
            let v = (0..<4).map { j in Float((i * 7 + j * 13) % 17) / 8 - 1 }  // deterministic, in [−1, 1]
            xs += v
            labels.append(Int64(v[0...2].indices.max { v[$0] < v[$1] }!))
        }
        let data = try TrainingData(arrays: ["x": NumpyArray(shape: [n, 4], values: .float(xs), dtype: "<f4")],
                                    labels: labels, source: "unit")
        var options = TrainingOptions()
        options.epochs = 4
        options.batchSize = 8
        options.learningRate = 0.05
        let before = try floatsOf(g, "w")
        try Pipeline([RetrainPass(data: data, options: options)]).run(&g, &context)

        let report = try XCTUnwrap(context.trainingReport)
        XCTAssertEqual(report.steps, 24)
        XCTAssertLessThan(report.after.loss, report.before.loss * 0.9, "\(report.before.loss) → \(report.after.loss)")
        XCTAssertNotEqual(try floatsOf(g, "w"), before, "the learned weights are written back")
        let clips = try XCTUnwrap(context.trainedClips[0])
        XCTAssertLessThanOrEqual(clips.0, 0)
        XCTAssertGreaterThan(clips.1, 0)
    }
}
