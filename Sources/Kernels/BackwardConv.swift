// Vector-Jacobian products of convolution on NCHW (1-D as H = 1, the way the executor calls NeuralOps.conv2d), with
// groups, strides, dilations and pads. Per image and group g, the forward is Y_g[M/g, P] = W_g[M/g, K]·col(X_g)[K, P]
// (K = C/g·kh·kw, P = Ho·Wo), so
//   ∂W_g += G_g·col(X_g)ᵀ          (sgemm, transB)
//   ∂X_g += col2im(W_gᵀ·G_g)       (sgemm, transA, then col2im; the 1×1 stride-1 unpadded case skips col/col2im)
//   ∂b[m] += Σ_{n, p} G[n, m, p]
// Depthwise (group = C, one input channel per group) runs direct loops instead of K = kh·kw GEMMs: at width stride
// and dilation 1 over zero-padded copies (∂x from G's rows with zeros beside them, each ∂x element's sum over every
// tap in registers; ∂W from the padded input, eight lanes per tap kept over every row), otherwise one pass per tap.
// ConvTranspose [C, M/g, kh, kw]: the forward is col = W_gᵀ·X_g then col2im into Y, so col(G) = im2col of the
// gradient over the output plane with the same window, and
//   ∂X_g += W_g·im2col(G_g)        ∂W_g += X_g·im2col(G_g)ᵀ        ∂b[m] += Σ G[n, m, ·]
// Every function ADDS into its gradient outputs (the caller zeroes them); a nil output is not computed.

extension Backward {
    /// Conv gradients. Shapes are 4-D: x [N, C, H, W], w [M, C/g, kh, kw], g [N, M, Ho, Wo].
    public static func conv2d(
        x: UnsafeBufferPointer<Float>, xShape: [Int], w: UnsafeBufferPointer<Float>, wShape: [Int],
        window: NeuralOps.Window, group: Int, gradient g: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>?, dw: UnsafeMutableBufferPointer<Float>?,
        dBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        guard xShape.count == 4, wShape.count == 4, group > 0 else {
            throw KernelError("Conv gradient needs 4-D shapes")
        }
        let (n, c, h, wd) = (xShape[0], xShape[1], xShape[2], xShape[3])
        let (m, cg, kh, kw) = (wShape[0], wShape[1], wShape[2], wShape[3])
        guard c == cg * group, m % group == 0 else {
            throw KernelError("Conv gradient: \(c) input channels, weight \(wShape), group \(group) do not agree")
        }
        let (ho, wo) = window.outputSize(h, wd)
        let p = ho * wo
        guard ho > 0, wo > 0, g.count == n * m * p, x.count == n * c * h * wd, w.count == wShape.reduce(1, *),
            (dx?.count ?? x.count) == x.count, (dw?.count ?? w.count) == w.count, (dBias?.count ?? m) == m
        else { throw KernelError("Conv gradient: buffers do not match x \(xShape), w \(wShape)") }
        if let dBias { channelSums(g, planes: n * m, channels: m, size: p, into: dBias) }
        guard dx != nil || dw != nil, !x.isEmpty, !w.isEmpty else { return }
        if cg == 1 && group == c {
            depthwise(
                x: x, xShape: xShape, w: w, wShape: wShape, window: window, gradient: g, ho: ho, wo: wo, dx: dx, dw: dw)
            return
        }
        let geometry = ColumnGeometry(n: n, c: c, h: h, wd: wd, m: m, cg: cg, kh: kh, kw: kw, window: window, ho: ho, wo: wo)
        let scratch = [Float](unsafeUninitializedCapacity: geometry.scratchCount) { _, count in
            count = geometry.scratchCount
        }
        scratch.withUnsafeBufferPointer { s in
            for grp in 0..<group {
                for first in stride(from: 0, to: n, by: geometry.imagesPerPass) {
                    geometry.pass(
                        group: grp, images: first..<Swift.min(n, first + geometry.imagesPerPass), x: x.baseAddress!,
                        w: w.baseAddress!, g: g.baseAddress!, dx: dx?.baseAddress, dw: dw?.baseAddress,
                        scratch: UnsafeMutablePointer(mutating: s.baseAddress!))
                }
            }
        }
    }

