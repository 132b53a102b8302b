import Foundation
import Graph
import Kernels

// The executor's op registry: one `Operator` per (domain, op type, since-version).
//
//   Operator.prepare(OpContext)      attributes read and checked, output shapes inferred, before any data runs
//       └─▶ Prepared(outputs, kernel)
//   kernel.forward(inputs, buffers)  one batch, through Kernels
//   kernel as DifferentiableKernel   the gradient slot (vector-Jacobian product) retraining calls
//
// Adding an op: write `Ops/<Family>.swift` with a `static let` Operator, and add it to `OperatorRegistry.standard`.

/// What the executor knows of a value before any data runs: element kind, shape, and its contents when they do not
/// depend on the inputs (initializers, Constant nodes, shape arithmetic folded at plan time).
public struct TensorSpec: Sendable {
    public enum Kind: String, Sendable { case float, int64, bool }
    public var kind: Kind
    public var shape: [Int]
    public var constant: DenseTensor?

    public init(_ kind: Kind, _ shape: [Int], constant: DenseTensor? = nil) {
        self.kind = kind
        self.shape = shape
        self.constant = constant
    }
    public init(constant: DenseTensor) {
        switch constant.elements {
        case .float, .floatView: kind = .float
        case .int64: kind = .int64
        case .bool: kind = .bool
        }
        shape = constant.shape
        self.constant = constant
    }
    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
}

/// What `prepare` sees of one node: its attributes, the opset, and the specs of its inputs (nil: absent optional).
public struct OpContext {
    public let node: Node
    public let opset: Int
    public let inputs: [TensorSpec?]

    public init(node: Node, opset: Int, inputs: [TensorSpec?]) {
        self.node = node
        self.opset = opset
        self.inputs = inputs
    }

    public var inputCount: Int { inputs.count }

    /// A required input.
    public func input(_ i: Int) throws -> TensorSpec {
        guard i < inputs.count, let spec = inputs[i] else { throw KernelError("input \(i) is required but missing") }
        return spec
    }
    /// An optional input (absent or empty name: nil).
    public func optionalInput(_ i: Int) -> TensorSpec? { i < inputs.count ? inputs[i] : nil }

    /// A required float input.
    public func floatInput(_ i: Int) throws -> TensorSpec {
        let spec = try input(i)
        guard spec.kind == .float else { throw KernelError("input \(i) must be float, not \(spec.kind.rawValue)") }
        return spec
    }

    /// The values of an input that must be known before the data runs (a shape, axes, pads): an error otherwise.
    public func constantInts(_ i: Int, what: String) throws -> [Int]? {
        guard let spec = optionalInput(i) else { return nil }
        guard let c = spec.constant else {
            throw KernelError("the \(what) (input \(i)) is computed from the data at run time; only constant \(what) run")
        }
        try Self.checkListLength(c.count, "the \(what) (input \(i))")
        return try c.ints.map { v in
            guard let n = Int(exactly: v) else { throw KernelError("\(what) value \(v) is out of range") }
            return n
        }
    }
    public func constantFloats(_ i: Int, what: String) throws -> [Float]? {
        guard let spec = optionalInput(i) else { return nil }
        guard let c = spec.constant else {
            throw KernelError("the \(what) (input \(i)) is computed from the data at run time; only a constant \(what) runs")
        }
        try Self.checkListLength(c.count, "the \(what) (input \(i))")
        return c.floats
    }

    /// The range an integer attribute may take: far beyond any real axis, size, stride or pad, and small enough
    /// that sums and products of a few of them with a dim stay far from Int's bounds.
    public static let attributeRange = -(1 << 40) + 1...(1 << 40) - 1

    public func int(_ name: String, default value: Int) throws -> Int {
        guard let raw = node.int(name) else { return value }
        guard let v = Int(exactly: raw), Self.attributeRange.contains(v) else {
            throw KernelError("attribute \(name) = \(raw) is out of range")
        }
        return v
    }
    public func ints(_ name: String) throws -> [Int]? {
        guard let raw = node.ints(name) else { return nil }
        try Self.checkListLength(raw.count, "attribute \(name)")
        return try raw.map { r in
            guard let v = Int(exactly: r), Self.attributeRange.contains(v) else {
                throw KernelError("attribute \(name) value \(r) is out of range")
            }
            return v
        }
    }
    /// The most values a list the executor reads takes (axes, pads, starts, a shape: at most a few per axis), so no
    /// message or loop ever spends its time on a list of millions.
    public static let listLimit = 1024

    static func checkListLength(_ count: Int, _ what: String) throws {
        guard count <= listLimit else {
            throw KernelError("\(what) holds \(count) values; a list of values per axis holds at most \(listLimit)")
        }
    }

