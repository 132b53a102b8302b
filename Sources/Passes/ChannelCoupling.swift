import Graph

// Channel coupling (SEMANTICS §5): which output channels must be pruned together, as a dependency graph in the
// manner of Torch-Pruning's DepGraph. An analysis FilterPruningPass calls; it changes nothing.
//
//   Conv_a ─▶ BN ─▶ Relu ─┬─▶ Conv_b          group {Conv_a out} with dependents BN (params), Conv_b (input axis)
//                         └─▶ Add ◀── Conv_c   and Conv_c's output joins the group (residual Add unites groups)
//
// Every filter-prunable layer (2-D Conv with group 1, Gemm, MatMul) starts a group of its output channels. Each value
// carries a channel map: the segments (group, count) along its channel axis. Walking the graph in order:
// channel-transparent ops pass the map on; BatchNormalization and broadcast constants on C are dependents; a Conv,
// Gemm or MatMul reading the value takes the pruned input channels (weight input axis); a depthwise Conv passes the
// map through and shrinks its group count; Add/Sub/Mul of two mapped values unite their groups segment by segment;
// Concat on the channel axis concatenates maps (an unmapped input is a fixed segment); GlobalAveragePool → Flatten/
// Reshape keeps channel c as feature c. Anything else that reads a mapped value (a graph output, a Reshape that mixes
// C, Split, Slice, Transpose, a shared weight, ...) blocks the groups it touches, and the group keeps the reason.

/// What a pruned group must change besides its producers' output channels.
public struct ChannelDependent: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// BatchNormalization: all four parameters, on axis 0.
        case batchNorm
        /// A Conv/Gemm/MatMul reading the channels: its weight on `axis`.
        case consumerWeight(axis: Int)
        /// A depthwise Conv passing the channels through: weight axis 0, bias, and its group count.
        case depthwise
        /// A constant input of an elementwise op (Add/Sub/Mul/...), on `axis` of that constant.
        case constant(input: Int, axis: Int)
    }
    public var node: NodeID
    public var kind: Kind
}

/// One coupled set of channels.
public struct ChannelGroup: Sendable {
    public var channels: Int
    /// Indices into context.layers of the layers whose output channels these are.
    public var producers: [Int]
    /// Why the group cannot be pruned (the node and the rule), or nil.
    public var blocked: String?
}

/// A segment of a channel map: `count` channels of group `group` (nil: channels nobody prunes).
public struct ChannelSegment: Sendable, Hashable {
    public var group: Int?
    public var count: Int
}

/// The analysis result: groups, and every tensor that follows them with its segments.
public struct ChannelCoupling: Sendable {
    public var groups: [ChannelGroup]
    /// For each dependent, the segments along its channel axis (offset order).
    public var dependents: [ChannelDependent: [ChannelSegment]]
    /// Values whose channel axis changes with the groups (for value_info): value → (axis, segments).
    public var values: [String: (axis: Int, segments: [ChannelSegment])]
}

extension ChannelCoupling {
    /// Ops that pass channels through unchanged (elementwise on one input, pooling, padding off the channel axis).
    static let transparent: Set<String> = [
        "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Erf", "Gelu", "Elu", "Selu", "Softplus",
        "Abs", "Neg", "Exp", "Sqrt", "Reciprocal", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Dropout",
        "Identity", "Cast", "Pad", "Resize",
    ]