    /// The batched im2col form of a Conv gradient: the columns of several images side by side, so each pass is one
    /// GEMM for ∂W (k = images·Ho·Wo) and one for the columns of ∂X, and the im2col/col2im run per image on every core.
    struct ColumnGeometry {
        let n: Int, c: Int, h: Int, wd: Int, m: Int, cg: Int, kh: Int, kw: Int
        let window: NeuralOps.Window
        let ho: Int, wo: Int
        var p: Int { ho * wo }
        var mg: Int { m / (c / cg) }
        var kdim: Int { cg * kh * kw }
        /// 1×1, stride 1, no pads: the columns are the input's planes.
        var direct: Bool { kh == 1 && kw == 1 && window.strides == (1, 1) && window.pads == (0, 0, 0, 0) }
        /// Images per pass: as many as keep the scratch (columns and gathered gradient) within 2 M floats (8 MB): the
        /// columns a GEMM writes are read back while still in cache (ResNet-18, 5 steps, whole process:
        /// 0.93× the wall time of 64 MB passes, farm-bench A/B median of 3).
        var imagesPerPass: Int { Swift.max(1, Swift.min(n, (1 << 21) / Swift.max(1, (kdim + mg) * p))) }
        var scratchCount: Int { (kdim + mg) * p * imagesPerPass }

        /// ∂W_g += G·colsᵀ and ∂X_g += col2im(W_gᵀ·G) over `images`, G and cols [rows, images·P]. A pass of one image
        /// reads G (and a direct Conv's columns, its input planes) where they are, without gathering them.
        func pass(group grp: Int, images: Range<Int>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                  g: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                  scratch: UnsafeMutablePointer<Float>) {
            let width = images.count * p, cols = scratch
            let first = images.lowerBound, single = images.count == 1
            let hw = h * wd
            let gs = single ? g + (first * m + grp * mg) * p : UnsafePointer(gather(g, images: images, group: grp,
                                                                                    into: scratch + kdim * width))
            if let dw {
                let columns = single && direct ? x + (first * c + grp * cg) * hw : UnsafePointer(cols)
                if !(single && direct) { fillColumns(x, images: images, group: grp, into: cols) }
                NeuralOps.sgemm(transA: false, transB: true, m: mg, n: kdim, k: width, gs, lda: width,
                                columns, ldb: width, beta: 1, dw + grp * mg * kdim, ldc: kdim)
            }
            guard let dx else { return }
            NeuralOps.sgemm(transA: true, transB: false, m: kdim, n: width, k: mg, w + grp * mg * kdim, lda: kdim,
                            gs, ldb: width, cols, ldc: width)
            let taps = kh * kw
            parallelChunks(images.count * cg, work: images.count * kdim * p) { part in  // (image, channel) pairs
                for t in part {
                    let (i, ch) = t.quotientAndRemainder(dividingBy: cg)
                    let d = dx + ((first + i) * c + grp * cg + ch) * hw, s = cols + ch * taps * width + i * p
                    if direct {
                        for k in 0..<p { d[k] += s[k] }
                    } else {
                        col2im(UnsafePointer(s), channels: 1, h: h, w: wd, window: window, ho: ho, wo: wo, into: d,
                               ld: width)
                    }
                }
            }
        }

        /// The images' gradient rows of group `grp` side by side: [mg, images·P].
        private func gather(_ g: UnsafePointer<Float>, images: Range<Int>, group grp: Int,
                            into gs: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
            let width = images.count * p
            parallelChunks(images.count, work: images.count * mg * p) { part in
                for i in part {
                    let src = g + ((images.lowerBound + i) * m + grp * mg) * p
                    for row in 0..<mg { (gs + row * width + i * p).update(from: src + row * p, count: p) }
                }
            }
            return gs
        }

