import Foundation

/// Elementwise kernels with numpy broadcasting.
public enum Elementwise {
    @inlinable
    public static func broadcastShape(_ a: [Int], _ b: [Int]) throws -> [Int] {
        let rank = max(a.count, b.count)
        let pa = Array(repeating: 1, count: rank - a.count) + a
        let pb = Array(repeating: 1, count: rank - b.count) + b
        return try (0..<rank).map { i in
            if pa[i] == pb[i] || pb[i] == 1 { return pa[i] }
            if pa[i] == 1 { return pb[i] }
            throw KernelError("shapes \(a) and \(b) do not broadcast")
        }
    }

    /// Strides of `shape` seen inside `out` (0 on broadcast axes).
    @inlinable
    public static func broadcastStrides(_ shape: [Int], to out: [Int]) -> [Int] {
        let padded = Array(repeating: 1, count: out.count - shape.count) + shape
        let s = stridesOf(padded)
        return (0..<out.count).map { padded[$0] == 1 && out[$0] != 1 ? 0 : s[$0] }
    }

    /// For each output element, in order, calls `body(outIndex, offsets)` with the element offsets of each input.
    @inlinable
    public static func forEachBroadcast(_ out: [Int], _ inputs: [[Int]], _ body: (Int, [Int]) -> Void) {
        let total = out.reduce(1, *)
        guard total > 0 else { return }
        let strides = inputs.map { broadcastStrides($0, to: out) }
        var index = [Int](repeating: 0, count: out.count)
        var offsets = [Int](repeating: 0, count: inputs.count)
        for o in 0..<total {
            body(o, offsets)
            var d = out.count - 1
            while d >= 0 {
                index[d] += 1
                for k in 0..<offsets.count { offsets[k] += strides[k][d] }
                if index[d] < out[d] { break }
                for k in 0..<offsets.count { offsets[k] -= strides[k][d] * out[d] }
                index[d] = 0
                d -= 1
            }
        }
    }

    @inlinable
    public static func binary<T, R>(_ a: [T], _ aShape: [Int], _ b: [T], _ bShape: [Int], _ f: (T, T) -> R) throws -> ([R], [Int]) {
        let out = try broadcastShape(aShape, bShape)
        if aShape == bShape { return (zip(a, b).map(f), out) }
        if b.count == 1 && a.count == out.reduce(1, *) {
            let v = b[0]
            return (a.map { f($0, v) }, out)
        }
        var result = [R]()
        result.reserveCapacity(out.reduce(1, *))
        forEachBroadcast(out, [aShape, bShape]) { _, off in result.append(f(a[off[0]], b[off[1]])) }
        return (result, out)
    }

    /// Broadcasts `values` of `shape` to `out`.
    @inlinable
    public static func expand<T>(_ values: [T], _ shape: [Int], to out: [Int]) -> [T] {
        var result = [T]()
        result.reserveCapacity(out.reduce(1, *))
        forEachBroadcast(out, [shape]) { _, off in result.append(values[off[0]]) }
        return result
    }

    @inlinable
    public static func erf(_ x: Float) -> Float { Float(Foundation.erf(Double(x))) }

    @inlinable
    public static func gelu(_ x: Float, tanhApproximation: Bool) -> Float {
        if tanhApproximation {
            let c = Float(0.7978845608028654)
            return 0.5 * x * (1 + tanhf(c * (x + 0.044715 * x * x * x)))
        }
        return 0.5 * x * (1 + erf(x / Float(2).squareRoot()))
    }
}
