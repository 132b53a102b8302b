import Dispatch
import Foundation
import Graph
import Kernels

// Quantization-aware training (SEMANTICS §7) on the executor's plan.
//
//   step:  2:4 masks when due → forward (every value kept: the tape), the training ops around each quantized layer
//          → loss (cross-entropy with labels, else distillation from the float teacher: Distillation.swift) → backward: steps in reverse, each
//          operator's DifferentiableKernel, gradients summed where a value has several readers → optimizer → masks
//
// Trained: every float initializer a layer reads as weight or bias, BatchNormalization/LayerNormalization scale and
// bias, non-scalar Add/Sub/Mul/Div constants, and the clamps and clips of the training ops. BN statistics are frozen
// (BatchNormalization after a Conv is folded into it before training).

public struct TrainingOptions: Sendable {
    public var epochs = 20
    /// Stops after this many optimizer steps in all (nil: every epoch whole).
    public var maxSteps: Int?
    public var batchSize = 16
    /// nil: 3e-3 for Adam, 1e-2 for SGD.
    public var learningRate: Float?
    public var optimizer = OptimizerKind.adam
    public var seed: UInt64 = 0
    /// Without labels: the distillation terms (the outputs, or the outputs and every quantized layer's output).
    public var distillation = DistillationMode.outputs
    /// The temperature τ of the KL terms of distillation.
    public var temperature: Float = 1
    /// Time every op's forward and backward (Trainer.profile).
    public var profile = false

    public init() {}
    public var effectiveLearningRate: Float { learningRate ?? (optimizer == .adam ? 3e-3 : 1e-2) }
}

/// What one epoch measured.
public struct EpochReport: Sendable, Codable {
    public var epoch: Int
    public var trainLoss: Float
    @NullEncoded public var trainAccuracy: Float?
    @NullEncoded public var validationLoss: Float?
    @NullEncoded public var validationAccuracy: Float?
    public var seconds: Double
    public var samplesPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case epoch, trainLoss = "train_loss", trainAccuracy = "train_accuracy", validationLoss = "val_loss"
        case validationAccuracy = "val_accuracy", seconds, samplesPerSecond = "samples_per_second"
    }
}

/// Progress of a run, for a terminal.
public struct TrainingProgress: Sendable {
    public var epoch: Int, epochs: Int, step: Int, stepsPerEpoch: Int
    public var loss: Float
    public var samplesPerSecond: Double
    public var secondsLeft: Double
}

/// Loss (and accuracy with labels) of a model on a data set.
public struct Score: Sendable, Codable {
    public var loss: Float
    @NullEncoded public var accuracy: Float?
}

public final class Trainer {
    public let graph: Graph
    public let opset: Int
    public let options: TrainingOptions
    public internal(set) var store = ParameterStore()
    var quantizers: [NodeID: StepQuantizer] = [:]
    var masks: [TwoOfFourMask] = []
    let teacher: GraphExecutor?
    /// The output channels filter pruning kept, by layer name (feature distillation reads the teacher's there).
    let keptChannels: [String: [Int]]
    /// Buffers freed by a step, for the next: the teacher's forward draws from the same pool, so its buffers serve the
    /// student's step that follows instead of sitting idle beside it.
    let pool: BufferPool
    /// Time per op type, forward and backward, and of the loss and the optimizer, when `options.profile` is on.
    public internal(set) var profile: GraphExecutor.Profile?
    private var plans: [[Int]: TrainingPlan] = [:]
    /// The chains the training plans run as one step (tests compare `.training` with `.none`).
    var fusion = Fusion.Mode.training

    /// - Parameters:
    ///   - graph: the compressed float graph (filter pruning applied, BatchNormalization folded).
    ///   - plan: the config's per-layer plan; `clips` the calibrated clips of layers whose config gives none.
    ///   - teacher: the original float graph, for distillation (nil: cross-entropy against labels).
    ///   - keptChannels: the output channels filter pruning kept, by layer name.
    public init(graph: Graph, opset: Int, plan: Plan, clips: [Int: (Float, Float)], teacher: Graph?,
                options: TrainingOptions, keptChannels: [String: [Int]] = [:]) throws {
        self.graph = graph
        self.opset = opset
        self.options = options
        self.keptChannels = keptChannels
        let pool = BufferPool()
        self.pool = pool
        self.teacher = try teacher.map { try GraphExecutor(graph: $0, opset: Int64(opset), pool: pool) }
        profile = options.profile ? GraphExecutor.Profile() : nil
        try addParameters()
        try addTrainingOps(plan, clips: clips)
    }