        /// The images' columns of group `grp` side by side: [kdim, images·P].
        private func fillColumns(_ x: UnsafePointer<Float>, images: Range<Int>, group grp: Int,
                                 into cols: UnsafeMutablePointer<Float>) {
            let width = images.count * p, hw = h * wd
            let taps = kh * kw
            parallelChunks(images.count * cg, work: images.count * kdim * p) { part in  // (image, channel) pairs
                for t in part {
                    let (i, ch) = t.quotientAndRemainder(dividingBy: cg)
                    let xc = x + ((images.lowerBound + i) * c + grp * cg + ch) * hw, col = cols + ch * taps * width + i * p
                    if direct {
                        col.update(from: xc, count: p)
                    } else {
                        NeuralOps.im2col(xc, channels: 1, h: h, w: wd, window: window, ho: ho, wo: wo, into: col,
                                         ld: width)
                    }
                }
            }
        }
    }

    /// x plane[c] += the columns' contributions: the adjoint of NeuralOps.im2col.
    static func col2im(
        _ col: UnsafePointer<Float>, channels: Int, h: Int, w: Int, window: NeuralOps.Window, ho: Int, wo: Int,
        into x: UnsafeMutablePointer<Float>, ld: Int? = nil
    ) {
        let ld = ld ?? ho * wo
        let (kh, kw) = window.kernel
        let (sh, sw) = window.strides
        let (dh, dw) = window.dilations
        let (pt, pl) = (window.pads.0, window.pads.1)
        var row = 0
        for ch in 0..<channels {
            let plane = x + ch * h * w
            for ky in 0..<kh {
                for kx in 0..<kw {
                    let src = col + row * ld
                    let (ox0, ox1) = validRange(count: wo, stride: sw, offset: kx * dw - pl, limit: w)
                    for oy in 0..<ho {
                        let iy = oy * sh - pt + ky * dh
                        guard iy >= 0 && iy < h else { continue }
                        let dst = plane + iy * w + kx * dw - pl
                        let s = src + oy * wo
                        if sw == 1 {
                            for ox in ox0..<ox1 { dst[ox] += s[ox] }
                        } else {
                            for ox in ox0..<ox1 { dst[ox * sw] += s[ox] }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// The output positions o in 0..<count whose input i = o·stride + offset lies in 0..<limit.
    @inline(__always)
    static func validRange(count: Int, stride: Int, offset: Int, limit: Int) -> (Int, Int) {
        let lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride
        let last = limit - 1 - offset
        let hi = last < 0 ? 0 : Swift.min(count, last / stride + 1)
        return (Swift.min(lo, hi), hi)
    }

    /// dst[ch] += Σ over planes of that channel (planes in [N, C] order, `size` elements each).
    static func channelSums(
        _ g: UnsafeBufferPointer<Float>, planes: Int, channels: Int, size: Int,
        into dst: UnsafeMutableBufferPointer<Float>
    ) {
        let images = planes / Swift.max(channels, 1)
        parallelChunks(channels, work: planes * size) { range in
            for ch in range {
                var total: Float = 0
                for img in 0..<images {
                    let base = (img * channels + ch) * size
                    var s: Float = 0
                    for i in base..<(base + size) { s += g[i] }
                    total += s
                }
                dst[ch] += total
            }
        }
    }

    /// Direct depthwise gradients: each output channel reads one input channel (M/C outputs per input channel).
    static func depthwise(
        x: UnsafeBufferPointer<Float>, xShape: [Int], w: UnsafeBufferPointer<Float>, wShape: [Int],
        window: NeuralOps.Window,
        gradient g: UnsafeBufferPointer<Float>, ho: Int, wo: Int,
        dx: UnsafeMutableBufferPointer<Float>?, dw: UnsafeMutableBufferPointer<Float>?
    ) {
        let (n, c, h, wd) = (xShape[0], xShape[1], xShape[2], xShape[3])
        let (m, kh, kw) = (wShape[0], wShape[2], wShape[3])
        let mult = m / c
        let p = ho * wo
        let (sh, sw) = window.strides
        let (dh, dil) = window.dilations
        let (pt, pl) = (window.pads.0, window.pads.1)
        // Spread over input channels: the `mult` output channels of one input channel write its planes of ∂X and
        // their own taps of ∂W, so no two chunks write the same element.
        let taps = DepthwiseTaps(kh: kh, kw: kw, sh: sh, dh: dh, pt: pt, pl: pl, h: h, wd: wd, ho: ho, wo: wo)
        let unitStride = sw == 1 && dil == 1 && pt >= 0 && pl >= 0
            && NeuralOps.paddedPlaneFits(rows: ho, columns: taps.paddedWidth, input: h * wd, output: p)
            && NeuralOps.paddedPlaneFits(rows: taps.xRows, columns: taps.xColumns, input: h * wd, output: p)
        parallelChunks(c, work: n * m * p * kh * kw) { channels in
            var paddedG = [Float](repeating: 0, count: unitStride && dx != nil ? ho * taps.paddedWidth : 0)
            var paddedX = [Float](repeating: 0, count: unitStride && dw != nil ? taps.xRows * taps.xColumns : 0)
            for img in 0..<n {
                for oc in (channels.lowerBound * mult)..<(channels.upperBound * mult) {
                    let xp = x.baseAddress! + (img * c + oc / mult) * h * wd
                    let gp = g.baseAddress! + (img * m + oc) * p
                    let dxp = dx.map { $0.baseAddress! + (img * c + oc / mult) * h * wd }
                    let wk = w.baseAddress! + oc * kh * kw
                    guard unitStride else {
                        perTap(oc: oc, xp: xp, gp: gp, dxp: dxp, w: w, dw: dw, window: window, kh: kh, kw: kw,
                               h: h, wd: wd, ho: ho, wo: wo)
                        continue
                    }
                    if let dxp {
                        paddedG.withUnsafeMutableBufferPointer {
                            taps.inputGradient(gp, wk, dxp, padded: $0.baseAddress!)
                        }
                    }
                    if let dw {
                        paddedX.withUnsafeMutableBufferPointer {
                            if oc % mult == 0 {
                                NeuralOps.padPlane(xp, height: h, width: wd, top: pt, left: pl, into: $0.baseAddress!,
                                                   rows: taps.xRows, columns: taps.xColumns)
                            }
                            taps.weightGradient(gp, UnsafePointer($0.baseAddress!),
                                                into: dw.baseAddress! + oc * kh * kw)
                        }
                    }
                }
            }
        }
    }

    /// Any stride and dilation: one pass over G's rows per tap, ∂x by axpy and ∂W by dot products.
    @inline(__always)
    static func perTap(oc: Int, xp: UnsafePointer<Float>, gp: UnsafePointer<Float>, dxp: UnsafeMutablePointer<Float>?,
                       w: UnsafeBufferPointer<Float>, dw: UnsafeMutableBufferPointer<Float>?, window: NeuralOps.Window,
                       kh: Int, kw: Int, h: Int, wd: Int, ho: Int, wo: Int) {
        let (sh, sw) = window.strides, (dh, dil) = window.dilations, (pt, pl) = (window.pads.0, window.pads.1)
        for ky in 0..<kh {
            // The output rows whose input row for this tap lies inside the image.
            let (oy0, oy1) = validRange(count: ho, stride: sh, offset: ky * dh - pt, limit: h)
            guard oy0 < oy1 else { continue }
            for kx in 0..<kw {
                let k = (oc * kh + ky) * kw + kx
                let wv = w[k]
                let (ox0, ox1) = validRange(count: wo, stride: sw, offset: kx * dil - pl, limit: wd)
                guard ox0 < ox1 else { continue }
                let count = ox1 - ox0
                var acc: Float = 0
                for oy in oy0..<oy1 {
                    // Inline loops (rows are short: a BLAS call per row costs more than its work).
                    let row = (oy * sh - pt + ky * dh) * wd + kx * dil - pl + ox0 * sw
                    let gr = gp + oy * wo + ox0
                    if let dxp { axpy(wv, gr, dxp + row, stride: sw, count: count) }
                    if dw != nil { acc += dot(gr, xp + row, stride: sw, count: count) }
                }
                if let dw { dw[k] += acc }
            }
        }
    }

    /// A depthwise conv's shape, for its input gradient at width stride and dilation 1:
    ///   ∂x[iy, ix] += Σ_ky Σ_kx w[ky, kx]·G[oy, ix + pl − kx]   (oy·sh = iy + pt − ky·dh, when that row exists)
    /// over G's rows copied with zeros beside them, so every ∂x element reads every kx. Each element of ∂x keeps its
    /// sum in registers, added in (ky, kx) order onto what ∂x held: the same operations as one pass per tap (eight
    /// elements at a time, the last of a row one at a time).
    struct DepthwiseTaps {
        let kh: Int, kw: Int, sh: Int, dh: Int, pt: Int, pl: Int, h: Int, wd: Int, ho: Int, wo: Int

        /// A row of G with kw − 1 zeros before it and enough after it for the last ∂x column.
        var paddedWidth: Int { Swift.max(wo, wd + pl) + kw - 1 }
        /// The input plane with its pads as zeros, as far as the last output's window reaches.
        var xRows: Int { (ho - 1) * sh + (kh - 1) * dh + 1 }
        var xColumns: Int { wo + kw - 1 }

        /// ∂W[ky, kx] += Σ_oy Σ_ox G[oy, ox]·X̃[oy·sh + ky·dh, ox + kx] over the zero-padded input X̃: every tap reads
        /// whole rows of G, in eight lanes kept over every row and added up once per tap.
        func weightGradient(_ g: UnsafePointer<Float>, _ padded: UnsafePointer<Float>,
                            into dw: UnsafeMutablePointer<Float>) {
            let columns = xColumns, whole = wo / 8 * 8
            for ky in 0..<kh {
                for kx in 0..<kw {
                    var lanes = SIMD8<Float>(), tail: Float = 0
                    for oy in 0..<ho {
                        let gr = g + oy * wo, xr = padded + (oy * sh + ky * dh) * columns + kx
                        var ox = 0
                        while ox < whole {
                            lanes += UnsafeRawPointer(gr + ox).loadUnaligned(as: SIMD8<Float>.self)
                                * UnsafeRawPointer(xr + ox).loadUnaligned(as: SIMD8<Float>.self)
                            ox += 8
                        }
                        while ox < wo { tail += gr[ox] * xr[ox]; ox += 1 }
                    }
                    dw[ky * kw + kx] += lanes.sum() + tail
                }
            }
        }

        func inputGradient(_ g: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                           padded: UnsafeMutablePointer<Float>) {
            let pw = paddedWidth
            for oy in 0..<ho {
                let row = padded + oy * pw
                row.update(repeating: 0, count: kw - 1)
                row.advanced(by: kw - 1).update(from: g + oy * wo, count: wo)
                row.advanced(by: kw - 1 + wo).update(repeating: 0, count: pw - (kw - 1) - wo)
            }
            for iy in 0..<h {
                let o = dx + iy * wd
                var ix = 0
                while ix + 8 <= wd {
                    var a = UnsafeRawPointer(o + ix).loadUnaligned(as: SIMD8<Float>.self)
                    for ky in 0..<kh {
                        guard let gRow = gRow(iy, ky, padded) else { continue }
                        // Column ix + pl − kx of G sits at ix + pl − kx + kw − 1 in the padded row.
                        let base = gRow + ix + pl + kw - 1
                        for kx in 0..<kw {
                            a += SIMD8<Float>(repeating: w[ky * kw + kx])
                                * UnsafeRawPointer(base - kx).loadUnaligned(as: SIMD8<Float>.self)
                        }
                    }
                    UnsafeMutableRawPointer(o + ix).storeBytes(of: a, as: SIMD8<Float>.self)
                    ix += 8
                }
                // The last columns one at a time (∂x is added onto, so no pass may cover a column twice).
                while ix < wd {
                    o[ix] = sum(o[ix], iy: iy, column: ix, w, padded)
                    ix += 1
                }
            }
        }

        /// The padded row of G that input row `iy` meets through tap row `ky`, if there is one.
        @inline(__always)
        func gRow(_ iy: Int, _ ky: Int, _ padded: UnsafeMutablePointer<Float>) -> UnsafePointer<Float>? {
            let t = iy + pt - ky * dh
            guard t >= 0, t % sh == 0, t / sh < ho else { return nil }
            return UnsafePointer(padded + (t / sh) * paddedWidth)
        }

        /// `start` plus every tap's term of ∂x[iy, column], in (ky, kx) order.
        @inline(__always)
        func sum(_ start: Float, iy: Int, column: Int, _ w: UnsafePointer<Float>, _ padded: UnsafeMutablePointer<Float>)
            -> Float {
            var acc = start
            for ky in 0..<kh {
                guard let gRow = gRow(iy, ky, padded) else { continue }
                for kx in 0..<kw { acc += w[ky * kw + kx] * gRow[column + pl + kw - 1 - kx] }
            }
            return acc
        }
    }

    /// y[i·stride] += a·x[i] for i in 0..<count.
    @inline(__always)
    static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, stride: Int, count: Int) {
        if stride == 1 {
            for i in 0..<count { y[i] += a * x[i] }
        } else {
            for i in 0..<count { y[i * stride] += a * x[i] }
        }
    }

    /// Σ a[i]·b[i·stride] for i in 0..<count, in eight lanes when the stride is 1.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, stride: Int, count: Int) -> Float {
        var total: Float = 0, i = 0
        if stride == 1 {
            var lanes = SIMD8<Float>()
            while i + 8 <= count {
                lanes += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
                    * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
                i += 8
            }
            total = lanes.sum()
        }
        while i < count {
            total += a[i] * b[i * stride]
            i += 1
        }
        return total
    }

    /// ConvTranspose gradients. x [N, C, H, W], w [C, M/g, kh, kw], g [N, M, Ho, Wo] (Ho, Wo as the forward made them).
    public static func convTranspose2d(
        x: UnsafeBufferPointer<Float>, xShape: [Int], w: UnsafeBufferPointer<Float>, wShape: [Int],
        window: NeuralOps.Window, group: Int, gradient g: UnsafeBufferPointer<Float>, outputShape: [Int],
        dx: UnsafeMutableBufferPointer<Float>?, dw: UnsafeMutableBufferPointer<Float>?,
        dBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        guard xShape.count == 4, wShape.count == 4, outputShape.count == 4, group > 0 else {
            throw KernelError("ConvTranspose gradient needs 4-D shapes")
        }
        let (n, c, h, wd) = (xShape[0], xShape[1], xShape[2], xShape[3])
        let (cw, mg, kh, kw) = (wShape[0], wShape[1], wShape[2], wShape[3])
        let m = mg * group
        let cg = c / group
        let (ho, wo) = (outputShape[2], outputShape[3])
        guard cw == c, c % group == 0, outputShape[0] == n, outputShape[1] == m, g.count == n * m * ho * wo,
            x.count == n * c * h * wd, w.count == wShape.reduce(1, *),
            (dx?.count ?? x.count) == x.count, (dw?.count ?? w.count) == w.count, (dBias?.count ?? m) == m
        else {
            throw KernelError("ConvTranspose gradient: buffers do not match x \(xShape), w \(wShape), y \(outputShape)")
        }
        if let dBias { channelSums(g, planes: n * m, channels: m, size: ho * wo, into: dBias) }
        guard dx != nil || dw != nil, !x.isEmpty, !w.isEmpty, !g.isEmpty else { return }
        let kdim = mg * kh * kw
        let p = h * wd
        var col = [Float](repeating: 0, count: kdim * p)
        col.withUnsafeMutableBufferPointer { colb in
            let cb = colb.baseAddress!
            for img in 0..<n {
                for grp in 0..<group {
                    // col(G)[kdim, H·W]: the gradient at every output position each input position wrote to.
                    NeuralOps.im2col(
                        g.baseAddress! + (img * m + grp * mg) * ho * wo, channels: mg, h: ho, w: wo,
                        window: window, ho: h, wo: wd, into: cb)
                    let wg = w.baseAddress! + grp * cg * kdim
                    if let dx {
                        NeuralOps.sgemm(
                            transA: false, transB: false, m: cg, n: p, k: kdim, wg, lda: kdim, UnsafePointer(cb),
                            ldb: p,
                            beta: 1, dx.baseAddress! + (img * c + grp * cg) * p, ldc: p)
                    }
                    if let dw {
                        NeuralOps.sgemm(
                            transA: false, transB: true, m: cg, n: kdim, k: p,
                            x.baseAddress! + (img * c + grp * cg) * p,
                            lda: p, UnsafePointer(cb), ldb: p, beta: 1, dw.baseAddress! + grp * cg * kdim, ldc: kdim)
                    }
                }
            }
        }
    }
}
