import Dispatch
import Graph
import Kernels

// One run of an execution plan: the only step loop, shared by inference (`GraphExecutor.run`), scoring and training.
//
//   forward   for each step: its arguments (hooks may replace some: training's x̂ and ŵ) → kernel.forward → outputs;
//             after its last reader a value is dropped (inference also recycles its storage), unless `keep` holds
//             it: the tape, i.e. what a backward step reads (`DifferentiableKernel.saved`) and what the loss reads
//   reverse   for each step from the last whose outputs carry a gradient: its arguments again (hooks) → the kernel's
//             backward → hooks may map the input gradients (the training ops' backward) → summed into the inputs'
//             gradients. A step's outputs and their gradients are dropped once its backward ran: nothing earlier
//             reads them, so the tape shrinks as the walk goes.
//
// Values a backward step does not read are handed to it as placeholders (shape only, no elements).

/// What a run does around each step, beyond running it.
protocol StepHooks {
    /// The arguments step `index` reads (called in forward, and again in reverse for the steps that run backward).
    mutating func arguments(_ index: Int, _ args: inout [DenseTensor?], reverse: Bool) throws
    /// After step `index` ran forward with `args`, giving `results`.
    mutating func ran(_ index: Int, _ args: [DenseTensor?], _ results: [DenseTensor])
    /// Maps the gradients of the arguments to those of the step's inputs (reverse only).
    mutating func inputGradients(_ index: Int, _ args: [DenseTensor?], _ gradients: inout [DenseTensor?]) throws
    /// Whether the hooks do anything at step `index` (for the profile).
    func isActive(_ index: Int) -> Bool
}

extension StepHooks {
    mutating func arguments(_ index: Int, _ args: inout [DenseTensor?], reverse: Bool) throws {}
    mutating func ran(_ index: Int, _ args: [DenseTensor?], _ results: [DenseTensor]) {}
    mutating func inputGradients(_ index: Int, _ args: [DenseTensor?], _ gradients: inout [DenseTensor?]) throws {}
    func isActive(_ index: Int) -> Bool { false }
}

/// A run without hooks.
struct NoHooks: StepHooks {}

struct PlanRun {
    let plan: ExecutionPlan
    let opset: Int
    /// Every slot's value while the run holds it.
    var values: [DenseTensor?]
    let pool: BufferPool
    /// Time and calls per op type (backward steps as "<op> backward"), when profiling.
    var profile: GraphExecutor.Profile?

    /// A run with the plan's constants and the given inputs (and `extra` for graph inputs the feeds do not give:
    /// trained parameters).
    init(_ plan: ExecutionPlan, opset: Int, inputs: [String: DenseTensor], pool: BufferPool, profiling: Bool,
         extra: (String) -> DenseTensor? = { _ in nil }) {
        self.plan = plan
        self.opset = opset
        self.pool = pool
        profile = profiling ? GraphExecutor.Profile() : nil
        values = [DenseTensor?](repeating: nil, count: plan.slotCount)
        for (slot, value) in plan.constants { values[slot] = value }
        for (name, slot) in plan.inputSlots { values[slot] = inputs[name] ?? extra(name) }
    }

    /// Runs every step in order. `keep[slot]` keeps a value past its last reader (nil: inference, which recycles).
    mutating func forward(keep: [Bool]?, hooks: inout some StepHooks) throws {
        for (index, step) in plan.steps.enumerated() {
            var args = step.inputs.map { $0 < 0 ? nil : values[$0] }
            var start = profile == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            try hooks.arguments(index, &args, reverse: false)
            record("training ops", since: &start, only: hooks.isActive(index))
            let results: [DenseTensor]
            do {
                results = try step.kernel.forward(args, pool)
            } catch let e as KernelError {
                throw ExecutionPlan.error(plan.node(step), opset, e.message)
            }
            record(keep == nil ? step.opType : step.label, since: &start)
            for (k, slot) in step.outputs.enumerated() where slot >= 0 { values[slot] = results[k] }
            hooks.ran(index, args, results)
            if let keep {
                for slot in step.release where !keep[slot] { values[slot] = nil }
            } else {
                for slot in step.recycle { if let v = values[slot] { pool.recycle(v) } }
                for slot in step.release { values[slot] = nil }
            }
        }
    }

