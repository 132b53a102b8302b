// Vector-Jacobian product of Resize over H and W (Kernels/Resampling.swift), through the forward's own per-axis
// tables, so it is the exact adjoint for every coordinate and nearest mode the forward runs:
//   nearest ∂x[i0_y, i0_x] += g;  linear ∂x[i_y, i_x] += g·w_y·w_x over the four corners
//   (w = 1 − weight1 at index0, weight1 at index1)
// It ADDS into its gradient output (the caller zeroes it).

extension Backward {
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
