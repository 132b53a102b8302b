import Graph

// Prune-before-quant fusion (ARCHITECTURE step 8): the pruned weights become the layers' weights for good, before
// calibration and quantization read them.
//
//   before:  Conv(x, W_pruned)      W (original, unread)      W_2of4 (masked)      W_orig2 (original, unread)
//   after:   Conv(x, W_pruned)                                W_2of4
//
// Filter pruning and 2:4 masking already write each changed weight once, as a new initializer with the channels
// removed or the mask applied (a mask is never kept beside its weight), so what is left to fuse is settling: every
// pruned layer's weight must still be a float constant of its layer's rank (checked here, naming the layer), and the
// tensors the pruning passes replaced are released when nothing else reads them, so calibration runs on, and memory
// holds, only the pruned model. A replaced tensor another node still reads stays.

public struct PruneFusionPass: PlanPass {
    public let name = "fuse-pruning"
    public var changesLayers: Bool { true }
    public init() {}

    public func run(_ graph: inout Graph, plan: Plan, _ context: inout PassContext) throws {
        var settled = 0
        for p in plan.layers where p.prune != nil && graph.contains(p.layer.node) {
            let node = graph[p.layer.node]
            let weightName = try requiredInput(node, 1, "weight")
            let weight = try requiredFloatConstant(graph, weightName, node: p.layer.name, role: "weight")
            guard let now = try p.layer.refreshed(in: graph), now.weightShape.count == p.layer.weightShape.count else {
                throw PassError(node: p.layer.name, "after pruning its weight '\(weightName)' has dims \(weight.dims), "
                                + "which no longer fit a \(p.layer.op.rawValue)")
            }
            settled += 1
        }
        let outputs = Set(graph.outputs.compactMap(\.name)), inputs = Set(graph.inputs.compactMap(\.name))
        var released = 0, bytes = 0
        for name in Set(context.replacedTensors).sorted()
        where graph.consumers(of: name).isEmpty && !outputs.contains(name) && !inputs.contains(name) {
            if let t = graph.removeInitializer(name) {
                released += 1
                bytes += t.byteCount
            }
        }
        context.replacedTensors = []
        let summary = "\(settled) pruned layers settled; \(released) replaced tensors released (\(formatBytes(bytes)))"
        context.log.append((name, summary))
    }
}
