// Training losses and their gradients (SEMANTICS §7), accumulated in float64.
//   Cross-entropy over the class axis 1 of logits [N, C, d…] with integer labels [N, d…], mean over the N·d positions:
//     loss = mean(logsumexp(z) − z_label);  ∂z = scale·(softmax(z) − onehot(label))/(N·d)
//   MSE (distillation), mean over the elements: loss = mean((p − t)²);  ∂p = scale·2(p − t)/count
// `scale` multiplies the gradient only (a weight on this loss in a sum of losses). The gradients are ADDED into
// the given buffer (the caller zeroes it).

import Foundation

public enum Loss {
    public static func crossEntropy(
        logits z: UnsafeBufferPointer<Float>, shape: [Int], labels: [Int64], scale: Float = 1,
        gradient: UnsafeMutableBufferPointer<Float>?
    ) throws -> Float {
        guard shape.count >= 2, z.count == shape.reduce(1, *), (gradient?.count ?? z.count) == z.count else {
            throw KernelError("cross-entropy needs logits [N, C, …], got \(shape)")
        }
        let n = shape[0]
        let c = shape[1]
        let inner = shape.dropFirst(2).reduce(1, *)
        let positions = n * inner
        guard labels.count == positions, c > 0, positions > 0 else {
            throw KernelError("cross-entropy: \(labels.count) labels for logits \(shape) (expected \(positions))")
        }
        if let bad = labels.first(where: { $0 < 0 || $0 >= Int64(c) }) {
            throw KernelError("cross-entropy: label \(bad) is not a class index of \(c) classes")
        }
        var total = 0.0
        let gscale = Double(scale) / Double(positions)
        for img in 0..<n {
            for i in 0..<inner {
                let base = img * c * inner + i
                var mx = -Double.infinity
                for k in 0..<c { mx = Swift.max(mx, Double(z[base + k * inner])) }
                var sum = 0.0
                for k in 0..<c { sum += Foundation.exp(Double(z[base + k * inner]) - mx) }
                let label = Int(labels[img * inner + i])
                total += Foundation.log(sum) + mx - Double(z[base + label * inner])
                if let gradient {
                    for k in 0..<c {
                        let p = Foundation.exp(Double(z[base + k * inner]) - mx) / sum
                        gradient[base + k * inner] += Float(gscale * (p - (k == label ? 1 : 0)))
                    }
                }
            }
        }
        return Float(total / Double(positions))
    }

    public static func meanSquaredError(
        _ p: UnsafeBufferPointer<Float>, target t: UnsafeBufferPointer<Float>, scale: Float = 1,
        gradient: UnsafeMutableBufferPointer<Float>?
    ) throws -> Float {
        guard p.count == t.count, (gradient?.count ?? p.count) == p.count, p.count > 0 else {
            throw KernelError("MSE: \(p.count) predictions for \(t.count) targets")
        }
        var total = 0.0
        let k = 2 * scale / Float(p.count)
        for i in p.indices {
            let d = p[i] - t[i]
            total += Double(d) * Double(d)
            if let gradient { gradient[i] += k * d }
        }
        return Float(total / Double(p.count))
    }
}

// Distillation losses (SEMANTICS §7, no labels): the student's values against the float teacher's on the same batch.
//   Softmax KL, over `classes` at each of outer·inner positions (layout [outer, classes, inner]), temperature τ:
//     p = softmax(z/τ);  loss = τ²·mean_positions Σ_k p_t·(log p_t − log p_s);  ∂z_s = scale·τ·(p_s − p_t)/positions
//   Sigmoid KL (binary), per element: p = σ(z/τ);  loss = τ²·mean KL(p_t ‖ p_s);  ∂z_s = scale·τ·(p_s − p_t)/count
//   Normalised MSE: v = the teacher's variance over all its elements (1 when it is 0);
//     loss = mean((p − t)²)/v;  ∂p = scale·2(p − t)/(count·v)
extension Loss {
    /// Where a softmax's classes lie in a buffer: [outer, classes, inner] (classes at stride `inner`).
    public struct SoftmaxLayout: Sendable, Equatable {
        public var outer: Int, classes: Int, inner: Int
        public init(outer: Int, classes: Int, inner: Int) {
            self.outer = outer
            self.classes = classes
            self.inner = inner
        }
        var count: Int { outer * classes * inner }
    }

    public static func softmaxKL(
        student s: UnsafeBufferPointer<Float>, teacher t: UnsafeBufferPointer<Float>, _ layout: SoftmaxLayout,
        temperature: Float = 1, scale: Float = 1, gradient: UnsafeMutableBufferPointer<Float>?
    ) throws -> Float {
        let (c, inner) = (layout.classes, layout.inner)
        let positions = layout.outer * inner
        guard s.count == t.count, s.count == layout.count, positions > 0, c > 0, temperature > 0,
              (gradient?.count ?? s.count) == s.count
        else { throw KernelError("softmax KL: \(s.count) student and \(t.count) teacher values for \(layout)") }
        let tau = Double(temperature)
        let gscale = Double(scale) * tau / Double(positions)
        // Each position's term on any core, added in position order below: the same bits whatever the threads.
        guard let sp = s.baseAddress, let tp = t.baseAddress else { return 0 }
        var terms = [Double](repeating: 0, count: positions)
        terms.withUnsafeMutableBufferPointer { termsBuffer in
            let out = UncheckedSendable(termsBuffer.baseAddress!), g = UncheckedSendable(gradient?.baseAddress)
            parallelChunks(positions, work: positions * c * 8) { range in
                var es = [Double](repeating: 0, count: c), et = [Double](repeating: 0, count: c)
                for p in range {
                    let base = (p / inner) * c * inner + p % inner
                    out.value[p] = klTerm(sp + base, tp + base, stride: inner, c, tau: tau, gscale: gscale,
                                          &es, &et, gradient: g.value.map { $0 + base })
                }
            }
        }
        var total = 0.0
        for term in terms { total += term }
        return Float(tau * tau * total / Double(positions))
    }

