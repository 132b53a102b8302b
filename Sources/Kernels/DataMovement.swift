// Float data movement with contiguous runs: Transpose (axes merged; a blocked 2-D transpose when the input's
// innermost axis moves to the second-to-last output axis), Slice (rows copied whole when the last axis steps by 1),
// Concat (one run per input per outer index).

extension ShapeOps {
    /// The input's element strides seen along each output axis of a transpose, with axes merged where they can be.
    public struct TransposeLayout: Sendable {
        public let outShape: [Int]
        public let dims: [Int]
        public let strides: [Int]
        public init(_ shape: [Int], perm: [Int]) throws {
            guard perm.count == shape.count, Set(perm) == Set(0..<shape.count) else {
                throw KernelError("perm \(perm) is not a permutation of the \(shape.count) axes")
            }
            outShape = perm.map { shape[$0] }
            let inStrides = stridesOf(shape)
            var d: [Int] = [], s: [Int] = []
            for axis in perm where shape[axis] != 1 {
                if let lastS = s.last, lastS == inStrides[axis] * shape[axis] {
                    d[d.count - 1] *= shape[axis]
                    s[s.count - 1] = inStrides[axis]
                } else {
                    d.append(shape[axis])
                    s.append(inStrides[axis])
                }
            }
            dims = d
            strides = s
        }
    }

    public static func transpose(_ l: TransposeLayout, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let rank = l.dims.count
        let total = l.dims.reduce(1, *)
        guard total > 0 else { return }
        guard rank > 1 else {
            if rank == 1 { for i in 0..<total { out[i] = x[i * l.strides[0]] } } else { out[0] = x[0] }
            return
        }
        let inner = l.dims[rank - 1], innerStride = l.strides[rank - 1]
        if innerStride == 1 {
            forEachRow(l, rows: total / inner, skip: 1) { row, offset in
                (out + row * inner).update(from: x + offset, count: inner)
            }
            return
        }
        if l.strides[rank - 2] == 1 {
            // out[.., a, b] = x[.. + a + b·innerStride]: blocked so both sides stay in cache.
            let rowsA = l.dims[rank - 2], planes = total / (rowsA * inner)
            forEachRow(l, rows: planes, skip: 2) { plane, offset in
                let src = x + offset, dst = out + plane * rowsA * inner
                let block = 32
                for a0 in stride(from: 0, to: rowsA, by: block) {
                    for b0 in stride(from: 0, to: inner, by: block) {
                        for a in a0..<Swift.min(a0 + block, rowsA) {
                            let o = dst + a * inner, s = src + a
                            for b in b0..<Swift.min(b0 + block, inner) { o[b] = s[b * innerStride] }
                        }
                    }
                }
            }
            return
        }
        forEachRow(l, rows: total / inner, skip: 1) { row, offset in
            let o = out + row * inner
            for i in 0..<inner { o[i] = x[offset + i * innerStride] }
        }
    }

    /// Calls `body(row, inputOffset)` for each index over all merged axes but the last `skip`.
    static func forEachRow(_ l: TransposeLayout, rows: Int, skip: Int, _ body: (Int, Int) -> Void) {
        let outer = l.dims.count - skip
        parallelChunks(rows, work: rows * l.dims.suffix(skip).reduce(1, *)) { range in
            for row in range {
                var rem = row, offset = 0
                var d = outer - 1
                while d >= 0 {
                    offset += (rem % l.dims[d]) * l.strides[d]
                    rem /= l.dims[d]
                    d -= 1
                }
                body(row, offset)
            }
        }
    }

    /// Slice (starts, steps, counts per axis already clamped) of a float tensor into `out`.
    public static func slice(
        _ x: UnsafePointer<Float>, _ shape: [Int], starts: [Int], steps: [Int], counts: [Int], out: UnsafeMutablePointer<Float>
    ) {
        let rank = shape.count
        let total = counts.reduce(1, *)
        guard total > 0 else { return }
        guard rank > 0 else { out[0] = x[0]; return }
        let strides = stridesOf(shape)
        let inner = counts[rank - 1], innerStep = steps[rank - 1]
        var index = [Int](repeating: 0, count: rank)
        var row = 0
        while row * inner < total {
            var offset = 0
            for d in 0..<rank { offset += (starts[d] + index[d] * steps[d]) * strides[d] }
            let o = out + row * inner
            if innerStep == 1 {
                o.update(from: x + offset, count: inner)
            } else {
                for i in 0..<inner { o[i] = x[offset + i * innerStep] }
            }
            row += 1
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                if index[d] < counts[d] { break }
                index[d] = 0
                d -= 1
            }
        }
    }

    /// One part of a Concat: `outer` chunks of `chunk` floats, each written at `offset` within an output row of `row`.
    public static func concatPart(
        _ part: UnsafePointer<Float>, outer: Int, chunk: Int, row: Int, offset: Int, out: UnsafeMutablePointer<Float>
    ) {
        parallelChunks(outer, work: outer * chunk) { range in
            for o in range { (out + o * row + offset).update(from: part + o * chunk, count: chunk) }
        }
    }
}
