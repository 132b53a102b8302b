import Graph
import Kernels

// Filter pruning, BalancedL2NormFilterPruner (SEMANTICS §4), on the channel groups of ChannelCoupling.analyse.
//
//   before:  Conv_a[64,32,3,3] ─▶ BN[64] ─▶ Relu ─▶ Conv_b[128,64,3,3]
//   after:   Conv_a[48,32,3,3] ─▶ BN[48] ─▶ Relu ─▶ Conv_b[128,48,3,3]        (ratio 0.3, ascend_optimized)
//
// score_c = ‖W_c‖₂ / elements per channel, min-max normalised per producer; a group scores a channel by the mean over
// its producers. ratio = the smallest of the members'; remain = C − round_half_even(C·ratio), with ascend_optimized
// ⌈remain/16⌉·16 (16 if 0), never above C; the lowest scores go, ties taking the lower index. Channels are removed
// physically from producers (weight, bias) and from every dependent as its op's rule says (ChannelRules.swift:
// BatchNormalization parameters, broadcast constants, depthwise convs with their group count, the input channels of
// every consumer); value_info shapes follow. Each changed tensor is a new
// initializer, so a tensor another layer shares is left as it was. A group left alone says why in the report.

public struct FilterPruningPass: PlanPass {
    public let name = "prune-filters"
    public var changesLayers: Bool { true }
    /// The per-op channel rules the coupling analysis and the pruning follow (ChannelRules.swift).
    public var rules: ChannelRuleTable
    public init(rules: ChannelRuleTable = .standard) { self.rules = rules }

    public func run(_ graph: inout Graph, plan: Plan, _ context: inout PassContext) throws {
        guard plan.layers.contains(where: { $0.filterPruning != nil }) else {
            context.log.append((name, "no layer is filter-pruned"))
            return
        }
        let coupling = try ChannelCoupling.analyse(graph, layers: plan.layers.map(\.layer), rules: rules)
        let unprunable = coupling.groups.filter { !$0.producers.isEmpty && $0.blocked != nil }.count
        context.log.append((name, "\(coupling.groups.filter { !$0.producers.isEmpty }.count) channel groups, \(unprunable) unprunable"))
        var keep: [Int: [Int]] = [:]
        for (g, group) in coupling.groups.enumerated() where !group.producers.isEmpty {
            let producers = group.producers.map { plan.layers[$0] }
            let names = producers.map(\.layer.name)
            guard producers.contains(where: { $0.filterPruning != nil }) else { continue }
            if let reason = group.blocked {
                context.pruneEvents.append(.blocked(layers: names, channels: group.channels, reason: reason))
                continue
            }
            if let p = producers.first(where: { $0.filterPruning == nil }) {
                context.pruneEvents.append(.sharedWithUnpruned(layers: names, layer: p.layer.name, source: p.pruneSource))
                continue
            }
            let specs = producers.compactMap(\.filterPruning)
            guard let (ratio, ascend) = specs.min(by: { $0.ratio < $1.ratio }) else { continue }
            var mean = [Double](repeating: 0, count: group.channels)
            for p in producers {
                let (w, view) = try outputView(p.layer, graph)
                let scores = w.withElements(as: Float.self) { Pruning.channelScores($0, outer: view.outer, channels: view.n, inner: view.inner) }
                for (c, s) in Pruning.normalized(scores).enumerated() { mean[c] += s / Double(producers.count) }
            }
            let remain = Pruning.remaining(channels: group.channels, ratio: ratio, ascendOptimized: ascend)
            guard remain < group.channels else {
                context.pruneEvents.append(
                    .unchanged(layers: names, channels: group.channels, ratio: ratio, ascendOptimized: ascend))
                continue
            }
            let kept = Pruning.keep(scores: mean, remain: remain)
            keep[g] = kept
            context.pruneEvents.append(
                .pruned(layers: names, channels: group.channels, remain: remain, ratio: ratio, ascendOptimized: ascend))
            for p in producers {
                context.keptChannels[p.layer.name] = kept
                context.record.prune[p.layer.name, default: PruneRecord()].keptChannels = kept
            }
        }
        guard !keep.isEmpty else {
            context.log.append((name, "no group pruned"))
            return
        }
        func indices(_ segments: [ChannelSegment]) -> [Int] {
            var result: [Int] = []
            var offset = 0
            for s in segments {
                if let g = s.group, let k = keep[g] { result += k.map { offset + $0 } } else { result += offset..<(offset + s.count) }
                offset += s.count
            }
            return result
        }
        var replaced: [String] = []
        defer { context.replacedTensors += replaced }
        // Producers: output channels of the weight, and the bias (groups in order, so the output is reproducible).
        for g in keep.keys.sorted() {
            let k = keep[g]!
            for li in coupling.groups[g].producers {
                let layer = plan.layers[li].layer
                let channels = coupling.groups[g].channels
                try replace(&graph, layer.node, input: 1, axis: layer.outputChannelAxis, channels: channels, keep: k, replaced: &replaced)
                if let biasAxis = try biasAxis(graph, layer, channels: channels), let b = Layer.biasInputIndex(layer.op) {
                    try replace(&graph, layer.node, input: b, axis: biasAxis, channels: channels, keep: k, replaced: &replaced)
                }
            }
        }
        // Everything that follows the channels, as its op's rule says (ChannelRules.swift).
        for dependent in coupling.dependents {
            let k = indices(dependent.segments)
            let n = dependent.segments.reduce(0, { $0 + $1.count })
            guard k.count < n else { continue }
            let node = graph[dependent.node]
            guard let prune = coupling.rules.rule(for: node)?.prune else {
                throw PassError(node: node.displayName, "no channel rule says how \(node.op) loses channels")
            }
            let edit = try prune(node, dependent.kind)
            for input in edit.inputs {
                try replace(&graph, dependent.node, input: input.index, axis: input.axis, channels: n, keep: k, replaced: &replaced)
            }
            if edit.setsGroup { graph.updateNode(dependent.node) { $0.setAttribute(.int("group", Int64(k.count))) } }
        }
        // Declared shapes of the values whose channels changed.
        for i in graph.valueInfo.indices {
            guard let name = graph.valueInfo[i].name, let (axis, segments) = coupling.values[name],
                case .tensor(let e, var shape?, let u)? = graph.valueInfo[i].type?.kind, axis < shape.dims.count
            else { continue }
            let count = indices(segments).count
            if count != segments.reduce(0, { $0 + $1.count }) {
                shape.dims[axis] = Dimension(.known(Int64(count)))
                graph.valueInfo[i].type?.kind = .tensor(elemType: e, shape: shape, unknownFields: u)
            }
        }
        context.log.append((name, "\(keep.count) channel groups pruned"))
    }

