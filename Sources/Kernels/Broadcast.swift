import Foundation

// Elementwise kernels with numpy broadcasting, closure-free in their inner loops.
//
//   shapes [N,C,H,W] and [1,C,1,1] ──BroadcastLayout──▶ dims [N, C, H·W], strides a [C·H·W, H·W, 1], b [0, 1, 0]
//
// Adjacent axes are merged wherever every input is contiguous (or broadcast) across them, so each output row is one
// contiguous run whose inputs step by 1 or 0; the operation is a type parameter, specialised at compile time.

/// The iteration space of an elementwise op over broadcast inputs, with axes merged as far as they go.
public struct BroadcastLayout: Sendable {
    public let shape: [Int]
    public let count: Int
    /// Merged sizes, outer to inner (empty for a scalar output).
    public let dims: [Int]
    /// Per input, its element stride along each merged axis (0 where it is broadcast).
    public let strides: [[Int]]

    public init(_ shapes: [[Int]]) throws {
        let rank = shapes.map(\.count).max() ?? 0
        let padded = shapes.map { Array(repeating: 1, count: rank - $0.count) + $0 }
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            for p in padded where p[i] != 1 {
                guard out[i] == 1 || out[i] == p[i] else { throw KernelError("shapes \(shapes) do not broadcast") }
                out[i] = p[i]
            }
        }
        shape = out
        count = out.reduce(1, *)
        let full = padded.map { p -> [Int] in
            var s = [Int](repeating: 0, count: rank), acc = 1
            for i in stride(from: rank - 1, through: 0, by: -1) {
                s[i] = p[i] == 1 ? 0 : acc
                acc *= p[i]
            }
            return s
        }
        var mergedDims: [Int] = []
        var mergedStrides = [[Int]](repeating: [], count: shapes.count)
        for i in 0..<rank where out[i] != 1 {
            if let last = mergedDims.last,
               (0..<shapes.count).allSatisfy({ mergedStrides[$0].last! == full[$0][i] * out[i] }) {
                mergedDims[mergedDims.count - 1] = last * out[i]
                for k in 0..<shapes.count { mergedStrides[k][mergedStrides[k].count - 1] = full[k][i] }
            } else {
                mergedDims.append(out[i])
                for k in 0..<shapes.count { mergedStrides[k].append(full[k][i]) }
            }
        }
        dims = mergedDims
        strides = mergedStrides
    }

    /// Element offsets of each input at the start of output row `row` (rows = all merged axes but the last).
    @inlinable
    public func rowOffsets(_ row: Int, _ offsets: inout [Int]) {
        var rem = row
        for k in offsets.indices { offsets[k] = 0 }
        var d = dims.count - 2
        while d >= 0 {
            let i = rem % dims[d]
            rem /= dims[d]
            for k in offsets.indices { offsets[k] += i * strides[k][d] }
            d -= 1
        }
    }
}

/// A float binary op the broadcast loop is specialised for; `gradient` names its vector-Jacobian product
/// (`Backward.binary`).
public protocol FloatBinaryOperation {
    static func apply(_ a: Float, _ b: Float) -> Float
    static var gradient: Backward.BinaryOp { get }
}
public enum AddOperation: FloatBinaryOperation {
    @inlinable public static func apply(_ a: Float, _ b: Float) -> Float { a + b }
    public static let gradient = Backward.BinaryOp.add
}
public enum SubOperation: FloatBinaryOperation {
    @inlinable public static func apply(_ a: Float, _ b: Float) -> Float { a - b }
    public static let gradient = Backward.BinaryOp.sub
}
public enum MulOperation: FloatBinaryOperation {
    @inlinable public static func apply(_ a: Float, _ b: Float) -> Float { a * b }
    public static let gradient = Backward.BinaryOp.mul
}
public enum DivOperation: FloatBinaryOperation {
    @inlinable public static func apply(_ a: Float, _ b: Float) -> Float { a / b }
    public static let gradient = Backward.BinaryOp.div
}
public enum PowOperation: FloatBinaryOperation {
    @inlinable public static func apply(_ a: Float, _ b: Float) -> Float {
        b == 2 ? a * a : (b == 0.5 ? a.squareRoot() : Float(Foundation.pow(Double(a), Double(b))))
    }
    public static let gradient = Backward.BinaryOp.pow
}