    public func float(_ name: String, default value: Float) -> Float { node.float(name) ?? value }
    public func string(_ name: String, default value: String) -> String { node.string(name) ?? value }

    /// The axis attribute or value normalized against `rank`: one of the input's axes (a scalar has none), so the
    /// op can index its shape with it.
    public func axis(_ raw: Int, rank: Int) throws -> Int {
        let a = raw < 0 ? raw + rank : raw
        guard (0..<rank).contains(a) else { throw KernelError("axis \(raw) is out of range for rank \(rank)") }
        return a
    }
}

/// An op with its attributes settled and its output shapes known: runs one batch.
public protocol OpKernel {
    func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor]
}

/// The gradient slot: a kernel that can be trained through gives the gradients of its inputs from those of its outputs
/// (the vector-Jacobian product), using the backward kernels of `Kernels` (Backward*.swift).
public protocol DifferentiableKernel: OpKernel {
    /// For each input i with `needs[i]`, the gradient of the loss with respect to it, a float tensor of the input's
    /// shape (nil where not needed, or where the input is not differentiable: an int64 shape, a condition).
    /// `inputs` and `outputs` are the values of the forward run; `outputGradients[k]` is nil when nothing downstream
    /// reads output k (read it as zeros).
    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?]
    /// What `backward` reads of the forward run; the others reach it as placeholders (their shape, no elements), and
    /// the training tape does not keep them. Default: every input and output.
    var saved: SavedValues { get }
}

extension DifferentiableKernel {
    public var saved: SavedValues { .all }
}

/// The values of a forward step its backward reads: inputs by position, and whether the outputs.
public struct SavedValues: Sendable {
    /// nil: every input.
    public var inputs: Set<Int>?
    public var outputs: Bool

    public static let all = SavedValues(inputs: nil, outputs: true)
    public static let none = SavedValues(inputs: [], outputs: false)
    public static func inputs(_ i: Set<Int>) -> SavedValues { SavedValues(inputs: i, outputs: false) }
    public static let output = SavedValues(inputs: [], outputs: true)

    public func readsInput(_ k: Int) -> Bool { inputs?.contains(k) ?? true }
}

/// The result of `prepare`: output specs and the kernel that computes them.
public struct Prepared {
    public var outputs: [TensorSpec]
    public var kernel: any OpKernel
    /// Output 0 is input 0's storage under another shape (Reshape, Flatten, Identity, …): no copy.
    public var aliasesInput: Bool
    public init(_ outputs: [TensorSpec], _ kernel: any OpKernel, aliasesInput: Bool = false) {
        self.outputs = outputs
        self.kernel = kernel
        self.aliasesInput = aliasesInput
    }
}

/// One op of the registry.
public struct Operator: Sendable {
    public let domain: String
    public let opType: String
    /// The opsets this entry implements: its since-version up to the next change of meaning (or the newest known).
    public let versions: ClosedRange<Int>
    /// Whether retraining can pass gradients through it.
    public let hasGradient: Bool
    public let prepare: @Sendable (OpContext) throws -> Prepared

    public init(_ opType: String, domain: String = "", versions: ClosedRange<Int>, hasGradient: Bool = false,
                prepare: @escaping @Sendable (OpContext) throws -> Prepared) {
        self.domain = domain
        self.opType = opType
        self.versions = versions
        self.hasGradient = hasGradient
        self.prepare = prepare
    }

    /// The newest default-domain opset the registry's ranges reach (the onnx release the tests use).
    public static let newestOpset = 28
}

/// The operators the executor runs, looked up by domain, op type and the model's opset for that domain.
public struct OperatorRegistry: Sendable {
    public private(set) var operators: [Operator] = []
    private var byName: [String: [Operator]] = [:]

    public init(_ operators: [Operator]) {
        for op in operators { register(op) }
    }

    public mutating func register(_ op: Operator) {
        operators.append(op)
        byName[Self.key(op.domain, op.opType), default: []].append(op)
    }

    public func lookup(domain: String, opType: String, opset: Int) -> Operator? {
        byName[Self.key(domain, opType)]?.first { $0.versions.contains(opset) }
    }
    /// Every version range registered for an op (for error messages).
    public func versions(domain: String, opType: String) -> [ClosedRange<Int>] {
        byName[Self.key(domain, opType)]?.map(\.versions) ?? []
    }

    private static func key(_ domain: String, _ op: String) -> String {
        (domain == "ai.onnx" ? "" : domain) + "::" + op
    }