    /// Walks the steps in reverse from `seeds` (gradients at some slots); `requires[slot]` says which slots carry a
    /// gradient, `quantized(index)` which steps the hooks give a gradient of input 0 whatever `requires` says.
    /// Returns the gradient of every slot that has one and that no step produced: graph inputs and parameters.
    mutating func reverse(seeds: [Int: DenseTensor], requires: [Bool], forced: (Int) -> Bool,
                          hooks: inout some StepHooks) throws -> [Int: DenseTensor] {
        var grads = [DenseTensor?](repeating: nil, count: plan.slotCount)
        for (slot, g) in seeds { grads[slot] = g }
        for index in plan.steps.indices.reversed() {
            let step = plan.steps[index]
            defer { for s in step.outputs where s >= 0 { grads[s] = nil; values[s] = nil } }
            let outGrads = step.outputs.map { $0 >= 0 ? grads[$0] : nil }
            guard outGrads.contains(where: { $0 != nil }) else { continue }
            var needs = step.inputs.map { $0 >= 0 && requires[$0] }
            if forced(index) { needs[0] = true }
            guard needs.contains(true), let kernel = step.kernel as? any DifferentiableKernel else { continue }
            var args = step.inputs.enumerated().map { k, s in s < 0 ? nil : saved(s, kernel.saved.readsInput(k)) }
            var start = profile == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            try hooks.arguments(index, &args, reverse: true)
            record("training ops recompute", since: &start, only: hooks.isActive(index))
            let outputs = step.outputs.map { s in saved(s, kernel.saved.outputs) ?? DenseTensor(shape: [0], floats: []) }
            var inGrads: [DenseTensor?]
            do {
                inGrads = try kernel.backward(inputs: args, outputs: outputs, outputGradients: outGrads, needs: needs, pool)
            } catch let e as KernelError {
                throw ExecutionPlan.error(plan.node(step), opset, "gradient: \(e.message)")
            }
            record(step.label + " backward", since: &start)
            try hooks.inputGradients(index, args, &inGrads)
            record("training ops backward", since: &start, only: hooks.isActive(index))
            for (k, slot) in step.inputs.enumerated() where slot >= 0 && k < inGrads.count && requires[slot] {
                guard let g = inGrads[k] else { continue }
                grads[slot] = Self.sum(grads[slot], g)
            }
        }
        var result: [Int: DenseTensor] = [:]
        for (slot, g) in grads.enumerated() { if let g { result[slot] = g } }
        return result
    }

    /// A slot's value for a backward step: the value when the step reads it, else a placeholder of its shape.
    private func saved(_ slot: Int, _ reads: Bool) -> DenseTensor? {
        guard slot >= 0 else { return nil }
        if reads, let v = values[slot] { return v }
        if let v = values[slot], !v.isFloat { return v }  // shapes, indices: small, and read as they are
        guard let shape = plan.shapes[slot] else { return values[slot] }
        return DenseTensor(placeholderOf: shape)
    }

    /// Adds the time since `start` to `op`'s row of the profile (when `only`), and restarts the clock.
    mutating func record(_ op: String, since start: inout UInt64, only: Bool = true) {
        guard profile != nil else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        if only {
            profile!.seconds[op, default: 0] += Double(now - start) / 1e9
            profile!.calls[op, default: 0] += 1
        }
        start = now
    }

    /// a + b elementwise (b alone when a is nil), reusing a's storage.
    static func sum(_ a: DenseTensor?, _ b: DenseTensor) -> DenseTensor {
        guard var a, a.isFloat, a.count == b.count else { return b }
        var values = a.floats  // a's own array (no copy once the tensor lets go of it), or a view's copy
        a.elements = .bool([])
        b.withFloats { o in
            values.withUnsafeMutableBufferPointer { v in
                parallelChunks(v.count, work: v.count) { r in for i in r { v[i] += o[i] } }
            }
        }
        a.elements = .float(values)
        return a
    }
}
