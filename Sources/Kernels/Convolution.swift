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
        let perGroup = weight[1].multipliedReportingOverflow(by: group)
        guard !perGroup.overflow, perGroup.partialValue == channels else {
            throw KernelError("the weight \(weight) takes \(weight[1]) channels per group; the input has \(channels) in \(group) group(s)")
        }
        (outH, outW) = window.outputSize(height, width)
        guard outH > 0, outW > 0 else { throw KernelError("the output would be empty (\(outH)×\(outW)) for input \(input)") }
        // scratchPerImage and outputCount are then products that cannot overflow.
        _ = try Checked.product([batch, outChannels, outH, outW], what: "the output of \(input) convolved by \(weight)")
        _ = try Checked.product([channels / group, kernelH, kernelW, outH, outW], what: "the im2col scratch of \(input)")
    }

    public var channelsPerGroup: Int { channels / group }
    public var outPerGroup: Int { outChannels / group }
    public var isDepthwise: Bool { channelsPerGroup == 1 && group > 1 }
    public var isPointwise: Bool {
        kernelH == 1 && kernelW == 1 && window.strides == (1, 1) && window.pads == (0, 0, 0, 0)
    }
    /// Floats of im2col scratch one image and group needs (0 when the path needs none).
    public var scratchPerImage: Int { isPointwise || isDepthwise ? 0 : channelsPerGroup * kernelH * kernelW * outH * outW }
    /// Images convolved at once (one per core, each with its own scratch).
    public var concurrentImages: Int { Swift.max(1, Swift.min(batch, kernelThreads)) }
    /// Floats of scratch `conv2d` needs.
    public var scratchCount: Int { scratchPerImage * concurrentImages }
    public var outputCount: Int { batch * outChannels * outH * outW }
}

extension NeuralOps {
    /// What a convolution does to its output after the sum, in one pass, fused by the executor's plan: a per-channel
    /// scale (a BatchNormalization after it), the bias (or the BN shift), an added residual of the output's shape, then
    /// a clamp (Relu is [0, ∞), ReLU6 and Clip their bounds):  y = clamp(acc·k[c] + b[c] + r).
    public struct Epilogue: Sendable {
        public var scale: [Float]?
        public var clamp: (lo: Float, hi: Float)?
        public init(scale: [Float]? = nil, clamp: (lo: Float, hi: Float)? = nil) {
            self.scale = scale
            self.clamp = clamp
        }
    }

    /// Convolution forward into `out` (`geometry.outputCount` floats); `scratch` holds `geometry.scratchCount`.
    /// With `residual` (same shape as the output) the result is added to it; `epilogue` finishes it.
    public static func conv2d(
        _ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>? = nil, epilogue: Epilogue = Epilogue(),
        out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>?
    ) {
        let p = g.outH * g.outW, image = g.outChannels * p
        if g.isDepthwise {
            let plain = epilogue.scale == nil
            depthwiseConv2d(g, x: x, w: w, bias: plain ? bias : nil, residual: plain ? residual : nil, out: out)
            for img in 0..<g.batch {
                finish(out + img * image, channels: g.outChannels, plane: p, scale: epilogue.scale, bias: plain ? nil : bias,
                       residual: plain ? nil : residual.map { $0 + img * image }, clamp: epilogue.clamp)
            }
            return
        }
        // Without a scale the residual is the sgemm's C (β = 1); with one it is added after scaling.
        let accumulate = residual != nil && epilogue.scale == nil
        let slots = g.concurrentImages
        if slots > 1 {
            // One image per core at a time, each with its own scratch and single-threaded steps: no hand-off per op.
            parallelChunks(slots, work: Int.max) { parts in
                for part in parts {
                    for img in stride(from: part, to: g.batch, by: slots) {
                        convImage(g, img, x: x, w: w, bias: bias, residual: residual, accumulate: accumulate,
                                  epilogue: epilogue, out: out, col: scratch.map { $0 + part * g.scratchPerImage }, serial: true)
                    }
                }
            }
        } else {
            for img in 0..<g.batch {
                convImage(g, img, x: x, w: w, bias: bias, residual: residual, accumulate: accumulate, epilogue: epilogue,
                          out: out, col: scratch, serial: false)
            }
        }
    }

    /// One image of `conv2d` (im2col or the direct 1×1 path, sgemm per group, the epilogue); `serial` when the caller
    /// already spreads images over the cores.
    static func convImage(
        _ g: ConvGeometry, _ img: Int, x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, accumulate: Bool, epilogue: Epilogue, out: UnsafeMutablePointer<Float>,
        col: UnsafeMutablePointer<Float>?, serial: Bool
    ) {
        let cg = g.channelsPerGroup, mg = g.outPerGroup, p = g.outH * g.outW, image = g.outChannels * p
        let kdim = cg * g.kernelH * g.kernelW, hw = g.height * g.width
        let y = out + img * image
        if accumulate, let residual { y.update(from: residual + img * image, count: image) }
        for grp in 0..<g.group {
            let xOff = (img * g.channels + grp * cg) * hw
            let oOff = grp * mg * p
            let wOff = grp * mg * kdim
            var source = x + xOff
            if !g.isPointwise, let col {
                if serial {
                    im2col(source, channels: cg, h: g.height, w: g.width, window: g.window, ho: g.outH, wo: g.outW, into: col)
                } else {
                    im2colParallel(source, channels: cg, h: g.height, w: g.width, window: g.window, ho: g.outH, wo: g.outW, into: col)
                }
                source = UnsafePointer(col)
            }
            sgemm(transA: false, transB: false, m: mg, n: p, k: kdim, w + wOff, lda: kdim, source, ldb: p,
                  beta: accumulate ? 1 : 0, y + oOff, ldc: p, parallel: !serial)
        }
        finish(y, channels: g.outChannels, plane: p, scale: epilogue.scale, bias: bias,
               residual: accumulate ? nil : residual.map { $0 + img * image }, clamp: epilogue.clamp, parallel: !serial)
    }

    /// y[c, i] = clamp(y[c, i]·k[c] + b[c] + r[c, i]) over `channels` planes, in one pass (nothing when there is
    /// nothing to do).
    public static func finish(
        _ y: UnsafeMutablePointer<Float>, channels: Int, plane: Int, scale: [Float]?, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, clamp: (lo: Float, hi: Float)?, parallel: Bool = true
    ) {
        guard bias != nil || scale != nil || residual != nil || clamp != nil else { return }
        let (lo, hi) = clamp ?? (-.infinity, .infinity)
        let zero: [Float] = [0]
        zero.withUnsafeBufferPointer { z in
            parallelChunks(channels, work: parallel ? channels * plane : 0) { range in
                for c in range {
                    let k = scale?[c] ?? 1, b = bias?[c] ?? 0, row = y + c * plane
                    let r = residual.map { $0 + c * plane } ?? z.baseAddress!, rs = residual == nil ? 0 : 1
                    if clamp == nil {
                        for i in 0..<plane { row[i] = row[i] * k + b + r[i * rs] }
                    } else {
                        for i in 0..<plane { row[i] = Swift.min(Swift.max(row[i] * k + b + r[i * rs], lo), hi) }
                    }
                }
            }
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
