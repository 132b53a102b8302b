import CProtoSchemas

// Caffe's elementwise activations (one rule each; the table is `CaffeLayerTable`):
//
//   ReLU { negative_slope = 0 }   → Relu
//   ReLU { negative_slope ≠ 0 }   → LeakyRelu(alpha = negative_slope)
//   PReLU { channel_shared }, blob slope [C] (or [1])
//                                 → PRelu(x, slope shaped [C, 1, …] to broadcast over the axes after the channel)
//   Sigmoid                       → Sigmoid
//   TanH                          → Tanh
//   Power { power, scale, shift } → (shift + scale·x)^power as [Mul(scale)] [→ Add(shift)] [→ Pow(power)], each
//                                   only when it changes something (all identity: the top is the bottom)

extension CaffeLayerRule {
    static let relu = CaffeLayerRule(type: "ReLU", bottoms: 1...1, tops: 1...1) { layer, b in
        let slope = layer.params.relu?.pointee.negative_slope ?? 0
        if slope == 0 {
            b.node("Relu", [b.input(0).name], output: b.outputName(0))
        } else {
            b.node("LeakyRelu", [b.input(0).name], [.float("alpha", slope)], output: b.outputName(0))
        }
        b.setOutput(0, shape: b.input(0).shape)
    }

    static let prelu = CaffeLayerRule(type: "PReLU", bottoms: 1...1, tops: 1...1) { layer, b in
        let x = b.input(0)
        guard x.shape.count >= 2 else { throw b.fail("the input has shape \(CaffeBuilder.show(x.shape)); no channel axis") }
        let shared = layer.params.prelu?.pointee.channel_shared ?? 0 != 0
        let c = shared ? 1 : x.shape[1]
        let slope = try b.blob(0, expected: [c], "slope")
        let dims = shared ? [1] : [c] + Array(repeating: 1, count: x.shape.count - 2)
        b.node("PRelu", [x.name, b.constant("slope", dims: dims, slope)], output: b.outputName(0))
        b.setOutput(0, shape: x.shape)
    }

    static let sigmoid = CaffeLayerRule(type: "Sigmoid", bottoms: 1...1, tops: 1...1) { _, b in
        b.node("Sigmoid", [b.input(0).name], output: b.outputName(0))
        b.setOutput(0, shape: b.input(0).shape)
    }

    static let tanh = CaffeLayerRule(type: "TanH", bottoms: 1...1, tops: 1...1) { _, b in
        b.node("Tanh", [b.input(0).name], output: b.outputName(0))
        b.setOutput(0, shape: b.input(0).shape)
    }

    static let power = CaffeLayerRule(type: "Power", bottoms: 1...1, tops: 1...1) { layer, b in
        var p = Caffe__PowerParameter()
        caffe__power_parameter__init(&p)
        if let given = layer.params.power { p = given.pointee }
        let x = b.input(0)
        var steps: [(op: String, constant: Float, part: String)] = []
        if p.scale != 1 { steps.append(("Mul", p.scale, "scale")) }
        if p.shift != 0 { steps.append(("Add", p.shift, "shift")) }
        if p.power != 1 { steps.append(("Pow", p.power, "power")) }
        guard !steps.isEmpty else { return b.alias(0, to: x) }
        var current = x.name
        for (i, step) in steps.enumerated() {
            let last = i == steps.count - 1
            let out = last ? b.outputName(0) : b.temporary(step.part)
            b.node(step.op, [current, b.constant(step.part, dims: [], [step.constant])], output: out,
                   part: last ? nil : step.part)
            current = out
        }
        b.setOutput(0, shape: x.shape)
    }
}
