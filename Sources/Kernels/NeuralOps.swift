import Foundation
import COpenBLAS

/// Convolution, matrix products, pooling and normalization for the executor. Matrix products go through OpenBLAS
/// `cblas_sgemm` (threaded over both cores); convolution is im2col + sgemm, with a direct path for 1×1 stride-1 kernels.
public enum NeuralOps {
    /// Geometry of a 2-D window op (conv or pool) on NCHW; 1-D is H = 1.
    public struct Window {
        public var kernel: (Int, Int)
        public var strides: (Int, Int)
        public var dilations: (Int, Int)
        /// top, left, bottom, right
        public var pads: (Int, Int, Int, Int)
        public init(kernel: (Int, Int), strides: (Int, Int) = (1, 1), dilations: (Int, Int) = (1, 1), pads: (Int, Int, Int, Int) = (0, 0, 0, 0)) {
            self.kernel = kernel
            self.strides = strides
            self.dilations = dilations
            self.pads = pads
        }
        public func outputSize(_ h: Int, _ w: Int, ceilMode: Bool = false) -> (Int, Int) {
            func size(_ n: Int, _ k: Int, _ s: Int, _ d: Int, _ p: Int) -> Int {
                let span = n + p - ((k - 1) * d + 1)
                return (ceilMode ? (span + s - 1) / s : span / s) + 1
            }
            return (size(h, kernel.0, strides.0, dilations.0, pads.0 + pads.2), size(w, kernel.1, strides.1, dilations.1, pads.1 + pads.3))
        }
    }

