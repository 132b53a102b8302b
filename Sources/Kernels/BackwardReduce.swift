// Vector-Jacobian products of ReduceMean, ReduceSum and Softmax.
//   ReduceMean over `axes` (n = product of the reduced sizes): ∂x[i] = g[reduced index of i]/n; ReduceSum: the same
//   with n = 1. g has the reduced shape with or without keepdims (the same elements either way).
//   Softmax along an axis, from the output y: ∂x = y·(g − Σ_axis g·y); with `coerce2D` (opsets before 13) the "axis"
//   is every axis from `axis` on, as NeuralOps.softmax computes it.
// Every function ADDS into its gradient outputs (the caller zeroes them).

extension Backward {
    public static func reduceMean(
        gradient g: UnsafeBufferPointer<Float>, xShape: [Int], axes: [Int], dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        try reduce(gradient: g, xShape: xShape, axes: axes, mean: true, dx: dx)
    }

    public static func reduceSum(
        gradient g: UnsafeBufferPointer<Float>, xShape: [Int], axes: [Int], dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        try reduce(gradient: g, xShape: xShape, axes: axes, mean: false, dx: dx)
    }

    static func reduce(
        gradient g: UnsafeBufferPointer<Float>, xShape: [Int], axes: [Int], mean: Bool,
        dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        let axes = try axes.map { try normalizedAxis($0, rank: xShape.count) }
        var kept = xShape
        for ax in axes { kept[ax] = 1 }
        let n = axes.isEmpty ? 1 : Set(axes).reduce(1) { $0 * xShape[$1] }
        guard g.count == kept.reduce(1, *), dx.count == xShape.reduce(1, *) else {
            throw KernelError("Reduce gradient: \(g.count) values do not reduce \(xShape) over \(axes)")
        }
        guard n > 0 else { return }
        let inv = mean ? 1 / Float(n) : 1
        let walk = try BroadcastRows(output: xShape, operands: [kept])
        let len = walk.length
        let s = walk.rowStrides[0]
        for r in 0..<walk.rows {
            let o = r * len
            let go = walk.offsets[0][r]
            if s == 0 {
                let v = g[go] * inv
                for j in 0..<len { dx[o + j] += v }
            } else {
                for j in 0..<len { dx[o + j] += g[go + j * s] * inv }
            }
        }
    }

    public static func softmax(
        y: UnsafeBufferPointer<Float>, shape: [Int], axis: Int, coerce2D: Bool, gradient g: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        let axis = try normalizedAxis(axis, rank: shape.count)
        guard y.count == shape.reduce(1, *), g.count == y.count, dx.count == y.count else {
            throw KernelError("Softmax gradient: buffers do not match \(shape)")
        }
        let inner = coerce2D ? shape[axis...].reduce(1, *) : shape[axis]
        let after = coerce2D ? 1 : shape[(axis + 1)...].reduce(1, *)
        guard inner > 0, after > 0 else { return }
        let outer = y.count / (inner * after)
        for o in 0..<outer {
            for a in 0..<after {
                let base = o * inner * after + a
                var dot: Float = 0
                for i in 0..<inner { dot += g[base + i * after] * y[base + i * after] }
                for i in 0..<inner {
                    let k = base + i * after
                    dx[k] += y[k] * (g[k] - dot)
                }
            }
        }
    }
}