    /// The weight seen as [outer, output channels, inner].
    func outputView(_ layer: Layer, _ graph: Graph) throws -> (Tensor, (outer: Int, n: Int, inner: Int)) {
        let node = graph[layer.node]
        let name = try requiredInput(node, 1, "weight")
        let w = try requiredFloatConstant(graph, name, node: layer.name, role: "weight")
        try requireFinite(w, name, node: layer.name, role: "weight")
        let d = w.dims.map(Int.init)
        let axis = layer.outputChannelAxis
        guard axis < d.count else { throw PassError(node: layer.name, "its weight '\(name)' has dims \(w.dims)") }
        return (w, (d[..<axis].reduce(1, *), d[axis], d[(axis + 1)...].reduce(1, *)))
    }

    /// Replaces input `input` of `node` with a new initializer holding only `keep` along `axis`.
    /// `channels` is how many the input must have on `axis` now.
    func replace(_ graph: inout Graph, _ node: NodeID, input: Int, axis: Int, channels: Int, keep: [Int],
                 replaced: inout [String]) throws {
        let nodeName = graph[node].displayName
        let name = try requiredInput(graph[node], input, "input \(input)")
        guard let t = graph.constantTensor(name), let bits = t.dataType.bitsPerElement, bits >= 8, axis < t.dims.count else {
            throw PassError(node: nodeName, "input '\(name)' is not a constant that can lose channels on axis \(axis)")
        }
        try checkComplete(t, name, node: nodeName, role: "input \(input)")
        guard t.dims[axis] == Int64(channels), keep.allSatisfy({ $0 >= 0 && $0 < channels }) else {
            throw PassError(node: nodeName, "input '\(name)' has dims \(t.dims); the channels it follows number \(channels) on axis \(axis)")
        }
        let d = t.dims.map(Int.init)
        let bytes = Pruning.gather(t.rawBytes, elementSize: bits / 8, outer: d[..<axis].reduce(1, *), n: d[axis], inner: d[(axis + 1)...].reduce(1, *), keep: keep)
        var dims = t.dims
        dims[axis] = Int64(keep.count)
        let tensor = bytes.withUnsafeBytes { Tensor(name: nil, dataType: t.dataType, dims: dims, rawBytes: $0) }
        let newName = graph.addInitializer(tensor, preferredName: "\(name)_pruned")
        graph.updateNode(node) { $0.inputs[input] = newName }
        replaced.append(name)
    }

    /// The axis of the producer's bias that holds its output channels; nil when it has no bias or one value for all.
    func biasAxis(_ graph: Graph, _ layer: Layer, channels: Int) throws -> Int? {
        guard let name = layer.bias(in: graph) else { return nil }
        guard let bias = graph.constantTensor(name) else {
            throw PassError(node: layer.name, "its bias '\(name)' is not a constant, so it cannot lose channels")
        }
        let c = Int64(channels)
        switch bias.dims {
        case [c]: return 0
        case [1, c] where layer.op == .gemm: return 1
        case [] where layer.op == .gemm, [1] where layer.op == .gemm, [1, 1] where layer.op == .gemm: return nil
        default:
            throw PassError(node: layer.name, "its bias '\(name)' has dims \(bias.dims); the layer has \(channels) output channels")
        }
    }
}
