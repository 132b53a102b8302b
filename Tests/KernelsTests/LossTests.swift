// The distillation losses (Sources/Kernels/Loss.swift, SEMANTICS §7) against the float64 numpy implementation in
// scripts/make-training-goldens.py (tests/training/training_goldens.json, "losses"): value and gradient within 1e-5
// relative; and each gradient against central finite differences of the kernel's own value.

import Foundation
import XCTest

@testable import Kernels

final class LossTests: XCTestCase {
    struct SoftmaxCase: Decodable {
        var name: String, outer: Int, classes: Int, inner: Int, temperature: Double
        var student: [Double], teacher: [Double], loss: Double, gradient: [Double]
    }
    struct SigmoidCase: Decodable {
        var name: String, temperature: Double, student: [Double], teacher: [Double], loss: Double, gradient: [Double]
    }
    struct MSECase: Decodable {
        var name: String, prediction: [Double], target: [Double], loss: Double, gradient: [Double]
    }
    struct Cases: Decodable {
        var softmax_kl: [SoftmaxCase], sigmoid_kl: [SigmoidCase], normalized_mse: [MSECase]
    }
    struct File: Decodable { var losses: Cases }

    static func cases() throws -> Cases {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("tests/training/training_goldens.json"))
        return try JSONDecoder().decode(File.self, from: data).losses
    }

    typealias LossFunction = (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>?) throws -> Float

    /// The kernel's value and gradient at `x`.
    func evaluate(_ x: [Float], _ f: LossFunction) throws -> (Float, [Float]) {
        var g = [Float](repeating: 0, count: x.count)
        let v = try x.withUnsafeBufferPointer { xb in try g.withUnsafeMutableBufferPointer { try f(xb, $0) } }
        return (v, g)
    }

    func check(_ name: String, _ x: [Double], loss: Double, gradient: [Double], _ f: LossFunction) throws {
        let xs = x.map(Float.init)
        let (v, g) = try evaluate(xs, f)
        XCTAssertEqual(Double(v), loss, accuracy: 1e-5 * max(abs(loss), 1e-3), "\(name): value")
        let scale = gradient.map(abs).max() ?? 1
        for (a, b) in zip(g, gradient) {
            XCTAssertEqual(Double(a), b, accuracy: 1e-5 * max(scale, 1e-6), "\(name): gradient")
        }
        // Finite differences of the kernel's own value (float64 inside, so a step of 1e-2 is exact enough).
        for i in xs.indices {
            var up = xs, down = xs
            up[i] += 1e-2
            down[i] -= 1e-2
            let numeric = (Double(try evaluate(up, f).0) - Double(try evaluate(down, f).0)) / 2e-2
            XCTAssertEqual(Double(g[i]), numeric, accuracy: 2e-3 * max(scale, 1e-3), "\(name): ∂[\(i)] vs differences")
        }
    }

    func testSoftmaxKLMatchesNumpy() throws {
        let cases = try Self.cases().softmax_kl
        XCTAssertEqual(cases.count, 3)
        for c in cases {
            let t = c.teacher.map(Float.init)
            let layout = Loss.SoftmaxLayout(outer: c.outer, classes: c.classes, inner: c.inner)
            try check(c.name, c.student, loss: c.loss, gradient: c.gradient) { s, g in
                try t.withUnsafeBufferPointer {
                    try Loss.softmaxKL(student: s, teacher: $0, layout, temperature: Float(c.temperature), gradient: g)
                }
            }
        }
    }

    func testSigmoidKLMatchesNumpy() throws {
        for c in try Self.cases().sigmoid_kl {
            let t = c.teacher.map(Float.init)
            try check(c.name, c.student, loss: c.loss, gradient: c.gradient) { s, g in
                try t.withUnsafeBufferPointer {
                    try Loss.sigmoidKL(student: s, teacher: $0, temperature: Float(c.temperature), gradient: g)
                }
            }
        }
    }

    func testNormalizedMSEMatchesNumpy() throws {
        for c in try Self.cases().normalized_mse {
            let t = c.target.map(Float.init)
            try check(c.name, c.prediction, loss: c.loss, gradient: c.gradient) { p, g in
                try t.withUnsafeBufferPointer { try Loss.normalizedMSE(p, target: $0, gradient: g) }
            }
        }
    }

    func testEqualDistributionsCostNothing() throws {
        let z: [Float] = [1, -2, 0.5, 3, 0, 0]
        let v = try z.withUnsafeBufferPointer {
            try Loss.softmaxKL(student: $0, teacher: $0, .init(outer: 2, classes: 3, inner: 1), gradient: nil)
        }
        XCTAssertEqual(v, 0, accuracy: 1e-7)
    }

    func testAMismatchedLayoutIsAnError() {
        let z: [Float] = [1, 2, 3]
        XCTAssertThrowsError(try z.withUnsafeBufferPointer {
            try Loss.softmaxKL(student: $0, teacher: $0, .init(outer: 2, classes: 3, inner: 1), gradient: nil)
        })
    }

    /// Enough positions to run on every core, classes at a stride (inner 3), at τ = 2: the loss and each gradient
    /// against log-softmax computed here in Double, one position at a time, and the same bits on a second run.
    func testLargeSoftmaxKLOnEveryCoreMatchesTheFormula() throws {
        var random = SystemRandomNumberGenerator()
        let (outer, classes, inner, tau) = (50, 301, 3, 2.0)
        let n = outer * classes * inner
        let s = (0..<n).map { _ in Float.random(in: -6...6, using: &random) }
        let t = (0..<n).map { _ in Float.random(in: -6...6, using: &random) }
        let layout = Loss.SoftmaxLayout(outer: outer, classes: classes, inner: inner)
        func kl() throws -> (Float, [Float]) {
            var g = [Float](repeating: 0.5, count: n)
            let v = try s.withUnsafeBufferPointer { sb in
                try t.withUnsafeBufferPointer { tb in
                    try g.withUnsafeMutableBufferPointer {
                        try Loss.softmaxKL(student: sb, teacher: tb, layout, temperature: Float(tau), gradient: $0)
                    }
                }
            }
            return (v, g)
        }
        let (loss, gradient) = try kl()
        var total = 0.0
        for o in 0..<outer {
            for i in 0..<inner {
                let at = (0..<classes).map { o * classes * inner + $0 * inner + i }
                func logSoftmax(_ z: [Float]) -> [Double] {
                    let v = at.map { Double(z[$0]) / tau }, m = v.max()!
                    let lse = m + Foundation.log(v.reduce(0) { $0 + Foundation.exp($1 - m) })
                    return v.map { $0 - lse }
                }
                let (ls, lt) = (logSoftmax(s), logSoftmax(t))
                for k in 0..<classes {
                    let pt = Foundation.exp(lt[k])
                    total += pt * (lt[k] - ls[k])
                    let want = 0.5 + tau * (Foundation.exp(ls[k]) - pt) / Double(outer * inner)
                    XCTAssertEqual(Double(gradient[at[k]]), want, accuracy: 1e-7, "∂[\(o), \(k), \(i)]")
                }
            }
        }
        XCTAssertEqual(Double(loss), tau * tau * total / Double(outer * inner), accuracy: 1e-6 * abs(total))
        let again = try kl()
        XCTAssertEqual(again.0.bitPattern, loss.bitPattern)
        XCTAssertEqual(again.1, gradient)
    }
}
