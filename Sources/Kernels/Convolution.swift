// Convolution kernels on NCHW float32 (1-D runs as H = 1):
//
//   y[n, m, oy, ox] = b[m] + Σ_{c ∈ group(m), ky, kx} w[m, c, ky, kx] · x[n, c, oy·sh − pt + ky·dh, ox·sw − pl + kx·dw]
//
// - 1×1, stride 1, no padding: one sgemm per image and group, straight on the input.
// - depthwise (one input channel per group), planes spread over the cores:
//     width stride and dilation 1: the plane copied with its pads as zeros, then each output's sum kept in registers
//       over every tap (32 or 8 outputs at a time) and stored once, as onnxruntime's kernel reads zeros at the pads;
//     otherwise (or where that copy would be far larger than the planes): one pass over the rows per kernel tap,
//       bounds settled per tap so the inner loop over a row is branch-free.
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
        let unitStride = sw == 1 && dw == 1 && ho > 0 && wo > 0 && g.window.pads.0 >= 0 && g.window.pads.1 >= 0
            && paddedPlaneFits(rows: padHeight(g), columns: padWidth(g), input: h * wd, output: ho * wo)
        parallelChunks(planes, work: planes * ho * wo * kh * kw) { range in
            var padded = [Float](repeating: 0, count: unitStride ? padWidth(g) * padHeight(g) : 0)
            for plane in range {
                let m = plane % g.outChannels, img = plane / g.outChannels
                let src = x + (img * g.channels + m / multiplier) * h * wd
                let dst = out + plane * ho * wo
                let b = bias?[m] ?? 0
                let r = residual.map { $0 + plane * ho * wo }
                let taps = w + m * kh * kw
                if unitStride {
                    padded.withUnsafeMutableBufferPointer { p in
                        // The `multiplier` output channels of one input channel read one padded copy.
                        if m % multiplier == 0 || plane == range.lowerBound {
                            padPlane(src, height: h, width: wd, top: g.window.pads.0, left: g.window.pads.1,
                                     into: p.baseAddress!, rows: padHeight(g), columns: padWidth(g))
                        }
                        depthwisePlaneUnitStride(g, taps: taps, bias: b, residual: r, padded: p.baseAddress!, out: dst)
                    }
                    continue
                }
                if let r {
                    for i in 0..<(ho * wo) { dst[i] = b + r[i] }
                } else {
                    for i in 0..<(ho * wo) { dst[i] = b }
                }
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
                            for ox in oxLo...oxHi { o[ox] += t * row[ox * sw] }
                        }
                    }
                }
            }
        }
    }

    /// One output plane of a depthwise conv whose width stride and dilation are 1, from its input plane copied into
    /// `padded` with its pads as zeros (`padPlane`) (so every output reads every tap, as onnxruntime's kernel does). Each output
    /// keeps its sum in registers over every tap and is stored once, 32 or 8 at a time (the last 8 of a row may
    /// overlap outputs already written, with the same values). The sum is b (+ r), then each tap in (ky, kx) order.
    @inline(__always)
    static func depthwisePlaneUnitStride(
        _ g: ConvGeometry, taps: UnsafePointer<Float>, bias b: Float, residual r: UnsafePointer<Float>?,
        padded: UnsafePointer<Float>, out dst: UnsafeMutablePointer<Float>
    ) {
        let (kh, kw) = (g.kernelH, g.kernelW), sh = g.window.strides.0, dh = g.window.dilations.0
        let (ho, wo) = (g.outH, g.outW)
        let pw = padWidth(g)
        for oy in 0..<ho {
            let o = dst + oy * wo, ro = r.map { $0 + oy * wo }, first = padded + oy * sh * pw
            var ox = 0
            while ox + 32 <= wo {
                var a = (SIMD8<Float>(repeating: b), SIMD8<Float>(repeating: b), SIMD8<Float>(repeating: b),
                         SIMD8<Float>(repeating: b))
                if let ro {
                    let p = UnsafeRawPointer(ro + ox)
                    a.0 += p.loadUnaligned(as: SIMD8<Float>.self)
                    a.1 += p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
                    a.2 += p.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self)
                    a.3 += p.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
                }
                for ky in 0..<kh {
                    let row = first + ky * dh * pw + ox
                    for kx in 0..<kw {
                        let t = SIMD8<Float>(repeating: taps[ky * kw + kx]), p = UnsafeRawPointer(row + kx)
                        a.0 += t * p.loadUnaligned(as: SIMD8<Float>.self)
                        a.1 += t * p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
                        a.2 += t * p.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self)
                        a.3 += t * p.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
                    }
                }
                let p = UnsafeMutableRawPointer(o + ox)
                p.storeBytes(of: a.0, as: SIMD8<Float>.self)
                p.storeBytes(of: a.1, toByteOffset: 32, as: SIMD8<Float>.self)
                p.storeBytes(of: a.2, toByteOffset: 64, as: SIMD8<Float>.self)
                p.storeBytes(of: a.3, toByteOffset: 96, as: SIMD8<Float>.self)
                ox += 32
            }
            while ox < wo {
                guard wo >= 8 else {
                    for x in ox..<wo {
                        o[x] = depthwiseSum(first + x, pw: pw, dh: dh, taps, kh, kw, ro.map { b + $0[x] } ?? b)
                    }
                    break
                }
                ox = min(ox, wo - 8)
                var a = SIMD8<Float>(repeating: b)
                if let ro { a += UnsafeRawPointer(ro + ox).loadUnaligned(as: SIMD8<Float>.self) }
                for ky in 0..<kh {
                    let row = first + ky * dh * pw + ox
                    for kx in 0..<kw {
                        a += SIMD8<Float>(repeating: taps[ky * kw + kx])
                            * UnsafeRawPointer(row + kx).loadUnaligned(as: SIMD8<Float>.self)
                    }
                }
                UnsafeMutableRawPointer(o + ox).storeBytes(of: a, as: SIMD8<Float>.self)
                ox += 8
            }
        }
    }

    /// `start` plus every tap of the output whose window starts at `p` in the padded plane, in (ky, kx) order.
    @inline(__always)
    static func depthwiseSum(_ p: UnsafePointer<Float>, pw: Int, dh: Int, _ taps: UnsafePointer<Float>, _ kh: Int,
                             _ kw: Int, _ start: Float) -> Float {
        var acc = start
        for ky in 0..<kh {
            for kx in 0..<kw { acc += taps[ky * kw + kx] * p[ky * dh * pw + kx] }
        }
        return acc
    }

    /// A height × width plane into `rows` × `columns` with `top` rows and `left` columns of zeros before it and zeros
    /// after it (what does not fit is cut).
    static func padPlane(_ src: UnsafePointer<Float>, height: Int, width: Int, top: Int, left: Int,
                         into padded: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        for py in 0..<rows {
            let iy = py - top, row = padded + py * columns
            guard iy >= 0 && iy < height else { row.update(repeating: 0, count: columns); continue }
            let lo = min(left, columns), n = max(0, min(width, columns - lo))
            row.update(repeating: 0, count: lo)
            row.advanced(by: lo).update(from: src + iy * width, count: n)
            row.advanced(by: lo + n).update(repeating: 0, count: columns - lo - n)
        }
    }

    /// Whether a zero-padded copy of a plane is worth making: not much larger than the planes it serves (pads or a
    /// dilation far larger than the image would make it so; such a Conv runs one pass per tap instead).
    static func paddedPlaneFits(rows: Int, columns: Int, input: Int, output: Int) -> Bool {
        Double(rows) * Double(columns) <= 4 * Double(input + output) + 4096
    }

    /// The padded plane's width and height for `depthwisePlaneUnitStride`: what the last output's window reaches.
    static func padWidth(_ g: ConvGeometry) -> Int { g.outW + g.kernelW - 1 }
    static func padHeight(_ g: ConvGeometry) -> Int {
        (g.outH - 1) * g.window.strides.0 + (g.kernelH - 1) * g.window.dilations.0 + 1
    }

    @inlinable static func ceilDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }
    @inlinable static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
}
