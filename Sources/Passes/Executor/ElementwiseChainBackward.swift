import Graph
import Kernels

// The backward of an elementwise chain (ElementwiseChain.swift), for training plans: the chain's inner values are
// never kept; per chunk the ones a stage's backward reads (Clip's input, not Add's) are recomputed from the entry
// value (in L1), then the chunk's gradient walks the stages
// in reverse:
//
//   forward   v₀ = x;  v_{s+1} = stage_s(v_s)                         y = v_S
//   backward  g_S = ∂y;  g_s = ∂stage_s/∂v · g_{s+1}  (in place)       ∂x = g₀ + Σ_s ∂stage_s/∂o · g_{s+1} where a
//                                                                      stage's operand o is x itself (HardSwish's x·…)
//
// Training joins only stages with a gradient here (unary functions with one, Add, Sub, Mul, Div) and chains whose
// outside operands are constants (Fusion: the trainer's parameters are not constants), so only the entry value takes a
// gradient, and it has the output's shape: chunks write disjoint elements.

/// A chain stage with its vector-Jacobian product.
protocol DifferentiableChainStage: ChainStage {
    /// Whether this stage has a gradient here.
    var differentiable: Bool { get }
    /// Whether the stage is affine in the chain's value with an outside operand that is not the entry value (+ o, − o,
    /// o − v, · o, / o): its backward reads neither v nor y, so a chain of such stages keeps nothing of its entry.
    var affine: Bool { get }
    /// The values its backward reads: its input v, its output y (the chain recomputes only those).
    var reads: (input: Bool, output: Bool) { get }
    /// g ← ∂stage/∂v · g (v the stage's input, y its output); where the stage's operand is the chain's entry value,
    /// adds ∂stage/∂o · g into `entry`. `scratch` holds `count` floats.
    func backward(_ v: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, count: Int,
                  _ operands: UnsafeBufferPointer<ChunkOperand>, entry: UnsafeMutablePointer<Float>,
                  scratch: UnsafeMutablePointer<Float>)
}

extension UnaryStage: DifferentiableChainStage {
    var differentiable: Bool { function is any DifferentiableUnaryFunction }
    var affine: Bool { false }
    var reads: (input: Bool, output: Bool) {
        guard let f = function as? any DifferentiableUnaryFunction else { return (false, false) }
        return type(of: f).readsOutput ? (false, true) : (true, false)
    }
    func backward(_ v: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, count: Int,
                  _ operands: UnsafeBufferPointer<ChunkOperand>, entry: UnsafeMutablePointer<Float>,
                  scratch: UnsafeMutablePointer<Float>) {
        guard let f = function as? any DifferentiableUnaryFunction else { return }
        scratch.update(repeating: 0, count: count)
        f.backward(x: UnsafeBufferPointer(start: v, count: count), y: UnsafeBufferPointer(start: y, count: count),
                   gradient: UnsafeBufferPointer(start: g, count: count),
                   dx: UnsafeMutableBufferPointer(start: scratch, count: count))
        g.update(from: scratch, count: count)
    }
}

extension BinaryStage: DifferentiableChainStage {
    var differentiable: Bool { [.add, .sub, .mul, .div].contains(Op.gradient) }
    var affine: Bool { operand != 0 && ([.add, .sub, .mul].contains(Op.gradient) || Op.gradient == .div && chainIsLeft) }
    var reads: (input: Bool, output: Bool) {
        switch Op.gradient {
        case .mul: return (operand == 0, false)  // x·v: ∂x = g·v
        case .div where chainIsLeft: return (false, operand == 0)  // v/x: ∂x = −g·y/x
        case .div: return (true, true)
        default: return (false, false)
        }
    }
    func backward(_ v: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, count: Int,
                  _ operands: UnsafeBufferPointer<ChunkOperand>, entry: UnsafeMutablePointer<Float>,
                  scratch: UnsafeMutablePointer<Float>) {
        let o = operands[operand], b = o.base
        let toEntry = operand == 0
        // The chain's layout gives an outside operand stride 1 (same shape) or 0 (broadcast): one loop each, so both
        // vectorize.
        let scalar: Float? = o.stride == 0 ? b[0] : nil
        switch Op.gradient {
        case .add: if toEntry { for i in 0..<count { entry[i] += g[i] } }
        case .sub:
            if toEntry {
                let sign: Float = chainIsLeft ? -1 : 1
                for i in 0..<count { entry[i] += sign * g[i] }
            }
            if !chainIsLeft { for i in 0..<count { g[i] = -g[i] } }
        case .mul:
            if toEntry { for i in 0..<count { entry[i] += g[i] * v[i] } }
            if let c = scalar { for i in 0..<count { g[i] *= c } } else { for i in 0..<count { g[i] *= b[i] } }
        case .div where chainIsLeft:  // y = v / o
            if let c = scalar {
                if toEntry { for i in 0..<count { entry[i] -= g[i] * y[i] / c } }
                for i in 0..<count { g[i] /= c }
            } else {
                if toEntry { for i in 0..<count { entry[i] -= g[i] * y[i] / b[i] } }
                for i in 0..<count { g[i] /= b[i] }
            }
        case .div:  // y = o / v
            if toEntry { for i in 0..<count { entry[i] += g[i] / v[i] } }
            for i in 0..<count { g[i] = -g[i] * y[i] / v[i] }
        default: return
        }
    }
}

