// Vector-Jacobian products of 4-D Resize over H and W, with the coordinates of the executor's forward
// (Sources/Passes/GraphExecutor.swift): s_y = H/Ho, s_x = W/Wo;
//   half_pixel (default): f = (o + ½)·s − ½;  asymmetric: f = o·s
//   nearest: i = clamp(floor(f + ½), 0, H−1) for half_pixel, clamp(floor(f), 0, H−1) for asymmetric; ∂x[i] += g[o]
//   linear: c = clamp(f, 0, H−1), i0 = ⌊c⌋, i1 = min(i0 + 1, H−1), d = c − i0; y = bilinear of the four corners, so
//     ∂x[y0, x0] += g·(1−dy)(1−dx), ∂x[y0, x1] += g·(1−dy)·dx, ∂x[y1, x0] += g·dy·(1−dx), ∂x[y1, x1] += g·dy·dx
// Those rules are not the forward's for every mode: nearest with half_pixel rounds ties up (the forward's default
// round_prefer_floor rounds them down: a 2× downscale picks the other pixel), asymmetric floors (the forward rounds),
// and align_corners, pytorch_half_pixel, tf_half_pixel_for_nn are absent. `resize2d` is the exact adjoint of
// Resampling.resize2d for every mode it runs, through the forward's own per-axis tables:
//   nearest ∂x[i0_y, i0_x] += g;  linear ∂x[i_y, i_x] += g·w_y·w_x over the four corners
//   (w = 1 − weight1 at index0, weight1 at index1)
// Every function ADDS into its gradient outputs (the caller zeroes them).

extension Backward {
    public enum ResizeMode: Sendable { case nearest, linear }

    public static func resize(
        gradient g: UnsafeBufferPointer<Float>, xShape: [Int], outputSize: (Int, Int), mode: ResizeMode,
        asymmetric: Bool,
        dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        guard xShape.count == 4 else { throw KernelError("Resize gradient needs a 4-D shape, got \(xShape)") }
        let (h, w) = (xShape[2], xShape[3])
        let (ho, wo) = outputSize
        let planes = xShape[0] * xShape[1]
        guard h > 0, w > 0, ho > 0, wo > 0, g.count == planes * ho * wo, dx.count == planes * h * w else {
            throw KernelError("Resize gradient: buffers do not match \(xShape) → \(ho)×\(wo)")
        }
        let sy = Float(h) / Float(ho)
        let sx = Float(w) / Float(wo)
        let ys = axisTaps(count: ho, size: h, scale: sy, mode: mode, asymmetric: asymmetric)
        let xs = axisTaps(count: wo, size: w, scale: sx, mode: mode, asymmetric: asymmetric)
        for plane in 0..<planes {
            let src = plane * ho * wo
            let dst = plane * h * w
            for oy in 0..<ho {
                let (y0, y1, dy) = ys[oy]
                for ox in 0..<wo {
                    let v = g[src + oy * wo + ox]
                    let (x0, x1, dxw) = xs[ox]
                    if mode == .nearest {
                        dx[dst + y0 * w + x0] += v
                    } else {
                        let top = v * (1 - dy)
                        let bottom = v * dy
                        dx[dst + y0 * w + x0] += top * (1 - dxw)
                        dx[dst + y0 * w + x1] += top * dxw
                        dx[dst + y1 * w + x0] += bottom * (1 - dxw)
                        dx[dst + y1 * w + x1] += bottom * dxw
                    }
                }
            }
        }
    }

    /// For each output coordinate: (i0, i1, weight of i1), as the forward computes them.
    static func axisTaps(count: Int, size: Int, scale: Float, mode: ResizeMode, asymmetric: Bool) -> [(Int, Int, Float)]
    {
        (0..<count).map { o in
            let f = asymmetric ? Float(o) * scale : (Float(o) + 0.5) * scale - 0.5
            if mode == .nearest {
                let r = asymmetric ? f.rounded(.down) : (f + 0.5).rounded(.down)
                let i = r < 0 ? 0 : Swift.min(size - 1, Int(r))
                return (i, i, 0)
            }
            let c = Swift.min(Swift.max(f, 0), Float(size - 1))
            let i0 = Int(c)
            return (i0, Swift.min(i0 + 1, size - 1), c - Float(i0))
        }
    }

    /// The adjoint of `Resampling.resize2d` (same tables, same planes): every coordinate and nearest mode.
    public static func resize2d(
        gradient g: UnsafeBufferPointer<Float>, planes: Int, h: Int, w: Int, ys: ResampleAxis, xs: ResampleAxis,
        linear: Bool, dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        let (ho, wo) = (ys.index0.count, xs.index0.count)
        guard g.count == planes * ho * wo, dx.count == planes * h * w,
            (ys.index0 + ys.index1).allSatisfy({ $0 >= 0 && $0 < h }),
            (xs.index0 + xs.index1).allSatisfy({ $0 >= 0 && $0 < w })
        else { throw KernelError("Resize gradient: buffers do not match \(planes)×\(h)×\(w) → \(ho)×\(wo)") }
        for plane in 0..<planes {
            let src = plane * ho * wo
            let dst = plane * h * w
            for oy in 0..<ho {
                let r0 = dst + ys.index0[oy] * w
                let r1 = dst + ys.index1[oy] * w
                let dy = ys.weight1[oy]
                let row = src + oy * wo
                if !linear {
                    for ox in 0..<wo { dx[r0 + xs.index0[ox]] += g[row + ox] }
                    continue
                }
                for ox in 0..<wo {
                    let (a, b, wx) = (xs.index0[ox], xs.index1[ox], xs.weight1[ox])
                    let top = g[row + ox] * (1 - dy)
                    let bottom = g[row + ox] * dy
                    dx[r0 + a] += top * (1 - wx)
                    dx[r0 + b] += top * wx
                    dx[r1 + a] += bottom * (1 - wx)
                    dx[r1 + b] += bottom * wx
                }
            }
        }
    }
}