    /// C[M×N] = alpha · op(A) · op(B) + beta · C, row-major.
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
        _ b: UnsafePointer<Float>, ldb: Int, beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Conv on NCHW input x [N, C, H, W] with weight [M, C/g, kh, kw] and optional bias [M].
    public static func conv2d(_ x: [Float], _ xs: [Int], _ w: [Float], _ ws: [Int], bias: [Float]?, window: Window, group: Int) throws -> ([Float], [Int]) {
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
        let (m, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3])
        guard c == cg * group, m % group == 0 else { throw KernelError("Conv: \(c) input channels, weight \(ws), group \(group) do not agree") }
        let (ho, wo) = window.outputSize(h, wd)
        guard ho > 0, wo > 0 else { throw KernelError("Conv: the output would be empty (\(ho)×\(wo))") }
        let mg = m / group, kdim = cg * kh * kw, p = ho * wo
        var out = [Float](repeating: 0, count: n * m * p)
        let direct = kh == 1 && kw == 1 && window.strides == (1, 1) && window.pads == (0, 0, 0, 0)
        var col = direct ? [] : [Float](repeating: 0, count: kdim * p)
        x.withUnsafeBufferPointer { xb in
            w.withUnsafeBufferPointer { wb in
                out.withUnsafeMutableBufferPointer { ob in
                    for img in 0..<n {
                        for g in 0..<group {
                            let xOff = (img * c + g * cg) * h * wd
                            let oOff = (img * m + g * mg) * p
                            let wOff = g * mg * kdim
                            if direct {
                                sgemm(transA: false, transB: false, m: mg, n: p, k: kdim, wb.baseAddress! + wOff, lda: kdim,
                                      xb.baseAddress! + xOff, ldb: p, ob.baseAddress! + oOff, ldc: p)
                                continue
                            }
                            col.withUnsafeMutableBufferPointer { cb in
                                im2col(xb.baseAddress! + xOff, channels: cg, h: h, w: wd, window: window, ho: ho, wo: wo, into: cb.baseAddress!)
                                sgemm(transA: false, transB: false, m: mg, n: p, k: kdim, wb.baseAddress! + wOff, lda: kdim,
                                      UnsafePointer(cb.baseAddress!), ldb: p, ob.baseAddress! + oOff, ldc: p)
                            }
                        }
                        if let bias {
                            for oc in 0..<m {
                                let b = bias[oc]
                                let base = (img * m + oc) * p
                                for i in 0..<p { ob[base + i] += b }
                            }
                        }
                    }
                }
            }
        }
        return (out, [n, m, ho, wo])
    }

    static func im2col(_ x: UnsafePointer<Float>, channels: Int, h: Int, w: Int, window: Window, ho: Int, wo: Int, into col: UnsafeMutablePointer<Float>) {
        let (kh, kw) = window.kernel, (sh, sw) = window.strides, (dh, dw) = window.dilations
        let (pt, pl) = (window.pads.0, window.pads.1)
        var row = 0
        for ch in 0..<channels {
            let plane = x + ch * h * w
            for ky in 0..<kh {
                for kx in 0..<kw {
                    let dst = col + row * ho * wo
                    for oy in 0..<ho {
                        let iy = oy * sh - pt + ky * dh
                        if iy < 0 || iy >= h {
                            for ox in 0..<wo { dst[oy * wo + ox] = 0 }
                            continue
                        }
                        for ox in 0..<wo {
                            let ix = ox * sw - pl + kx * dw
                            dst[oy * wo + ox] = (ix >= 0 && ix < w) ? plane[iy * w + ix] : 0
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// ConvTranspose on NCHW with weight [C, M/g, kh, kw]: col = Wᵀ·x, then col2im.
    public static func convTranspose2d(
        _ x: [Float], _ xs: [Int], _ w: [Float], _ ws: [Int], bias: [Float]?, window: Window, group: Int, outputPadding: (Int, Int)
    ) throws -> ([Float], [Int]) {
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
        let (cw, mg, kh, kw) = (ws[0], ws[1], ws[2], ws[3])
        guard cw == c, c % group == 0 else { throw KernelError("ConvTranspose: input channels \(c) and weight \(ws) do not agree") }
        let m = mg * group, cg = c / group
        let (sh, sw) = window.strides, (dh, dw) = window.dilations
        let ho = sh * (h - 1) + outputPadding.0 + (kh - 1) * dh + 1 - window.pads.0 - window.pads.2
        let wo = sw * (wd - 1) + outputPadding.1 + (kw - 1) * dw + 1 - window.pads.1 - window.pads.3
        var out = [Float](repeating: 0, count: n * m * ho * wo)
        let kdim = mg * kh * kw, p = h * wd
        var col = [Float](repeating: 0, count: kdim * p)
        x.withUnsafeBufferPointer { xb in
            w.withUnsafeBufferPointer { wb in
                for img in 0..<n {
                    for g in 0..<group {
                        col.withUnsafeMutableBufferPointer { cb in
                            sgemm(transA: true, transB: false, m: kdim, n: p, k: cg, wb.baseAddress! + g * cg * kdim, lda: kdim,
                                  xb.baseAddress! + (img * c + g * cg) * p, ldb: p, cb.baseAddress!, ldc: p)
                        }
                        for oc in 0..<mg {
                            let plane = (img * m + g * mg + oc) * ho * wo
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let r = (oc * kh + ky) * kw + kx
                                    for iy in 0..<h {
                                        let oy = iy * sh - window.pads.0 + ky * dh
                                        guard oy >= 0 && oy < ho else { continue }
                                        for ix in 0..<wd {
                                            let ox = ix * sw - window.pads.1 + kx * dw
                                            if ox >= 0 && ox < wo { out[plane + oy * wo + ox] += col[r * p + iy * wd + ix] }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    if let bias {
                        for oc in 0..<m { for i in 0..<(ho * wo) { out[(img * m + oc) * ho * wo + i] += bias[oc] } }
                    }
                }
            }
        }
        return (out, [n, m, ho, wo])
    }

    /// Batched MatMul with numpy broadcasting of the batch dimensions (1-D operands as in numpy).
    public static func matmul(_ a: [Float], _ aShape: [Int], _ b: [Float], _ bShape: [Int]) throws -> ([Float], [Int]) {
        var ash = aShape, bsh = bShape
        if ash.count == 1 { ash = [1, ash[0]] }
        if bsh.count == 1 { bsh = [bsh[0], 1] }
        let (m, k) = (ash[ash.count - 2], ash[ash.count - 1])
        let (k2, n) = (bsh[bsh.count - 2], bsh[bsh.count - 1])
        guard k == k2 else { throw KernelError("MatMul: \(aShape) × \(bShape) do not agree") }
        let batch = try Elementwise.broadcastShape(Array(ash.dropLast(2)), Array(bsh.dropLast(2)))
        let batches = batch.reduce(1, *)
        var out = [Float](repeating: 0, count: batches * m * n)
        var aOffsets: [Int] = [], bOffsets: [Int] = []
        Elementwise.forEachBroadcast(batch, [Array(ash.dropLast(2)), Array(bsh.dropLast(2))]) { _, off in
            aOffsets.append(off[0] * m * k)
            bOffsets.append(off[1] * k * n)
        }
        if batch.isEmpty { aOffsets = [0]; bOffsets = [0] }
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                out.withUnsafeMutableBufferPointer { ob in
                    for i in 0..<batches {
                        sgemm(transA: false, transB: false, m: m, n: n, k: k, ab.baseAddress! + aOffsets[i], lda: k,
                              bb.baseAddress! + bOffsets[i], ldb: n, ob.baseAddress! + i * m * n, ldc: n)
                    }
                }
            }
        }
        var shape = batch + [m, n]
        if aShape.count == 1 { shape.remove(at: shape.count - 2) }
        if bShape.count == 1 { shape.removeLast() }
        return (out, shape)
    }

    /// Gemm: alpha · A' · B' + beta · C (C broadcast to [M, N]).
    public static func gemm(_ a: [Float], _ aShape: [Int], _ b: [Float], _ bShape: [Int], c: ([Float], [Int])?, alpha: Float, beta: Float, transA: Bool, transB: Bool) throws -> ([Float], [Int]) {
        guard aShape.count == 2, bShape.count == 2 else { throw KernelError("Gemm needs 2-D inputs, got \(aShape) and \(bShape)") }
        let (m, k) = transA ? (aShape[1], aShape[0]) : (aShape[0], aShape[1])
        let (k2, n) = transB ? (bShape[1], bShape[0]) : (bShape[0], bShape[1])
        guard k == k2 else { throw KernelError("Gemm: \(aShape) × \(bShape) do not agree") }
        var out = [Float](repeating: 0, count: m * n)
        var effectiveBeta: Float = 0
        if let (cv, cs) = c, beta != 0 {
            out = Elementwise.expand(cv, cs, to: [m, n])
            effectiveBeta = beta
        }
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                out.withUnsafeMutableBufferPointer { ob in
                    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, ab.baseAddress!, lda: aShape[1],
                          bb.baseAddress!, ldb: bShape[1], beta: effectiveBeta, ob.baseAddress!, ldc: n)
                }
            }
        }
        return (out, [m, n])
    }

    /// MaxPool / AveragePool on NCHW.
    public static func pool2d(_ x: [Float], _ xs: [Int], window: Window, max isMax: Bool, ceilMode: Bool, countIncludePad: Bool) -> ([Float], [Int]) {
        let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3])
        let (ho, wo) = window.outputSize(h, w, ceilMode: ceilMode)
        var out = [Float](repeating: 0, count: n * c * ho * wo)
        let (kh, kw) = window.kernel, (sh, sw) = window.strides, (dh, dw) = window.dilations
        for plane in 0..<(n * c) {
            let base = plane * h * w
            for oy in 0..<ho {
                for ox in 0..<wo {
                    var acc: Float = isMax ? -.infinity : 0
                    var count = 0
                    for ky in 0..<kh {
                        let iy = oy * sh - window.pads.0 + ky * dh
                        for kx in 0..<kw {
                            let ix = ox * sw - window.pads.1 + kx * dw
                            if iy >= 0 && iy < h && ix >= 0 && ix < w {
                                let v = x[base + iy * w + ix]
                                if isMax { acc = Swift.max(acc, v) } else { acc += v }
                                count += 1
                            } else if countIncludePad && iy < h + window.pads.2 && ix < w + window.pads.3 {
                                count += 1
                            }
                        }
                    }
                    out[(plane * ho + oy) * wo + ox] = isMax ? acc : (count > 0 ? acc / Float(count) : 0)
                }
            }
        }
        return (out, [n, c, ho, wo])
    }

    /// Mean (or max) over every axis after the first two.
    public static func globalPool(_ x: [Float], _ xs: [Int], max isMax: Bool) -> ([Float], [Int]) {
        let planes = xs[0] * xs[1], size = xs.dropFirst(2).reduce(1, *)
        let out = (0..<planes).map { p -> Float in
            let s = x[(p * size)..<((p + 1) * size)]
            return isMax ? (s.max() ?? 0) : s.reduce(0, +) / Float(size)
        }
        return (out, [xs[0], xs[1]] + Array(repeating: 1, count: xs.count - 2))
    }

    /// Inference BatchNormalization over axis 1.
    public static func batchNorm(_ x: [Float], _ xs: [Int], scale: [Float], bias: [Float], mean: [Float], variance: [Float], epsilon: Float) -> [Float] {
        let c = xs.count > 1 ? xs[1] : 1
        let inner = xs.dropFirst(2).reduce(1, *)
        let k = (0..<c).map { scale[$0] / (variance[$0] + epsilon).squareRoot() }
        let shift = (0..<c).map { bias[$0] - mean[$0] * k[$0] }
        var out = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer { ob in
                for plane in 0..<(x.count / max(inner, 1)) {
                    let ch = plane % c, a = k[ch], b = shift[ch], base = plane * inner
                    for i in base..<(base + inner) { ob[i] = xb[i] * a + b }
                }
            }
        }
        return out
    }

    /// Softmax over `axis`; with `coerce2D` (opsets before 13) over all axes from `axis` on.
    public static func softmax(_ x: [Float], _ xs: [Int], axis: Int, coerce2D: Bool) -> [Float] {
        let inner = coerce2D ? xs[axis...].reduce(1, *) : xs[axis]
        let after = coerce2D ? 1 : xs[(axis + 1)...].reduce(1, *)
        let outer = x.count / max(inner * after, 1)
        var out = x
        for o in 0..<outer {
            for a in 0..<after {
                let base = o * inner * after + a
                var mx = -Float.infinity
                for i in 0..<inner { mx = Swift.max(mx, x[base + i * after]) }
                var sum: Float = 0
                for i in 0..<inner {
                    let e = expf(x[base + i * after] - mx)
                    out[base + i * after] = e
                    sum += e
                }
                for i in 0..<inner { out[base + i * after] /= sum }
            }
        }
        return out
    }

    /// LayerNormalization over the axes from `axis` on, then scale and bias (broadcast on those axes).
    public static func layerNorm(_ x: [Float], _ xs: [Int], axis: Int, epsilon: Float, scale: [Float], bias: [Float]?) -> [Float] {
        let inner = xs[axis...].reduce(1, *)
        let outer = x.count / max(inner, 1)
        var out = x
        for o in 0..<outer {
            let base = o * inner
            var mean: Float = 0
            for i in 0..<inner { mean += x[base + i] }
            mean /= Float(inner)
            var variance: Float = 0
            for i in 0..<inner { variance += (x[base + i] - mean) * (x[base + i] - mean) }
            variance /= Float(inner)
            let inv = 1 / (variance + epsilon).squareRoot()
            for i in 0..<inner {
                out[base + i] = (x[base + i] - mean) * inv * scale[i % scale.count] + (bias.map { $0[i % $0.count] } ?? 0)
            }
        }
        return out
    }
}
