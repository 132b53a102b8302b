// Vector-Jacobian products of the data-movement ops.
//   Reshape, Flatten, Squeeze, Unsqueeze, Identity: ∂x = g (same elements; Backward.accumulate)
//   Transpose(perm): ∂x = transpose(g, perm⁻¹)
//   Concat(axis): ∂x_k = the slab of g at x_k's offset along the axis
//   Slice(starts, steps, counts, as clamped for the forward): ∂x[starts + i·steps] += g[i], 0 elsewhere
//   Split(axis): ∂x = the concatenation of the outputs' gradients (a missing one is 0)
//   Pad (constant): ∂x[i] = g[i + pads_begin] where that lies inside the output (negative pads crop)
//   Gather(axis, indices): ∂x[…, idx[j], …] += g[…, j, …] (repeated indices accumulate)
// Every function ADDS into its gradient outputs (the caller zeroes them); a nil output is not computed.

extension Backward {
    /// `outShape` is the forward's output (g's) shape: outShape[d] = xShape[perm[d]].
    public static func transpose(
        gradient g: UnsafeBufferPointer<Float>, outShape: [Int], perm: [Int], dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        guard perm.count == outShape.count, Set(perm) == Set(0..<perm.count), g.count == outShape.reduce(1, *),
            dx.count == g.count
        else { throw KernelError("Transpose gradient: perm \(perm) does not fit \(outShape)") }
        let rank = perm.count
        guard rank > 0, g.count > 0 else {
            if g.count == 1 { dx[0] += g[0] }
            return
        }
        var xShape = [Int](repeating: 0, count: rank)
        for d in 0..<rank { xShape[perm[d]] = outShape[d] }
        let xStrides = stridesOf(xShape)
        // Walk g in order; dx offset advances by x's stride of the axis g's axis d came from.
        let step = perm.map { xStrides[$0] }
        let last = outShape[rank - 1]
        let lastStep = step[rank - 1]
        var index = [Int](repeating: 0, count: rank)
        var offset = 0
        var i = 0
        while i < g.count {
            for j in 0..<last { dx[offset + j * lastStep] += g[i + j] }
            i += last
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                offset += step[d]
                if index[d] < outShape[d] { break }
                offset -= step[d] * outShape[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    /// Splits g (the concatenation along `axis` of inputs of `shapes`) into each input's gradient.
    public static func concat(
        gradient g: UnsafeBufferPointer<Float>, shapes: [[Int]], axis: Int, dx: [UnsafeMutableBufferPointer<Float>?]
    ) throws {
        guard let first = shapes.first, dx.count == shapes.count else {
            throw KernelError("Concat gradient: no inputs")
        }
        let axis = try normalizedAxis(axis, rank: first.count)
        let outer = first[..<axis].reduce(1, *)
        let chunks = shapes.map { $0[axis...].reduce(1, *) }
        let total = chunks.reduce(0, +)
        guard g.count == outer * total,
            zip(shapes, dx).allSatisfy({ ($1?.count ?? $0.reduce(1, *)) == $0.reduce(1, *) })
        else {
            throw KernelError("Concat gradient: \(g.count) values do not split into \(shapes) along \(axis)")
        }
        forEachChunk(outer: outer, chunks: chunks) { k, joined, part, count in
            if let d = dx[k] { for j in 0..<count { d[part + j] += g[joined + j] } }
        }
    }

    /// Concat's layout: for each outer index and part k, where part k's chunk starts in the joined tensor and in the
    /// part. Concat's gradient splits along it, Split's joins (one walk for both).
    static func forEachChunk(outer: Int, chunks: [Int], _ body: (_ k: Int, _ joined: Int, _ part: Int, _ count: Int) -> Void) {
        let total = chunks.reduce(0, +)
        for o in 0..<outer {
            var joined = o * total
            for (k, chunk) in chunks.enumerated() {
                body(k, joined, o * chunk, chunk)
                joined += chunk
            }
        }
    }

    /// Scatters g (the slice's output, `counts` elements per axis) back into x's shape. `starts`/`steps` per axis, as
    /// clamped for the forward (ShapeOps.slice).
    public static func slice(
        gradient g: UnsafeBufferPointer<Float>, xShape: [Int], starts: [Int], steps: [Int], counts: [Int],
        dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        let rank = xShape.count
        guard starts.count == rank, steps.count == rank, counts.count == rank, g.count == counts.reduce(1, *),
            dx.count == xShape.reduce(1, *),
            (0..<rank).allSatisfy({ sliceFits(xShape[$0], starts[$0], steps[$0], counts[$0]) })
        else {
            throw KernelError("Slice gradient: starts \(starts), steps \(steps), counts \(counts) do not fit \(xShape)")
        }
        guard g.count > 0 else { return }
        guard rank > 0 else {
            dx[0] += g[0]
            return
        }
        let strides = stridesOf(xShape)
        // An axis of one element never steps (its step may be anything, 2^62 included).
        let step = (0..<rank).map { counts[$0] > 1 ? steps[$0] * strides[$0] : 0 }
        let last = counts[rank - 1]
        let lastStep = step[rank - 1]
        var index = [Int](repeating: 0, count: rank)
        var offset = (0..<rank).reduce(0) { $0 + starts[$1] * strides[$1] }
        var i = 0
        while i < g.count {
            for j in 0..<last { dx[offset + j * lastStep] += g[i + j] }
            i += last
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                offset += step[d]
                if index[d] < counts[d] { break }
                offset -= step[d] * counts[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    /// The first and last index a slice axis reads both lie in 0..<size.
    static func sliceFits(_ size: Int, _ start: Int, _ step: Int, _ count: Int) -> Bool {
        guard count > 0 else { return true }
        guard start >= 0, start < size else { return false }
        guard count > 1 else { return true }
        let (span, overflow) = (count - 1).multipliedReportingOverflow(by: step)
        let (last, past) = start.addingReportingOverflow(span)
        return !overflow && !past && last >= 0 && last < size
    }

    /// Split along `axis` into outputs of `shapes`; `gradients[k]` nil means output k has no gradient.
    public static func split(
        gradients: [UnsafeBufferPointer<Float>?], shapes: [[Int]], axis: Int, dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        guard let first = shapes.first, gradients.count == shapes.count else {
            throw KernelError("Split gradient: no outputs")
        }
        let axis = try normalizedAxis(axis, rank: first.count)
        let outer = first[..<axis].reduce(1, *)
        let chunks = shapes.map { $0[axis...].reduce(1, *) }
        let total = chunks.reduce(0, +)
        guard dx.count == outer * total,
            zip(shapes, gradients).allSatisfy({ ($1?.count ?? $0.reduce(1, *)) == $0.reduce(1, *) })
        else {
            throw KernelError("Split gradient: outputs \(shapes) do not make \(dx.count) values along \(axis)")
        }
        forEachChunk(outer: outer, chunks: chunks) { k, joined, part, count in
            if let g = gradients[k] { for j in 0..<count { dx[joined + j] += g[part + j] } }
        }
    }

    /// Constant Pad: `pads` = begins then ends, one per axis (as ShapeOps.pad).
    public static func pad(
        gradient g: UnsafeBufferPointer<Float>, xShape: [Int], pads: [Int], dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        let rank = xShape.count
        guard pads.count == 2 * rank else { throw KernelError("Pad gradient: \(pads.count) pads for rank \(rank)") }
        let outShape = (0..<rank).map { xShape[$0] + pads[$0] + pads[$0 + rank] }
        guard outShape.allSatisfy({ $0 >= 0 }), g.count == outShape.reduce(1, *), dx.count == xShape.reduce(1, *) else {
            throw KernelError("Pad gradient: buffers do not match \(xShape) padded by \(pads)")
        }
        let outStrides = stridesOf(outShape)
        var index = [Int](repeating: 0, count: rank)
        for i in 0..<dx.count {
            var offset = 0
            var inside = true
            for d in 0..<rank {
                let o = index[d] + pads[d]
                if o < 0 || o >= outShape[d] {
                    inside = false
                    break
                }
                offset += o * outStrides[d]
            }
            if inside { dx[i] += g[offset] }
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < xShape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
    }

    /// Gather along `axis` with `indices` (negative counts from the end); g has shape x[..<axis] + indices + x[axis+1...].
    public static func gather(
        gradient g: UnsafeBufferPointer<Float>, xShape: [Int], indices: [Int64], axis: Int,
        dx: UnsafeMutableBufferPointer<Float>
    ) throws {
        let axis = try normalizedAxis(axis, rank: xShape.count)
        let outer = xShape[..<axis].reduce(1, *)
        let inner = xShape[(axis + 1)...].reduce(1, *)
        let n = xShape[axis]
        guard g.count == outer * indices.count * inner, dx.count == xShape.reduce(1, *) else {
            throw KernelError("Gather gradient: buffers do not match \(xShape) with \(indices.count) indices")
        }
        for raw in indices where raw < -Int64(n) || raw >= Int64(n) {
            throw KernelError("Gather gradient: index \(raw) is out of range for axis of size \(n)")
        }
        var src = 0
        for o in 0..<outer {
            for raw in indices {
                let dst = (o * n + Int(raw < 0 ? raw + Int64(n) : raw)) * inner
                for j in 0..<inner { dx[dst + j] += g[src + j] }
                src += inner
            }
        }
    }
}
