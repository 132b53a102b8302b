// Mean over a set of axes, in the layout's contiguous runs:
//
//   axes merged into [outer, reduced, inner] where they form one block (ReduceMean over the last axis: inner = 1, each
//   row summed contiguously; over H·W: the same; over C of [N, C, L]: rows of L added elementwise); any other set of
//   axes is walked once with an index counter.

public struct ReductionLayout: Sendable {
    public let outer: Int, reduced: Int, inner: Int
    /// Set when the reduced axes do not form one block: the input shape and the reduced flags per axis.
    public let general: (shape: [Int], reducedAxes: [Bool])?
    public let outputCount: Int

    public init(shape: [Int], axes: Set<Int>) {
        var groups: [(size: Int, reduced: Bool)] = []
        for (i, d) in shape.enumerated() where d != 1 {
            let r = axes.contains(i)
            if let last = groups.last, last.reduced == r {
                groups[groups.count - 1].size *= d
            } else {
                groups.append((d, r))
            }
        }
        let total = shape.reduce(1, *)
        let reducedCount = shape.indices.filter { axes.contains($0) }.reduce(1) { $0 * shape[$1] }
        outputCount = reducedCount == 0 ? 0 : total / reducedCount
        let blocks = groups.filter(\.reduced).count
        if blocks <= 1 {
            let r = groups.firstIndex { $0.reduced }
            outer = r.map { groups[..<$0].reduce(1) { $0 * $1.size } } ?? total
            reduced = r.map { groups[$0].size } ?? 1
            inner = r.map { groups[($0 + 1)...].reduce(1) { $0 * $1.size } } ?? 1
            general = nil
        } else {
            (outer, reduced, inner) = (0, 0, 0)
            general = (shape, shape.indices.map { axes.contains($0) })
        }
    }
}

public enum Reduction {
    /// out = mean over the layout's reduced axes of x (`layout.outputCount` floats).
    public static func mean(_ l: ReductionLayout, x: UnsafePointer<Float>, count: Int, out: UnsafeMutablePointer<Float>) {
        guard l.outputCount > 0 else { return }
        if let general = l.general {
            meanGeneral(general.shape, general.reducedAxes, x: x, count: count, out: out, outputCount: l.outputCount)
            return
        }
        let scale = 1 / Float(l.reduced)
        if l.inner == 1 {
            parallelChunks(l.outer, work: l.outer * l.reduced) { range in
                for o in range {
                    let row = x + o * l.reduced
                    var acc: Float = 0
                    for i in 0..<l.reduced { acc += row[i] }
                    out[o] = acc * scale
                }
            }
            return
        }
        parallelChunks(l.outer, work: l.outer * l.reduced * l.inner) { range in
            for o in range {
                let dst = out + o * l.inner
                dst.update(repeating: 0, count: l.inner)
                for r in 0..<l.reduced {
                    let src = x + (o * l.reduced + r) * l.inner
                    for i in 0..<l.inner { dst[i] += src[i] }
                }
                for i in 0..<l.inner { dst[i] *= scale }
            }
        }
    }

    static func meanGeneral(
        _ shape: [Int], _ reducedAxes: [Bool], x: UnsafePointer<Float>, count: Int, out: UnsafeMutablePointer<Float>,
        outputCount: Int
    ) {
        // Output strides of each input axis (0 on reduced axes).
        var outStrides = [Int](repeating: 0, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) where !reducedAxes[i] {
            outStrides[i] = acc
            acc *= shape[i]
        }
        out.update(repeating: 0, count: outputCount)
        var index = [Int](repeating: 0, count: shape.count)
        var o = 0
        for i in 0..<count {
            out[o] += x[i]
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                o += outStrides[d]
                if index[d] < shape[d] { break }
                o -= outStrides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
        let scale = Float(outputCount) / Float(count)
        for i in 0..<outputCount { out[i] *= scale }
    }
}
