// Vector-Jacobian products of 4-D Resize over H and W, with the coordinates of the executor's forward
// (Sources/Passes/GraphExecutor.swift): s_y = H/Ho, s_x = W/Wo;
//   half_pixel (default): f = (o + ½)·s − ½;  asymmetric: f = o·s
//   nearest: i = clamp(floor(f + ½), 0, H−1) for half_pixel, clamp(floor(f), 0, H−1) for asymmetric; ∂x[i] += g[o]
//   linear: c = clamp(f, 0, H−1), i0 = ⌊c⌋, i1 = min(i0 + 1, H−1), d = c − i0; y = bilinear of the four corners, so
//     ∂x[y0, x0] += g·(1−dy)(1−dx), ∂x[y0, x1] += g·(1−dy)·dx, ∂x[y1, x0] += g·dy·(1−dx), ∂x[y1, x1] += g·dy·dx
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
}
