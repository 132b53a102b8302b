import Foundation
import Graph
import Kernels

// Elementwise unary ops, one closure-free pass each (the function is a type the kernel is specialised for):
//
//   Relu max(x, 0)   LeakyRelu x ≥ 0 ? x : αx   Sigmoid 1/(1+e^−x)   Tanh   HardSigmoid max(0, min(1, αx+β))
//   HardSwish x·max(0, min(1, x/6 + ½))   Erf   Gelu (erf or tanh form)   Sqrt   Exp   Neg   Abs   Reciprocal
//   Clip min(max(x, lo), hi)  (opset < 11: attributes min/max; ≥ 11: optional inputs 1 and 2)

struct Relu: FloatUnaryFunction { @inlinable func callAsFunction(_ x: Float) -> Float { max(x, 0) } }
struct LeakyRelu: FloatUnaryFunction {
    let alpha: Float
    @inlinable func callAsFunction(_ x: Float) -> Float { x >= 0 ? x : alpha * x }
}
struct Sigmoid: FloatUnaryFunction { @inlinable func callAsFunction(_ x: Float) -> Float { 1 / (1 + expf(-x)) } }
struct Tanh: FloatUnaryFunction { @inlinable func callAsFunction(_ x: Float) -> Float { tanhf(x) } }
struct HardSigmoid: FloatUnaryFunction {
    let alpha: Float, beta: Float
    @inlinable func callAsFunction(_ x: Float) -> Float { max(0, min(1, alpha * x + beta)) }
}
struct HardSwish: FloatUnaryFunction { @inlinable func callAsFunction(_ x: Float) -> Float { x * max(0, min(1, x / 6 + 0.5)) } }
struct Erf: FloatUnaryFunction { @inlinable func callAsFunction(_ x: Float) -> Float { Elementwise.erf(x) } }
struct Gelu: FloatUnaryFunction {
    let tanhApproximation: Bool
    @inlinable func callAsFunction(_ x: Float) -> Float { Elementwise.gelu(x, tanhApproximation: tanhApproximation) }
}
struct Sqrt: FloatUnaryFunction { @inlinable func callAsFunction(_ x: Float) -> Float { x.squareRoot() } }
struct Exp: FloatUnaryFunction { @inlinable func callAsFunction(_ x: Float) -> Float { expf(x) } }
struct Neg: FloatUnaryFunction { @inlinable func callAsFunction(_ x: Float) -> Float { -x } }
struct Abs: FloatUnaryFunction { @inlinable func callAsFunction(_ x: Float) -> Float { abs(x) } }
struct Reciprocal: FloatUnaryFunction { @inlinable func callAsFunction(_ x: Float) -> Float { 1 / x } }
struct Clip: FloatUnaryFunction {
    let lo: Float, hi: Float
    @inlinable func callAsFunction(_ x: Float) -> Float { min(max(x, lo), hi) }
}

/// A unary float op: output of the input's shape through `function`.
struct UnaryKernel<F: FloatUnaryFunction>: OpKernel {
    let function: F
    let shape: [Int]
    func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
        let x = try inputs.required(0)
        let count = shape.reduce(1, *)
        let y = pooledOutput(shape, buffers) { out in
            x.withFloatPointer { BroadcastKernels.map(function, UnsafeBufferPointer(start: $0, count: count),
                                                      into: UnsafeMutableBufferPointer(start: out, count: count)) }
        }
        return [y]
    }
}

/// A unary op on int64 elements (exact; not a hot path).
struct IntUnaryKernel: OpKernel {
    let function: @Sendable (Int64) -> Int64
    func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
        let x = try inputs.required(0)
        return [DenseTensor(shape: x.shape, ints: x.ints.map(function))]
    }
}

enum ActivationOps {
    /// A float op, or with `ints` also an exact int64 one.
    static func unary<F: FloatUnaryFunction>(
        _ op: String, since: Int = 1, ints: (@Sendable (Int64) -> Int64)? = nil, _ make: @escaping @Sendable (OpContext) throws -> F
    ) -> Operator {
        Operator(op, versions: since...Operator.newestOpset) { ctx in
            let x = try ctx.input(0)
            if x.kind == .int64, let ints { return Prepared([TensorSpec(.int64, x.shape)], IntUnaryKernel(function: ints)) }
            guard x.kind == .float else { throw KernelError("input of \(x.kind.rawValue) elements; \(op) runs on float") }
            return Prepared([TensorSpec(.float, x.shape)], UnaryKernel(function: try make(ctx), shape: x.shape))
        }
    }

    static let relu = unary("Relu") { _ in Relu() }
    static let leakyRelu = unary("LeakyRelu") { LeakyRelu(alpha: $0.float("alpha", default: 0.01)) }
    static let sigmoid = unary("Sigmoid") { _ in Sigmoid() }
    static let tanh = unary("Tanh") { _ in Tanh() }
    static let hardSigmoid = unary("HardSigmoid") {
        HardSigmoid(alpha: $0.float("alpha", default: 0.2), beta: $0.float("beta", default: 0.5))
    }
    static let hardSwish = unary("HardSwish", since: 14) { _ in HardSwish() }
    static let erf = unary("Erf", since: 9) { _ in Erf() }
    static let gelu = unary("Gelu", since: 20) { ctx in
        let mode = ctx.string("approximate", default: "none")
        guard mode == "none" || mode == "tanh" else { throw KernelError("approximate \(mode) is not none or tanh") }
        return Gelu(tanhApproximation: mode == "tanh")
    }
    static let sqrt = unary("Sqrt") { _ in Sqrt() }
    static let exp = unary("Exp") { _ in Exp() }
    static let neg = unary("Neg", ints: { 0 &- $0 }) { _ in Neg() }
    static let abs = unary("Abs", ints: { $0 < 0 ? 0 &- $0 : $0 }) { _ in Abs() }
    static let reciprocal = unary("Reciprocal") { _ in Reciprocal() }
    static let clip6 = Operator("Clip", versions: 1...10) { ctx in
        let x = try ctx.floatInput(0)
        let clip = Clip(lo: ctx.float("min", default: -.greatestFiniteMagnitude), hi: ctx.float("max", default: .greatestFiniteMagnitude))
        return Prepared([TensorSpec(.float, x.shape)], UnaryKernel(function: clip, shape: x.shape))
    }
    static let clip11 = Operator("Clip", versions: 11...Operator.newestOpset) { ctx in
        let x = try ctx.input(0)
        if x.kind == .int64 {
            let lo = try ctx.constantInts(1, what: "min")?.first.map(Int64.init) ?? .min
            let hi = try ctx.constantInts(2, what: "max")?.first.map(Int64.init) ?? .max
            return Prepared([TensorSpec(.int64, x.shape)], IntUnaryKernel { min(max($0, lo), hi) })
        }
        guard x.kind == .float else { throw KernelError("input of \(x.kind.rawValue) elements; Clip runs on float and int64") }
        func bound(_ i: Int, _ name: String) throws -> Float? {
            guard let values = try ctx.constantFloats(i, what: name) else { return nil }
            guard values.count == 1 else { throw KernelError("\(name) must be a scalar, has \(values.count) values") }
            return values[0]
        }
        let clip = Clip(lo: try bound(1, "min") ?? -.infinity, hi: try bound(2, "max") ?? .infinity)
        return Prepared([TensorSpec(.float, x.shape)], UnaryKernel(function: clip, shape: x.shape))
    }
}
