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
    @NullEncoded public var resumedFromEpoch: Int?
    public var loss: String
    /// With `TrainingOptions.profile`: time per op type, forward and backward, of the training steps (not encoded).
    public var profile: String?
    /// Ranks that trained (mpirun -np), and the samples of one optimizer step over all of them.
    public var ranks = 1
    public var globalBatch = 0
}

extension TrainingReport: CustomStringConvertible {
    enum CodingKeys: String, CodingKey {
        case before, after, scoredOn = "scored_on", epochs, writtenEpoch = "written_epoch", steps, seconds
        case resumedFromEpoch = "resumed_from_epoch", loss, ranks, globalBatch = "global_batch"
    }

    /// The lines the CLI prints under the compress summary.
    public var description: String {
        func score(_ s: Score) -> String {
            "loss \(String(format: "%.4f", s.loss))" + (s.accuracy.map { String(format: ", accuracy %.2f%%", 100 * $0) } ?? "")
        }
        var lines = ["  retrain    \(loss); \(steps) steps, \(epochs.count) epochs, \(String(format: "%.1f", seconds)) s"
                     + (resumedFromEpoch.map { " (resumed after epoch \($0))" } ?? "")]
        if ranks > 1 {
            lines.append("  ranks      \(ranks) (mpirun), global batch \(globalBatch) = \(globalBatch / ranks) per rank × "
                         + "\(ranks); the learning rate is as given (not rescaled)")
        }
        lines.append("  before     \(score(before)) on \(scoredOn) (compressed, before training)")
        lines.append("  after      \(score(after)) (epoch \(writtenEpoch) written)")
        for e in epochs {
            var line = "  epoch \(e.epoch)    train loss \(String(format: "%.4f", e.trainLoss))"
            if let v = e.validationLoss { line += ", val loss \(String(format: "%.4f", v))" }
            if let a = e.validationAccuracy { line += String(format: ", val accuracy %.2f%%", 100 * a) }
            line += String(format: ", %.0f samples/s", e.samplesPerSecond)
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}

/// Where and how often retraining saves its state.
public struct CheckpointOptions: Sendable {
    public var directory: String?
    public var resume: String?
    public init(directory: String? = nil, resume: String? = nil) {
        self.directory = directory
        self.resume = resume
    }

    /// The checkpoint file in a --checkpoint or --resume folder.
    public static func file(in directory: String) -> String {
        (directory as NSString).appendingPathComponent(Checkpoint.file)
    }

    /// Adds the checkpoint written (an output) and the one resumed from (an input, unless it is the one written: a
    /// run that resumes and checkpoints in one folder replaces its checkpoint, as intended).
    public func addRoles(to roles: inout FileRoles) {
        let written = directory.map(Self.file)
        roles.output(written, "the checkpoint (--checkpoint)")
        if let read = resume.map(Self.file), written.map({ !FileRoles.sameFile($0, read) }) ?? true {
            roles.input(read, "the checkpoint resumed from (--resume)")
        }
    }
}

extension Pipeline {
    /// `Pipeline.compress` with retraining after calibration (step 9b): BatchNormalization and per-channel Mul/Add
    /// affines folded into their Convs, then `RetrainPass`.
    public static func retrain(format: OutputFormat = .qdq, calibration: CalibrationPass, training: RetrainPass) -> Pipeline {
        var pipeline = compress(format: format, calibration: calibration)
        pipeline.name = "retrain (\(format.rawValue))"
        let calibrateAt = pipeline.passes.firstIndex { $0.name == calibration.name } ?? pipeline.passes.count - 1
        pipeline.passes.insert(contentsOf: RetrainPass.folding + [training], at: calibrateAt + 1)
        pipeline.passes.insert(RetrainPreflightPass(training: training), at: calibrateAt)
        return pipeline
    }
}

/// Compresses a model under a config and trains it (SEMANTICS §7): `Pipeline.retrain`. The summary carries the
/// training report.
public func retrain(
    _ input: Model, config: CompressionConfig, format: OutputFormat = .qdq, data: TrainingData, validation: TrainingData? = nil,
    options: TrainingOptions, calibration: CalibrationPass, checkpoints: CheckpointOptions = CheckpointOptions(),
    progress: ((TrainingProgress) -> Void)? = nil
) throws -> CompressionResult {
    let training = RetrainPass(data: data, validation: validation, options: options, checkpoints: checkpoints,
                               teacher: data.labels == nil ? input.graph : nil, progress: progress)
    return try Pipeline.retrain(format: format, calibration: calibration, training: training).run(input, config: config)
}

// Retraining as a pass: the Trainer runs epochs over the prepared (pruned, calibrated, BN-folded) graph; the learned
// weights go into the graph, the learned clips into the context, the report into `context.trainingReport`.
//
//   before: W (pruned/masked float), clips from config or IFMR
//   after:  W' (trained float), context.trainedClips / trainedWeightClips (the export quantizes with these)
public struct RetrainPass: PlanPass {
    /// What retraining folds into the Convs before it trains: BatchNormalization, and Mul/Add per-channel affines
    /// (a BatchNormalization an exporter wrote as ops), as the AMCT layout folds BatchNormalization.
    public static var folding: [any Pass] { [BatchNormFoldingPass(), AffineFoldingPass()] }

    public let name = "retrain"
    public var requirements: [PassRequirement] { [.plan, .clips] }
    public var changesLayers: Bool { true }
    public var data: TrainingData
    public var validation: TrainingData?
    public var options: TrainingOptions
    public var checkpoints: CheckpointOptions
    /// The float model whose outputs are the target when the data has no labels (distillation).
    public var teacher: Graph?
    public var progress: ((TrainingProgress) -> Void)?

    public init(data: TrainingData, validation: TrainingData? = nil, options: TrainingOptions,
                checkpoints: CheckpointOptions = CheckpointOptions(), teacher: Graph? = nil,
                progress: ((TrainingProgress) -> Void)? = nil) {
        self.data = data
        self.validation = validation
        self.options = options
        self.checkpoints = checkpoints
        self.teacher = teacher
        self.progress = progress
    }

    public func run(_ graph: inout Graph, plan: Plan, _ context: inout PassContext) throws {
        let started = Date()
        if data.labels == nil && teacher == nil {
            throw PassError(node: "model", "training data without labels needs the float model as teacher (distillation)")
        }
        let opset = Int(context.opsetImports.version() ?? 13)
        let trainer = try Trainer(graph: graph, opset: opset, plan: plan, clips: context.calibratedClips,
                                  teacher: data.labels == nil ? teacher : nil, options: options,
                                  keptChannels: context.keptChannels)
        var state = TrainingState()
        let world = Communicator.world  // N ranks: rank 0 resumes, then every rank takes its state (Distributed.swift)
        if let resume = checkpoints.resume, world.isRoot { state = try Checkpoint.restore(trainer, from: resume) }
        world.synchronizeStart(trainer, &state)
        let scored = validation ?? data
        let before = try state.before ?? trainer.evaluate(scored)
        state.before = before
        try trainEpochs(trainer, &state)
        if let best = state.best { trainer.restore(values: best.values) }
        let after = try trainer.evaluate(scored)
        for (name, tensor) in trainer.learnedTensors {
            graph.setInitializer(Tensor(name: name, dims: tensor.shape.map(Int64.init), floats: tensor.values))
        }
        context.trainedClips = trainer.learnedClips
        context.trainedWeightClips = trainer.learnedWeightClips
        context.log.append((name, "\(trainer.store.step) steps over \(state.reports.count) epochs"))
        context.trainingReport = TrainingReport(
            before: before, after: after, scoredOn: validation?.source ?? data.source, epochs: state.reports,
            writtenEpoch: state.best?.epoch ?? state.reports.last?.epoch ?? 0, steps: trainer.store.step,
            seconds: Date().timeIntervalSince(started), resumedFromEpoch: checkpoints.resume == nil ? nil : state.resumedFrom,
            loss: data.labels == nil ? "distillation from the float model: " + trainer.distillationSummary
                : "cross-entropy (labels from \(data.labelOrigin ?? "the data"))",
            profile: trainer.profile?.table)
        context.trainingReport?.ranks = world.size
        context.trainingReport?.globalBatch = options.batchSize
    }

    /// Epochs until options.epochs or the step budget; validation scored each epoch (the best kept), a checkpoint each.
    func trainEpochs(_ trainer: Trainer, _ state: inout TrainingState) throws {
        var epoch = state.epochsDone
        while epoch < options.epochs && trainer.store.step < trainer.totalSteps(samples: data.count) {
            var report = Communicator.world.reduce(try trainer.trainEpoch(data, epoch: epoch, progress: progress))
            Communicator.world.checkAgreement(trainer, epoch: report.epoch)
            if let validation {
                let s = try trainer.evaluate(validation)
                report.validationLoss = s.loss
                report.validationAccuracy = s.accuracy
                if state.best.map({ s.isBetter(than: $0.score) }) ?? true {
                    state.best = (report.epoch, s, trainer.store.values)
                }
            }
            state.reports.append(report)
            epoch += 1
            state.epochsDone = epoch
            if let dir = checkpoints.directory, Communicator.world.isRoot { try Checkpoint.save(trainer, state, to: dir) }
        }
    }
}

/// Everything retraining would refuse, refused before calibration (in the first second, not after it): an op without
/// a gradient between a parameter and the loss, a weight that cannot be trained, logits that do not fit one label per
/// sample, a label that is not a class index, nothing to distill. It builds the trainer and its plan for the first
/// batch's shapes on a copy of the graph as it stands (BatchNormalization folded), with placeholder clips.
public struct RetrainPreflightPass: PlanPass {
    public let name = "retrain-preflight"
    public var training: RetrainPass

    public init(training: RetrainPass) { self.training = training }

    public func run(_ graph: inout Graph, plan: Plan, _ context: inout PassContext) throws {
        let data = training.data
        if data.labels == nil && training.teacher == nil {
            throw PassError(node: "model", "training data without labels needs the float model as teacher (distillation)")
        }
        var copy = graph, scratch = context
        for pass in RetrainPass.folding { try pass.run(&copy, &scratch) }
        try scratch.refreshLayers(in: copy)
        let placeholders = Dictionary(uniqueKeysWithValues: plan.layers.indices.map { ($0, (Float(0), Float(1))) })
        let trainer = try Trainer(graph: copy, opset: Int(context.opsetImports.version() ?? 13), plan: plan,
                                  clips: placeholders, teacher: data.labels == nil ? training.teacher : nil,
                                  options: training.options, keptChannels: context.keptChannels)
        let world = Communicator.world
        try world.checkShards(globalBatch: training.options.batchSize, samples: data.count, source: data.source)
        for (k, set) in ([data] + (training.validation.map { [$0] } ?? [])).enumerated() {
            // a rank trains on its piece of the global batch, and scores whole global batches
            let n = min(training.options.batchSize / (k == 0 ? world.size : 1), set.count)
            let specs = set.samples.samples.mapValues { TensorSpec($0.isInteger ? .int64 : .float, [n] + $0.shape) }
            let tp = try trainer.trainingPlan(specs: specs, labels: set.labels != nil)
            if let labels = set.labels, let classes = trainer.classCount(tp),
               let bad = labels.first(where: { $0 < 0 || $0 >= Int64(classes) }) {
                throw NumpyError(path: set.source, message: "label \(bad) is not a class index of the model's "
                                    + "\(classes) classes (0…\(classes - 1))")
            }
        }
        context.log.append((name, "the training graph and its loss check out for batches of \(training.options.batchSize)"))
    }
}

extension Score {
    /// Higher accuracy, or on a tie (or without labels) lower loss.
    func isBetter(than other: Score) -> Bool {
        if let a = accuracy, let b = other.accuracy, a != b { return a > b }
        return loss < other.loss
    }
}



extension Trainer {
    /// Every parameter back to a snapshot of `store.values`.
    func restore(values: [Float]) {
        if values.count == store.values.count { store.values = values }
    }
}

/// The state a checkpoint holds besides the trainer's parameters and optimizer moments.
struct TrainingState {
    var epochsDone = 0
    var reports: [EpochReport] = []
    var before: Score?
    var best: (epoch: Int, score: Score, values: [Float])?
    var resumedFrom: Int?
}

