import Graph

// Conv + BatchNormalization folding (the AMCT layout folds these pairs before export, SEMANTICS §6).
//
//   before:  x ─▶ Conv(W, b) ─▶ y ─▶ BatchNormalization(γ, β, μ, σ², ε) ─▶ z
//   after:   x ─▶ Conv(W', b') ─▶ z
//
// k_c = γ_c / √(σ²_c + ε);  W'_c = W_c · k_c;  b'_c = (b_c − μ_c) · k_c + β_c   (float32, per output channel c).
// Only when the Conv's output feeds the BatchNormalization alone, the BN is in inference form (one output) and all
// its parameters are constants. The folded weight and bias are new initializers, so a tensor shared with another
// layer is left as it was.

public struct BatchNormFoldingPass: Pass {
    public let name = "fold-batchnorm"
    public init() {}

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        var folded = 0
        for id in graph.order where graph.contains(id) {
            let conv = graph[id]
            guard conv.isDefaultDomain, conv.op == "Conv", let y = conv.outputs.first, !graph.isGraphOutput(y) else { continue }
            let readers = graph.consumers(of: y)
            guard readers.count == 1, let bnID = readers.first else { continue }
            let bn = graph[bnID]
            guard bn.isDefaultDomain, bn.op == "BatchNormalization", bn.outputs.count == 1, bn.inputs.count == 5, bn.inputs[0] == y,
                (bn.int("training_mode") ?? 0) == 0,
                let gamma = graph.constantTensor(bn.inputs[1]), let beta = graph.constantTensor(bn.inputs[2]),
                let mean = graph.constantTensor(bn.inputs[3]), let variance = graph.constantTensor(bn.inputs[4]),
                let weight = graph.constantTensor(conv.inputs[1]),
                [gamma, beta, mean, variance, weight].allSatisfy({ $0.dataType == .float })
            else { continue }
            let channels = Int(weight.dims[0])
            guard [gamma, beta, mean, variance].allSatisfy({ $0.elementCount == channels }) else { continue }
            var bias: Tensor?
            if conv.inputs.count > 2, !conv.inputs[2].isEmpty {
                guard let b = graph.constantTensor(conv.inputs[2]), b.dataType == .float, b.elementCount == channels else { continue }
                bias = b
            }
            let epsilon = bn.float("epsilon") ?? 1e-5
            let k: [Float] = gamma.withElements(as: Float.self) { g in
                variance.withElements(as: Float.self) { v in (0..<channels).map { g[$0] / (v[$0] + epsilon).squareRoot() } }
            }
            var newWeight = weight
            let perChannel = weight.elementCount / channels
            newWeight.withMutableElements(as: Float.self) { w in
                for c in 0..<channels { for i in (c * perChannel)..<((c + 1) * perChannel) { w[i] *= k[c] } }
            }
            let b0 = bias?.floatArray ?? [Float](repeating: 0, count: channels)
            let m = mean.floatArray, be = beta.floatArray
            let newBias = (0..<channels).map { (b0[$0] - m[$0]) * k[$0] + be[$0] }
            let wName = graph.addInitializer(newWeight, preferredName: "\(conv.inputs[1])_bnfolded")
            let bName = graph.addInitializer(Tensor(name: nil, dims: [Int64(channels)], floats: newBias), preferredName: "\(conv.inputs[1].replacingOccurrences(of: ".weight", with: ""))_bias_bnfolded")
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
}
