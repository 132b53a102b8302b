// Convolution kernels on NCHW float32 (1-D runs as H = 1):
//
//   y[n, m, oy, ox] = b[m] + Σ_{c ∈ group(m), ky, kx} w[m, c, ky, kx] · x[n, c, oy·sh − pt + ky·dh, ox·sw − pl + kx·dw]
//
// - 1×1, stride 1, no padding: one sgemm per image and group, straight on the input.
// - depthwise (one input channel per group): a direct loop per plane, bounds settled per kernel tap so the inner
//   loop over a row is branch-free; planes spread over the cores.
// - otherwise: im2col (spread over the cores) into a scratch buffer the caller keeps, then sgemm (OpenBLAS threads).

/// The shapes of one 2-D convolution, checked once.
public struct ConvGeometry: Sendable {
    public let batch: Int, channels: Int, height: Int, width: Int
    public let outChannels: Int, kernelH: Int, kernelW: Int, group: Int
    public let window: NeuralOps.Window
    public let outH: Int, outW: Int

    public init(input: [Int], weight: [Int], window: NeuralOps.Window, group: Int) throws {
        guard input.count == 4, weight.count == 4 else { throw KernelError("convolution shapes \(input) and \(weight) are not 4-D") }
        (batch, channels, height, width) = (input[0], input[1], input[2], input[3])
        (outChannels, kernelH, kernelW) = (weight[0], weight[2], weight[3])
        self.group = group
        self.window = window
        guard group > 0, channels % group == 0, outChannels % group == 0 else {
            throw KernelError("group \(group) does not divide the \(channels) input and \(outChannels) output channels")
        }
        guard weight[1] * group == channels else {
            throw KernelError("the weight \(weight) takes \(weight[1]) channels per group; the input has \(channels) in \(group) group(s)")
        }
        (outH, outW) = window.outputSize(height, width)
        guard outH > 0, outW > 0 else { throw KernelError("the output would be empty (\(outH)×\(outW)) for input \(input)") }
    }

    public var channelsPerGroup: Int { channels / group }
    public var outPerGroup: Int { outChannels / group }
    public var isDepthwise: Bool { channelsPerGroup == 1 && group > 1 }
    public var isPointwise: Bool {
        kernelH == 1 && kernelW == 1 && window.strides == (1, 1) && window.pads == (0, 0, 0, 0)
    }
    /// Floats of im2col scratch one image and group needs (0 when the path needs none).
    public var scratchCount: Int { isPointwise || isDepthwise ? 0 : channelsPerGroup * kernelH * kernelW * outH * outW }
    public var outputCount: Int { batch * outChannels * outH * outW }
}

extension NeuralOps {
    /// What a convolution does to its output after the sum: an added residual (same shape), then a clamp (Relu is
    /// [0, ∞), ReLU6 and Clip their bounds); fused by the executor's plan.
    public struct Epilogue: Sendable {
        public var clamp: (lo: Float, hi: Float)?
        public init(clamp: (lo: Float, hi: Float)? = nil) { self.clamp = clamp }
    }

    /// Convolution forward into `out` (`geometry.outputCount` floats); `scratch` holds `geometry.scratchCount`.
    /// With `residual` (same shape as the output) the result is added to it; `epilogue.clamp` clamps the end result.
    public static func conv2d(
        _ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>? = nil, epilogue: Epilogue = Epilogue(),
        out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>?
    ) {
        if g.isDepthwise {
            depthwiseConv2d(g, x: x, w: w, bias: bias, residual: residual, out: out)
            if let clamp = epilogue.clamp { clampInPlace(out, count: g.outputCount, clamp) }
            return
        }
        let cg = g.channelsPerGroup, mg = g.outPerGroup
        let kdim = cg * g.kernelH * g.kernelW, p = g.outH * g.outW, hw = g.height * g.width
        let beta: Float = residual == nil ? 0 : 1
        for img in 0..<g.batch {
            let image = out + img * g.outChannels * p
            if let residual { image.update(from: residual + img * g.outChannels * p, count: g.outChannels * p) }
            for grp in 0..<g.group {
                let xOff = (img * g.channels + grp * cg) * hw
                let oOff = grp * mg * p
                let wOff = grp * mg * kdim
                if g.isPointwise {
                    sgemm(transA: false, transB: false, m: mg, n: p, k: kdim, w + wOff, lda: kdim, x + xOff, ldb: p,
                          beta: beta, image + oOff, ldc: p)
                } else if let col = scratch {
                    im2colParallel(x + xOff, channels: cg, h: g.height, w: g.width, window: g.window, ho: g.outH, wo: g.outW, into: col)
                    sgemm(transA: false, transB: false, m: mg, n: p, k: kdim, w + wOff, lda: kdim, UnsafePointer(col), ldb: p,
                          beta: beta, image + oOff, ldc: p)
                }
            }
            biasAndClamp(image, bias, channels: g.outChannels, plane: p, epilogue.clamp)
        }
    }

