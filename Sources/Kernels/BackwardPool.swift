// Vector-Jacobian products of pooling on NCHW (1-D as H = 1), with the geometry of NeuralOps.pool2d (pads, strides,
// dilations, ceil_mode).
//   MaxPool: each output's gradient goes to the position of its window's maximum (the first one on ties), recomputed
//   from x, so the tape keeps only x.
//   AveragePool: each output's gradient divided by its count goes to every in-range position of its window; the count
//   is the in-range positions, or with count_include_pad also the pad positions inside the padded input (as the forward).
//   GlobalAveragePool: ∂x = g/(H·W…) on every position of the plane.  GlobalMaxPool: g to the plane's first maximum.
// Every function ADDS into its gradient outputs (the caller zeroes them).

extension Backward {
    public static func maxPool2d(
        x: UnsafeBufferPointer<Float>, xShape: [Int], window: NeuralOps.Window, ceilMode: Bool,
        gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        let (planes, h, w, ho, wo) = try poolGeometry(xShape, window, ceilMode, g.count, x.count, dx.count)
        let (kh, kw) = window.kernel
        let (sh, sw) = window.strides
        let (dh, dw) = window.dilations
        for plane in 0..<planes {
            let base = plane * h * w
            for oy in 0..<ho {
                for ox in 0..<wo {
                    var best = -Float.infinity
                    var at = -1
                    for ky in 0..<kh {
                        let iy = oy * sh - window.pads.0 + ky * dh
                        guard iy >= 0 && iy < h else { continue }
                        for kx in 0..<kw {
                            let ix = ox * sw - window.pads.1 + kx * dw
                            guard ix >= 0 && ix < w else { continue }
                            let v = x[base + iy * w + ix]
                            if v > best || at < 0 {
                                best = v
                                at = base + iy * w + ix
                            }
                        }
                    }
                    if at >= 0 { dx[at] += g[(plane * ho + oy) * wo + ox] }
                }
            }
        }
    }

    public static func averagePool2d(
        xShape: [Int], window: NeuralOps.Window, ceilMode: Bool, countIncludePad: Bool,
        gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        let (planes, h, w, ho, wo) = try poolGeometry(xShape, window, ceilMode, g.count, dx.count, dx.count)
        let (kh, kw) = window.kernel
        let (sh, sw) = window.strides
        let (dh, dw) = window.dilations
        for oy in 0..<ho {
            for ox in 0..<wo {
                // The count is the same for every plane.
                var count = 0
                for ky in 0..<kh {
                    let iy = oy * sh - window.pads.0 + ky * dh
                    for kx in 0..<kw {
                        let ix = ox * sw - window.pads.1 + kx * dw
                        if iy >= 0 && iy < h && ix >= 0 && ix < w {
                            count += 1
                        } else if countIncludePad && iy < h + window.pads.2 && ix < w + window.pads.3 {
                            count += 1
                        }
                    }
                }
                guard count > 0 else { continue }
                let inv = 1 / Float(count)
                for plane in 0..<planes {
                    let v = g[(plane * ho + oy) * wo + ox] * inv
                    let base = plane * h * w
                    for ky in 0..<kh {
                        let iy = oy * sh - window.pads.0 + ky * dh
                        guard iy >= 0 && iy < h else { continue }
                        for kx in 0..<kw {
                            let ix = ox * sw - window.pads.1 + kx * dw
                            if ix >= 0 && ix < w { dx[base + iy * w + ix] += v }
                        }
                    }
                }
            }
        }
    }

    /// x [N, C, spatial…], g [N, C, 1…].
    public static func globalAveragePool(
        xShape: [Int], gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        guard xShape.count >= 2 else { throw KernelError("GlobalAveragePool gradient needs [N, C, …], got \(xShape)") }
        let planes = xShape[0] * xShape[1]
        let size = xShape.dropFirst(2).reduce(1, *)
        guard g.count == planes, dx.count == planes * size else {
            throw KernelError("GlobalAveragePool gradient: buffers do not match \(xShape)")
        }
        guard size > 0 else { return }
        let inv = 1 / Float(size)
        for plane in 0..<planes {
            let v = g[plane] * inv
            let base = plane * size
            for i in base..<(base + size) { dx[i] += v }
        }
    }

    /// x [N, C, spatial…], g [N, C, 1…].
    public static func globalMaxPool(
        x: UnsafeBufferPointer<Float>, xShape: [Int], gradient g: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        guard xShape.count >= 2 else { throw KernelError("GlobalMaxPool gradient needs [N, C, …], got \(xShape)") }
        let planes = xShape[0] * xShape[1]
        let size = xShape.dropFirst(2).reduce(1, *)
        guard g.count == planes, x.count == planes * size, dx.count == x.count else {
            throw KernelError("GlobalMaxPool gradient: buffers do not match \(xShape)")
        }
        guard size > 0 else { return }
        for plane in 0..<planes {
            let base = plane * size
            var at = base
            for i in base..<(base + size) where x[i] > x[at] { at = i }
            dx[at] += g[plane]
        }
    }

    static func poolGeometry(
        _ xShape: [Int], _ window: NeuralOps.Window, _ ceilMode: Bool, _ gCount: Int, _ xCount: Int, _ dxCount: Int
    ) throws -> (Int, Int, Int, Int, Int) {
        guard xShape.count == 4 else { throw KernelError("pool gradient needs a 4-D shape, got \(xShape)") }
        let (ho, wo) = window.outputSize(xShape[2], xShape[3], ceilMode: ceilMode)
        let planes = xShape[0] * xShape[1]
        guard ho > 0, wo > 0, gCount == planes * ho * wo, xCount == xShape.reduce(1, *), dxCount == xCount else {
            throw KernelError("pool gradient: buffers do not match \(xShape) → \(ho)×\(wo)")
        }
        return (planes, xShape[2], xShape[3], ho, wo)
    }
}