    /// The coupling of the graph as it is now (an analysis: computed when needed, never stored on the context).
    public static func analyse(_ graph: Graph, layers: [Layer]) throws -> ChannelCoupling {
        var parent: [Int] = []
        var groups: [ChannelGroup] = []
        func find(_ g: Int) -> Int {
            var g = g
            while parent[g] != g {
                parent[g] = parent[parent[g]]
                g = parent[g]
            }
            return g
        }
        func block(_ segments: [ChannelSegment], _ reason: String) {
            for s in segments { if let g = s.group { let r = find(g); if groups[r].blocked == nil { groups[r].blocked = reason } } }
        }
        func unite(_ a: Int, _ b: Int) {
            let (ra, rb) = (find(a), find(b))
            guard ra != rb else { return }
            parent[rb] = ra
            groups[ra].producers += groups[rb].producers
            if groups[ra].blocked == nil { groups[ra].blocked = groups[rb].blocked }
        }
        var maps: [String: (axis: Int, rank: Int, segments: [ChannelSegment])] = [:]
        var dependents: [ChannelDependent: [ChannelSegment]] = [:]
        let layerAt = Dictionary(layers.enumerated().map { ($0.element.node, $0.offset) }, uniquingKeysWith: { a, _ in a })
        // Declared shapes by name, looked up once (declaredType searches the lists).
        var declared: [String: Shape] = [:]
        for v in graph.valueInfo + graph.outputs + graph.inputs {
            if let name = v.name, let shape = v.type?.tensorShape { declared[name] = shape }
        }
        func rank(_ value: String) -> Int? { declared[value]?.dims.count }
        /// The channel count a consumer's weight has on `axis`, which must be `channels`; nil when the weight is not
        /// a constant (the group is then blocked).
        func consumerWeight(_ node: Node, axis: Int, channels: Int) throws -> Tensor? {
            let name = try requiredInput(node, 1, "weight")
            guard let w = graph.constantTensor(name), node.op != "MatMul" || w.dims.count == 2 else { return nil }
            guard axis < w.dims.count, w.dims[axis] == Int64(channels) else {
                throw PassError(
                    node: node.displayName,
                    "its weight '\(name)' has dims \(w.dims); its input has \(channels) channels, so axis \(axis) must be \(channels)")
            }
            return w
        }

        for id in graph.order {
            let node = graph[id]
            let mappedInputs = node.inputs.enumerated().filter { maps[$0.element] != nil }
            let nodeName = node.displayName

            // Consumers first: what this node does with mapped inputs.
            if !mappedInputs.isEmpty {
                let first = maps[mappedInputs[0].element]!
                var output: (axis: Int, rank: Int, segments: [ChannelSegment])?
                switch node.op {
                case _ where !node.isDefaultDomain:
                    block(first.segments, "custom op \(node.op) at '\(nodeName)' reads the channels")
                case let op where transparent.contains(op):
                    if mappedInputs.count > 1 || mappedInputs[0].offset != 0 {
                        block(first.segments, "\(op) at '\(nodeName)' reads the channels as a parameter")
                    } else if op == "Pad", let pads = graph.constantTensor(node.inputs.count > 1 ? node.inputs[1] : "")?.int64Array ?? node.ints("pads"),
                        pads.count == 2 * first.rank, pads[first.axis] != 0 || pads[first.axis + first.rank] != 0
                    {
                        block(first.segments, "Pad at '\(nodeName)' pads the channel axis")
                    } else if op == "Resize", let scales = graph.constantTensor(node.inputs.count > 2 ? node.inputs[2] : "")?.floatArray,
                        scales.count > first.axis, scales[first.axis] != 1
                    {
                        block(first.segments, "Resize at '\(nodeName)' scales the channel axis")
                    } else {
                        output = first
                    }
                case "BatchNormalization" where mappedInputs[0].offset == 0:
                    let channels = first.segments.reduce(0) { $0 + $1.count }
                    var constant = true
                    for (i, role) in ["scale", "B", "input_mean", "input_var"].enumerated() {
                        let name = try requiredInput(node, i + 1, role)
                        guard let t = graph.constantTensor(name) else {
                            constant = false
                            continue
                        }
                        guard t.dims == [Int64(channels)] else {
                            throw PassError(node: nodeName, "its \(role) '\(name)' has dims \(t.dims); its input has \(channels) channels")
                        }
                    }
                    if constant {
                        dependents[ChannelDependent(node: id, kind: .batchNorm)] = first.segments
                        output = first
                    } else {
                        block(first.segments, "BatchNormalization at '\(nodeName)' has parameters that are not constants")
                    }
                case "Conv" where mappedInputs[0].offset == 0 && first.axis == 1:
                    let group = Int(node.int("group") ?? 1)
                    let channels = first.segments.reduce(0) { $0 + $1.count }
                    let w = graph.constantTensor(try requiredInput(node, 1, "weight"))
                    if w == nil {
                        block(first.segments, "Conv '\(nodeName)' reads the channels with a weight that is not a constant")
                    } else if group == 1 {
                        _ = try consumerWeight(node, axis: 1, channels: channels)
                        dependents[ChannelDependent(node: id, kind: .consumerWeight(axis: 1))] = first.segments
                    } else if group == channels, let w, w.dims.count >= 2, w.dims[1] == 1, Int(w.dims[0]) == channels {
                        dependents[ChannelDependent(node: id, kind: .depthwise)] = first.segments
                        output = first
                    } else {
                        block(first.segments, "grouped Conv '\(nodeName)' (group \(group)) mixes channels across groups")
                    }
                case "ConvTranspose" where mappedInputs[0].offset == 0 && first.axis == 1 && (node.int("group") ?? 1) == 1,
                    "Gemm" where mappedInputs[0].offset == 0 && first.rank == 2 && first.axis == 1 && (node.int("transA") ?? 0) == 0,
                    "MatMul" where mappedInputs[0].offset == 0 && first.axis == first.rank - 1:
                    let op = Layer.Op(rawValue: node.op) ?? .matMul
                    let axis = Layer.channelAxes(op, transB: (node.int("transB") ?? 0) == 1).input
                    let channels = first.segments.reduce(0) { $0 + $1.count }
                    let w = try consumerWeight(node, axis: axis, channels: channels)
                    if w == nil {
                        block(first.segments, "\(node.op) '\(nodeName)' reads the channels with a weight that is not a constant matrix")
                    } else {
                        dependents[ChannelDependent(node: id, kind: .consumerWeight(axis: axis))] = first.segments
                    }
                case "Add", "Sub", "Mul", "Div", "Max", "Min":
                    if mappedInputs.count == 2 {
                        let other = maps[mappedInputs[1].element]!
                        let a = first.segments, b = other.segments
                        if a.map(\.count) == b.map(\.count) && first.axis == other.axis {
                            for (x, y) in zip(a, b) {
                                if let gx = x.group, let gy = y.group {
                                    unite(gx, gy)
                                } else if x.group != nil || y.group != nil {
                                    block(a + b, "\(node.op) at '\(nodeName)' adds pruned channels to channels that are not pruned")
                                }
                            }
                            output = first
                        } else {
                            block(a + b, "\(node.op) at '\(nodeName)' joins tensors whose channels do not line up")
                        }
                    } else {
                        let otherIndex = mappedInputs[0].offset == 0 ? 1 : 0
                        let other = otherIndex < node.inputs.count ? node.inputs[otherIndex] : ""
                        let channels = first.segments.reduce(0) { $0 + $1.count }
                        if let c = graph.constantTensor(other) {
                            // Broadcast against the mapped value: its axis aligned from the right.
                            let axis = c.dims.count - (first.rank - first.axis)
                            if axis >= 0 && axis < c.dims.count && c.dims[axis] == Int64(channels) {
                                dependents[ChannelDependent(node: id, kind: .constant(input: otherIndex, axis: axis))] = first.segments
                                output = first
                            } else if axis < 0 || c.dims[axis] == 1 {
                                output = first
                            } else {
                                block(first.segments, "\(node.op) at '\(nodeName)' has a constant of shape \(c.dims) on the channel axis")
                            }
                        } else {
                            block(first.segments, "\(node.op) at '\(nodeName)' joins the channels with a tensor nobody prunes")
                        }
                    }
                case "Concat":
                    let axis = Int(node.int("axis") ?? 0)
                    let normalized = axis < 0 ? axis + first.rank : axis
                    if normalized == first.axis, mappedInputs.allSatisfy({ maps[$0.element]!.axis == first.axis }) {
                        var segments: [ChannelSegment] = []
                        var ok = true
                        for input in node.inputs where !input.isEmpty {
                            if let m = maps[input] {
                                segments += m.segments
                            } else if let dims = declared[input]?.sizes ?? graph.constantTensor(input)?.dims.map(Int.init),
                                dims.count == first.rank, dims[first.axis] >= 0
                            {
                                segments.append(ChannelSegment(group: nil, count: dims[first.axis]))
                            } else {
                                ok = false
                            }
                        }
                        if ok {
                            output = (first.axis, first.rank, segments)
                        } else {
                            block(mappedInputs.flatMap { maps[$0.element]!.segments }, "Concat at '\(nodeName)' has an input of unknown channel count")
                        }
                    } else {
                        block(mappedInputs.flatMap { maps[$0.element]!.segments }, "Concat at '\(nodeName)' on axis \(axis), not the channel axis")
                    }
                case "Flatten", "Reshape":
                    // Channel c stays feature c only after a global pool (spatial size 1).
                    let fromGlobalPool = graph.producer(of: try requiredInput(node, 0, "data")).map { ["GlobalAveragePool", "GlobalMaxPool"].contains(graph[$0].op) } ?? false
                    if node.op == "Reshape" { _ = try requiredInput(node, 1, "shape") }
                    let flattensToBatch: Bool = {
                        if node.op == "Flatten" { return (node.int("axis") ?? 1) == 1 }
                        guard let shape = graph.constantTensor(node.inputs[1])?.int64Array, shape.count == 2 else { return false }
                        return shape[0] == 0 || shape[0] == -1 || shape[1] == -1 || shape[1] == Int64(first.segments.reduce(0) { $0 + $1.count })
                    }()
                    if fromGlobalPool && first.axis == 1 && flattensToBatch {
                        output = (1, 2, first.segments)
                    } else {
                        block(first.segments, "\(node.op) at '\(nodeName)' mixes the channel axis with others")
                    }
                default:
                    block(mappedInputs.flatMap { maps[$0.element]!.segments }, "\(node.op) at '\(nodeName)' (channels cannot follow through it)")
                }
                if let output, let out = node.outputs.first {
                    maps[out] = output
                }
            }

            // A filter-prunable layer starts a group of its output channels.
            if let li = layerAt[id], layers[li].isFilterPrunable, let out = node.outputs.first {
                let layer = layers[li]
                let channels = layer.outputChannels
                let g = groups.count
                parent.append(g)
                var blocked: String?
                if graph.consumers(of: node.inputs[1]).count > 1 { blocked = "its weight '\(node.inputs[1])' is shared with another node" }
                groups.append(ChannelGroup(channels: channels, producers: [li], blocked: blocked))
                let outRank = layer.op == .conv ? 4 : (rank(out) ?? 2)
                maps[out] = (layer.op == .conv ? 1 : outRank - 1, outRank, [ChannelSegment(group: g, count: channels)])
            }
        }
        // Graph outputs cannot change shape.
        for output in graph.outputs {
            if let name = output.name, let m = maps[name] { block(m.segments, "its channels reach graph output '\(name)'") }
        }
        // Resolve every group id to its root.
        func resolve(_ segments: [ChannelSegment]) -> [ChannelSegment] {
            segments.map { ChannelSegment(group: $0.group.map(find), count: $0.count) }
        }
        var values: [String: (axis: Int, segments: [ChannelSegment])] = [:]
        for (name, m) in maps { values[name] = (m.axis, resolve(m.segments)) }
        var rootGroups = groups
        for g in groups.indices where find(g) != g { rootGroups[g].producers = [] }
        return ChannelCoupling(groups: rootGroups, dependents: dependents.mapValues(resolve), values: values)
    }
}
