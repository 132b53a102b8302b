import Graph

// Per-op channel rules (SEMANTICS §5): how channels flow through each op, and how a node that follows them loses
// channels, one entry per op family, as Torch-Pruning keeps a dependency rule and a pruner (`prune_out_channels`,
// `prune_in_channels`) per layer type. ChannelCoupling.analyse runs the `flow` halves; FilterPruningPass the `prune`s.
//
//   Conv_a ─▶ BN ─▶ Relu ─▶ Conv_b
//   flow:   Conv_a starts [g0:64]; BN: dependent .follows, output [g0:64]; Relu: [g0:64]; Conv_b: dependent .reads
//   prune:  g0 keeps 48 → BN inputs 1-4 on axis 0 (64 → 48); Conv_b input 1 on its input-channel axis (64 → 48)
//
// A rule's `flow` sees a node that reads mapped channels (a ChannelStep: the node, its mapped inputs and their maps)
// and returns the map of its output 0, or nil when the channels end there (a consumer) or are blocked; on the way it
// records the node as a dependent, unites groups (a residual Add) or blocks them with a reason. Its `prune` says how
// a dependent it recorded loses channels: which inputs shrink on which axis, and whether `group` follows (depthwise).
// An op without a rule (or of another domain) blocks every group it reads. Supporting an op is one entry in
// `ChannelRuleTable.standard`; weight axes and biases come from Layer (Layers.swift), never from a rule.

/// The channel map of a value: which axis holds its channels, its rank, and the segments along that axis.
public struct ChannelMap: Sendable, Hashable {
    public var axis: Int
    public var rank: Int
    public var segments: [ChannelSegment]
    public init(axis: Int, rank: Int, segments: [ChannelSegment]) {
        self.axis = axis
        self.rank = rank
        self.segments = segments
    }
    public var channels: Int { segments.reduce(0) { $0 + $1.count } }
}

/// How a dependent loses channels: the inputs of its node that shrink, each on its axis (in this order), and whether
/// the node's `group` attribute becomes the number of channels kept.
public struct ChannelEdit: Sendable, Hashable {
    public struct Input: Sendable, Hashable {
        public var index: Int
        public var axis: Int
        public init(_ index: Int, axis: Int) {
            self.index = index
            self.axis = axis
        }
    }
    public var inputs: [Input]
    public var setsGroup: Bool
    public init(_ inputs: [Input], setsGroup: Bool = false) {
        self.inputs = inputs
        self.setsGroup = setsGroup
    }
}

/// What a rule sees of one node that reads mapped channels, and what it records there.
public struct ChannelStep {
    public let graph: Graph
    public let id: NodeID
    public let node: Node
    /// Every input that carries mapped channels, in input order: its index and its map (at least one).
    public let mapped: [(input: Int, map: ChannelMap)]
    /// Declared shapes by value name (value_info, graph inputs and outputs).
    public let declared: [String: Shape]

    enum Effect {
        case block([ChannelSegment], String)
        case unite(Int, Int)
    }
    private(set) var effects: [Effect] = []
    /// The dependent this node is, if the rule recorded one (it follows the segments of the first mapped input).
    public private(set) var dependent: ChannelDependent.Kind?

    init(graph: Graph, id: NodeID, mapped: [(input: Int, map: ChannelMap)], declared: [String: Shape]) {
        self.graph = graph
        self.id = id
        self.node = graph[id]
        self.mapped = mapped
        self.declared = declared
    }

    /// The map of the first mapped input.
    public var first: ChannelMap { mapped[0].map }
    public var name: String { node.displayName }
    /// The channels come in on input 0 only (the data input), not on a parameter.
    public var readsDataInputOnly: Bool { mapped.count == 1 && mapped[0].input == 0 }
    /// The map of input `index`, when it carries mapped channels.
    public func map(ofInput index: Int) -> ChannelMap? { mapped.first { $0.input == index }?.map }