/// max(a, b) (a on a tie): ONNX Max of two inputs.
public enum MaxOperation: FloatBinaryOperation {
    @inlinable public static func apply(_ a: Float, _ b: Float) -> Float { a >= b ? a : b }
    public static let gradient = Backward.BinaryOp.max
}
/// ONNX PRelu(x = a, slope = b): x < 0 ? slope·x : x.
public enum PReluOperation: FloatBinaryOperation {
    @inlinable public static func apply(_ a: Float, _ b: Float) -> Float { a < 0 ? a * b : a }
    public static let gradient = Backward.BinaryOp.prelu
}

public protocol FloatUnaryFunction {
    func callAsFunction(_ x: Float) -> Float
    /// y[i] = f(x[i]) for i < count (x and y may be the same). Each conforming type implements it by calling
    /// `unaryLoop(self, …)`, which the compiler specialises for that type: a generic call per element would not be.
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int)
}

/// The loop behind `FloatUnaryFunction.run`, specialised at each concrete call site.
@inlinable @inline(__always)
public func unaryLoop<F: FloatUnaryFunction>(_ f: F, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { y[i] = f(x[i]) }
}

public enum BroadcastKernels {
    /// The arithmetic op by value: dispatches once to the loop specialised for it.
    public static func binary(
        _ code: Backward.BinaryOp, _ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>, _ layout: BroadcastLayout,
        into out: UnsafeMutableBufferPointer<Float>
    ) {
        switch code {
        case .add: binary(AddOperation.self, a, b, layout, into: out)
        case .sub: binary(SubOperation.self, a, b, layout, into: out)
        case .mul: binary(MulOperation.self, a, b, layout, into: out)
        case .div: binary(DivOperation.self, a, b, layout, into: out)
        case .pow: binary(PowOperation.self, a, b, layout, into: out)
        case .max: binary(MaxOperation.self, a, b, layout, into: out)
        case .prelu: binary(PReluOperation.self, a, b, layout, into: out)
        }
    }

    /// io[i] = op(io[i], b) (or op(b, io[i]) when `chainIsLeft` is false) over `count` elements, b contiguous
    /// (`stride` 1) or one value (`stride` 0): one stage of an elementwise chain, specialised per op.
    public static func stage(
        _ code: Backward.BinaryOp, _ io: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, stride: Int,
        chainIsLeft: Bool, count: Int
    ) {
        switch code {
        case .add: stage(AddOperation.self, io, b, stride, chainIsLeft, count)
        case .sub: stage(SubOperation.self, io, b, stride, chainIsLeft, count)
        case .mul: stage(MulOperation.self, io, b, stride, chainIsLeft, count)
        case .div: stage(DivOperation.self, io, b, stride, chainIsLeft, count)
        case .pow: stage(PowOperation.self, io, b, stride, chainIsLeft, count)
        case .max: stage(MaxOperation.self, io, b, stride, chainIsLeft, count)
        case .prelu: stage(PReluOperation.self, io, b, stride, chainIsLeft, count)
        }
    }

    @inlinable @inline(__always)
    static func stage<Op: FloatBinaryOperation>(
        _ op: Op.Type, _ io: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ stride: Int, _ chainIsLeft: Bool,
        _ count: Int
    ) {
        if stride == 0 {
            let v = b[0]
            if chainIsLeft {
                for i in 0..<count { io[i] = Op.apply(io[i], v) }
            } else {
                for i in 0..<count { io[i] = Op.apply(v, io[i]) }
            }
        } else if chainIsLeft {
            for i in 0..<count { io[i] = Op.apply(io[i], b[i]) }
        } else {
            for i in 0..<count { io[i] = Op.apply(b[i], io[i]) }
        }
    }