    /// Every op of the executor: one line each.
    public static let standard = OperatorRegistry([
        // Convolution and matrix products (Ops/Conv.swift, Ops/MatMul.swift)
        ConvOps.conv, ConvOps.convTranspose, MatMulOps.gemm, MatMulOps.matMul,
        // Normalization (Ops/Normalization.swift)
        NormalizationOps.batchNormalization, NormalizationOps.layerNormalization,
        NormalizationOps.softmax1, NormalizationOps.softmax13, NormalizationOps.lrn,
        // Pooling (Ops/Pool.swift)
        PoolOps.maxPool, PoolOps.averagePool, PoolOps.globalAveragePool, PoolOps.globalMaxPool,
        // Elementwise unary (Ops/Activation.swift)
        ActivationOps.relu, ActivationOps.leakyRelu, ActivationOps.sigmoid, ActivationOps.tanh,
        ActivationOps.hardSigmoid, ActivationOps.hardSwish, ActivationOps.erf, ActivationOps.gelu,
        ActivationOps.sqrt, ActivationOps.exp, ActivationOps.neg, ActivationOps.abs, ActivationOps.reciprocal,
        ActivationOps.clip6, ActivationOps.clip11,
        // Elementwise binary and logic (Ops/Binary.swift)
        BinaryOps.add, BinaryOps.sub, BinaryOps.mul, BinaryOps.div, BinaryOps.pow, BinaryOps.max, BinaryOps.prelu,
        BinaryOps.equal, BinaryOps.less, BinaryOps.greater, BinaryOps.where_,
        // Reductions (Ops/Reduce.swift)
        ReduceOps.reduceMean1, ReduceOps.reduceMean18,
        // Shape and data movement (Ops/Shape.swift, Ops/Gather.swift)
        ShapeOpsRegistry.identity, ShapeOpsRegistry.dropout, ShapeOpsRegistry.flatten, ShapeOpsRegistry.reshape,
        ShapeOpsRegistry.squeeze1, ShapeOpsRegistry.squeeze13, ShapeOpsRegistry.unsqueeze1, ShapeOpsRegistry.unsqueeze13,
        ShapeOpsRegistry.transpose, ShapeOpsRegistry.concat, ShapeOpsRegistry.split2, ShapeOpsRegistry.split13,
        ShapeOpsRegistry.slice10, ShapeOpsRegistry.shape, ShapeOpsRegistry.expand, ShapeOpsRegistry.pad2, ShapeOpsRegistry.pad11,
        ShapeOpsRegistry.cast, GatherOps.gather, GatherOps.range,
        // Constants (Ops/Constant.swift)
        ConstantOps.constant, ConstantOps.constantOfShape,
        // Resampling (Ops/Resize.swift)
        ResizeOps.resize11,
    ])
}

extension OperatorRegistry {
    /// One line per entry: domain, op, opsets, gradient.
    public var table: String {
        var lines = ["\("OP".padding(toLength: 24, withPad: " ", startingAt: 0)) \("OPSETS".padding(toLength: 8, withPad: " ", startingAt: 0)) GRADIENT"]
        for op in operators.sorted(by: { ($0.domain, $0.opType, $0.versions.lowerBound) < ($1.domain, $1.opType, $1.versions.lowerBound) }) {
            let name = (op.domain.isEmpty ? "" : op.domain + ".") + op.opType
            let range = op.versions.upperBound == Operator.newestOpset ? "\(op.versions.lowerBound)+" : "\(op.versions.lowerBound)-\(op.versions.upperBound)"
            lines.append("\(name.padding(toLength: 24, withPad: " ", startingAt: 0)) \(range.padding(toLength: 8, withPad: " ", startingAt: 0)) \(op.hasGradient ? "yes" : "no")")
        }
        return lines.joined(separator: "\n")
    }
}

extension GraphExecutor.Profile {
    /// Adds another run's times and calls.
    mutating func add(_ other: Self) {
        for (op, s) in other.seconds { seconds[op, default: 0] += s }
        for (op, c) in other.calls { calls[op, default: 0] += c }
        planSeconds += other.planSeconds
    }

    /// Time by op type, slowest first, with its share of the total.
    public var table: String {
        let total = seconds.values.reduce(0, +)
        let width = max(24, min(60, seconds.keys.map(\.count).max() ?? 0))
        func row(_ op: String, _ calls: String, _ s: Double, _ share: String) -> String {
            op.padding(toLength: width, withPad: " ", startingAt: 0) + String(repeating: " ", count: max(0, 7 - calls.count)) + calls
                + String(format: " %10.4f ", s) + share
        }
        var lines = ["OP".padding(toLength: width, withPad: " ", startingAt: 0) + "  CALLS    SECONDS  SHARE"]
        for (op, s) in seconds.sorted(by: { $0.value > $1.value }) {
            lines.append(row(op, "\(calls[op] ?? 0)", s, String(format: "%5.1f%%", total > 0 ? 100 * s / total : 0)))
        }
        lines.append(row("total (ops)", "", total, ""))
        lines.append(row("plan", "", planSeconds, ""))
        return lines.joined(separator: "\n") + "\n"
    }
}
