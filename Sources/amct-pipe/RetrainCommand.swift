import ArgumentParser
import Foundation
import Passes

struct RetrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrain",
        abstract: "Compress as the config says, then train (quantization-aware, SEMANTICS §7) to recover the accuracy compression cost.",
        discussion: """
            Starts as compress does (plan, filter pruning, 2:4 masks, clips from the config or IFMR on the first batch_num
            batches of --data), folds BatchNormalization, trains the weights, biases and clips through the training ops, and
            writes the same files compress writes from what it learned. With --labels the loss is cross-entropy; without,
            the float model on the same batch is the teacher (distillation: no labels needed): KL divergence on the
            logits of an output made by Softmax or Sigmoid, MSE over the teacher's variance on any other output, and with
            --distill features also at every quantized layer's output.

            When accuracy does not come back: train longer (--epochs), try --lr 1e-3 (or 1e-4 for a large pretrained
            model), --distill features for low-bit (INT4) models, and a larger fine-tuning set; --val shows the effect.
            """)

    @Argument(help: "The float model (ONNX, or a Caffe deploy.prototxt with --weights; never modified).")
    var input: String

    @Option(help: ArgumentHelp(weightsHelp, valueName: "model.caffemodel"))
    var weights: String?

    @Option(help: "The AMCT config (text format).")
    var cfg: String

    @Option(help: "Training data: \(dataSourceHelp). Class folders and list files carry labels.")
    var data: String

    @OptionGroup(title: "Image preprocessing")
    var preprocessing: DataOptions

    @Option(help: ArgumentHelp("Images, training only: a random crop of the --crop size (after --resize) and/or a "
                               + "horizontal flip, seeded by --seed and the epoch.", valueName: "crop,flip"))
    var augment: String?

    @Option(name: .shortAndLong, help: "Where to write the retrained, compressed model.")
    var output: String

    @Option(help: ArgumentHelp("The .npz array in --data (and --val) holding class indices: train with cross-entropy; "
                               + "'none': distill even when the source has labels (class folders, list files). Without it: "
                               + "the source's labels, else distillation.", valueName: "NAME|none"))
    var labels: String?

    @Option(help: "Without --labels: distill at the graph outputs only (outputs) or also at every quantized layer's output (features).")
    var distill: DistillationMode = .outputs

    @Option(help: "Temperature of the KL distillation terms (softmax and sigmoid outputs).")
    var temperature: Float = 1

    @Option(help: "Validation data (.npz like --data): scored every epoch; the best epoch is what is written.")
    var val: String?

    @Option(help: "Epochs (passes over --data); the default suits a small fine-tuning set: on a large one give fewer, or --steps.")
    var epochs = TrainingOptions().epochs

    @Option(help: "Stop after this many optimizer steps in all.")
    var steps: Int?

    @Option(help: ArgumentHelp("Samples per step (and per calibration batch when the model's batch is symbolic); "
                               + "under mpirun, per rank: the global batch is --batch-size × ranks."))
    var batchSize = TrainingOptions().batchSize

    @Option(help: ArgumentHelp("Under mpirun: seconds rank 0 waits in a collective (a step's gradient all-reduce) "
                               + "for the other ranks before it ends the job naming the missing one.",
                               valueName: "seconds"))
    var collectiveTimeout = Communicator.defaultTimeout

    @Option(help: "Base learning rate (cosine schedule to 0); default 3e-3 for adam, 1e-2 for sgd.")
    var lr: Float?

    @Option(help: "sgd (momentum 0.9) or adam.")
    var optimizer: OptimizerKind = .adam

    @Option(help: "Seed of the sample order.")
    var seed: UInt64 = 0

    @Option(help: "Write the whole training state to DIR/checkpoint.npz after every epoch (atomically).")
    var checkpoint: String?

    @Option(help: "Continue from DIR/checkpoint.npz (same model, config, --seed, --batch-size, --optimizer, --lr).")
    var resume: String?

    @Option(help: "Output layout: qdq or amct.")
    var format: OutputFormat = .qdq

    @Option(help: "Also write the record file (text format).")
    var record: String?

    @Flag(help: "Print the run summary as JSON (with one entry per epoch).")
    var json = false

    @Flag(help: "No progress output.")
    var quiet = false

    @Flag(help: "Print the time of each op type's forward and backward over the training steps (stderr).")
    var profile = false

    @Option(name: .customLong("input-shape"), help: ArgumentHelp(inputShapeHelp, valueName: "name:d0,d1,..."))
    var inputShapes: [String] = []

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if !(collectiveTimeout.isFinite && collectiveTimeout > 0) {
            throw ValidationError("--collective-timeout must be a positive number of seconds")
        }
        if let lr, !(lr.isFinite && lr > 0) { throw ValidationError("--lr must be a positive number") }
        if !(temperature.isFinite && temperature > 0) { throw ValidationError("--temperature must be a positive number") }
        if distill == .features && labels != nil && labels != "none" {
            throw ValidationError("--distill features needs no --labels (it distills)")
        }
    }

    func run() throws {
        try reportingErrors { try execute() }
        Communicator.world.finalize()
    }

    func execute() throws {
        let model = try ModelFile.load(input, weights: weights)
        let checkpoints = CheckpointOptions(directory: checkpoint, resume: resume)
        var roles = Pipeline.fileRoles(model: model, config: cfg, output: output, format: format, record: record)
        roles.input(data, "the training data (--data)")
        roles.input(val, "the validation data (--val)")
        checkpoints.addRoles(to: &roles)
        try roles.check()
        let config = try CompressionConfig.load(cfg)
        let shaped = try InputShape.applied(parsing: inputShapes, to: model)
        let images = try preprocessing.preprocessing()
        var augmented = images
        augmented.augment = try Self.augmentations(augment)
        augmented.seed = seed
        try augmented.validate()
        let training = try TrainingData.load(data, for: shaped, labels: LabelChoice(argument: labels), preprocessing: augmented)
        let validation = try val.map {
            try TrainingData.load($0, for: shaped, labels: LabelChoice(argument: labels), preprocessing: images)
        }
        if distill == .features && training.labels != nil {
            throw DataError(path: data, "has labels; --distill features distills: add --labels none")
        }
        var options = TrainingOptions()
        options.epochs = epochs
        options.maxSteps = steps
        let world = Communicator.world  // under mpirun: rank r of N (Distributed.swift); else 0 of 1
        world.timeout = collectiveTimeout
        options.batchSize = batchSize * world.size  // the global batch: what one process with N × --batch-size takes
        options.learningRate = lr
        options.optimizer = optimizer
        options.seed = seed
        options.distillation = distill
        options.temperature = temperature
        options.profile = profile
        let showProgress = !quiet && isatty(2) != 0 && world.isRoot
        let progress: ((TrainingProgress) -> Void)? = showProgress ? { Self.showProgress($0) } : nil
        let calibration = CalibrationPass(data: try CalibrationData(samples: training.samples, for: shaped),
                                          batchSize: options.batchSize,
                                          progress: showProgress ? calibrationProgress : nil)
        var result = try retrain(
            model, config: config, format: format, data: training, validation: validation, options: options,
            calibration: calibration, checkpoints: checkpoints,
            progress: progress)
        if showProgress { FileHandle.standardError.write(Data("\n".utf8)) }
        guard world.isRoot else { return }  // rank 0 alone writes
        try result.save(to: output, record: record)
        if let table = result.summary.retrain?.profile { FileHandle.standardError.write(Data(table.utf8)) }
        print(json ? result.summary.json : result.summary.description)
    }

    /// `--augment crop,flip` as a set.
    static func augmentations(_ text: String?) throws -> Set<Preprocessing.Augmentation> {
        guard let text else { return [] }
        var set = Set<Preprocessing.Augmentation>()
        for part in text.split(separator: ",") {
            guard let a = Preprocessing.Augmentation(rawValue: part.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--augment takes crop and/or flip, separated by commas (it is '\(text)')")
            }
            set.insert(a)
        }
        return set
    }

    static func showProgress(_ p: TrainingProgress) {
        let eta = p.secondsLeft < 90 ? String(format: "%.0f s", p.secondsLeft) : String(format: "%.1f min", p.secondsLeft / 60)
        let line = String(format: "\rretrain: epoch %d/%d  step %d/%d  loss %.4f  %.0f samples/s  ETA %@   ",
                          p.epoch, p.epochs, p.step, p.stepsPerEpoch, p.loss, p.samplesPerSecond, eta)
        FileHandle.standardError.write(Data(line.utf8))
    }

}

extension OptimizerKind: ExpressibleByArgument {}
extension DistillationMode: ExpressibleByArgument {}
