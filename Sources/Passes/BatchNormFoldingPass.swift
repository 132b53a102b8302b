import Graph
import Kernels

// Conv + BatchNormalization folding (the AMCT layout folds these pairs before export, SEMANTICS §6).
//
//   before:  x ─▶ Conv(W, b) ─▶ y ─▶ BatchNormalization(γ, β, μ, σ², ε) ─▶ z
//   after:   x ─▶ Conv(W', b') ─▶ z
//
// k_c = γ_c / √(σ²_c + ε);  W'_c = W_c · k_c;  b'_c = (b_c − μ_c) · k_c + β_c   (float32, per output channel c).
// Only for the pairs ConvBatchNorm.swift matches (the Conv's output feeds the BatchNormalization alone, the BN is in
// inference form, its parameters are constants), with the Conv's weight and bias float32 constants too. The folded
// weight and bias are new initializers, so a tensor shared with another layer is left as it was.

public struct BatchNormFoldingPass: Pass {
    public let name = "fold-batchnorm"
    public var changesLayers: Bool { true }
    public init() {}

    /// A pair that folds: the tensors the formula reads, checked against the Conv's output channels.
    struct Pair {
        var weight: Tensor
        var bias: Tensor?
        var gamma, beta, mean, variance: Tensor
        var channels: Int
    }

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        var folded = 0
        for id in graph.order where graph.contains(id) {
            let conv = graph[id]
            guard let match = try ConvBatchNorm.after(conv, in: graph, malformed: .fails),
                let pair = try pair(graph, conv, match)
            else { continue }
            let (bnID, bn) = (match.id, match.node)
            let (weight, bias) = try fold(pair, epsilon: match.epsilon, bn: bn.displayName)
            let wName = graph.addInitializer(weight, preferredName: "\(conv.inputs[1])_bnfolded")
            let base = conv.inputs[1].replacingOccurrences(of: ".weight", with: "")
            let bName = graph.addInitializer(bias, preferredName: "\(base)_bias_bnfolded")
            let z = bn.outputs[0]
            graph.removeNode(bnID)
            graph.updateNode(id) { n in
                n.inputs = [n.inputs[0], wName, bName]
                n.outputs[0] = z
            }
            folded += 1
        }
        context.log.append((name, "\(folded) Conv+BatchNormalization pairs folded"))
    }

    /// The tensors of a Conv+BatchNormalization pair (`ConvBatchNorm` matched the BN's); nil (left unfolded) when the
    /// Conv's weight or bias is not a float32 constant; an error naming the node when one cannot be right (a missing
    /// input, a size that is not the Conv's output channels).
    func pair(_ graph: Graph, _ conv: Node, _ match: ConvBatchNorm) throws -> Pair? {
        let (bn, params) = (match.node, match.parameters)
        let weightName = try requiredInput(conv, 1, "weight")
        guard let weight = try foldable(graph, weightName, node: conv.displayName, role: "weight") else { return nil }
        guard let channels = weight.dims.first.map(Int.init), channels > 0, weight.dims.count >= 3 else {
            throw PassError(
                node: conv.displayName, "its weight '\(weightName)' has dims \(weight.dims); a Conv weight is [Cout, Cin/group, k...]")
        }
        for (t, role) in zip(params, ConvBatchNorm.roles) where t.elementCount != channels {
            throw PassError(
                node: bn.displayName,
                "its \(role) has dims \(t.dims); the Conv '\(conv.displayName)' before it has \(channels) output channels")
        }
        var bias: Tensor?
        if let biasName = Layer.bias(of: conv) {
            guard let b = try foldable(graph, biasName, node: conv.displayName, role: "bias") else { return nil }
            guard b.elementCount == channels else {
                throw PassError(
                    node: conv.displayName, "its bias '\(biasName)' has dims \(b.dims); the Conv has \(channels) output channels")
            }
            bias = b
        }
        return Pair(weight: weight, bias: bias, gamma: params[0], beta: params[1], mean: params[2], variance: params[3],
                    channels: channels)
    }

    /// W' and b' of the formula above.
    func fold(_ p: Pair, epsilon: Float, bn: String) throws -> (weight: Tensor, bias: Tensor) {
        let channels = p.channels
        let (k, newBias) = NeuralOps.batchNormAffine(
            scale: p.gamma.floatArray, bias: p.beta.floatArray, mean: p.mean.floatArray, variance: p.variance.floatArray,
            epsilon: epsilon, inputBias: p.bias?.floatArray ?? [Float](repeating: 0, count: channels))
        if let c = k.indices.first(where: { !k[$0].isFinite }) {
            throw PassError(
                node: bn, "channel \(c): scale / sqrt(input_var + epsilon) is \(k[c]); the parameters must be finite with input_var + epsilon > 0")
        }
        return (Self.scalingOutputChannels(p.weight, by: k), Tensor(name: nil, dims: [Int64(channels)], floats: newBias))
    }

    /// A Conv weight [Cout, …] with output channel c multiplied by k[c] (k has Cout values): the weight half of
    /// folding any per-channel affine into a Conv (this pass, AffineFoldingPass).
    static func scalingOutputChannels(_ weight: Tensor, by k: [Float]) -> Tensor {
        var scaled = weight
        let perChannel = weight.elementCount / max(k.count, 1)
        scaled.withMutableElements(as: Float.self) { w in
            for c in k.indices { for i in (c * perChannel)..<((c + 1) * perChannel) { w[i] *= k[c] } }
        }
        return scaled
    }

    /// A float32 constant with all its elements (nil, so the pair is left unfolded, for a non-constant or another type).
    func foldable(_ graph: Graph, _ value: String, node: String, role: String) throws -> Tensor? {
        guard let t = graph.constantTensor(value), t.dataType == .float else { return nil }
        try checkComplete(t, value, node: node, role: role)
        return t
    }
}
