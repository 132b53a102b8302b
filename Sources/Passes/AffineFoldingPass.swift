import Graph

// Conv + per-channel affine folding, for retraining: a BatchNormalization that an exporter wrote as a Mul and an Add
// (or any Conv followed by a per-output-channel scale and shift) folds into the Conv as BatchNormalization does
// (BatchNormFoldingPass), so the training step keeps one value per layer on its tape instead of two, and trains one
// weight instead of a weight and a scale.
//
//   before:  x ─▶ Conv(W, b) ─▶ y ─▶ Mul(y, s) ─▶ m ─▶ Add(m, t) ─▶ z        (the Add optional)
//   after:   x ─▶ Conv(W', b') ─▶ z
//
// W'_c = W_c · s_c;  b'_c = b_c · s_c + t_c   (float32, per output channel c; b = 0 without a bias, t = 0 without the
// Add). s and t are float32 constants of shape [C, 1…] (one value per output channel, spatial axes 1) with any number
// of leading 1s, or a single value. Each of y and m must have one reader and not be a graph output; the Conv's weight
// (and bias) must be float32 constants. The folded weight and bias are new initializers (a shared one stays).

public struct AffineFoldingPass: Pass {
    public let name = "fold-affine"
    public var changesLayers: Bool { true }
    public init() {}

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        var folded = 0
        for id in graph.order where graph.contains(id) {
            guard let match = try Self.match(graph, id) else { continue }
            let conv = graph[id]
            let wName = graph.addInitializer(match.weight, preferredName: "\(conv.inputs[1])_affinefolded")
            let base = conv.inputs[1].replacingOccurrences(of: ".weight", with: "")
            let bName = graph.addInitializer(match.bias, preferredName: "\(base)_bias_affinefolded")
            for n in match.absorbed { graph.removeNode(n) }
            graph.updateNode(id) { n in
                n.inputs = [n.inputs[0], wName, bName]
                n.outputs[0] = match.output
            }
            folded += 1
        }
        context.log.append((name, "\(folded) Conv+Mul(+Add) per-channel affines folded"))
    }

    struct Match {
        var weight: Tensor
        var bias: Tensor
        /// The Mul, and the Add when there is one; the last one's output, which the Conv now makes.
        var absorbed: [NodeID]
        var output: String
    }

    /// The folded weight and bias of the Conv `id` and the nodes it absorbs, or nil when the pattern is not there (or
    /// the folded numbers would not be finite).
    static func match(_ graph: Graph, _ id: NodeID) throws -> Match? {
        let conv = graph[id]
        guard conv.isDefaultDomain, conv.op == "Conv", conv.inputs.count >= 2, conv.outputs.count == 1,
              let w = graph.constantTensor(conv.inputs[1]), w.dataType == .float, w.dims.count >= 3,
              let channels = w.dims.first.map(Int.init), channels > 0,
              let (mulID, scale) = reader(graph, of: conv.outputs[0], op: "Mul", channels: channels, rank: w.dims.count)
        else { return nil }
        try checkComplete(w, conv.inputs[1], node: conv.displayName, role: "weight")
        var bias = [Float](repeating: 0, count: channels)
        if let name = Layer.bias(of: conv) {
            guard let b = graph.constantTensor(name), b.dataType == .float, b.elementCount == channels else { return nil }
            try checkComplete(b, name, node: conv.displayName, role: "bias")
            bias = b.floatArray
        }
        var absorbed = [mulID], output = graph[mulID].outputs[0]
        var shift = [Float](repeating: 0, count: channels)
        if let (addID, t) = reader(graph, of: output, op: "Add", channels: channels, rank: w.dims.count) {
            absorbed.append(addID)
            output = graph[addID].outputs[0]
            shift = t
        }
        let folded = (0..<channels).map { bias[$0] * scale[$0] + shift[$0] }
        let weight = BatchNormFoldingPass.scalingOutputChannels(w, by: scale)
        let finite = weight.withElements(as: Float.self) { $0.allSatisfy(\.isFinite) }
        guard finite, folded.allSatisfy(\.isFinite) else { return nil }
        return Match(weight: weight, bias: Tensor(name: nil, dims: [Int64(channels)], floats: folded),
                     absorbed: absorbed, output: output)
    }

    /// The one reader of `value` when it is `op` with a per-channel float constant as its other operand: the node
    /// and the constant, one value per channel.
    static func reader(_ graph: Graph, of value: String, op: String, channels: Int, rank: Int)
        -> (NodeID, [Float])? {
        guard !graph.isGraphOutput(value), graph.consumers(of: value).count == 1 else { return nil }
        let id = graph.consumers(of: value)[0]
        let node = graph[id]
        guard node.isDefaultDomain, node.op == op, node.inputs.count == 2, node.outputs.count == 1,
              node.inputs.filter({ $0 == value }).count == 1,
              let other = node.inputs.first(where: { $0 != value }), let t = graph.constantTensor(other),
              t.dataType == .float, (try? checkComplete(t, other, node: node.displayName, role: "operand")) != nil,
              let values = perChannel(t, channels: channels, rank: rank)
        else { return nil }
        return (id, values)
    }

    /// One value per channel of a Conv output [N, C, spatial…] of rank `rank`: a single value, or a constant whose
    /// axis aligned with the channels (ChannelRules.alignedAxis) holds C values and every other axis 1.
    static func perChannel(_ t: Tensor, channels: Int, rank: Int) -> [Float]? {
        let values = t.floatArray
        if values.count == 1 { return [Float](repeating: values[0], count: channels) }
        let axis = ChannelRules.alignedAxis(t.dims.count, valueRank: rank, valueAxis: 1)
        guard t.dims.count <= rank, axis >= 0, values.count == channels, t.dims[axis] == Int64(channels) else {
            return nil
        }
        return values  // C values on the channel axis: every other axis is 1
    }
}
