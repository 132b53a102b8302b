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

    public init() {}
    public var effectiveLearningRate: Float { learningRate ?? (optimizer == .adam ? 3e-3 : 1e-2) }
}

/// What one epoch measured.
public struct EpochReport: Sendable, Codable {
    public var epoch: Int
    public var trainLoss: Float
    public var trainAccuracy: Float?
    public var validationLoss: Float?
    public var validationAccuracy: Float?
    public var seconds: Double
    public var samplesPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case epoch, trainLoss = "train_loss", trainAccuracy = "train_accuracy", validationLoss = "val_loss"
        case validationAccuracy = "val_accuracy", seconds, samplesPerSecond = "samples_per_second"
    }

    public func encode(to encoder: any Encoder) throws {  // nil as null
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(trainLoss, forKey: .trainLoss)
        try c.encode(trainAccuracy, forKey: .trainAccuracy)
        try c.encode(validationLoss, forKey: .validationLoss)
        try c.encode(validationAccuracy, forKey: .validationAccuracy)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(samplesPerSecond, forKey: .samplesPerSecond)
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
    public var accuracy: Float?

    public func encode(to encoder: any Encoder) throws {  // nil as null
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(loss, forKey: .loss)
        try c.encode(accuracy, forKey: .accuracy)
    }
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
    let pool = BufferPool()
    private var plans: [[Int]: TrainingPlan] = [:]

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
        self.teacher = try teacher.map { try GraphExecutor(graph: $0, opset: Int64(opset)) }
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
            if p.prune.enabled, case .twoOfFour(let freq)? = p.prune.kind, let w = store.index(of: weightName) {
                let g = TwoOfFourPruningPass.groups(p.layer, dims: store.shapes[w])
                masks.append(TwoOfFourMask(parameter: w, layerName: p.layer.name, outer: g.outer, cin: g.cin, inner: g.inner,
                                           updateFreq: Int(freq)))
            }
            guard p.quant.enabled, let act = p.quant.act, let wts = p.quant.wts else { continue }
            guard let (clipMin, clipMax) = act.clipMin.map({ ($0, act.clipMax ?? 0) }) ?? clips[i] else {
                throw PassError(node: p.layer.name, "has no activation clips (config or IFMR) to start training from")
            }
            guard let weight = store.index(of: weightName) else {
                throw PassError(node: p.layer.name, "its weight '\(weightName)' is not a float32 initializer, so it cannot be trained")
            }
            let layout = WeightLayout(layer: p.layer, weightShape: store.shapes[weight].map(Int64.init),
                                      channelWise: wts.channelWise).layout
            guard layout.elementCount == store.values[weight].count else {
                throw PassError(node: p.layer.name, "its weight of shape \(store.shapes[weight]) does not fit its channel layout")
            }
            let cMax = store.add("\(p.layer.name).clamp_max", shape: [1], values: [clipMax])
            let cMin = store.add("\(p.layer.name).clamp_min", shape: [1], values: [clipMin])
            var weightClips: Int?
            if wts.algorithm == .ulq {
                let initial = store.values[weight].withUnsafeBufferPointer { TrainingQuant.wtsULQInitialClips($0, layout) }
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
            result[q.layerIndex] = (r.cmin, store.values[q.clampMax][0])
        }
        return result
    }

    /// Learned WtsULQ clips per plan layer index.
    public var learnedWeightClips: [Int: [Float]] {
        var result: [Int: [Float]] = [:]
        for q in quantizers.values { if let c = q.weightClips { result[q.layerIndex] = store.values[c] } }
        return result
    }

    /// The trained weights, biases and affine parameters by initializer name.
    public var learnedTensors: [String: (shape: [Int], values: [Float])] {
        var result: [String: (shape: [Int], values: [Float])] = [:]
        for (i, name) in store.names.enumerated() where graph.initializers[name] != nil {
            result[name] = (store.shapes[i], store.values[i])
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
        /// Without labels: the distillation terms.
        let targets: [DistillationTarget]
        /// Every slot the loss reads (kept when scoring frees values after their last reader).
        var lossSlots: Set<Int> { Set([lossSlot] + outputSlots.map(\.slot) + targets.map(\.slot)) }
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
        let build = { try ExecutionPlan(graph: self.graph, opset: self.opset, registry: .standard, inputs: specs, fuse: false) }
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
        let result = TrainingPlan(plan: plan, parameterSlots: parameterSlots, lossSlot: lossSlot, outputSlots: plan.outputSlots,
                                  requiresGradient: requires, targets: targets)
        plans[key] = result
        return result
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

    /// The values of one forward run (every value when training; what the loss reads when scoring), and the
    /// quantized weight of each quantized step (its quantized input is recomputed in backward, not kept).
    struct Tape {
        var values: [DenseTensor?]
        var quantizedWeights: [Int: DenseTensor] = [:]
    }

    /// Runs the plan with the training ops. `training` keeps every value for backward; scoring keeps only what the
    /// loss reads, and frees the rest after its last reader as inference does.
    func forward(_ tp: TrainingPlan, _ feeds: [String: DenseTensor], training: Bool = true) throws -> Tape {
        let plan = tp.plan
        var tape = Tape(values: [DenseTensor?](repeating: nil, count: plan.slotCount))
        for (slot, value) in plan.constants { tape.values[slot] = value }
        for (name, slot) in plan.inputSlots {
            if let f = feeds[name] {
                tape.values[slot] = f
            } else if let p = store.index(of: name) {
                tape.values[slot] = DenseTensor(shape: store.shapes[p], floats: store.values[p])
            }
        }
        for (index, step) in plan.steps.enumerated() {
            var args = step.inputs.map { $0 < 0 ? nil : tape.values[$0] }
            if let q = quantizers[step.node] {
                args = try quantizedArguments(q, args, plan.node(step))
                if training, args.count > 1, let w = args[1] { tape.quantizedWeights[index] = w }
            }
            let results: [DenseTensor]
            do {
                results = try step.kernel.forward(args, pool)
            } catch let e as KernelError {
                throw ExecutionPlan.error(plan.node(step), opset, e.message)
            }
            if quantizers[step.node] != nil, let xq = args[0] { pool.recycle(xq) }
            for (k, slot) in step.outputs.enumerated() where slot >= 0 { tape.values[slot] = results[k] }
            if !training {
                for slot in step.release where !tp.lossSlots.contains(slot) { tape.values[slot] = nil }
            }
        }
        return tape
    }

    /// A quantized step's arguments: x̂ = ActsULQ(x) (a pool buffer), ŵ = ARQ or WtsULQ of w (a new tensor).
    func quantizedArguments(_ q: StepQuantizer, _ args: [DenseTensor?], _ node: Node) throws -> [DenseTensor?] {
        guard let x = args[0], let w = args.count > 1 ? args[1] : nil else { return args }
        var result = args
        result[0] = q.quantizeActivation(x, store, pool)
        do {
            result[1] = try q.quantizeWeight(w, store)
        } catch let e as KernelError {
            throw ExecutionPlan.error(node, opset, e.message)
        }
        return result
    }

    // MARK: Loss

    /// The loss of a forward run and its gradient at the loss slots; `correct` counts right predictions with labels.
    func loss(_ tp: TrainingPlan, _ tape: Tape, labels: [Int64]?, feeds: [String: DenseTensor], gradient: Bool)
        throws -> (loss: Float, correct: Int?, seeds: [Int: DenseTensor]) {
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
        let distilled = try distillationLoss(tp, tape, feeds: feeds, gradient: gradient)
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

    /// Gradients of every parameter, by parameter index. A step's output values and their gradients are freed once
    /// its backward ran (nothing earlier reads them), so the tape shrinks as the walk goes.
    func backward(_ tp: TrainingPlan, _ tape: inout Tape, seeds: [Int: DenseTensor]) throws -> [[Float]?] {
        let plan = tp.plan
        var grads = [DenseTensor?](repeating: nil, count: plan.slotCount)
        for (slot, g) in seeds { grads[slot] = g }
        var clampGradients: [Int: Float] = [:]
        var clipGradients: [Int: [Float]] = [:]
        for index in plan.steps.indices.reversed() {
            let step = plan.steps[index]
            defer {
                for s in step.outputs where s >= 0 { grads[s] = nil; tape.values[s] = nil }
                tape.quantizedWeights[index] = nil
            }
            let outGrads = step.outputs.map { $0 >= 0 ? grads[$0] : nil }
            guard outGrads.contains(where: { $0 != nil }) else { continue }
            let quantizer = quantizers[step.node]
            var needs = step.inputs.map { $0 >= 0 && tp.requiresGradient[$0] }
            if quantizer != nil { needs[0] = true }
            guard needs.contains(true), let kernel = step.kernel as? any DifferentiableKernel else { continue }
            var args = step.inputs.map { $0 < 0 ? nil : tape.values[$0] }
            if quantizer != nil, let x = args[0] {  // x̂ recomputed (the parameters have not moved since forward)
                args[0] = quantizer?.quantizeActivation(x, store, pool)
                if args.count > 1 { args[1] = tape.quantizedWeights[index] }
            }
            let outputs = step.outputs.map { $0 >= 0 ? tape.values[$0] ?? DenseTensor(shape: [0], floats: []) : DenseTensor(shape: [0], floats: []) }
            var inGrads: [DenseTensor?]
            do {
                inGrads = try kernel.backward(inputs: args, outputs: outputs, outputGradients: outGrads, needs: needs, pool)
            } catch let e as KernelError {
                throw ExecutionPlan.error(plan.node(step), opset, "gradient: \(e.message)")
            }
            if quantizer != nil, let xq = args[0] { pool.recycle(xq) }
            if let q = quantizer {
                if let dxq = inGrads[0], let x = tape.values[step.inputs[0]] {
                    inGrads[0] = q.activationBackward(x: x, gradient: dxq, needX: tp.requiresGradient[step.inputs[0]], store,
                                                      clampGradients: &clampGradients, pool)
                }
                if inGrads.count > 1, let dwq = inGrads[1], let w = tape.values[step.inputs[1]] {
                    inGrads[1] = q.weightBackward(w: w, gradient: dwq, store, clipGradients: &clipGradients)
                }
            }
            for (k, slot) in step.inputs.enumerated() where slot >= 0 && k < inGrads.count && tp.requiresGradient[slot] {
                guard let g = inGrads[k] else { continue }
                grads[slot] = Self.sum(grads[slot], g)
            }
        }
        var result = [[Float]?](repeating: nil, count: store.names.count)
        for (p, slot) in tp.parameterSlots { result[p] = grads[slot]?.floats }
        for (p, g) in clampGradients { result[p] = [g] }
        for (p, g) in clipGradients { result[p] = g }
        for m in masks { if var g = result[m.parameter] { m.apply(to: &g); result[m.parameter] = g } }
        return result
    }

    /// a + b elementwise (b alone when a is nil), reusing a's storage.
    static func sum(_ a: DenseTensor?, _ b: DenseTensor) -> DenseTensor {
        guard var a, a.isFloat, a.count == b.count else { return b }
        var values = a.floats  // a's own array (no copy once the tensor lets go of it), or a view's copy
        a.elements = .bool([])
        let other = b.floats
        values.withUnsafeMutableBufferPointer { v in other.withUnsafeBufferPointer { o in for i in 0..<v.count { v[i] += o[i] } } }
        a.elements = .float(values)
        return a
    }

    // MARK: Steps and epochs

    /// One optimizer step on a batch: returns its loss and correct predictions.
    func trainStep(_ feeds: [String: DenseTensor], labels: [Int64]?, learningRate: Float) throws -> (Float, Int?) {
        for i in masks.indices where masks[i].isDue(step: store.step) { masks[i].recompute(&store) }
        let tp = try trainingPlan(feeds, labels: labels != nil)
        let (value, correct, grads): (Float, Int?, [[Float]?]) = try {
            var tape = try forward(tp, feeds)
            let (value, correct, seeds) = try loss(tp, tape, labels: labels, feeds: feeds, gradient: true)
            guard value.isFinite else {
                throw PassError(node: "loss", "the training loss became \(value); lower the learning rate (--lr)")
            }
            return (value, correct, try backward(tp, &tape, seeds: seeds))
        }()
        let averaged = Communicator.world.averaged(grads, store, step: store.step)  // over the ranks (Distributed.swift)
        store.update(averaged, kind: options.optimizer, learningRate: learningRate)
        for m in masks { m.apply(to: &store.values[m.parameter]) }
        return (value, correct)
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
            let (value, correct, _) = try loss(tp, tape, labels: labels, feeds: feeds, gradient: false)
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
