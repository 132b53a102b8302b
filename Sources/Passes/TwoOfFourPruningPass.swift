import Graph
import Kernels

// 2:4 selective pruning, L1SelectivePruner M4N2 (SEMANTICS §4).
//
//   before:  W[:, c0..c3] = [0.9, -0.1, 0.4, -0.7]
//   after:   W[:, c0..c3] = [0.9,  0,   0,   -0.7]     (in every group of 4 along Cin, the 2 smallest |w| are 0)
//
// Groups run along the input-channel axis: axis 1 of Conv and Gemm(transB=1) weights, axis 0 of ConvTranspose,
// MatMul and Gemm(transB=0) weights; Cin is padded with zeros to a multiple of 4; ties take the lower index; Cin ≤ 2
// is left alone. The masked weight is a new initializer (a shared one stays as it was); update_freq is recorded.

public struct TwoOfFourPruningPass: PlanPass {
    public let name = "prune-2of4"
    public var changesLayers: Bool { true }
    public init() {}

    public func run(_ graph: inout Graph, plan: Plan, _ context: inout PassContext) throws {
        var count = 0
        for p in plan.layers {
            guard let freq = p.twoOfFourFrequency else { continue }
            let node = graph[p.layer.node]
            let name = try requiredInput(node, 1, "weight")
            var w = try requiredFloatConstant(graph, name, node: p.layer.name, role: "weight")
            let d = w.dims.map(Int.init)
            guard d.count == p.layer.weightShape.count else {
                throw PassError(node: p.layer.name, "its weight '\(name)' has dims \(w.dims); a \(p.layer.op.rawValue) weight has rank \(p.layer.weightShape.count)")
            }
            let (outer, cin, inner) = Self.groups(p.layer, dims: d)
            let zeroed = w.withMutableElements(as: Float.self) { Pruning.applyTwoOfFour($0, outer: outer, cin: cin, inner: inner) }
            let newName = graph.addInitializer(w, preferredName: "\(name)_2of4")
            graph.updateNode(p.layer.node) { $0.inputs[1] = newName }
            context.replacedTensors.append(name)
            let zeros = w.withElements(as: Float.self) { $0.filter { $0 == 0 }.count }
            context.record.prune[p.layer.name, default: PruneRecord()].twoOfFour = (zeroed, freq)
            context.pruneEvents.append(
                .twoOfFour(layer: p.layer.name, zeros: zeros, weights: w.elementCount, zeroedNow: zeroed, smallCin: cin <= 2))
            count += 1
        }
        context.log.append((name, "\(count) layers masked 2:4"))
    }

    /// A layer's weight seen as [outer, Cin, inner], the groups of 4 running along Cin: axis 1 of Conv and
    /// Gemm(transB=1) weights, axis 0 of ConvTranspose, MatMul and Gemm(transB=0) weights.
    public static func groups(_ layer: Layer, dims: [Int]) -> (outer: Int, cin: Int, inner: Int) {
        let cinAxis = layer.inputChannelAxis
        guard cinAxis < dims.count else { return (1, 1, dims.reduce(1, *)) }
        return (dims[..<cinAxis].reduce(1, *), dims[cinAxis], dims[(cinAxis + 1)...].reduce(1, *))
    }
}
