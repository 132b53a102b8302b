import Graph
import Kernels

// Distillation without labels (SEMANTICS §7): the float model (the teacher) runs on the same batch, and the student
// is compared with it where the values still carry signal. Per graph output, chosen from the op that makes it:
//
//   … → Softmax(axis) → out     KL(teacher ‖ student) of the two distributions, on the Softmax inputs at τ
//                               (any axis; [N, T, C] sequence outputs per position)
//   … → Sigmoid → out           binary KL on the Sigmoid inputs at τ
//   anything else               MSE divided by the teacher output's variance over the batch
//
// With `features` also, at every quantized layer's output: the normalised MSE to the teacher's value of the same name
// (on the kept channels where filter pruning removed some). Loss = mean over outputs + mean over layers.

/// How one place of the student is compared with the teacher.
public enum DistillationKind: Sendable, Equatable, CustomStringConvertible {
    case softmaxKL(Loss.SoftmaxLayout)
    case sigmoidKL
    case normalizedMSE

    public var description: String {
        switch self {
        case .softmaxKL(let l): return "KL divergence over softmax(\(l.classes) classes)"
        case .sigmoidKL: return "binary KL divergence over sigmoid"
        case .normalizedMSE: return "MSE / teacher variance"
        }
    }
}

/// Which distillation terms retraining without labels uses.
public enum DistillationMode: String, Sendable, CaseIterable {
    /// The graph outputs only.
    case outputs
    /// The outputs and every quantized layer's output (block-wise reconstruction).
    case features
}

/// One term of the distillation loss.
struct DistillationTarget {
    /// The student's value compared (a slot of the training plan) and the teacher's value of the same meaning.
    let slot: Int
    let teacherValue: String
    let kind: DistillationKind
    /// Output terms and feature terms are averaged separately.
    let isFeature: Bool
    /// For a filter-pruned layer: the channel axis and the teacher channels the student kept.
    let kept: (axis: Int, channels: [Int])?
    /// What the summary prints.
    let label: String
}

extension Trainer {
    /// The terms for a training plan: one per graph output, and with `.features` one per quantized layer.
    func distillationTargets(_ plan: ExecutionPlan, teacher: Graph, keptChannels: [String: [Int]]) -> [DistillationTarget] {
        var targets: [DistillationTarget] = []
        for (name, slot) in plan.outputSlots where teacher.isGraphOutput(name) {
            targets.append(outputTarget(plan, name: name, slot: slot, teacher: teacher))
        }
        guard options.distillation == .features else { return targets }
        for q in quantizers.values.sorted(by: { $0.layerIndex < $1.layerIndex }) {
            let node = graph[q.node]
            guard let value = node.outputs.first, let slot = plan.slotByName[value], plan.constantValue(slot) == nil,
                  teacher.producer(of: value) != nil || teacher.inputs.contains(where: { $0.name == value })
            else { continue }
            let axis = node.op == "Conv" || node.op == "ConvTranspose" ? 1 : (plan.shapes[slot]?.count ?? 1) - 1
            let kept = keptChannels[q.layerName].map { (axis: axis, channels: $0) }
            targets.append(DistillationTarget(slot: slot, teacherValue: value, kind: .normalizedMSE, isFeature: true,
                                              kept: kept, label: "feature '\(value)'"))
        }
        return targets
    }

    /// The term of one graph output: on the logits before a final Softmax or Sigmoid that both models end in.
    private func outputTarget(_ plan: ExecutionPlan, name: String, slot: Int, teacher: Graph) -> DistillationTarget {
        let mse = DistillationTarget(slot: slot, teacherValue: name, kind: .normalizedMSE, isFeature: false, kept: nil,
                                     label: "output '\(name)': \(DistillationKind.normalizedMSE)")
        // Through Identity nodes (Paddle ends in Softmax → Identity), in both models.
        var step = plan.steps.first { $0.outputs.contains(slot) }
        while let s = step, s.opType == "Identity", let input = s.inputs.first {
            step = plan.steps.first { $0.outputs.contains(input) }
        }
        var producer = teacher.producer(of: name)
        while let p = producer, teacher[p].op == "Identity", let input = teacher[p].inputs.first {
            producer = teacher.producer(of: input)
        }
        guard let step, let logits = step.inputs.first, logits >= 0, let producer, teacher[producer].op == step.opType,
              let teacherLogits = teacher[producer].inputs.first
        else { return mse }
        let kind: DistillationKind
        switch step.kernel {
        case let softmax as NormalizationOps.SoftmaxKernel:
            kind = .softmaxKL(Loss.SoftmaxLayout(outer: softmax.outer, classes: softmax.axis, inner: softmax.after))
        case _ where step.opType == "Sigmoid":
            kind = .sigmoidKL
        default:
            return mse
        }
        let tau = options.temperature == 1 ? "" : ", τ = \(options.temperature)"
        return DistillationTarget(slot: logits, teacherValue: teacherLogits, kind: kind, isFeature: false, kept: nil,
                                  label: "output '\(name)': \(kind)\(tau)")
    }

