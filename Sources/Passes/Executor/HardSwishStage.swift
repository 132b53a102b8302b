import Kernels

// HardSwish as exporters write it out (Paddle's, PyTorch's before opset 14), as one stage of an elementwise chain
// instead of four:
//
//   x ─Add(a)─Clip(lo, hi)─Mul(x)─Div(d)─▶ y          four passes over each chunk, in the forward and its recompute
//   x ────────────────────────────────────▶ y          one: y = min(max(x + a, lo), hi) · x / d
//
// The same operations in the same order, so the same bits as the four stages. x is the chain's entry value (the pattern
// starts the chain: only there is the value the Mul reads the one before the Add). With u = x + a, c = clip(u):
//
//   ∂x = g/d · c  (the Mul's other operand)  +  g/d · x · [lo ≤ u ≤ hi]  (through the Clip and the Add)
//
// the first part added into the entry's terms, the second passed on as the chain's gradient, as the four stages do.

struct HardSwishStage: DifferentiableChainStage {
    /// The outside operands added and divided by (a and d), and the Clip.
    let add: Int, clip: Clip, div: Int

    var differentiable: Bool { true }
    var affine: Bool { false }
    var reads: (input: Bool, output: Bool) { (true, false) }

    func apply(_ io: UnsafeMutablePointer<Float>, count: Int, _ operands: UnsafeBufferPointer<ChunkOperand>) {
        let a = operands[add], d = operands[div], (lo, hi) = (clip.lo, clip.hi)
        if a.stride == 0 && d.stride == 0 {
            let (av, dv) = (a.base[0], d.base[0])
            for i in 0..<count {
                let x = io[i]
                io[i] = min(max(x + av, lo), hi) * x / dv
            }
        } else {
            for i in 0..<count {
                let x = io[i]
                io[i] = min(max(x + a.base[i * a.stride], lo), hi) * x / d.base[i * d.stride]
            }
        }
    }

    func backward(_ v: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, count: Int,
                  _ operands: UnsafeBufferPointer<ChunkOperand>, entry: UnsafeMutablePointer<Float>,
                  scratch: UnsafeMutablePointer<Float>) {
        let a = operands[add], d = operands[div], (lo, hi) = (clip.lo, clip.hi)
        if a.stride == 0 && d.stride == 0 {
            let (av, dv) = (a.base[0], d.base[0])
            for i in 0..<count {
                let x = v[i], u = x + av, gm = g[i] / dv
                entry[i] += gm * min(max(u, lo), hi)
                g[i] = u >= lo && u <= hi ? gm * x : 0
            }
        } else {
            for i in 0..<count {
                let x = v[i], u = x + a.base[i * a.stride], gm = g[i] / d.base[i * d.stride]
                entry[i] += gm * min(max(u, lo), hi)
                g[i] = u >= lo && u <= hi ? gm * x : 0
            }
        }
    }

    /// `stages` with a leading Add → Clip → Mul by the entry → Div (by an outside operand) as one HardSwishStage.
    static func merging(_ stages: [any ChainStage]) -> [any ChainStage] {
        guard stages.count >= 4, let add = stages[0] as? BinaryStage<AddOperation>, add.operand != 0,
              let clip = stages[1] as? UnaryStage<Clip>, let mul = stages[2] as? BinaryStage<MulOperation>,
              mul.operand == 0, let div = stages[3] as? BinaryStage<DivOperation>, div.chainIsLeft, div.operand != 0
        else { return stages }
        return [HardSwishStage(add: add.operand, clip: clip.function, div: div.operand)] + stages.dropFirst(4)
    }
}