extension ElementwiseChainKernel: DifferentiableKernel {
    /// The operands (the entry value among them, unless every stage is affine in it: a Conv's output scaled and
    /// shifted per channel is then not kept); the output and the inner values are recomputed.
    var saved: SavedValues {
        SavedValues(inputs: affine ? Set(1..<layout.strides.count) : nil, outputs: false)
    }

    /// Whether every stage is affine in the chain's value (the gradient does not depend on the values).
    var affine: Bool { stages.allSatisfy { ($0 as? any DifferentiableChainStage)?.affine == true } }

    /// Whether every stage has a gradient (the plan joins only such chains when training).
    var differentiable: Bool { stages.allSatisfy { ($0 as? any DifferentiableChainStage)?.differentiable == true } }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        var result: [DenseTensor?] = inputs.map { _ in nil }
        guard needs.first == true else { return result }
        guard differentiable, needs.dropFirst().allSatisfy({ !$0 }) else {
            throw KernelError("this chain of elementwise ops has no gradient; train on an unfused plan")
        }
        let g = try outputGradient(outputGradients, 0, shape: layout.shape, buffers)
        let affine = self.affine  // the entry is not kept: the gradient (of the output's shape) stands in for its base
        let values = try inputs.indices.map { k in affine && k == 0 ? g : try inputs.required(k) }
        var dx = buffers.floats(layout.count)  // every element written once, by its chunk
        dx.withUnsafeMutableBufferPointer { d in
            g.withFloatPointer { gp in
                withPointers(values, [], 0) { bases in
                    reverse(bases, gradient: gp, into: d.baseAddress!, recompute: !affine)
                }
            }
        }
        result[0] = DenseTensor(shape: layout.shape, floats: dx)
        return result
    }

    /// Per chunk: the values the stages' backward reads recomputed (in one running chunk, copied out where kept), then
    /// the gradient through the stages in reverse, written into `dx` (each element once: the entry's terms gather in
    /// the chunk, in L1, so `dx` is neither zeroed nor read).
    private func reverse(_ bases: [UnsafePointer<Float>], gradient: UnsafePointer<Float>,
                         into dx: UnsafeMutablePointer<Float>, recompute: Bool) {
        let stages = self.stages.map { $0 as! any DifferentiableChainStage }
        let chunk = Self.chunk
        // Value s (v₀ the entry … v_S the output) is kept when stage s reads its input or stage s − 1 its output.
        let reads = stages.map(\.reads)
        var slot = [Int?](repeating: nil, count: stages.count + 1)
        var kept = 0
        for s in slot.indices where recompute && ((s < stages.count && reads[s].input) || (s > 0 && reads[s - 1].output)) {
            slot[s] = kept
            kept += 1
        }
        let last = slot.lastIndex { $0 != nil } ?? 0
        // Per thread: the gradient, the entry's terms, a scratch chunk, the running value, then the kept values.
        forEachChunk(bases, scratch: (kept + 4) * chunk) { offset, count, operands, scratch in
            let g = scratch, entry = scratch + chunk, tmp = scratch + 2 * chunk, work = scratch + 3 * chunk
            let values = scratch + 4 * chunk
            func value(_ s: Int) -> UnsafeMutablePointer<Float> { slot[s].map { values + $0 * chunk } ?? work }
            if recompute {
                Self.fillEntry(work, count: count, operands[0])
                if let k = slot[0] { (values + k * chunk).update(from: work, count: count) }
                for s in 0..<last {  // the stages after the last kept value are not recomputed
                    stages[s].apply(work, count: count, operands)
                    if let k = slot[s + 1] { (values + k * chunk).update(from: work, count: count) }
                }
            }
            g.update(from: gradient + offset, count: count)
            entry.update(repeating: 0, count: count)
            for s in stages.indices.reversed() {
                stages[s].backward(value(s), value(s + 1), g, count: count, operands, entry: entry, scratch: tmp)
            }
            let d = dx + offset
            for i in 0..<count { d[i] = entry[i] + g[i] }
        }
    }
}