    /// Blocks the groups of `segments` (default: the first mapped input's) with `reason`; nil, so a rule can return it.
    public mutating func block(_ reason: String, _ segments: [ChannelSegment]? = nil) -> ChannelMap? {
        effects.append(.block(segments ?? first.segments, reason))
        return nil
    }
    /// Blocks the groups of every mapped input.
    public mutating func blockAll(_ reason: String) -> ChannelMap? { block(reason, mapped.flatMap(\.map.segments)) }
    /// What a node its rule does not cover does: blocks every group it reads.
    public mutating func cannotFollow() -> ChannelMap? {
        blockAll("\(node.op) at '\(name)' (channels cannot follow through it)")
    }
    /// Makes two groups one (channels added to each other must be pruned together).
    public mutating func unite(_ a: Int, _ b: Int) { effects.append(.unite(a, b)) }
    /// Records this node as a dependent of the first mapped input's groups.
    public mutating func depend(_ kind: ChannelDependent.Kind) { dependent = kind }
}

/// One op family's rule: how channels flow through its nodes and how a dependent it recorded loses channels.
public struct ChannelRule: Sendable {
    /// The map of the node's output 0, or nil when the channels end here or are blocked.
    public let flow: @Sendable (inout ChannelStep) throws -> ChannelMap?
    /// How a node this rule recorded as a dependent (with this kind) loses channels; nil for a rule that records none.
    public let prune: (@Sendable (Node, ChannelDependent.Kind) throws -> ChannelEdit)?

    public init(flow: @escaping @Sendable (inout ChannelStep) throws -> ChannelMap?,
                prune: (@Sendable (Node, ChannelDependent.Kind) throws -> ChannelEdit)? = nil) {
        self.flow = flow
        self.prune = prune
    }
}

/// The channel rules by op type (default ONNX domain).
public struct ChannelRuleTable: Sendable {
    private var rules: [String: ChannelRule] = [:]

    public init(_ entries: [(ops: [String], rule: ChannelRule)]) {
        for (ops, rule) in entries {
            for op in ops { register(op, rule) }
        }
    }

    /// Adds or replaces the rule of an op type.
    public mutating func register(_ op: String, _ rule: ChannelRule) { rules[op] = rule }

    /// The rule of a node's op; nil for an op without one or of another domain.
    public func rule(for node: Node) -> ChannelRule? { node.isDefaultDomain ? rules[node.op] : nil }

    /// The op types that have a rule.
    public var ops: [String] { rules.keys.sorted() }

    /// Every op channels can follow through: one entry per op family.
    public static let standard = ChannelRuleTable([
        (ChannelRules.unaryOps, ChannelRules.unary),
        (["Pad"], ChannelRules.pad),
        (["Resize"], ChannelRules.resize),
        (["BatchNormalization"], ChannelRules.normalization(parameters: ["scale", "B", "input_mean", "input_var"])),
        (["InstanceNormalization"], ChannelRules.normalization(parameters: ["scale", "B"])),
        (["PRelu"], ChannelRules.broadcastParameter(input: 1, role: "slope")),
        (["Conv"], ChannelRules.conv),
        (["ConvTranspose"], ChannelRules.convTranspose),
        (["Gemm"], ChannelRules.gemm),
        (["MatMul"], ChannelRules.matMul),
        (["Add", "Sub", "Mul", "Div", "Max", "Min"], ChannelRules.elementwise),
        (["Concat"], ChannelRules.concat),
        (["Flatten", "Reshape"], ChannelRules.flattenAfterGlobalPool),
    ])
}

/// The rules of `ChannelRuleTable.standard`.
public enum ChannelRules {
    /// Ops that pass channels through unchanged (elementwise on one input, pooling, casts).
    public static let unaryOps = [
        "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Erf", "Gelu", "Elu", "Selu",
        "Softplus", "Abs", "Neg", "Exp", "Sqrt", "Reciprocal", "MaxPool", "AveragePool", "GlobalAveragePool",
        "GlobalMaxPool", "Dropout", "Identity", "Cast",
    ]

    /// A rule that passes the channels of input 0 through, unless `blocks` gives a reason (an op reading the
    /// channels on another input reads them as a parameter and blocks them).
    public static func passThrough(unless blocks: @escaping @Sendable (ChannelStep) -> String? = { _ in nil })
        -> ChannelRule
    {
        ChannelRule { step in
            guard step.readsDataInputOnly else {
                return step.block("\(step.node.op) at '\(step.name)' reads the channels as a parameter")
            }
            if let reason = blocks(step) { return step.block(reason) }
            return step.first
        }
    }