    /// Σ_k p_t·(log p_t − log p_s) at one position (classes at `stride`), adding gscale·(p_s − p_t) into `gradient`.
    /// One exp per class and model: p = e^(z − max)/Σ, log p = z − max − log Σ.
    private static func klTerm(
        _ s: UnsafePointer<Float>, _ t: UnsafePointer<Float>, stride: Int, _ c: Int, tau: Double, gscale: Double,
        _ es: inout [Double], _ et: inout [Double], gradient: UnsafeMutablePointer<Float>?
    ) -> Double {
        let (ms, sumS) = exponentials(s, stride: stride, c, tau: tau, into: &es)
        let (mt, sumT) = exponentials(t, stride: stride, c, tau: tau, into: &et)
        let shift = (mt + Foundation.log(sumT)) - (ms + Foundation.log(sumS))  // log p_t − log p_s = zt − zs − shift
        var total = 0.0
        for k in 0..<c {
            let pt = et[k] / sumT
            if pt > 0 { total += pt * ((Double(t[k * stride]) - Double(s[k * stride])) / tau - shift) }
            if let gradient { gradient[k * stride] += Float(gscale * (es[k] / sumS - pt)) }
        }
        return total
    }

    /// e^(z/τ − max) of each class into `e` (float32's exp: its relative error, ~1e-7, is below what the float32
    /// gradient keeps; the sum and the logs stay in float64); returns (max, Σ e).
    @inline(__always)
    private static func exponentials(_ v: UnsafePointer<Float>, stride: Int, _ c: Int, tau: Double,
                                     into e: inout [Double]) -> (max: Double, sum: Double) {
        var mx = -Double.infinity
        for k in 0..<c { mx = Swift.max(mx, Double(v[k * stride]) / tau) }
        var sum = 0.0
        for k in 0..<c {
            e[k] = Double(Foundation.exp(Float(Double(v[k * stride]) / tau - mx)))
            sum += e[k]
        }
        return (mx, sum)
    }

    public static func sigmoidKL(
        student s: UnsafeBufferPointer<Float>, teacher t: UnsafeBufferPointer<Float>, temperature: Float = 1,
        scale: Float = 1, gradient: UnsafeMutableBufferPointer<Float>?
    ) throws -> Float {
        guard s.count == t.count, s.count > 0, temperature > 0, (gradient?.count ?? s.count) == s.count else {
            throw KernelError("sigmoid KL: \(s.count) student values for \(t.count) teacher values")
        }
        let tau = Double(temperature)
        let gscale = Double(scale) * tau / Double(s.count)
        // log σ(z) = −softplus(−z), log(1 − σ(z)) = −softplus(z), softplus(z) = max(z, 0) + log1p(e^−|z|).
        func softplus(_ z: Double) -> Double { Swift.max(z, 0) + Foundation.log1p(Foundation.exp(-Swift.abs(z))) }
        var total = 0.0
        for i in s.indices {
            let zs = Double(s[i]) / tau, zt = Double(t[i]) / tau
            let pt = 1 / (1 + Foundation.exp(-zt)), ps = 1 / (1 + Foundation.exp(-zs))
            let logRatio1 = softplus(-zs) - softplus(-zt)  // log p_t − log p_s
            let logRatio0 = softplus(zs) - softplus(zt)  // log(1 − p_t) − log(1 − p_s)
            total += pt * logRatio1 + (1 - pt) * logRatio0
            if let gradient { gradient[i] += Float(gscale * (ps - pt)) }
        }
        return Float(tau * tau * total / Double(s.count))
    }

    /// The teacher's variance over all its elements, the divisor of `normalizedMSE` (1 when it is 0 or not finite).
    public static func normalizer(_ t: UnsafeBufferPointer<Float>) -> Double {
        guard !t.isEmpty else { return 1 }
        var sum = 0.0, squares = 0.0
        for v in t { sum += Double(v) }
        let mean = sum / Double(t.count)
        for v in t { squares += (Double(v) - mean) * (Double(v) - mean) }
        let variance = squares / Double(t.count)
        return variance > 0 && variance.isFinite ? variance : 1
    }

    public static func normalizedMSE(
        _ p: UnsafeBufferPointer<Float>, target t: UnsafeBufferPointer<Float>, scale: Float = 1,
        gradient: UnsafeMutableBufferPointer<Float>?, variance: Double? = nil
    ) throws -> Float {
        let v = variance ?? normalizer(t)  // given: the variance over a batch split across ranks
        return try meanSquaredError(p, target: t, scale: Float(Double(scale) / v), gradient: gradient) / Float(v)
    }
}