    /// out = Op(a, b) with broadcasting; `out` holds `layout.count` elements.
    @inlinable
    public static func binary<Op: FloatBinaryOperation>(
        _ op: Op.Type, _ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>, _ layout: BroadcastLayout,
        into out: UnsafeMutableBufferPointer<Float>
    ) {
        guard layout.count > 0, let pa = a.baseAddress, let pb = b.baseAddress, let po = out.baseAddress else { return }
        guard let inner = layout.dims.last else {
            po[0] = Op.apply(pa[0], pb[0])
            return
        }
        let sa = layout.strides[0].last!, sb = layout.strides[1].last!
        let rows = layout.count / inner
        parallelChunks(rows, work: layout.count) { range in
            var offsets = [0, 0]
            for row in range {
                layout.rowOffsets(row, &offsets)
                let x = pa + offsets[0], y = pb + offsets[1], o = po + row * inner
                if sa == 1 && sb == 1 {
                    for i in 0..<inner { o[i] = Op.apply(x[i], y[i]) }
                } else if sa == 1 && sb == 0 {
                    let v = y[0]
                    for i in 0..<inner { o[i] = Op.apply(x[i], v) }
                } else if sa == 0 && sb == 1 {
                    let v = x[0]
                    for i in 0..<inner { o[i] = Op.apply(v, y[i]) }
                } else {
                    for i in 0..<inner { o[i] = Op.apply(x[i * sa], y[i * sb]) }
                }
            }
        }
    }

    /// out[i] = f(x[i]) over contiguous buffers (in place when they are the same).
    @inlinable
    public static func map<F: FloatUnaryFunction>(_ f: F, _ x: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>) {
        guard let px = x.baseAddress, let po = out.baseAddress else { return }
        parallelChunks(x.count, work: x.count * 4) { range in
            f.run(px + range.lowerBound, po + range.lowerBound, count: range.count)
        }
    }

    /// A generic broadcast over any element types (integer shape arithmetic, comparisons, Where): not a hot path.
    @inlinable
    public static func generic<A, B, R>(_ a: [A], _ b: [B], _ layout: BroadcastLayout, _ f: (A, B) -> R) -> [R] {
        var result = [R]()
        result.reserveCapacity(layout.count)
        guard layout.count > 0 else { return result }
        guard let inner = layout.dims.last else { return [f(a[0], b[0])] }
        let sa = layout.strides[0].last!, sb = layout.strides[1].last!
        var offsets = [0, 0]
        for row in 0..<(layout.count / inner) {
            layout.rowOffsets(row, &offsets)
            for i in 0..<inner { result.append(f(a[offsets[0] + i * sa], b[offsets[1] + i * sb])) }
        }
        return result
    }

    /// Where(c, x, y) with broadcasting over three inputs.
    @inlinable
    public static func select<T>(_ c: [Bool], _ x: [T], _ y: [T], _ layout: BroadcastLayout) -> [T] {
        var result = [T]()
        result.reserveCapacity(layout.count)
        guard layout.count > 0 else { return result }
        guard let inner = layout.dims.last else { return [c[0] ? x[0] : y[0]] }
        let s = layout.strides.map { $0.last! }
        var offsets = [0, 0, 0]
        for row in 0..<(layout.count / inner) {
            layout.rowOffsets(row, &offsets)
            for i in 0..<inner {
                result.append(c[offsets[0] + i * s[0]] ? x[offsets[1] + i * s[1]] : y[offsets[2] + i * s[2]])
            }
        }
        return result
    }

    /// `values` of `shape` broadcast to `layout.shape` (Expand).
    @inlinable
    public static func expand<T>(_ values: [T], _ layout: BroadcastLayout) -> [T] {
        var result = [T]()
        result.reserveCapacity(layout.count)
        guard layout.count > 0 else { return result }
        guard let inner = layout.dims.last else { return [values[0]] }
        let s = layout.strides[0].last!
        var offsets = [0]
        for row in 0..<(layout.count / inner) {
            layout.rowOffsets(row, &offsets)
            if s == 1 {
                result.append(contentsOf: values[offsets[0]..<(offsets[0] + inner)])
            } else {
                for i in 0..<inner { result.append(values[offsets[0] + i * s]) }
            }
        }
        return result
    }
}