    /// y[c, i] = clamp(y[c, i] + b[c]) over `channels` planes, in one pass (nothing when neither is given).
    public static func biasAndClamp(
        _ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?, channels: Int, plane: Int, _ clamp: (lo: Float, hi: Float)?
    ) {
        guard bias != nil || clamp != nil else { return }
        let (lo, hi) = clamp ?? (-.infinity, .infinity)
        parallelChunks(channels, work: channels * plane) { range in
            for c in range {
                let v = bias?[c] ?? 0, row = y + c * plane
                if clamp == nil {
                    for i in 0..<plane { row[i] += v }
                } else {
                    for i in 0..<plane { row[i] = Swift.min(Swift.max(row[i] + v, lo), hi) }
                }
            }
        }
    }

    static func clampInPlace(_ y: UnsafeMutablePointer<Float>, count: Int, _ clamp: (lo: Float, hi: Float)) {
        parallelChunks(count, work: count) { range in
            for i in range { y[i] = Swift.min(Swift.max(y[i], clamp.lo), clamp.hi) }
        }
    }

    /// im2col with its channels spread over the cores.
    static func im2colParallel(
        _ x: UnsafePointer<Float>, channels: Int, h: Int, w: Int, window: Window, ho: Int, wo: Int,
        into col: UnsafeMutablePointer<Float>
    ) {
        let rowsPerChannel = window.kernel.0 * window.kernel.1, plane = ho * wo
        parallelChunks(channels, work: channels * rowsPerChannel * plane) { range in
            im2col(x + range.lowerBound * h * w, channels: range.count, h: h, w: w, window: window, ho: ho, wo: wo,
                   into: col + range.lowerBound * rowsPerChannel * plane)
        }
    }

    /// Depthwise (and channel-multiplier) convolution: output channel m reads input channel m / (M / C).
    static func depthwiseConv2d(
        _ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>
    ) {
        let (kh, kw) = (g.kernelH, g.kernelW), (sh, sw) = g.window.strides, (dh, dw) = g.window.dilations
        let (pt, pl) = (g.window.pads.0, g.window.pads.1)
        let (h, wd, ho, wo) = (g.height, g.width, g.outH, g.outW)
        let multiplier = g.outPerGroup
        let planes = g.batch * g.outChannels
        parallelChunks(planes, work: planes * ho * wo * kh * kw) { range in
            for plane in range {
                let m = plane % g.outChannels, img = plane / g.outChannels
                let src = x + (img * g.channels + m / multiplier) * h * wd
                let dst = out + plane * ho * wo
                let b = bias?[m] ?? 0
                if let residual {
                    let r = residual + plane * ho * wo
                    for i in 0..<(ho * wo) { dst[i] = b + r[i] }
                } else {
                    for i in 0..<(ho * wo) { dst[i] = b }
                }
                let taps = w + m * kh * kw
                for ky in 0..<kh {
                    // Output rows whose input row for this tap is inside the image.
                    let oyLo = max(0, ceilDiv(pt - ky * dh, sh)), oyHi = min(ho - 1, floorDiv(h - 1 + pt - ky * dh, sh))
                    guard oyLo <= oyHi else { continue }
                    for kx in 0..<kw {
                        let oxLo = max(0, ceilDiv(pl - kx * dw, sw)), oxHi = min(wo - 1, floorDiv(wd - 1 + pl - kx * dw, sw))
                        guard oxLo <= oxHi else { continue }
                        let t = taps[ky * kw + kx]
                        for oy in oyLo...oyHi {
                            let row = src + (oy * sh - pt + ky * dh) * wd - pl + kx * dw
                            let o = dst + oy * wo
                            if sw == 1 {
                                for ox in oxLo...oxHi { o[ox] += t * row[ox] }
                            } else {
                                for ox in oxLo...oxHi { o[ox] += t * row[ox * sw] }
                            }
                        }
                    }
                }
            }
        }
    }

    @inlinable static func ceilDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }
    @inlinable static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
}
