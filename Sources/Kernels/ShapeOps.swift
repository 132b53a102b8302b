/// Data movement kernels, generic over the element type.
public enum ShapeOps {
    @inlinable
    public static func transpose<T>(_ x: [T], _ shape: [Int], perm: [Int]) -> ([T], [Int]) {
        let outShape = perm.map { shape[$0] }
        let inStrides = stridesOf(shape)
        let permuted = perm.map { inStrides[$0] }
        var out = [T]()
        out.reserveCapacity(x.count)
        var index = [Int](repeating: 0, count: outShape.count)
        var offset = 0
        for _ in 0..<x.count {
            out.append(x[offset])
            var d = outShape.count - 1
            while d >= 0 {
                index[d] += 1
                offset += permuted[d]
                if index[d] < outShape[d] { break }
                offset -= permuted[d] * outShape[d]
                index[d] = 0
                d -= 1
            }
        }
        return (out, outShape)
    }

    @inlinable
    public static func concat<T>(_ parts: [([T], [Int])], axis: Int) -> ([T], [Int]) {
        var shape = parts[0].1
        shape[axis] = parts.reduce(0) { $0 + $1.1[axis] }
        let outer = shape[..<axis].reduce(1, *)
        var out = [T]()
        out.reserveCapacity(shape.reduce(1, *))
        for o in 0..<outer {
            for (values, s) in parts {
                let chunk = s[axis...].reduce(1, *)
                out.append(contentsOf: values[(o * chunk)..<((o + 1) * chunk)])
            }
        }
        return (out, shape)
    }

    /// Slices with per-axis (start, end, step) already clamped as ONNX Slice clamps them.
    @inlinable
    public static func slice<T>(_ x: [T], _ shape: [Int], starts: [Int], steps: [Int], counts: [Int]) -> [T] {
        let strides = stridesOf(shape)
        let total = counts.reduce(1, *)
        var out = [T]()
        out.reserveCapacity(total)
        guard total > 0 else { return out }
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<total {
            var offset = 0
            for d in 0..<shape.count { offset += (starts[d] + index[d] * steps[d]) * strides[d] }
            out.append(x[offset])
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < counts[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return out
    }

    @inlinable
    public static func gather<T>(_ x: [T], _ shape: [Int], indices: [Int64], indicesShape: [Int], axis: Int) throws -> ([T], [Int]) {
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *), n = shape[axis]
        let outShape = Array(shape[..<axis]) + indicesShape + Array(shape[(axis + 1)...])
        for raw in indices where !(-Int64(n)..<Int64(n)).contains(raw) {
            throw KernelError("Gather: index \(raw) is out of range for axis of size \(n)")
        }
        guard outer > 0, inner > 0 else { return ([], outShape) }  // empty: no loop over the other axes
        var out = [T]()
        out.reserveCapacity(outer * indices.count * inner)
        for o in 0..<outer {
            for raw in indices {
                let i = raw < 0 ? Int(raw) + n : Int(raw)
                let base = (o * n + i) * inner
                out.append(contentsOf: x[base..<(base + inner)])
            }
        }
        return (out, outShape)
    }

    public enum PadMode: String, Sendable { case constant, reflect, edge }

    /// Padding; `pads` = begins then ends, one per axis (negative values crop). `reflect` mirrors without repeating
    /// the edge element, `edge` repeats it; the caller checks the pads fit the axes.
    @inlinable
    public static func pad<T>(_ x: [T], _ shape: [Int], pads: [Int], value: T, mode: PadMode = .constant) -> ([T], [Int]) {
        let rank = shape.count
        let outShape = (0..<rank).map { shape[$0] + pads[$0] + pads[$0 + rank] }
        let total = outShape.reduce(1, *)
        guard total > 0 else { return ([], outShape) }
        // Per axis, the input index each output index reads (-1: the constant).
        let sources: [[Int]] = (0..<rank).map { d in
            (0..<outShape[d]).map { o in
                let i = o - pads[d], n = shape[d]
                if i >= 0 && i < n { return i }
                switch mode {
                case .constant: return -1
                case .edge: return i < 0 ? 0 : n - 1
                case .reflect:
                    guard n > 1 else { return 0 }
                    let period = 2 * (n - 1)
                    var r = i % period
                    if r < 0 { r += period }
                    return r < n ? r : period - r
                }
            }
        }
        let strides = stridesOf(shape)
        var out = [T]()
        out.reserveCapacity(total)
        var index = [Int](repeating: 0, count: rank)
        for _ in 0..<total {
            var offset = 0, inside = true
            for d in 0..<rank {
                let s = sources[d][index[d]]
                if s < 0 { inside = false; break }
                offset += s * strides[d]
            }
            out.append(inside ? x[offset] : value)
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < outShape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return (out, outShape)
    }
}
