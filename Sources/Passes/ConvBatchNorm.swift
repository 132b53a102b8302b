import Graph

// The Conv → BatchNormalization pattern, in one place for both that act on it: the AMCT layout folds the pair into the
// Conv's weight and bias (BatchNormFoldingPass), the executor runs it as one fused step (Fusion.convChain).
//
//   x ─▶ Conv ─▶ y ─▶ BatchNormalization(y, γ, β, μ, σ²; ε) ─▶ z
//
// A pair when nothing but the BN sees y (its one reader; not a graph output, nor a value the caller watches), the BN is
// in inference form (one output, training_mode 0) and its four parameters are float32 constants.

/// The BatchNormalization a Conv pairs with: the node, its parameters (scale γ, B β, input_mean μ, input_var σ²) and
/// epsilon (1e-5 when not given).
struct ConvBatchNorm {
    var id: NodeID
    var node: Node
    var parameters: [Tensor]
    var epsilon: Float

    /// The roles of the BN's inputs 1…4, as errors name them.
    static let roles = ["scale", "B", "input_mean", "input_var"]

    /// What a BN with a parameter input missing, or a parameter constant short of its dims' elements, makes.
    enum Malformed {
        /// An error naming the node (a pass that rewrites weights from the parameters).
        case fails
        /// No pair (the executor, where the BN's own operator reports the node); the BN needs exactly five inputs.
        case skips
    }

    /// The BatchNormalization that pairs with `conv` (the conditions above), or nil. `hidden` names values that must
    /// stay visible (observed by the caller).
    static func after(_ conv: Node, in graph: Graph, hidden: Set<String> = [], malformed: Malformed) throws
        -> ConvBatchNorm? {
        guard conv.isDefaultDomain, conv.op == "Conv", let y = conv.outputs.first, !hidden.contains(y),
            !graph.isGraphOutput(y)
        else { return nil }
        let readers = graph.consumers(of: y)
        guard readers.count == 1, let id = readers.first else { return nil }
        let bn = graph[id]
        guard bn.isDefaultDomain, bn.op == "BatchNormalization", bn.outputs.count == 1, bn.inputs.first == y,
            (bn.int("training_mode") ?? 0) == 0, malformed == .fails || bn.inputs.count == 5
        else { return nil }
        var parameters: [Tensor] = []
        for (i, role) in roles.enumerated() {
            let value = malformed == .fails ? try requiredInput(bn, i + 1, role) : bn.inputs[i + 1]
            guard let t = graph.constantTensor(value), t.dataType == .float else { return nil }
            if malformed == .fails { try checkComplete(t, value, node: bn.displayName, role: role) }
            parameters.append(t)
        }
        return ConvBatchNorm(id: id, node: bn, parameters: parameters, epsilon: bn.float("epsilon") ?? 1e-5)
    }
}
