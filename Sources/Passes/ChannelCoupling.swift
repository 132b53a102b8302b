import Graph

// Channel coupling (SEMANTICS §5): which output channels must be pruned together, as a dependency graph in the
// manner of Torch-Pruning's DepGraph. An analysis FilterPruningPass calls; it changes nothing.
//
//   Conv_a ─▶ BN ─▶ Relu ─┬─▶ Conv_b          group {Conv_a out} with dependents BN (params), Conv_b (input axis)
//                         └─▶ Add ◀── Conv_c   and Conv_c's output joins the group (residual Add unites groups)
//
// Every filter-prunable layer (2-D Conv with group 1, Gemm, MatMul) starts a group of its output channels. Each value
// carries a channel map: the segments (group, count) along its channel axis. Walking the graph in order, each node
// that reads a mapped value asks its op's rule (ChannelRules.swift, one entry per op family): channel-transparent ops
// pass the map on; BatchNormalization, InstanceNormalization, PRelu slopes and broadcast constants on C are
// dependents; a Conv, Gemm or MatMul reading the value takes the pruned input channels (weight input axis); a
// depthwise Conv passes the map through and shrinks its group count; Add/Sub/Mul of two mapped values unite their
// groups segment by segment; Concat on the channel axis concatenates maps (an unmapped input is a fixed segment);
// GlobalAveragePool → Flatten/Reshape keeps channel c as feature c. Anything else that reads a mapped value (a graph
// output, an op without a rule such as Split, Slice, Transpose, a shared weight, ...) blocks the groups it touches,
// and the group keeps the reason.

/// A node that must change with a pruned group besides its producers' output channels (its rule says how).
public struct ChannelDependent: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// The node reads the channels and ends them (Torch-Pruning's prune_in_channels): a Conv/Gemm/MatMul weight.
        case reads
        /// The node's output carries the same channels (in = out): its per-channel parameters follow them
        /// (BatchNormalization, InstanceNormalization, a depthwise Conv with its group count).
        case follows
        /// A constant input of the node (an elementwise operand, PRelu's slope) follows them on `axis` of that input.
        case constant(input: Int, axis: Int)
    }
    public var node: NodeID
    public var kind: Kind
    /// The segments along its channel axis (offset order).
    public var segments: [ChannelSegment]
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
    /// Every node that follows the groups, in graph order.
    public var dependents: [ChannelDependent]
    /// Values whose channel axis changes with the groups (for value_info): value → (axis, segments).
    public var values: [String: (axis: Int, segments: [ChannelSegment])]
    /// The rules the analysis used; pruning asks them how each dependent loses channels.
    public var rules: ChannelRuleTable

    /// The dependent that `node` is, if any.
    public func dependent(_ node: NodeID) -> ChannelDependent? { dependents.first { $0.node == node } }
}

extension ChannelCoupling {
    /// The coupling of the graph as it is now (an analysis: computed when needed, never stored on the context).
    public static func analyse(_ graph: Graph, layers: [Layer], rules: ChannelRuleTable = .standard) throws
        -> ChannelCoupling
    {
        var groups = UnionFind()
        var maps: [String: ChannelMap] = [:]
        var dependents: [ChannelDependent] = []
        let layerAt = Dictionary(layers.enumerated().map { ($0.element.node, $0.offset) }) { a, _ in a }
        // Declared shapes by name, looked up once (declaredType searches the lists).
        var declared: [String: Shape] = [:]
        for v in graph.valueInfo + graph.outputs + graph.inputs {
            if let name = v.name, let shape = v.type?.tensorShape { declared[name] = shape }
        }

        for id in graph.order {
            let node = graph[id]
            // What this node does with mapped inputs: its rule decides.
            let mapped = node.inputs.enumerated().compactMap { i, v in maps[v].map { (input: i, map: $0) } }
            if !mapped.isEmpty {
                var step = ChannelStep(graph: graph, id: id, mapped: mapped, declared: declared)
                let output: ChannelMap?
                if let rule = rules.rule(for: node) {
                    output = try rule.flow(&step)
                } else if !node.isDefaultDomain {
                    output = step.block("custom op \(node.op) at '\(node.displayName)' reads the channels")
                } else {
                    output = step.cannotFollow()
                }
                for effect in step.effects {
                    switch effect {
                    case .block(let segments, let reason): groups.block(segments, reason)
                    case .unite(let a, let b): groups.unite(a, b)
                    }
                }
                if let kind = step.dependent {
                    dependents.append(ChannelDependent(node: id, kind: kind, segments: step.first.segments))
                }
                if let output, let out = node.outputs.first { maps[out] = output }
            }

            // A filter-prunable layer starts a group of its output channels.
            if let li = layerAt[id], layers[li].isFilterPrunable, let out = node.outputs.first {
                let layer = layers[li]
                let channels = layer.outputChannels
                var blocked: String?
                if graph.consumers(of: node.inputs[1]).count > 1 {
                    blocked = "its weight '\(node.inputs[1])' is shared with another node"
                }
                let g = groups.add(ChannelGroup(channels: channels, producers: [li], blocked: blocked))
                let outRank = layer.op == .conv ? 4 : (declared[out]?.dims.count ?? 2)
                let segment = ChannelSegment(group: g, count: channels)
                maps[out] = ChannelMap(axis: layer.op == .conv ? 1 : outRank - 1, rank: outRank, segments: [segment])
            }
        }
        // Graph outputs cannot change shape.
        for output in graph.outputs {
            if let name = output.name, let m = maps[name] {
                groups.block(m.segments, "its channels reach graph output '\(name)'")
            }
        }
        // Resolve every group id to its root.
        for i in dependents.indices { dependents[i].segments = groups.resolve(dependents[i].segments) }
        var values: [String: (axis: Int, segments: [ChannelSegment])] = [:]
        for (name, m) in maps { values[name] = (m.axis, groups.resolve(m.segments)) }
        return ChannelCoupling(groups: groups.roots, dependents: dependents, values: values, rules: rules)
    }
}

/// The groups as a union-find: uniting two keeps the producers in the root and its first blocking reason.
struct UnionFind {
    private var parent: [Int] = []
    private var groups: [ChannelGroup] = []

    mutating func add(_ group: ChannelGroup) -> Int {
        parent.append(groups.count)
        groups.append(group)
        return groups.count - 1
    }

    mutating func find(_ g: Int) -> Int {
        var g = g
        while parent[g] != g {
            parent[g] = parent[parent[g]]
            g = parent[g]
        }
        return g
    }

    mutating func unite(_ a: Int, _ b: Int) {
        let (ra, rb) = (find(a), find(b))
        guard ra != rb else { return }
        parent[rb] = ra
        groups[ra].producers += groups[rb].producers
        if groups[ra].blocked == nil { groups[ra].blocked = groups[rb].blocked }
    }

    /// Blocks the group of every segment (its root), keeping a reason already given.
    mutating func block(_ segments: [ChannelSegment], _ reason: String) {
        for s in segments {
            if let g = s.group {
                let r = find(g)
                if groups[r].blocked == nil { groups[r].blocked = reason }
            }
        }
    }

    mutating func resolve(_ segments: [ChannelSegment]) -> [ChannelSegment] {
        segments.map { ChannelSegment(group: $0.group.map { find($0) }, count: $0.count) }
    }

    /// Every group by id; a group united into another has no producers.
    var roots: [ChannelGroup] {
        mutating get {
            var result = groups
            for g in groups.indices where find(g) != g { result[g].producers = [] }
            return result
        }
    }
}