    public static let unary = passThrough()

    /// Pad passes channels through unless it pads the channel axis.
    static let pad = passThrough { s in
        let node = s.node, first = s.first
        let padsInput = node.inputs.count > 1 ? node.inputs[1] : ""
        guard let pads = s.graph.constantTensor(padsInput)?.int64Array ?? node.ints("pads"),
            pads.count == 2 * first.rank, pads[first.axis] != 0 || pads[first.axis + first.rank] != 0
        else { return nil }
        return "Pad at '\(s.name)' pads the channel axis"
    }

    /// Resize passes channels through unless it scales the channel axis.
    static let resize = passThrough { s in
        guard let scales = s.graph.constantTensor(s.node.inputs.count > 2 ? s.node.inputs[2] : ""),
            scales.dataType == .float, case let values = scales.floatArray, values.count > s.first.axis,
            values[s.first.axis] != 1
        else { return nil }
        return "Resize at '\(s.name)' scales the channel axis"
    }

    /// A normalization with one constant per channel in each of `parameters` (inputs 1, 2, …, all [C], on axis 1 of
    /// its input): BatchNormalization, InstanceNormalization. Its output carries the channels; the parameters follow.
    public static func normalization(parameters: [String]) -> ChannelRule {
        ChannelRule(
            flow: { step in
                guard step.readsDataInputOnly else { return step.cannotFollow() }
                let (node, first) = (step.node, step.first)
                guard first.axis == 1 else {
                    return step.block(
                        "\(node.op) at '\(step.name)' normalizes axis 1, not the channel axis \(first.axis)")
                }
                var constant = true
                for (i, role) in parameters.enumerated() {
                    let name = try requiredInput(node, i + 1, role)
                    guard let t = step.graph.constantTensor(name) else {
                        constant = false
                        continue
                    }
                    guard t.dims == [Int64(first.channels)] else {
                        throw PassError(
                            node: step.name,
                            "its \(role) '\(name)' has dims \(t.dims); its input has \(first.channels) channels")
                    }
                }
                guard constant else {
                    return step.block("\(node.op) at '\(step.name)' has parameters that are not constants")
                }
                step.depend(.follows)
                return first
            },
            prune: { _, _ in ChannelEdit(parameters.indices.map { ChannelEdit.Input($0 + 1, axis: 0) }) })
    }

    /// An op with a constant parameter broadcast against its data input (PRelu's slope): the parameter follows the
    /// channels when it has one value per channel.
    public static func broadcastParameter(input: Int, role: String) -> ChannelRule {
        ChannelRule(
            flow: { step in
                guard step.readsDataInputOnly else { return step.cannotFollow() }
                guard let c = step.graph.constantTensor(try requiredInput(step.node, input, role)) else {
                    return step.block("\(step.node.op) at '\(step.name)' has a \(role) that is not a constant")
                }
                return broadcast(&step, constant: c, input: input)
            },
            prune: constantEdit)
    }

    /// A constant input `input` broadcast against the first mapped value: a dependent when it has one value per
    /// channel, nothing when it has one for all; else the channels are blocked.
    static func broadcast(_ step: inout ChannelStep, constant c: Tensor, input: Int) -> ChannelMap? {
        let first = step.first
        let axis = alignedAxis(c.dims.count, valueRank: first.rank, valueAxis: first.axis)
        if axis >= 0 && axis < c.dims.count && c.dims[axis] == Int64(first.channels) {
            step.depend(.constant(input: input, axis: axis))
            return first
        }
        if axis < 0 || (axis < c.dims.count && c.dims[axis] == 1) { return first }
        return step.block("\(step.node.op) at '\(step.name)' has a constant of shape \(c.dims) on the channel axis")
    }

    /// The axis of a tensor of rank `rank` broadcast against a value of rank `valueRank` that lines up with the value's
    /// axis `valueAxis` (numpy broadcasting aligns axes from the right); negative when the tensor has no such axis.
    static func alignedAxis(_ rank: Int, valueRank: Int, valueAxis: Int) -> Int {
        rank - (valueRank - valueAxis)
    }

