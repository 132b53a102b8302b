import XCTest
@testable import Passes

/// The flat parameter store (Training/Optimizer.swift): an update touches only the parameters with a gradient, and
/// matches Adam's and SGD's formulas computed here in Double.
final class OptimizerTests: XCTestCase {
    func store() -> ParameterStore {
        var s = ParameterStore()
        s.add("a", shape: [2], values: [1, -2])
        s.add("b", shape: [3], values: [0.5, 0.25, 4])
        s.add("c", shape: [1], values: [3])
        return s
    }

    func gradients(_ s: ParameterStore) throws -> Gradients {
        var g = Gradients(s)
        try [Float(0.3), -0.7].withUnsafeBufferPointer { try g.set(0, in: s, $0) }
        try [Float(-1.5)].withUnsafeBufferPointer { try g.set(2, in: s, $0) }
        return g
    }

    func testAdamTwoStepsTouchOnlyParametersWithAGradient() throws {
        var s = store()
        let g = try gradients(s)
        XCTAssertEqual(g.presentRuns(s.offsets), [0..<2, 5..<6])
        for _ in 0..<2 { s.update(g, kind: .adam, learningRate: 0.01) }
        XCTAssertEqual(s[1], [0.5, 0.25, 4], "no gradient: left alone")
        XCTAssertEqual(Array(s.first[2..<5]) + Array(s.second[2..<5]), [Float](repeating: 0, count: 6))
        for (i, (p0, g0)) in [(1.0, 0.3), (-2.0, -0.7), (3.0, -1.5)].enumerated() {
            var (p, m, v) = (p0, 0.0, 0.0)
            for t in 1...2 {
                m = 0.9 * m + 0.1 * g0
                v = 0.999 * v + 0.001 * g0 * g0
                p -= 0.01 * (m / (1 - pow(0.9, Double(t)))) / ((v / (1 - pow(0.999, Double(t)))).squareRoot() + 1e-8)
            }
            let got = s.values[[0, 1, 5][i]]
            XCTAssertEqual(Double(got), p, accuracy: 1e-6)
        }
    }

    func testSGDMomentum() throws {
        var s = store()
        let g = try gradients(s)
        for _ in 0..<3 { s.update(g, kind: .sgd, learningRate: 0.1) }
        // v = g, 1.9g, 2.71g: p moves by 0.1·5.61·g
        XCTAssertEqual(Double(s[0, 1]), -2 + 0.1 * 5.61 * 0.7, accuracy: 1e-5)
        XCTAssertEqual(Double(s[2, 0]), 3 + 0.1 * 5.61 * 1.5, accuracy: 1e-5)
        XCTAssertEqual(s[1], [0.5, 0.25, 4])
    }

    func testAGradientOfTheWrongSizeIsAnError() {
        let s = store()
        var g = Gradients(s)
        XCTAssertThrowsError(try [Float(1)].withUnsafeBufferPointer { try g.set(1, in: s, $0) })
        XCTAssertFalse(g.has(1))
    }
}
