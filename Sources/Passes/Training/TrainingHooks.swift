import Graph
import Kernels

// The training ops of SEMANTICS §7 as hooks of the plan's run (Executor/PlanRun.swift): the trainer adds them, the
// loss and the optimizer to the one step loop, and nothing else.
//
//   forward   a quantized step reads x̂ = ActsULQ(x) (a pool buffer, given back once the step ran) and ŵ (kept for
//             backward)
//   reverse   x̂ is recomputed from the kept x (the parameters have not moved since forward), ŵ taken from forward;
//             ∂x̂ → ∂x, ∂clamp_max, ∂clamp_min and ∂ŵ → ∂w (and ∂c) by the step's StepQuantizer

struct TrainingHooks: StepHooks {
    let plan: ExecutionPlan
    let opset: Int
    /// The training ops by step index.
    let quantizers: [Int: StepQuantizer]
    let store: ParameterStore
    let pool: BufferPool
    let requires: [Bool]
    /// Training keeps ŵ for backward; scoring does not.
    let keepWeights: Bool
    var quantizedWeights: [Int: DenseTensor] = [:]
    /// The step's own x and w while its backward runs.
    var raw: (x: DenseTensor, w: DenseTensor)?
    var clampGradients: [Int: Float] = [:]
    var clipGradients: [Int: [Float]] = [:]

    mutating func arguments(_ index: Int, _ args: inout [DenseTensor?], reverse: Bool) throws {
        guard let q = quantizers[index], let x = args[0], args.count > 1, let w = args[1] else { return }
        args[0] = q.quantizeActivation(x, store, pool)
        if reverse {
            raw = (x, w)
            args[1] = quantizedWeights.removeValue(forKey: index)
            return
        }
        do {
            args[1] = try q.quantizeWeight(w, store)
        } catch let e as KernelError {
            throw ExecutionPlan.error(plan.node(plan.steps[index]), opset, e.message)
        }
        if keepWeights { quantizedWeights[index] = args[1] }
    }

    func isActive(_ index: Int) -> Bool { quantizers[index] != nil }

    func ran(_ index: Int, _ args: [DenseTensor?], _ results: [DenseTensor]) {
        if quantizers[index] != nil, let xq = args[0] { pool.recycle(xq) }
    }

    mutating func inputGradients(_ index: Int, _ args: [DenseTensor?], _ gradients: inout [DenseTensor?]) throws {
        guard let q = quantizers[index], let (x, w) = raw else { return }
        raw = nil
        if let xq = args[0] { pool.recycle(xq) }
        if let dxq = gradients[0] {
            let needX = requires[plan.steps[index].inputs[0]]
            gradients[0] = q.activationBackward(x: x, gradient: dxq, needX: needX, store,
                                                clampGradients: &clampGradients, pool)
        }
        if gradients.count > 1, let dwq = gradients[1] {
            gradients[1] = q.weightBackward(w: w, gradient: dwq, store, clipGradients: &clipGradients)
        }
    }
}
