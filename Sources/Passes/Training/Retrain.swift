import Foundation
import Graph
import Kernels

// `amct-pipe retrain`: the compress pipeline with training before export (ARCHITECTURE step 9b).
//
//   plan → filter pruning → 2:4 → calibration (IFMR on the first batch_num batches of the training data)
//        → fold BatchNormalization → Trainer (epochs; validation scored each epoch, the best kept; a checkpoint each
//          epoch) → learned weights into the graph, learned clips into the context → export as compress would

/// What retraining did: scores before and after, per epoch, and where it started.
public struct TrainingReport: Sendable, Codable {
    /// Scored on the validation data when given, else on the training data, with the training ops on.
    public var before: Score
    public var after: Score
    public var scoredOn: String
    public var epochs: [EpochReport]
    /// The epoch whose parameters were written (the best validation score; the last epoch without validation data).
    public var writtenEpoch: Int
    public var steps: Int
    public var seconds: Double
    public var resumedFromEpoch: Int?
    public var loss: String
}

public struct RetrainResult {
    public var compression: CompressionResult
    public var report: TrainingReport
}

/// Where and how often retraining saves its state.
public struct CheckpointOptions: Sendable {
    public var directory: String?
    public var resume: String?
    public init(directory: String? = nil, resume: String? = nil) {
        self.directory = directory
        self.resume = resume
    }
}

public func retrain(
    _ input: Model, config: CompressionConfig, format: OutputFormat = .qdq, data: TrainingData, validation: TrainingData? = nil,
    options: TrainingOptions, calibration: CalibrationPass, checkpoints: CheckpointOptions = CheckpointOptions(),
    progress: ((TrainingProgress) -> Void)? = nil
) throws -> RetrainResult {
    let started = Date()
    var (model, context) = try prepareCompression(input, config: config, calibration: calibration)
    guard let plan = context.plan else { throw PassError(node: "config", "there is no plan to retrain") }
    try BatchNormFoldingPass().run(&model.graph, &context)
    let opset = Int(context.opsetImports.first { ($0.domain ?? "").isEmpty || $0.domain == "ai.onnx" }?.version ?? 13)
    let trainer = try Trainer(graph: model.graph, opset: opset, plan: plan, clips: context.calibratedClips,
                              teacher: data.labels == nil ? input.graph : nil, options: options)
    var state = TrainingState()
    if let resume = checkpoints.resume { state = try Checkpoint.restore(trainer, from: resume) }
    let scored = validation ?? data
    let before = try state.before ?? trainer.evaluate(scored)
    state.before = before
    var epoch = state.epochsDone
    while epoch < options.epochs && trainer.store.step < trainer.totalSteps(samples: data.count) {
        var report = try trainer.trainEpoch(data, epoch: epoch, progress: progress)
        if let validation {
            let s = try trainer.evaluate(validation)
            report.validationLoss = s.loss
            report.validationAccuracy = s.accuracy
            if state.best == nil || s.isBetter(than: state.best!.score) {
                state.best = (report.epoch, s, trainer.store.values)
            }
        }
        state.reports.append(report)
        epoch += 1
        state.epochsDone = epoch
        if let dir = checkpoints.directory { try Checkpoint.save(trainer, state, to: dir) }
    }
    if let best = state.best { trainer.restore(values: best.values) }
    let after = try trainer.evaluate(scored)
    for (name, tensor) in trainer.learnedTensors {
        model.graph.setInitializer(Tensor(name: name, dims: tensor.shape.map(Int64.init), floats: tensor.values))
    }
    context.trainedClips = trainer.learnedClips
    context.trainedWeightClips = trainer.learnedWeightClips
    context.log.append(("retrain", "\(trainer.store.step) steps over \(state.reports.count) epochs"))
    let result = try exportCompressed(model, context, format: format)
    let report = TrainingReport(
        before: before, after: after, scoredOn: validation?.source ?? data.source, epochs: state.reports,
        writtenEpoch: state.best?.epoch ?? state.reports.last?.epoch ?? 0, steps: trainer.store.step,
        seconds: Date().timeIntervalSince(started), resumedFromEpoch: checkpoints.resume == nil ? nil : state.resumedFrom,
        loss: data.labels == nil ? "distillation (MSE against the float model)" : "cross-entropy")
    return RetrainResult(compression: result, report: report)
}

extension Score {
    /// Higher accuracy, or on a tie (or without labels) lower loss.
    func isBetter(than other: Score) -> Bool {
        if let a = accuracy, let b = other.accuracy, a != b { return a > b }
        return loss < other.loss
    }
}



extension Trainer {
    func restore(values: [[Float]]) {
        for i in values.indices where i < store.values.count { store.values[i] = values[i] }
    }
}

/// The state a checkpoint holds besides the trainer's parameters and optimizer moments.
struct TrainingState {
    var epochsDone = 0
    var reports: [EpochReport] = []
    var before: Score?
    var best: (epoch: Int, score: Score, values: [[Float]])?
    var resumedFrom: Int?
}

