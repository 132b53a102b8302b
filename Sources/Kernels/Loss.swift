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
