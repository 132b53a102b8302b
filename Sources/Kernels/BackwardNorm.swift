// Vector-Jacobian product of BatchNormalization in inference form (statistics frozen, SEMANTICS §7), over axis 1:
//   k_c = scale_c/√(var_c + ε);  y = (x − mean_c)·k_c + bias_c
//   ∂x = g·k_c;  ∂scale_c = Σ g·(x − mean_c)/√(var_c + ε);  ∂bias_c = Σ g
// Every function ADDS into its gradient outputs (the caller zeroes them); a nil output is not computed.

extension Backward {
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
            let ch = plane % c, base = plane * inner
            let inv = 1 / (variance[ch] + epsilon).squareRoot(), k = scale[ch] * inv, mu = mean[ch]
            var sg: Float = 0, sgx: Float = 0
            for i in base..<(base + inner) {
                sg += g[i]
                sgx += g[i] * (x[i] - mu)
            }
            if let dx { for i in base..<(base + inner) { dx[i] += g[i] * k } }
            dScale?[ch] += sgx * inv
            dBias?[ch] += sg
        }
    }
}
