import Foundation
import COpenBLAS

/// Convolution, matrix products, pooling and normalization for the executor. Matrix products go through OpenBLAS
/// `cblas_sgemm` (threaded over both cores); convolution is im2col + sgemm, with a direct path for 1×1 stride-1 kernels.
public enum NeuralOps {
    /// Geometry of a 2-D window op (conv or pool) on NCHW; 1-D is H = 1.
    public struct Window: Sendable {
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

    /// OpenBLAS runs single-threaded: `sgemm` splits a large product across the cores itself, so one pool of threads
    /// (Dispatch) serves every kernel and OpenBLAS's own workers never spin waiting while ours run.
    static let singleThreadedBLAS: Void = openblas_set_num_threads(1)

    /// C[M×N] = alpha · op(A) · op(B) + beta · C, row-major; a large product is split by columns of C (or by rows when
    /// C is narrow) across the cores.
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
        _ b: UnsafePointer<Float>, ldb: Int, beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int,
        parallel: Bool = true
    ) {
        _ = singleThreadedBLAS
        guard m > 0, n > 0 else { return }
        func call(_ m: Int, _ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>) {
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
        let parts = kernelThreads
        guard parallel, parts > 1, m * n * max(k, 1) >= 1 << 18, max(m, n) >= 2 * 16 else { return call(m, n, a, b, c) }
        if n >= m {
            let width = ((n + parts - 1) / parts + 15) / 16 * 16
            parallelChunks(parts, work: Int.max) { range in
                for part in range where part * width < n {
                    let j = part * width, cols = Swift.min(width, n - j)
                    call(m, cols, a, transB ? b + j * ldb : b + j, c + j)
                }
            }
        } else {
            let height = ((m + parts - 1) / parts + 15) / 16 * 16
            parallelChunks(parts, work: Int.max) { range in
                for part in range where part * height < m {
                    let i = part * height, rows = Swift.min(height, m - i)
                    call(rows, n, transA ? a + i : a + i * lda, b, c + i * ldc)
                }
            }
        }
    }

    /// col[(c·kh + ky)·kw + kx][oy·wo + ox] = x[c][oy·sh − pt + ky·dh][ox·sw − pl + kx·dw], 0 outside the image.
    /// The columns whose input lies inside are found per (tap, row) so the copy loop has no bounds checks (a plain
    /// copy at stride 1).
    /// `ld` is the distance between rows of col (default ho·wo; more when several images share the rows).
    static func im2col(_ x: UnsafePointer<Float>, channels: Int, h: Int, w: Int, window: Window, ho: Int, wo: Int,
                       into col: UnsafeMutablePointer<Float>, ld: Int? = nil) {
        let (kh, kw) = window.kernel, (sh, sw) = window.strides, (dh, dw) = window.dilations
        let (pt, pl) = (window.pads.0, window.pads.1)
        let ld = ld ?? ho * wo
        var row = 0
        for ch in 0..<channels {
            let plane = x + ch * h * w
            for ky in 0..<kh {
                for kx in 0..<kw {
                    let dst = col + row * ld
                    let shift = kx * dw - pl
                    let oxLo = Swift.min(wo, Swift.max(0, ceilDiv(-shift, sw)))
                    let oxHi = Swift.max(oxLo, Swift.min(wo, floorDiv(w - 1 - shift, sw) + 1))
                    for oy in 0..<ho {
                        let d = dst + oy * wo
                        let iy = oy * sh - pt + ky * dh
                        if iy < 0 || iy >= h {
                            d.update(repeating: 0, count: wo)
                            continue
                        }
                        if oxLo > 0 { d.update(repeating: 0, count: oxLo) }
                        if oxHi < wo { (d + oxHi).update(repeating: 0, count: wo - oxHi) }
                        let src = plane + iy * w + shift
                        if sw == 1 {
                            (d + oxLo).update(from: src + oxLo, count: oxHi - oxLo)
                        } else {
                            for ox in oxLo..<oxHi { d[ox] = src[ox * sw] }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// ConvTranspose on NCHW with weight [C, M/g, kh, kw]: col = Wᵀ·x, then col2im, into `out` (n·m·ho·wo floats);
    /// `col` holds (M/g)·kh·kw·h·w floats. x and w are read in place.
    public static func convTranspose2d(
        _ x: UnsafePointer<Float>, _ xs: [Int], _ w: UnsafePointer<Float>, _ ws: [Int], bias: UnsafePointer<Float>?,
        window: Window, group: Int, outputPadding: (Int, Int), out: UnsafeMutablePointer<Float>, col: UnsafeMutablePointer<Float>
    ) throws {
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
        let (cw, mg, kh, kw) = (ws[0], ws[1], ws[2], ws[3])
        guard cw == c, group > 0, c % group == 0 else {
            throw KernelError("ConvTranspose: input channels \(c) and weight \(ws) do not agree")
        }
        let m = mg * group, cg = c / group
        let (sh, sw) = window.strides, (dh, dw) = window.dilations
        let (ho, wo) = convTransposeOutputSize(xs, ws, window: window, outputPadding: outputPadding)
        let kdim = mg * kh * kw, p = h * wd
        out.update(repeating: 0, count: n * m * ho * wo)
        for img in 0..<n {
            for g in 0..<group {
                sgemm(transA: true, transB: false, m: kdim, n: p, k: cg, w + g * cg * kdim, lda: kdim,
                      x + (img * c + g * cg) * p, ldb: p, col, ldc: p)
                for oc in 0..<mg {
                    let plane = out + (img * m + g * mg + oc) * ho * wo
                    for ky in 0..<kh {
                        for kx in 0..<kw {
                            let r = col + ((oc * kh + ky) * kw + kx) * p
                            let shift = kx * dw - window.pads.1
                            let ixLo = Swift.min(wd, Swift.max(0, ceilDiv(-shift, sw)))
                            let ixHi = Swift.max(ixLo, Swift.min(wd, floorDiv(wo - 1 - shift, sw) + 1))
                            for iy in 0..<h {
                                let oy = iy * sh - window.pads.0 + ky * dh
                                guard oy >= 0 && oy < ho else { continue }
                                let dst = plane + oy * wo + shift, src = r + iy * wd
                                for ix in ixLo..<ixHi { dst[ix * sw] += src[ix] }
                            }
                        }
                    }
                }
            }
            if let bias {
                for oc in 0..<m {
                    let plane = out + (img * m + oc) * ho * wo, b = bias[oc]
                    for i in 0..<(ho * wo) { plane[i] += b }
                }
            }
        }
    }

    /// The output size of a 2-D ConvTranspose.
    public static func convTransposeOutputSize(_ xs: [Int], _ ws: [Int], window: Window, outputPadding: (Int, Int)) -> (Int, Int) {
        let (sh, sw) = window.strides, (dh, dw) = window.dilations
        let ho = sh * (xs[2] - 1) + outputPadding.0 + (ws[2] - 1) * dh + 1 - window.pads.0 - window.pads.2
        let wo = sw * (xs[3] - 1) + outputPadding.1 + (ws[3] - 1) * dw + 1 - window.pads.1 - window.pads.3
        return (ho, wo)
    }

    /// Array form of `convTranspose2d` (tests, references).
    public static func convTranspose2d(
        _ x: [Float], _ xs: [Int], _ w: [Float], _ ws: [Int], bias: [Float]?, window: Window, group: Int, outputPadding: (Int, Int)
    ) throws -> ([Float], [Int]) {
        let (ho, wo) = convTransposeOutputSize(xs, ws, window: window, outputPadding: outputPadding)
        let m = ws[1] * group
        var out = [Float](repeating: 0, count: xs[0] * m * max(ho, 0) * max(wo, 0))
        var col = [Float](repeating: 0, count: ws[1] * ws[2] * ws[3] * xs[2] * xs[3])
        try x.withUnsafeBufferPointer { xb in
            try w.withUnsafeBufferPointer { wb in
                try out.withUnsafeMutableBufferPointer { ob in
                    try col.withUnsafeMutableBufferPointer { cb in
                        try (bias ?? []).withUnsafeBufferPointer { bb in
                            try convTranspose2d(xb.baseAddress!, xs, wb.baseAddress!, ws, bias: bias == nil ? nil : bb.baseAddress,
                                                window: window, group: group, outputPadding: outputPadding, out: ob.baseAddress!,
                                                col: cb.baseAddress!)
                        }
                    }
                }
            }
        }
        return (out, [xs[0], m, ho, wo])
    }

    /// Gemm: alpha · A' · B' + beta · C (C broadcast to [M, N]), into `out` (M·N floats); A and B are read in
    /// place (a weight is never copied).
    public static func gemm(
        _ a: UnsafePointer<Float>, _ aShape: [Int], _ b: UnsafePointer<Float>, _ bShape: [Int],
        c: (UnsafeBufferPointer<Float>, [Int])?, alpha: Float, beta: Float, transA: Bool, transB: Bool,
        out: UnsafeMutablePointer<Float>
    ) throws {
        guard aShape.count == 2, bShape.count == 2 else { throw KernelError("Gemm needs 2-D inputs, got \(aShape) and \(bShape)") }
        let (m, k) = transA ? (aShape[1], aShape[0]) : (aShape[0], aShape[1])
        let (k2, n) = transB ? (bShape[1], bShape[0]) : (bShape[0], bShape[1])
        guard k == k2 else { throw KernelError("Gemm: \(aShape) × \(bShape) do not agree") }
        var effectiveBeta: Float = 0
        if let (cv, cs) = c, beta != 0 {
            let layout = try BroadcastLayout([cs, [m, n]])
            guard layout.shape == [m, n] else { throw KernelError("Gemm: C of shape \(cs) does not broadcast to [\(m), \(n)]") }
            let inner = layout.dims.last ?? 1, stride = layout.dims.isEmpty ? 0 : layout.strides[0].last!
            var offsets = [0, 0]
            for row in 0..<(m * n / Swift.max(inner, 1)) {
                if !layout.dims.isEmpty { layout.rowOffsets(row, &offsets) }
                for i in 0..<inner { out[row * inner + i] = cv[offsets[0] + i * stride] }
            }
            effectiveBeta = beta
        } else if k == 0 {
            out.update(repeating: 0, count: m * n)
        }
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a, lda: aShape[1], b, ldb: bShape[1],
              beta: effectiveBeta, out, ldc: n)
    }

    /// Array form of `gemm` (tests, references).
    public static func gemm(
        _ a: [Float], _ aShape: [Int], _ b: [Float], _ bShape: [Int], c: ([Float], [Int])?, alpha: Float, beta: Float,
        transA: Bool, transB: Bool
    ) throws -> ([Float], [Int]) {
        guard aShape.count == 2, bShape.count == 2 else { throw KernelError("Gemm needs 2-D inputs, got \(aShape) and \(bShape)") }
        let m = transA ? aShape[1] : aShape[0], n = transB ? bShape[0] : bShape[1]
        var out = [Float](repeating: 0, count: m * n)
        try a.withUnsafeBufferPointer { ab in
            try b.withUnsafeBufferPointer { bb in
                try out.withUnsafeMutableBufferPointer { ob in
                    try (c?.0 ?? []).withUnsafeBufferPointer { cb in
                        try gemm(ab.baseAddress!, aShape, bb.baseAddress!, bShape, c: c.map { (cb, $0.1) }, alpha: alpha, beta: beta,
                                 transA: transA, transB: transB, out: ob.baseAddress!)
                    }
                }
            }
        }
        return (out, [m, n])
    }
}
