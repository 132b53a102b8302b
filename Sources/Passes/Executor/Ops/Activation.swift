import Foundation
import Graph
import Kernels

// Elementwise unary ops, one closure-free pass each (the function is a type the kernel is specialised for):
//
//   Relu max(x, 0)   LeakyRelu x ≥ 0 ? x : αx   Sigmoid 1/(1+e^−x)   Tanh   HardSigmoid max(0, min(1, αx+β))
//   HardSwish x·max(0, min(1, x/6 + ½))   Erf   Gelu (erf or tanh form)   Sqrt   Exp   Neg   Abs   Reciprocal
//   Clip min(max(x, lo), hi)  (opset < 11: attributes min/max; ≥ 11: optional inputs 1 and 2)
//
// Gradients (Backward.relu, …; g = ∂y): Relu g·[x > 0]   LeakyRelu g·(x ≥ 0 ? 1 : α)   Sigmoid g·y(1 − y)
//   Tanh g·(1 − y²)   HardSigmoid g·α·[0 < αx + β < 1]   HardSwish g·(x ≤ −3 ? 0 : x ≥ 3 ? 1 : x/3 + ½)
//   Erf g·2/√π·e^(−x²)   Gelu g·(Φ(x) + x·φ(x)) (tanh form: its derivative)   Sqrt g/(2y)   Exp g·y   Neg −g
//   Abs g·sign(x)   Reciprocal −g·y²   Clip g·[lo ≤ x ≤ hi]. Int64 forms have no gradient; Clip's bounds get none.