    /// The edit of a `.constant` dependent: that input on that axis.
    @Sendable static func constantEdit(_ node: Node, _ kind: ChannelDependent.Kind) throws -> ChannelEdit {
        guard case .constant(let input, let axis) = kind else { throw unexpected(kind, node) }
        return ChannelEdit([.init(input, axis: axis)])
    }

    static func unexpected(_ kind: ChannelDependent.Kind, _ node: Node) -> PassError {
        PassError(node: node.displayName, "no channel rule of \(node.op) records a dependent of kind \(kind)")
    }

    /// Conv: a group-1 Conv reads the channels (its weight's input-channel axis shrinks); a depthwise Conv (group =
    /// channels, one input channel per group) passes them through with its weight, bias and group count.
    static let conv = ChannelRule(
        flow: { step in
            guard step.readsDataInputOnly, step.first.axis == 1 else { return step.cannotFollow() }
            let (node, channels) = (step.node, step.first.channels)
            let axes = Layer.channelAxes(.conv, transB: false)
            let group = Int(node.int("group") ?? 1)
            guard let w = step.graph.constantTensor(try requiredInput(node, 1, "weight")) else {
                return step.block("Conv '\(step.name)' reads the channels with a weight that is not a constant")
            }
            if group == 1 {
                try checkConsumerWeight(step, w, axis: axes.input)
                step.depend(.reads)
                return nil
            }
            if group == channels, w.dims.count >= 2, w.dims[axes.input] == 1, w.dims[axes.output] == Int64(channels) {
                step.depend(.follows)
                return step.first
            }
            return step.block("grouped Conv '\(step.name)' (group \(group)) mixes channels across groups")
        },
        prune: { node, kind in
            let axes = Layer.channelAxes(.conv, transB: false)
            switch kind {
            case .reads:
                return ChannelEdit([.init(1, axis: axes.input)])
            case .follows:
                let bias = Layer.bias(of: node) == nil ? nil : Layer.biasInputIndex(.conv)
                let biasEdit = bias.map { [ChannelEdit.Input($0, axis: 0)] } ?? []
                return ChannelEdit([.init(1, axis: axes.output)] + biasEdit, setsGroup: true)
            case .constant:
                throw unexpected(kind, node)
            }
        })

    /// A layer that reads the channels through a constant weight and ends them (ConvTranspose, Gemm, MatMul), when
    /// `applies` holds (the channels on the axis its weight reads); its weight's input-channel axis shrinks.
    public static func consumer(where applies: @escaping @Sendable (ChannelStep) -> Bool) -> ChannelRule {
        ChannelRule(
            flow: { step in
                guard step.readsDataInputOnly, applies(step), let op = Layer.Op(rawValue: step.node.op) else {
                    return step.cannotFollow()
                }
                let w = try step.graph.constantTensor(requiredInput(step.node, 1, "weight"))
                guard let w, op != .matMul || w.dims.count == 2 else {
                    return step.block(
                        "\(step.node.op) '\(step.name)' reads the channels with a weight that is not a constant matrix")
                }
                try checkConsumerWeight(step, w, axis: inputChannelAxis(of: step.node, op))
                step.depend(.reads)
                return nil
            },
            prune: { node, kind in
                guard kind == .reads, let op = Layer.Op(rawValue: node.op) else { throw unexpected(kind, node) }
                return ChannelEdit([.init(1, axis: inputChannelAxis(of: node, op))])
            })
    }

    /// ConvTranspose with group 1 reads channels on axis 1 of its input.
    static let convTranspose = consumer { s in s.first.axis == 1 && (s.node.int("group") ?? 1) == 1 }
    /// Gemm without transA reads them on axis 1 of its [M, K] input.
    static let gemm = consumer { s in s.first.rank == 2 && s.first.axis == 1 && (s.node.int("transA") ?? 0) == 0 }
    /// MatMul reads them on the last axis of its input.
    static let matMul = consumer { s in s.first.axis == s.first.rank - 1 }

    /// The weight axis a layer node reads its input channels on (by op and transB, as Layer says).
    static func inputChannelAxis(of node: Node, _ op: Layer.Op) -> Int {
        Layer.channelAxes(op, transB: (node.int("transB") ?? 0) == 1).input
    }

