import Graph
import Kernels

// What the plan runs as one step when nothing outside needs the values in between (a value handed to an observer, or
// a graph output, is never hidden):
//
//   Conv ─▶ [BatchNormalization] ─▶ [Mul(·, a) | Add(·, c)]* ─▶ [Add(·, r), r known before] ─▶ [Relu | Clip(lo, hi)]
//        ─▶  one Conv step: sgemm, then y = clamp(acc·k + b' + r) in one pass over the output
//            (BN as k = γ/√(σ² + ε), b' = (b − μ)·k + β; a constant Mul by a (one value or one per channel) as
//            k·a, b'·a and a constant Add of c as b' + c, as PP-LCNet's learnable affine blocks are exported; the
//            weights are used as they are, never copied or rewritten)
//
// Training fuses the same chain without BatchNormalization (folded into the Conv before training); its backward is one
// step too: G' = G·[lo < y < hi] (the clamp's mask, read off the output), ∂r = G', then the Conv's gradients of G'.
// Elementwise chains (ElementwiseChain.swift) are found by the plan itself, for inference only.

enum Fusion {
    /// Which chains a plan runs as one step.
    enum Mode: Sendable {
        /// Every node its own step.
        case none
        /// Conv (+ residual Add) (+ Relu/Clip) chains: steps with a fused backward.
        case training
        /// Conv chains with BatchNormalization too, and elementwise chains.
        case inference
    }

    /// A Conv and the nodes after it that its step absorbs.
    struct ConvChain {
        /// The BatchNormalization right after the Conv: its (scale, bias, mean, variance) and epsilon.
        var batchNorm: (parameters: [[Float]], epsilon: Float)?
        /// Constant Mul/Add nodes after it (inference only), in order.
        var affine: [Affine] = []
        /// The value added to the Conv's output (the other operand of the Add), if any.
        var residual: String?
        var clamp: (lo: Float, hi: Float)?
        /// The value the step produces (the last absorbed node's output).
        var output: String
        var absorbed: [NodeID]
    }

    /// A constant factor or term per output channel (one value: every channel).
    enum Affine {
        case scale([Float])
        case shift([Float])

        /// The values for `channels` channels.
        func values(_ channels: Int) -> [Float] {
            switch self {
            case .scale(let v), .shift(let v): return v.count == 1 ? [Float](repeating: v[0], count: channels) : v
            }
        }
    }

    /// The chain starting at Conv `id` (its BatchNormalization as ConvBatchNorm.swift matches it); `known(value)` says
    /// whether a value is available before the Conv runs.
    static func convChain(_ graph: Graph, _ id: NodeID, mode: Mode, observed: Set<String>, known: (String) -> Bool)
        throws -> ConvChain? {
        let conv = graph[id]
        guard conv.op == "Conv", conv.isDefaultDomain, conv.outputs.count == 1 else { return nil }
        var chain = ConvChain(batchNorm: nil, residual: nil, clamp: nil, output: conv.outputs[0], absorbed: [])
        func soleReader(_ value: String) -> Node? {
            guard !observed.contains(value), !graph.isGraphOutput(value) else { return nil }
            let readers = graph.consumers(of: value)
            guard readers.count == 1, let r = readers.first, graph[r].isDefaultDomain else { return nil }
            return graph[r]
        }
        if mode == .inference, let bn = try ConvBatchNorm.after(conv, in: graph, hidden: observed, malformed: .skips) {
            chain.batchNorm = (bn.parameters.map(\.floatArray), bn.epsilon)
            chain.absorbed.append(bn.id)
            chain.output = bn.node.outputs[0]
        }
        while mode == .inference, let next = soleReader(chain.output),
              let term = affine(graph, next, after: chain.output, conv: conv) {
            chain.affine.append(term)
            chain.absorbed.append(graph.consumers(of: chain.output)[0])
            chain.output = next.outputs[0]
        }
        if let add = soleReader(chain.output), add.op == "Add", add.inputs.count == 2, add.outputs.count == 1 {
            let other = add.inputs[0] == chain.output ? add.inputs[1] : add.inputs[0]
            if other != chain.output, known(other) {
                chain.residual = other
                chain.absorbed.append(graph.consumers(of: chain.output)[0])
                chain.output = add.outputs[0]
            }
        }
        if let act = soleReader(chain.output), let clamp = clampBounds(graph, act) {
            chain.clamp = clamp
            chain.absorbed.append(graph.consumers(of: chain.output)[0])
            chain.output = act.outputs[0]
        }
        return chain.absorbed.isEmpty ? nil : chain
    }

    /// A Mul or Add of `value` by a float constant of one value or one per output channel of `conv` (its shape
    /// [C, 1, …] or [1, C, 1, …] under the output's rank, which the weight's rank gives), so the output keeps its shape.
    static func affine(_ graph: Graph, _ node: Node, after value: String, conv: Node) -> Affine? {
        guard node.op == "Mul" || node.op == "Add", node.inputs.count == 2, node.outputs.count == 1,
              let weight = conv.inputs.count > 1 ? graph.constantTensor(conv.inputs[1]) : nil
        else { return nil }
        let other = node.inputs[0] == value ? node.inputs[1] : node.inputs[0]
        guard other != value, let t = graph.constantTensor(other), t.dataType == .float else { return nil }
        let rank = weight.dims.count, channels = weight.dims.first ?? 0
        let dims = t.dims.map(Int.init)
        guard dims.count <= rank, t.elementCount == 1 || t.elementCount == channels else { return nil }
        // Right-aligned to the output's rank, every axis but 1 (the channels) has one element.
        for (k, d) in dims.enumerated() where d != 1 && k + rank - dims.count != 1 { return nil }
        let values = t.floatArray
        return node.op == "Mul" ? .scale(values) : .shift(values)
    }

    /// Relu as [0, ∞); Clip with constant bounds.
    static func clampBounds(_ graph: Graph, _ node: Node) -> (lo: Float, hi: Float)? {
        guard node.outputs.count == 1 else { return nil }
        switch node.op {
        case "Relu": return (0, .infinity)
        case "Clip":
            if node.inputs.count == 1 {
                return (node.float("min") ?? -.greatestFiniteMagnitude, node.float("max") ?? .greatestFiniteMagnitude)
            }
            var bounds: [Float] = [-.infinity, .infinity]
            for (slot, i) in [(0, 1), (1, 2)] where i < node.inputs.count && !node.inputs[i].isEmpty {
                guard let t = graph.constantTensor(node.inputs[i]), t.dataType == .float, t.elementCount == 1 else { return nil }
                bounds[slot] = t.withElements(as: Float.self) { $0[0] }
            }
            return (bounds[0], bounds[1])
        default: return nil
        }
    }
}
