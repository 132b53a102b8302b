import Foundation
import Graph

// What `amct-pipe retrain` does, for a Swift caller (as `compressFile` is for compress): `RetrainOptions`, and
// `retrainFile`, which checks the files, opens the training and validation data for the model, calibrates on the
// training data (`CalibrationPass`), runs `retrain`, and writes the outputs (rank 0 alone under mpirun).

extension TrainingOptions {
    /// Every field at once; each defaults to `TrainingOptions()`'s.
    public init(epochs: Int = TrainingOptions().epochs, maxSteps: Int? = nil,
                batchSize: Int = TrainingOptions().batchSize, learningRate: Float? = nil,
                optimizer: OptimizerKind = TrainingOptions().optimizer, seed: UInt64 = TrainingOptions().seed,
                distillation: DistillationMode = TrainingOptions().distillation,
                temperature: Float = TrainingOptions().temperature, profile: Bool = false) {
        self.init()
        self.epochs = epochs
        self.maxSteps = maxSteps
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.optimizer = optimizer
        self.seed = seed
        self.distillation = distillation
        self.temperature = temperature
        self.profile = profile
    }
}

/// Options of a retrain run beyond the model, the config, the training data and the outputs.
public struct RetrainOptions {
    public var format: OutputFormat
    /// Epochs, steps, optimizer, ... `training.batchSize` is one process's: under mpirun each of N ranks takes that
    /// many samples a step, and the run trains with the global batch N × batchSize (what one process given N ×
    /// batchSize does).
    public var training: TrainingOptions
    /// Where the labels come from: the source's own, an .npz array, or none (distillation).
    public var labels: LabelChoice
    /// Validation data, scored every epoch; the best epoch is what is written.
    public var validation: String?
    /// Fixes symbolic dimensions of the inputs for the data and calibration (the output keeps them).
    public var inputShapes: [InputShape]
    /// What is done to the images of an image source; `augment` applies to the training data only, seeded by
    /// `training.seed` and the epoch.
    public var preprocessing: Preprocessing
    public var checkpoints: CheckpointOptions
    /// Under mpirun: seconds rank 0 waits in a collective for the other ranks.
    public var collectiveTimeout: Double
    /// Called after each training step.
    public var progress: ((TrainingProgress) -> Void)?
    /// Called with (phase, i, n) after each calibration batch.
    public var calibrationProgress: (@Sendable (_ phase: String, _ done: Int, _ of: Int) -> Void)?

    public init(format: OutputFormat = .qdq, training: TrainingOptions = TrainingOptions(),
                labels: LabelChoice = .fromSource, validation: String? = nil, inputShapes: [InputShape] = [],
                preprocessing: Preprocessing = Preprocessing(), checkpoints: CheckpointOptions = CheckpointOptions(),
                collectiveTimeout: Double = Communicator.defaultTimeout,
                progress: ((TrainingProgress) -> Void)? = nil,
                calibrationProgress: (@Sendable (String, Int, Int) -> Void)? = nil) {
        self.format = format
        self.training = training
        self.labels = labels
        self.validation = validation
        self.inputShapes = inputShapes
        self.preprocessing = preprocessing
        self.checkpoints = checkpoints
        self.collectiveTimeout = collectiveTimeout
        self.progress = progress
        self.calibrationProgress = calibrationProgress
    }

    /// The files a run reads (the model, config, data, validation data, checkpoint resumed from) and writes (every
    /// model, the record, the checkpoint), for the one check that no output replaces an input.
    public func fileRoles(model: Model, config: String, data: String, output: String, record: String?) -> FileRoles {
        var roles = Pipeline.fileRoles(model: model, config: config, output: output, format: format, record: record)
        roles.input(data, "the training data (--data)")
        roles.input(validation, "the validation data (--val)")
        checkpoints.addRoles(to: &roles)
        return roles
    }

    /// The training data (augmented when asked) and the validation data, opened for `model` (its inputs shaped).
    public func trainingData(_ path: String, for model: Model) throws -> (TrainingData, TrainingData?) {
        var augmented = preprocessing
        augmented.seed = training.seed
        try augmented.validate()
        var plain = preprocessing
        plain.augment = []
        let data = try TrainingData.load(path, for: model, labels: labels, preprocessing: augmented)
        let validation = try validation.map {
            try TrainingData.load($0, for: model, labels: labels, preprocessing: plain)
        }
        if training.distillation == .features && data.labels != nil {
            throw DataError(path: path, "has labels; --distill features distills: add --labels none")
        }
        return (data, validation)
    }
}

/// What `amct-pipe retrain` does, for a Swift caller: loads the model and the config, opens the data, calibrates on
/// the training data, compresses and trains (`retrain`), and writes every output whole (and the record; under mpirun
/// rank 0 alone writes). Returns the result, whose `summary` the CLI prints. `weights` is the caffemodel when `input`
/// is a Caffe prototxt.
public func retrainFile(_ input: String, weights: String? = nil, config cfg: String, data: String, output: String,
                        options: RetrainOptions = RetrainOptions(), record: String? = nil) throws -> CompressionResult
{
    let model = try ModelFile.load(input, weights: weights)
    AllocatorPolicy.retainFreedMemory()
    try options.fileRoles(model: model, config: cfg, data: data, output: output, record: record).check()
    let config = try CompressionConfig.load(cfg)
    let shaped = try InputShape.applied(options.inputShapes, to: model)
    let (training, validation) = try options.trainingData(data, for: shaped)
    let world = Communicator.world  // under mpirun: rank r of N (Distributed.swift); else 0 of 1
    world.timeout = options.collectiveTimeout
    var trainingOptions = options.training
    let (global, overflow) = trainingOptions.batchSize.multipliedReportingOverflow(by: world.size)
    guard !overflow else {
        throw DataError(path: data, "--batch-size \(trainingOptions.batchSize) × \(world.size) ranks does not fit an Int")
    }
    trainingOptions.batchSize = global  // the global batch
    let calibration = CalibrationPass(data: try CalibrationData(samples: training.samples, for: shaped),
                                      batchSize: trainingOptions.batchSize, progress: options.calibrationProgress)
    var result = try retrain(
        model, config: config, format: options.format, data: training, validation: validation,
        options: trainingOptions, calibration: calibration, checkpoints: options.checkpoints,
        progress: options.progress)
    if world.isRoot { try result.save(to: output, record: record) }
    return result
}