    /// The teacher graph ending at the values distillation reads: they become its outputs, and what only led past
    /// them (a final Softmax whose input the loss reads) is not run.
    ///
    ///   before   … → logits → Softmax → out          (outputs: out)
    ///   after    … → logits                          (outputs: logits)
    func teacherCut(to values: Set<String>) throws -> GraphExecutor? {
        guard let teacher else { return nil }
        var graph = teacher.graph
        graph.outputs = values.sorted().map { ValueInfo(name: $0, type: nil) }
        graph.removeDeadCode()
        return try GraphExecutor(graph: graph, opset: teacher.opset, pool: pool)
    }

    /// The distillation loss of a forward run against the teacher on the same feeds, and its gradient seeds.
    func distillationLoss(_ tp: TrainingPlan, _ tape: Tape, feeds: [String: DenseTensor], gradient: Bool,
                          clock: inout UInt64?) throws -> (loss: Float, seeds: [Int: DenseTensor]) {
        guard let teacher = tp.teacherRun else { throw PassError(node: "graph outputs", "distillation needs the float model") }
        var values: [String: DenseTensor] = [:]
        let wanted = Set(tp.targets.map(\.teacherValue))
        for (name, value) in try teacher.run(feeds) where wanted.contains(name) { values[name] = value }  // its outputs
        if clock != nil { record("teacher forward", since: &clock!) }
        let outputCount = tp.targets.filter { !$0.isFeature }.count, featureCount = tp.targets.count - outputCount
        var total: Float = 0
        var seeds: [Int: DenseTensor] = [:]
        for target in tp.targets {
            guard let student = tape.values[target.slot], student.isFloat,
                  let whole = values[target.teacherValue]
            else { continue }
            let t = target.kept.map { Self.gather(t: whole, $0) } ?? whole
            guard t.count == student.count else {
                throw PassError(node: target.label, "the student's value has shape \(student.shape), the teacher's "
                                    + "\(t.shape); distillation compares values of one shape")
            }
            let weight = 1 / Float(max(target.isFeature ? featureCount : outputCount, 1))
            var g = [Float](repeating: 0, count: gradient ? student.count : 0)
            total += weight * (try g.withUnsafeMutableBufferPointer { gb in
                try term(target.kind, student, t, weight: weight, gradient: gradient ? gb : nil)
            })
            if gradient { seeds[target.slot] = PlanRun.sum(seeds[target.slot], DenseTensor(shape: student.shape, floats: g)) }
        }
        return (total, seeds)
    }

    private func term(_ kind: DistillationKind, _ s: DenseTensor, _ t: DenseTensor, weight: Float,
                      gradient g: UnsafeMutableBufferPointer<Float>?) throws -> Float {
        let (sf, tf) = (s.floats, t.floats)
        return try sf.withUnsafeBufferPointer { sb in
            try tf.withUnsafeBufferPointer { tb in
                switch kind {
                case .softmaxKL(let layout):
                    return try Loss.softmaxKL(student: sb, teacher: tb, layout, temperature: options.temperature,
                                              scale: weight, gradient: g)
                case .sigmoidKL:
                    return try Loss.sigmoidKL(student: sb, teacher: tb, temperature: options.temperature,
                                              scale: weight, gradient: g)
                case .normalizedMSE:
                    let variance = g == nil ? nil : Communicator.world.globalVariance(tb)  // over the global batch
                    return try Loss.normalizedMSE(sb, target: tb, scale: weight, gradient: g, variance: variance)
                }
            }
        }
    }

    /// The teacher's value restricted to the channels the student kept.
    static func gather(t: DenseTensor, _ kept: (axis: Int, channels: [Int])) -> DenseTensor {
        let shape = t.shape
        guard kept.axis >= 0, kept.axis < shape.count, kept.channels.allSatisfy({ $0 >= 0 && $0 < shape[kept.axis] })
        else { return t }
        let outer = shape[..<kept.axis].reduce(1, *), n = shape[kept.axis], inner = shape[(kept.axis + 1)...].reduce(1, *)
        let f = t.floats
        var out = [Float]()
        out.reserveCapacity(outer * kept.channels.count * inner)
        for o in 0..<outer {
            for c in kept.channels { out.append(contentsOf: f[((o * n + c) * inner)..<((o * n + c + 1) * inner)]) }
        }
        var newShape = shape
        newShape[kept.axis] = kept.channels.count
        return DenseTensor(shape: newShape, floats: out)
    }
}