    // MARK: Parameters

    /// Input positions a node's trained values take, by op.
    static func trainedInputs(_ node: Node) -> [Int] {
        switch node.op {
        case "Conv", "ConvTranspose", "Gemm", "BatchNormalization", "LayerNormalization": return [1, 2]
        case "MatMul", "Add", "Sub", "Mul", "Div": return [0, 1]
        default: return []
        }
    }

    private func addParameters() throws {
        for node in graph.nodes where node.isDefaultDomain {
            let layerOp = ["Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "LayerNormalization"].contains(node.op)
            for i in Self.trainedInputs(node) where i < node.inputs.count {
                let name = node.inputs[i]
                guard !name.isEmpty, store.index(of: name) == nil, let t = graph.initializers[name], t.dataType == .float,
                      layerOp || t.elementCount > 1 else { continue }
                let value = try ExecutionPlan.dense(t).mapError(node: node, opset: opset)
                store.add(name, shape: value.shape, values: value.floats)
            }
        }
    }

    private func addTrainingOps(_ plan: Plan, clips: [Int: (Float, Float)]) throws {
        for (i, p) in plan.layers.enumerated() {
            guard graph.contains(p.layer.node) else { continue }
            let node = graph[p.layer.node]
            let weightName = node.inputs.count > 1 ? node.inputs[1] : ""
            if let freq = p.twoOfFourFrequency, let w = store.index(of: weightName) {
                let g = TwoOfFourPruningPass.groups(p.layer, dims: store.shapes[w])
                masks.append(TwoOfFourMask(parameter: w, layerName: p.layer.name, outer: g.outer, cin: g.cin, inner: g.inner,
                                           updateFreq: Int(freq)))
            }
            guard let decision = p.quant else { continue }
            let act = decision.act, wts = decision.wts
            guard let (clipMin, clipMax) = act.clips.map({ ($0.min, $0.max) }) ?? clips[i] else {
                throw PassError(node: p.layer.name, "has no activation clips (config or IFMR) to start training from")
            }
            guard let weight = store.index(of: weightName) else {
                throw PassError(node: p.layer.name, "its weight '\(weightName)' is not a float32 initializer, so it cannot be trained")
            }
            let layout = WeightLayout(layer: p.layer, weightShape: store.shapes[weight].map(Int64.init),
                                      channelWise: wts.channelWise).layout
            guard layout.elementCount == store.range(weight).count else {
                throw PassError(node: p.layer.name, "its weight of shape \(store.shapes[weight]) does not fit its channel layout")
            }
            let cMax = store.add("\(p.layer.name).clamp_max", shape: [1], values: [clipMax])
            let cMin = store.add("\(p.layer.name).clamp_min", shape: [1], values: [clipMin])
            var weightClips: Int?
            if wts.algorithm == .ulq {
                let initial = store.withValues(weight) { TrainingQuant.wtsULQInitialClips($0, layout) }
                weightClips = store.add("\(p.layer.name).weight_clip", shape: [initial.count], values: initial)
            }
            quantizers[p.layer.node] = StepQuantizer(
                layerIndex: i, layerName: p.layer.name, node: p.layer.node, actBits: act.type.bits, fixedMin: act.fixedMin,
                clampMax: cMax, clampMin: cMin, weight: weight, weightBits: wts.type.bits, algorithm: wts.algorithm,
                layout: layout, weightClips: weightClips)
        }
    }

    /// Learned clips per plan layer index: (clip_min, clip_max) as §7 exports them (clip_min = cmin).
    public var learnedClips: [Int: (Float, Float)] {
        var result: [Int: (Float, Float)] = [:]
        for q in quantizers.values {
            let r = q.range(store)
            result[q.layerIndex] = (r.cmin, store[q.clampMax, 0])
        }
        return result
    }

    /// Learned WtsULQ clips per plan layer index.
    public var learnedWeightClips: [Int: [Float]] {
        var result: [Int: [Float]] = [:]
        for q in quantizers.values { if let c = q.weightClips { result[q.layerIndex] = store[c] } }
        return result
    }

    /// The trained weights, biases and affine parameters by initializer name.
    public var learnedTensors: [String: (shape: [Int], values: [Float])] {
        var result: [String: (shape: [Int], values: [Float])] = [:]
        for (i, name) in store.names.enumerated() where graph.initializers[name] != nil {
            result[name] = (store.shapes[i], store[i])
        }
        return result
    }

    // MARK: Plans

    /// The plan for one input shape, and what backward needs to know about it.
    struct TrainingPlan {
        let plan: ExecutionPlan
        /// Slot of each parameter that some step reads.
        let parameterSlots: [Int: Int]
        /// The slot the loss reads (the first output, or the input of a final Softmax with labels).
        let lossSlot: Int
        let outputSlots: [(name: String, slot: Int)]
        let requiresGradient: [Bool]
        /// Without labels: the distillation terms, and the teacher as far as their values (`teacherCut`).
        let targets: [DistillationTarget]
        let teacherRun: GraphExecutor?
        /// The training ops by step index.
        let quantizers: [Int: StepQuantizer]
        /// Slots training keeps past their last forward reader: what a backward step or the loss reads (the tape).
        let saved: [Bool]
        /// Slots scoring keeps: what the loss reads.
        let lossKept: [Bool]
    }

    func trainingPlan(_ feeds: [String: DenseTensor], labels: Bool) throws -> TrainingPlan {
        try trainingPlan(specs: feeds.mapValues { TensorSpec($0.isFloat ? .float : .int64, $0.shape) }, labels: labels)
    }

    func trainingPlan(specs feeds: [String: TensorSpec], labels: Bool) throws -> TrainingPlan {
        let key = feeds.keys.sorted().flatMap { feeds[$0]!.shape } + [labels ? 1 : 0]
        if let p = plans[key] { return p }
        var specs = feeds
        for (i, name) in store.names.enumerated() where graph.initializers[name] != nil {
            specs[name] = TensorSpec(.float, store.shapes[i])
        }
        // Feature distillation reads every quantized layer's own output: no fused chain hides it.
        let observed = Set(labels || options.distillation != .features ? [] : quantizers.keys.compactMap {
            graph[$0].outputs.first
        })
        let build = { try ExecutionPlan(graph: self.graph, opset: self.opset, registry: .standard, inputs: specs,
                                           observed: observed, fusion: self.fusion) }
        let plan = try BatchOverride.find(graph, specs).map { try $0.plan(build, graph: graph) } ?? build()
        // The tape keeps every value of the batch, and backward makes a gradient of each.
        if let last = plan.steps.last {
            try ExecutionPlan.checkMemory(2 * plan.valueBytes, plan.node(last), opset,
                                          "a training step (values and gradients)")
        }
        var parameterSlots: [Int: Int] = [:]
        for (i, name) in store.names.enumerated() { if let s = plan.slotByName[name] { parameterSlots[i] = s } }
        guard let first = plan.outputSlots.first else { throw PassError(node: "graph outputs", "the model has no output to train on") }
        var lossSlot = first.slot
        if labels, let producer = plan.steps.first(where: { $0.outputs.contains(first.slot) }), producer.opType == "Softmax" {
            lossSlot = producer.inputs[0]
        }
        // Which slots carry a gradient (from a parameter or a training op), and which steps lead to the loss.
        var requires = [Bool](repeating: false, count: plan.slotCount)
        for s in parameterSlots.values { requires[s] = true }
        for step in plan.steps where quantizers[step.node] != nil || step.inputs.contains(where: { $0 >= 0 && requires[$0] }) {
            for s in step.outputs where s >= 0 { requires[s] = true }
        }
        if labels { try Self.checkLogits(plan, lossSlot) }
        let targets = labels ? [] : teacher.map { distillationTargets(plan, teacher: $0.graph, keptChannels: keptChannels) } ?? []
        if !labels && targets.isEmpty {
            throw PassError(node: "graph outputs", "no graph output of the model is one the float model has; nothing to distill")
        }
        var reaches = [Bool](repeating: false, count: plan.slotCount)
        for o in (labels ? [lossSlot] : targets.map(\.slot)) { reaches[o] = true }
        for step in plan.steps.reversed() where step.outputs.contains(where: { $0 >= 0 && reaches[$0] }) {
            for s in step.inputs where s >= 0 { reaches[s] = true }
            let carries = step.inputs.contains { $0 >= 0 && requires[$0] } || quantizers[step.node] != nil
            if carries, !(step.kernel is any DifferentiableKernel) {
                throw PassError(node: plan.node(step).displayName,
                                "\(step.opType) (opset \(opset)) has no gradient, and it lies between trained parameters and the loss; `amct-pipe ops` lists the ops retraining can pass through")
            }
        }
        var stepQuantizers: [Int: StepQuantizer] = [:]
        for (i, step) in plan.steps.enumerated() { if let q = quantizers[step.node] { stepQuantizers[i] = q } }
        var lossKept = [Bool](repeating: false, count: plan.slotCount)
        for s in [lossSlot] + plan.outputSlots.map(\.slot) + targets.map(\.slot) { lossKept[s] = true }
        let saved = Self.tape(plan, requires: requires, reaches: reaches, quantized: Set(stepQuantizers.keys),
                              keeping: lossKept)
        let result = TrainingPlan(plan: plan, parameterSlots: parameterSlots, lossSlot: lossSlot, outputSlots: plan.outputSlots,
                                  requiresGradient: requires, targets: targets,
                                  teacherRun: try targets.isEmpty ? nil : teacherCut(to: Set(targets.map(\.teacherValue))),
                                  quantizers: stepQuantizers, saved: saved, lossKept: lossKept)
        plans[key] = result
        return result
    }

    /// The slots the tape keeps: what the loss reads, and what each step that runs backward reads (its kernel's
    /// `saved`; a quantized step's input x, from which x̂ and the training ops' gradients are recomputed).
    static func tape(_ plan: ExecutionPlan, requires: [Bool], reaches: [Bool], quantized: Set<Int>,
                     keeping kept: [Bool]) -> [Bool] {
        var saved = kept
        for (i, step) in plan.steps.enumerated() {
            guard step.outputs.contains(where: { $0 >= 0 && reaches[$0] }),
                  quantized.contains(i) || step.inputs.contains(where: { $0 >= 0 && requires[$0] }),
                  let kernel = step.kernel as? any DifferentiableKernel else { continue }
            let reads = kernel.saved
            for (k, s) in step.inputs.enumerated() where s >= 0 && (reads.readsInput(k) || quantized.contains(i) && k == 0) {
                saved[s] = true
            }
            if reads.outputs { for s in step.outputs where s >= 0 { saved[s] = true } }
        }
        return saved
    }

    /// Cross-entropy against one label per sample needs logits [N, classes] (a final Softmax's input is taken).
    static func checkLogits(_ plan: ExecutionPlan, _ slot: Int) throws {
        guard let shape = plan.shapes[slot], shape.count >= 2, shape.dropFirst(2).allSatisfy({ $0 == 1 }) else {
            let shape = plan.shapes[slot].map { "\($0)" } ?? "unknown"
            throw PassError(node: plan.names[slot], "cross-entropy against one class index per sample needs logits "
                            + "[N, classes]; this output has shape \(shape). Train without --labels (distillation)")
        }
    }

    /// The number of classes the loss compares labels against (dimension 1 of the logits).
    func classCount(_ tp: TrainingPlan) -> Int? { tp.plan.shapes[tp.lossSlot].flatMap { $0.count >= 2 ? $0[1] : nil } }

    // MARK: Forward

    /// A forward run kept for backward: the run's values (what backward steps and the loss read) and the state of
    /// the training ops.
    struct Tape {
        var run: PlanRun
        var hooks: TrainingHooks
        var values: [DenseTensor?] { run.values }
    }

    /// Runs the plan with the training ops. `training` keeps what backward reads; scoring keeps only what the loss
    /// reads, and frees the rest after its last reader as inference does.
    func forward(_ tp: TrainingPlan, _ feeds: [String: DenseTensor], training: Bool = true) throws -> Tape {
        var run = PlanRun(tp.plan, opset: opset, inputs: feeds, pool: pool, profiling: profile != nil && training) { name in
            self.store.index(of: name).map { DenseTensor(shape: self.store.shapes[$0], floats: self.store[$0]) }
        }
        var hooks = TrainingHooks(plan: tp.plan, opset: opset, quantizers: tp.quantizers, store: store, pool: pool,
                                  requires: tp.requiresGradient, keepWeights: training)
        try run.forward(keep: training ? tp.saved : tp.lossKept, hooks: &hooks)
        if let p = run.profile { profile?.add(p) }
        run.profile = profile == nil ? nil : GraphExecutor.Profile()
        return Tape(run: run, hooks: hooks)
    }

    // MARK: Loss

    /// The loss of a forward run and its gradient at the loss slots; `correct` counts right predictions with labels.
    /// `clock`: the profile's clock in a training step (nil when scoring); the teacher's forward is recorded on its
    /// own row and the clock restarted.
    func loss(_ tp: TrainingPlan, _ tape: Tape, labels: [Int64]?, feeds: [String: DenseTensor], gradient: Bool,
              clock: inout UInt64?) throws -> (loss: Float, correct: Int?, seeds: [Int: DenseTensor]) {
        var seeds: [Int: DenseTensor] = [:]
        if let labels {
            guard let logits = tape.values[tp.lossSlot], logits.isFloat, logits.shape.count >= 2 else {
                throw PassError(node: "graph outputs", "cross-entropy needs the first output to be float logits [N, classes, …]")
            }
            var g = gradient ? [Float](repeating: 0, count: logits.count) : []
            let value = try logits.floats.withUnsafeBufferPointer { z in
                try g.withUnsafeMutableBufferPointer { gb in
                    try Loss.crossEntropy(logits: z, shape: logits.shape, labels: labels, gradient: gradient ? gb : nil)
                }
            }
            if gradient { seeds[tp.lossSlot] = DenseTensor(shape: logits.shape, floats: g) }
            return (value, Self.correct(logits, labels), seeds)
        }
        let distilled = try distillationLoss(tp, tape, feeds: feeds, gradient: gradient, clock: &clock)
        return (distilled.loss, nil, distilled.seeds)
    }

    /// The distillation terms of the plans built so far, for the summary.
    public var distillationSummary: String {
        guard let targets = plans.values.first?.targets else { return "no plan built" }
        var parts = targets.filter { !$0.isFeature }.map(\.label)
        let features = targets.filter(\.isFeature).count
        if features > 0 { parts.append("+ \(features) quantized layers' outputs (\(DistillationKind.normalizedMSE))") }
        return parts.joined(separator: "; ")
    }

    /// Predictions (argmax over axis 1) equal to the labels.
    static func correct(_ logits: DenseTensor, _ labels: [Int64]) -> Int {
        let f = logits.floats, n = logits.shape[0], c = logits.shape[1], inner = logits.shape.dropFirst(2).reduce(1, *)
        var right = 0
        for img in 0..<n {
            for i in 0..<inner {
                var best = 0
                for k in 1..<max(c, 1) where f[(img * c + k) * inner + i] > f[(img * c + best) * inner + i] { best = k }
                if img * inner + i < labels.count, Int64(best) == labels[img * inner + i] { right += 1 }
            }
        }
        return right
    }

    // MARK: Backward

    /// Gradients of every parameter, by parameter index, from the loss's seeds: the plan's steps in reverse
    /// (PlanRun.reverse), the tape shrinking as the walk goes.
    func backward(_ tp: TrainingPlan, _ tape: inout Tape, seeds: [Int: DenseTensor]) throws -> Gradients {
        let grads = try tape.run.reverse(seeds: seeds, requires: tp.requiresGradient,
                                         forced: { tp.quantizers[$0] != nil }, hooks: &tape.hooks)
        if let p = tape.run.profile { profile?.add(p) }
        var result = Gradients(store)
        for (p, slot) in tp.parameterSlots {
            guard let g = grads[slot] else { continue }
            try g.floats.withUnsafeBufferPointer { try result.set(p, in: store, $0) }
        }
        for (p, g) in tape.hooks.clampGradients { try [g].withUnsafeBufferPointer { try result.set(p, in: store, $0) } }
        for (p, g) in tape.hooks.clipGradients { try g.withUnsafeBufferPointer { try result.set(p, in: store, $0) } }
        for m in masks { result.withGradient(m.parameter, in: store) { m.apply(to: $0) } }
        return result
    }

    // MARK: Steps and epochs

    /// One optimizer step on a batch: returns its loss and correct predictions.
    func trainStep(_ feeds: [String: DenseTensor], labels: [Int64]?, learningRate: Float) throws -> (Float, Int?) {
        for i in masks.indices where masks[i].isDue(step: store.step) { masks[i].recompute(&store) }
        let tp = try trainingPlan(feeds, labels: labels != nil)
        let (value, correct, grads): (Float, Int?, Gradients) = try {
            var tape = try forward(tp, feeds)
            var start = DispatchTime.now().uptimeNanoseconds
            var clock: UInt64? = start
            let (value, correct, seeds) = try loss(tp, tape, labels: labels, feeds: feeds, gradient: true, clock: &clock)
            start = clock ?? start
            record("loss", since: &start)
            guard value.isFinite else {
                throw PassError(node: "loss", "the training loss became \(value); lower the learning rate (--lr)")
            }
            return (value, correct, try backward(tp, &tape, seeds: seeds))
        }()
        var start = DispatchTime.now().uptimeNanoseconds
        let averaged = Communicator.world.averaged(grads, step: store.step)  // over the ranks (Distributed.swift)
        if Communicator.world.isDistributed { record("gradient all-reduce", since: &start) }
        store.update(averaged, kind: options.optimizer, learningRate: learningRate)
        record("optimizer", since: &start)
        for m in masks { store.withMutableValues(m.parameter) { m.apply(to: $0) } }
        return (value, correct)
    }

    /// Adds the time since `start` to the profile's row `what`, and restarts the clock.
    func record(_ what: String, since start: inout UInt64) {
        guard profile != nil else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        profile!.seconds[what, default: 0] += Double(now - start) / 1e9
        profile!.calls[what, default: 0] += 1
        start = now
    }

    /// Loss and accuracy of the model as it trains (training ops on) over `data`.
    public func evaluate(_ data: TrainingData) throws -> Score {
        var total: Double = 0, right = 0, seen = 0
        let starts = Array(stride(from: 0, to: data.count, by: options.batchSize))
        let world = Communicator.world  // whole batches, batch b on rank b mod N; sums reduced below
        let batches = world.scoringShard(starts.map { Array($0..<min($0 + options.batchSize, data.count)) })
        let reader = BatchReader(data.samples, batches: batches)
        for indices in batches {
            let feeds = try reader.next(), labels = data.labels.map { l in indices.map { l[$0] } }
            let tp = try trainingPlan(feeds, labels: labels != nil)
            let tape = try forward(tp, feeds, training: false)
            var clock: UInt64?
            let (value, correct, _) = try loss(tp, tape, labels: labels, feeds: feeds, gradient: false, clock: &clock)
            let n = feeds.values.first?.shape.first ?? 0
            total += Double(value) * Double(n)
            right += correct ?? 0
            seen += n
        }
        world.reduceScore(&total, &right, &seen)
        return Score(loss: Float(total / Double(max(seen, 1))), accuracy: data.labels == nil ? nil : Float(right) / Float(max(seen, 1)))
    }

    /// The run's total optimizer steps.
    public func totalSteps(samples: Int) -> Int {
        let perEpoch = max(1, samples / options.batchSize)
        let (all, overflow) = perEpoch.multipliedReportingOverflow(by: options.epochs)  // --epochs may be Int.max
        return min(options.maxSteps ?? Int.max, overflow ? Int.max : all)
    }

    /// Trains one epoch (`epoch` counts from 0); stops early at `maxSteps`.
    public func trainEpoch(_ data: TrainingData, epoch: Int, progress: ((TrainingProgress) -> Void)? = nil) throws -> EpochReport {
        let order = data.order(seed: options.seed, epoch: epoch)
        let perEpoch = max(1, data.count / options.batchSize)
        let total = totalSteps(samples: data.count)
        let start = DispatchTime.now().uptimeNanoseconds
        var lossSum: Double = 0, right = 0, seen = 0, steps = 0
        let batchSize = min(options.batchSize, data.count)
        let batches = (0..<min(perEpoch, max(total - store.step, 0))).map {  // this rank's piece of each global batch
            Communicator.world.shard(Array(order[($0 * batchSize)..<(($0 + 1) * batchSize)]))
        }
        let reader = BatchReader(data.samples, batches: batches, epoch: epoch)
        for (b, indices) in batches.enumerated() where store.step < total {
            let feeds = try reader.next(), labels = data.labels.map { l in indices.map { l[$0] } }
            let lr = ParameterStore.cosine(options.effectiveLearningRate, step: store.step, total: total)
            let (value, correct) = try trainStep(feeds, labels: labels, learningRate: lr)
            lossSum += Double(value)
            right += correct ?? 0
            seen += batchSize
            steps += 1
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let rate = Double(seen) / max(elapsed, 1e-9)
            progress?(TrainingProgress(epoch: epoch + 1, epochs: options.epochs, step: b + 1, stepsPerEpoch: perEpoch,
                                       loss: Float(lossSum / Double(steps)), samplesPerSecond: rate,
                                       secondsLeft: Double(total - store.step) * Double(batchSize) / max(rate, 1e-9)))
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return EpochReport(epoch: epoch + 1, trainLoss: Float(lossSum / Double(max(steps, 1))),
                           trainAccuracy: data.labels == nil ? nil : Float(right) / Float(max(seen, 1)),
                           validationLoss: nil, validationAccuracy: nil, seconds: seconds,
                           samplesPerSecond: Double(seen) / max(seconds, 1e-9))
    }
}
