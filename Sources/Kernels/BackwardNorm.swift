// Vector-Jacobian product of BatchNormalization in inference form (statistics frozen, SEMANTICS §7), over axis 1:
//   k_c = scale_c/√(var_c + ε);  y = (x − mean_c)·k_c + bias_c
//   ∂x = g·k_c;  ∂scale_c = Σ g·(x − mean_c)/√(var_c + ε);  ∂bias_c = Σ g
// LayerNormalization over the axes from `axis` on (inner = their product), scale/bias indexed i mod their count as
// NeuralOps.layerNorm does: r = 1/√(var + ε), x̂ = (x − μ)·r, y = x̂·γ + β
//   ∂γ += Σ g·x̂;  ∂β += Σ g;  d = g·γ;  ∂x = r·(d − mean(d) − x̂·mean(d·x̂))  (means over the inner block)
// LRN across channels: see `Backward.lrn`.
// Every function ADDS into its gradient outputs (the caller zeroes them); a nil output is not computed.

import Foundation

extension Backward {
    /// LRN across channels: with S[c] = bias + α/size·Σ_window x², y = x·S^−β,
    /// ∂x[i] = g[i]·S[i]^−β − 2αβ/size · x[i] · Σ_{c: i in window(c)} g[c]·x[c]·S[c]^(−β−1).
    public static func lrn(
        x: UnsafeBufferPointer<Float>, batch: Int, channels: Int, inner: Int, size: Int, alpha: Float, beta: Float,
        bias: Float, gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) {
        let window = NeuralOps.lrnWindow(size: size), (lower, upper) = window
        let k = alpha / Float(size)
        guard let xp = x.baseAddress else { return }  // no elements, no gradient
        var s = [Float](repeating: 0, count: x.count)
        for plane in 0..<(batch * channels) {
            for i in 0..<inner {
                s[plane * inner + i] = NeuralOps.lrnScale(xp, plane: plane, at: i, channels: channels, inner: inner,
                                                          window: window, k: k, bias: bias)
            }
        }
        for plane in 0..<(batch * channels) {
            let n = plane / channels, i0 = plane % channels
            // The channels whose window holds i0: c − lower ≤ i0 ≤ c + upper.
            let first = Swift.max(0, i0 - upper), last = Swift.min(channels - 1, i0 + lower)
            for i in 0..<inner {
                let at = plane * inner + i
                var cross: Float = 0
                for c in first...last {
                    let j = (n * channels + c) * inner + i
                    cross += g[j] * x[j] * powf(s[j], -beta - 1)
                }
                let direct = g[at] * powf(s[at], -beta)
                dx[at] += direct - 2 * k * beta * x[at] * cross
            }
        }
    }

    public static func batchNorm(
        x: UnsafeBufferPointer<Float>, xShape: [Int], scale: [Float], mean: [Float], variance: [Float], epsilon: Float,
        gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>?,
        dScale: UnsafeMutableBufferPointer<Float>?, dBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        let c = xShape.count > 1 ? xShape[1] : 1
        let inner = xShape.dropFirst(2).reduce(1, *)
        guard x.count == xShape.reduce(1, *), g.count == x.count, (dx?.count ?? x.count) == x.count,
            scale.count == c, mean.count == c, variance.count == c, (dScale?.count ?? c) == c, (dBias?.count ?? c) == c
        else { throw KernelError("BatchNormalization gradient: buffers do not match \(xShape)") }
        guard inner > 0 else { return }
        for plane in 0..<(x.count / inner) {
            let ch = plane % c
            let base = plane * inner
            let inv = 1 / (variance[ch] + epsilon).squareRoot()
            let k = scale[ch] * inv
            let mu = mean[ch]
            var sg: Float = 0
            var sgx: Float = 0
            for i in base..<(base + inner) {
                sg += g[i]
                sgx += g[i] * (x[i] - mu)
            }
            if let dx { for i in base..<(base + inner) { dx[i] += g[i] * k } }
            dScale?[ch] += sgx * inv
            dBias?[ch] += sg
        }
    }

    public static func layerNorm(
        x: UnsafeBufferPointer<Float>, shape: [Int], axis: Int, epsilon: Float, scale: [Float],
        gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>?,
        dScale: UnsafeMutableBufferPointer<Float>?, dBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        let axis = try normalizedAxis(axis, rank: shape.count)
        let inner = shape[axis...].reduce(1, *)
        guard x.count == shape.reduce(1, *), g.count == x.count, (dx?.count ?? x.count) == x.count, !scale.isEmpty,
            inner % scale.count == 0, (dScale?.count ?? scale.count) == scale.count
        else { throw KernelError("LayerNormalization gradient: buffers do not match \(shape) from axis \(axis)") }
        guard inner > 0 else { return }
        let sc = scale.count
        let n = Float(inner)
        var xhat = [Float](repeating: 0, count: inner)
        for base in stride(from: 0, to: x.count, by: inner) {
            var mean: Float = 0
            for i in 0..<inner { mean += x[base + i] }
            mean /= n
            var variance: Float = 0
            for i in 0..<inner { variance += (x[base + i] - mean) * (x[base + i] - mean) }
            variance /= n
            let r = 1 / (variance + epsilon).squareRoot()
            var meanD: Float = 0
            var meanDX: Float = 0
            for i in 0..<inner {
                let xh = (x[base + i] - mean) * r
                let gi = g[base + i]
                xhat[i] = xh
                let d = gi * scale[i % sc]
                meanD += d
                meanDX += d * xh
                dScale?[i % sc] += gi * xh
                dBias?[i % sc] += gi
            }
            meanD /= n
            meanDX /= n
            if let dx {
                for i in 0..<inner { dx[base + i] += r * (g[base + i] * scale[i % sc] - meanD - xhat[i] * meanDX) }
            }
        }
    }
}
