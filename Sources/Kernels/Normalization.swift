import Foundation

// Normalization kernels on contiguous float32:
//
//   BatchNormalization (inference)  y = x·k[c] + (β[c] − μ[c]·k[c]),  k = γ / √(σ² + ε), per plane of channel c
//   Softmax over an axis            y = exp(x − max) / Σ exp(x − max); rows along the axis, the rest vectorised
//   LayerNormalization              y = (x − mean)/√(var + ε)·γ + β over the trailing `inner` elements
//   LRN (across channels)           y = x · S^−β,  S[c] = bias + α/size · Σ x[c']² over c' in
//                                   [c − ⌊(size−1)/2⌋, c + ⌈(size−1)/2⌉] ∩ [0, C)

extension NeuralOps {
    /// BatchNormalization as a per-channel affine map of its input, the one place for the formula:
    /// k = γ/√(σ² + ε), shift = (b − μ)·k + β, where b is a bias already in the input (a Conv's, when BN is folded into
    /// it; 0 otherwise). y = x·k + shift.
    public static func batchNormAffine(
        scale: [Float], bias: [Float], mean: [Float], variance: [Float], epsilon: Float, inputBias: [Float]? = nil
    ) -> (k: [Float], shift: [Float]) {
        let k = scale.indices.map { scale[$0] / (variance[$0] + epsilon).squareRoot() }
        let shift = k.indices.map { ((inputBias?[$0] ?? 0) - mean[$0]) * k[$0] + bias[$0] }
        return (k, shift)
    }

    /// Inference BatchNormalization over axis 1 of [N, C, inner...].
    public static func batchNorm(
        _ x: UnsafePointer<Float>, batch: Int, channels: Int, inner: Int, scale: [Float], bias: [Float], mean: [Float],
        variance: [Float], epsilon: Float, out: UnsafeMutablePointer<Float>
    ) {
        let (k, shift) = batchNormAffine(scale: scale, bias: bias, mean: mean, variance: variance, epsilon: epsilon)
        parallelChunks(batch * channels, work: batch * channels * inner) { range in
            for plane in range {
                let c = plane % channels, a = k[c], b = shift[c], base = plane * inner
                for i in base..<(base + inner) { out[i] = x[i] * a + b }
            }
        }
    }

    /// The channel window of LRN: channels c − lower … c + upper.
    public static func lrnWindow(size: Int) -> (lower: Int, upper: Int) { ((size - 1) / 2, size / 2) }

    /// S = bias + k·Σ x[c']² over the window of channel c (k = α/size), at element `i` of plane (n, c) of [N, C,
    /// inner]: the one sum of squares of LRN, for its forward and its gradient.
    @inline(__always)
    static func lrnScale(
        _ x: UnsafePointer<Float>, plane: Int, at i: Int, channels: Int, inner: Int,
        window: (lower: Int, upper: Int), k: Float, bias: Float
    ) -> Float {
        let n = plane / channels, c = plane % channels
        let first = Swift.max(0, c - window.lower), last = Swift.min(channels - 1, c + window.upper)
        var sum: Float = 0
        for j in first...last {
            let v = x[(n * channels + j) * inner + i]
            sum += v * v
        }
        return bias + k * sum
    }

    /// LRN across channels of [N, C, inner]; `scales` (optional, N·C·inner) receives S for the gradient.
    public static func lrn(
        _ x: UnsafePointer<Float>, batch: Int, channels: Int, inner: Int, size: Int, alpha: Float, beta: Float,
        bias: Float, out: UnsafeMutablePointer<Float>
    ) {
        let window = lrnWindow(size: size)
        let k = alpha / Float(size)
        parallelChunks(batch * channels, work: batch * channels * inner * size) { range in
            for plane in range {
                for i in 0..<inner {
                    let s = lrnScale(x, plane: plane, at: i, channels: channels, inner: inner, window: window, k: k,
                                     bias: bias)
                    let at = plane * inner + i
                    out[at] = x[at] * powf(s, -beta)
                }
            }
        }
    }

    /// Softmax of [outer, axis, after] along the middle axis.
    public static func softmax(_ x: UnsafePointer<Float>, outer: Int, axis n: Int, after: Int, out: UnsafeMutablePointer<Float>) {
        parallelChunks(outer, work: outer * n * after * 8) { range in
            if after == 1 {
                for o in range {
                    let src = x + o * n, dst = out + o * n
                    var mx = -Float.infinity
                    for i in 0..<n { mx = Swift.max(mx, src[i]) }
                    var sum: Float = 0
                    for i in 0..<n {
                        let e = expf(src[i] - mx)
                        dst[i] = e
                        sum += e
                    }
                    let inv = 1 / sum
                    for i in 0..<n { dst[i] *= inv }
                }
                return
            }
            var mx = [Float](repeating: 0, count: after), sum = [Float](repeating: 0, count: after)
            for o in range {
                let src = x + o * n * after, dst = out + o * n * after
                for j in 0..<after { mx[j] = src[j] }
                for i in 1..<Swift.max(n, 1) { for j in 0..<after { mx[j] = Swift.max(mx[j], src[i * after + j]) } }
                for j in 0..<after { sum[j] = 0 }
                for i in 0..<n {
                    for j in 0..<after {
                        let e = expf(src[i * after + j] - mx[j])
                        dst[i * after + j] = e
                        sum[j] += e
                    }
                }
                for j in 0..<after { sum[j] = 1 / sum[j] }
                for i in 0..<n { for j in 0..<after { dst[i * after + j] *= sum[j] } }
            }
        }
    }

    /// LayerNormalization of [outer, inner] rows; scale and bias broadcast over the row (repeating when shorter).
    public static func layerNorm(
        _ x: UnsafePointer<Float>, outer: Int, inner: Int, epsilon: Float, scale: [Float], bias: [Float]?,
        out: UnsafeMutablePointer<Float>
    ) {
        parallelChunks(outer, work: outer * inner * 4) { range in
            for o in range {
                let src = x + o * inner, dst = out + o * inner
                var mean: Float = 0
                for i in 0..<inner { mean += src[i] }
                mean /= Float(inner)
                var variance: Float = 0
                for i in 0..<inner { variance += (src[i] - mean) * (src[i] - mean) }
                variance /= Float(inner)
                let inv = 1 / (variance + epsilon).squareRoot()
                for i in 0..<inner {
                    dst[i] = (src[i] - mean) * inv * scale[i % scale.count] + (bias.map { $0[i % $0.count] } ?? 0)
                }
            }
        }
    }
}