    /// A consumer's weight must have the channels of its input on `axis`.
    static func checkConsumerWeight(_ step: ChannelStep, _ w: Tensor, axis: Int) throws {
        let channels = step.first.channels
        guard axis < w.dims.count, w.dims[axis] == Int64(channels) else {
            throw PassError(
                node: step.name,
                "its weight '\(step.node.inputs[1])' has dims \(w.dims); its input has \(channels) channels, "
                    + "so axis \(axis) must be \(channels)")
        }
    }

    /// Add/Sub/Mul/Div/Max/Min: two mapped inputs whose segments line up unite their groups; one mapped input and a
    /// constant make the constant a dependent when it has one value per channel.
    static let elementwise = ChannelRule(
        flow: { step in
            guard step.node.inputs.count == 2, step.mapped.count <= 2 else { return step.cannotFollow() }
            let (node, first) = (step.node, step.first)
            if step.mapped.count == 2 {
                let other = step.mapped[1].map
                let (a, b) = (first.segments, other.segments)
                guard a.map(\.count) == b.map(\.count) && first.axis == other.axis else {
                    return step.block("\(node.op) at '\(step.name)' joins tensors whose channels do not line up", a + b)
                }
                for (x, y) in zip(a, b) {
                    if let gx = x.group, let gy = y.group {
                        step.unite(gx, gy)
                    } else if x.group != nil || y.group != nil {
                        let reason = "\(node.op) at '\(step.name)' adds pruned channels to channels that are not pruned"
                        _ = step.block(reason, a + b)
                    }
                }
                return first
            }
            let otherIndex = step.mapped[0].input == 0 ? 1 : 0
            guard let c = step.graph.constantTensor(node.inputs[otherIndex]) else {
                return step.block("\(node.op) at '\(step.name)' joins the channels with a tensor nobody prunes")
            }
            return broadcast(&step, constant: c, input: otherIndex)
        },
        prune: constantEdit)

    /// Concat on the channel axis concatenates the maps of its inputs (an input nobody prunes is a fixed segment).
    static let concat = ChannelRule { step in
        let (node, first) = (step.node, step.first)
        let axis = Int(node.int("axis") ?? 0)
        let normalized = axis < 0 ? axis + first.rank : axis
        guard normalized == first.axis, step.mapped.allSatisfy({ $0.map.axis == first.axis }) else {
            return step.blockAll("Concat at '\(step.name)' on axis \(axis), not the channel axis")
        }
        var segments: [ChannelSegment] = []
        for (i, input) in node.inputs.enumerated() where !input.isEmpty {
            if let m = step.map(ofInput: i) {
                segments += m.segments
            } else if let dims = step.declared[input]?.sizes ?? step.graph.constantTensor(input)?.dims.map(Int.init),
                dims.count == first.rank, dims[first.axis] >= 0
            {
                segments.append(ChannelSegment(group: nil, count: dims[first.axis]))
            } else {
                return step.blockAll("Concat at '\(step.name)' has an input of unknown channel count")
            }
        }
        return ChannelMap(axis: first.axis, rank: first.rank, segments: segments)
    }

    /// Flatten/Reshape to [N, C] right after a global pool (spatial size 1) keeps channel c as feature c.
    static let flattenAfterGlobalPool = ChannelRule { step in
        guard step.readsDataInputOnly else { return step.cannotFollow() }
        let (node, first, graph) = (step.node, step.first, step.graph)
        let fromGlobalPool = graph.producer(of: try requiredInput(node, 0, "data")).map {
            ["GlobalAveragePool", "GlobalMaxPool"].contains(graph[$0].op)
        } ?? false
        if node.op == "Reshape" { _ = try requiredInput(node, 1, "shape") }
        let flattensToBatch: Bool = {
            if node.op == "Flatten" { return (node.int("axis") ?? 1) == 1 }
            guard let shape = graph.constantTensor(node.inputs[1])?.int64Array, shape.count == 2 else { return false }
            return shape[0] == 0 || shape[0] == -1 || shape[1] == -1 || shape[1] == Int64(first.channels)
        }()
        guard fromGlobalPool && first.axis == 1 && flattensToBatch else {
            return step.block("\(node.op) at '\(step.name)' mixes the channel axis with others")
        }
        return ChannelMap(axis: 1, rank: 2, segments: first.segments)
    }
}