struct Relu: FloatUnaryFunction {
    @inlinable func callAsFunction(_ x: Float) -> Float { max(x, 0) }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct LeakyRelu: FloatUnaryFunction {
    let alpha: Float
    @inlinable func callAsFunction(_ x: Float) -> Float { x >= 0 ? x : alpha * x }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct Sigmoid: FloatUnaryFunction {
    @inlinable func callAsFunction(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct Tanh: FloatUnaryFunction {
    @inlinable func callAsFunction(_ x: Float) -> Float { tanhf(x) }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct HardSigmoid: FloatUnaryFunction {
    let alpha: Float, beta: Float
    @inlinable func callAsFunction(_ x: Float) -> Float { max(0, min(1, alpha * x + beta)) }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct HardSwish: FloatUnaryFunction {
    @inlinable func callAsFunction(_ x: Float) -> Float { x * max(0, min(1, x / 6 + 0.5)) }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct Erf: FloatUnaryFunction {
    @inlinable func callAsFunction(_ x: Float) -> Float { Elementwise.erf(x) }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct Gelu: FloatUnaryFunction {
    let tanhApproximation: Bool
    @inlinable func callAsFunction(_ x: Float) -> Float { Elementwise.gelu(x, tanhApproximation: tanhApproximation) }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct Sqrt: FloatUnaryFunction {
    @inlinable func callAsFunction(_ x: Float) -> Float { x.squareRoot() }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct Exp: FloatUnaryFunction {
    @inlinable func callAsFunction(_ x: Float) -> Float { expf(x) }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct Neg: FloatUnaryFunction {
    @inlinable func callAsFunction(_ x: Float) -> Float { -x }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct Abs: FloatUnaryFunction {
    @inlinable func callAsFunction(_ x: Float) -> Float { abs(x) }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct Reciprocal: FloatUnaryFunction {
    @inlinable func callAsFunction(_ x: Float) -> Float { 1 / x }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}
struct Clip: FloatUnaryFunction {
    let lo: Float, hi: Float
    @inlinable func callAsFunction(_ x: Float) -> Float { min(max(x, lo), hi) }
    func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { unaryLoop(self, x, y, count: n) }
}

/// A unary function with its vector-Jacobian product, from the input x or the forward's output y.
protocol DifferentiableUnaryFunction: FloatUnaryFunction {
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>)
    /// The gradient is written with y (the tape keeps the output), else with x (it keeps the input).
    static var readsOutput: Bool { get }
}

extension DifferentiableUnaryFunction {
    static var readsOutput: Bool { false }
}

extension Relu: DifferentiableUnaryFunction {
    static var readsOutput: Bool { true }
    // y = max(x, 0) > 0 exactly where x > 0: the mask read off the output.
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.relu(x: y, gradient: g, dx: dx) }
}
extension LeakyRelu: DifferentiableUnaryFunction {
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.leakyRelu(x: x, alpha: alpha, gradient: g, dx: dx) }
}
extension Sigmoid: DifferentiableUnaryFunction {
    static var readsOutput: Bool { true }
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.sigmoid(y: y, gradient: g, dx: dx) }
}
extension Tanh: DifferentiableUnaryFunction {
    static var readsOutput: Bool { true }
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.tanh(y: y, gradient: g, dx: dx) }
}
extension HardSigmoid: DifferentiableUnaryFunction {
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) {
        Backward.hardSigmoid(x: x, alpha: alpha, beta: beta, gradient: g, dx: dx)
    }
}
extension HardSwish: DifferentiableUnaryFunction {
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.hardSwish(x: x, gradient: g, dx: dx) }
}
extension Erf: DifferentiableUnaryFunction {
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.erf(x: x, gradient: g, dx: dx) }
}
extension Gelu: DifferentiableUnaryFunction {
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) {
        Backward.gelu(x: x, tanhApproximation: tanhApproximation, gradient: g, dx: dx)
    }
}
extension Sqrt: DifferentiableUnaryFunction {
    static var readsOutput: Bool { true }
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.sqrt(y: y, gradient: g, dx: dx) }
}
extension Exp: DifferentiableUnaryFunction {
    static var readsOutput: Bool { true }
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.exp(y: y, gradient: g, dx: dx) }
}
extension Neg: DifferentiableUnaryFunction {
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.neg(gradient: g, dx: dx) }
}
extension Abs: DifferentiableUnaryFunction {
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.abs(x: x, gradient: g, dx: dx) }
}
extension Reciprocal: DifferentiableUnaryFunction {
    static var readsOutput: Bool { true }
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.reciprocal(y: y, gradient: g, dx: dx) }
}
extension Clip: DifferentiableUnaryFunction {
    func backward(x: UnsafeBufferPointer<Float>, y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>,
                  dx: UnsafeMutableBufferPointer<Float>) { Backward.clip(x: x, min: lo, max: hi, gradient: g, dx: dx) }
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

extension UnaryKernel: DifferentiableKernel where F: DifferentiableUnaryFunction {
    var saved: SavedValues { F.readsOutput ? .output : .inputs([0]) }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0)
        guard let y = outputs.first else { throw KernelError("the forward's output is missing") }
        let g = try outputGradient(outputGradients, 0, shape: shape, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 1), buffers) { d in
            guard let dx = d[0] else { return }
            x.withFloatBuffer { xp in
                y.withFloatBuffer { yp in
                    g.withFloatBuffer { gp in
                        // On every core, in chunks; the value the function does not read is a placeholder (empty).
                        parallelChunks(gp.count, work: gp.count) { r in
                            func part(_ b: UnsafeBufferPointer<Float>) -> UnsafeBufferPointer<Float> {
                                b.isEmpty ? b : UnsafeBufferPointer(rebasing: b[r])
                            }
                            function.backward(x: part(xp), y: part(yp), gradient: part(gp),
                                              dx: UnsafeMutableBufferPointer(rebasing: dx[r]))
                        }
                    }
                }
            }
        }
    }
}

enum ActivationOps {
    /// A float op, or with `ints` also an exact int64 one.
    static func unary<F: DifferentiableUnaryFunction & SendableMetatype>(
        _ op: String, since: Int = 1, ints: (@Sendable (Int64) -> Int64)? = nil, _ make: @escaping @Sendable (OpContext) throws -> F
    ) -> Operator {
        Operator(op, versions: since...Operator.newestOpset, hasGradient: true) { ctx in
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
    static let clip6 = Operator("Clip", versions: 1...10, hasGradient: true) { ctx in
        let x = try ctx.floatInput(0)
        let clip = Clip(lo: ctx.float("min", default: -.greatestFiniteMagnitude), hi: ctx.float("max", default: .greatestFiniteMagnitude))
        return Prepared([TensorSpec(.float, x.shape)], UnaryKernel(function: clip, shape: x.shape))
    }
    static let clip11 = Operator("Clip", versions: 11...Operator.newestOpset, hasGradient: true) { ctx in
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
