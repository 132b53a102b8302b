import ArgumentParser
import Foundation
import Passes

// `amct-pipe retrain`: the options mapped onto `RetrainOptions` (a `TrainingOptions` inside), then `retrainFile`.

struct RetrainCommand: ParsableCommand, FixedBatchSize {
    static let configuration = CommandConfiguration(
        commandName: "retrain",
        abstract: "Compress as the config says, then train (quantization-aware, SEMANTICS §7) to recover the "
            + "accuracy compression cost.",
        discussion: """
            Starts as compress does (plan, filter pruning, 2:4 masks, clips from the config or IFMR on the first \
            batch_num batches of --data), folds BatchNormalization (and per-channel Mul/Add after a Conv) into the \
            convolutions, trains the weights, biases and clips through the \
            training ops, and writes the same files compress writes from what it learned. With --labels the loss is \
            cross-entropy; without, the float model on the same batch is the teacher (distillation: no labels \
            needed): KL divergence on the logits of an output made by Softmax or Sigmoid, MSE over the teacher's \
            variance on any other output, and with --distill features also at every quantized layer's output.

            When accuracy does not come back: train longer (--epochs), try --lr 1e-3 (or 1e-4 for a large pretrained \
            model), --distill features for low-bit (INT4) models, and a larger fine-tuning set; --val shows the effect.
            """)

    static let batchSizeHelp = "Samples per step (and per calibration batch when the model's batch is symbolic); "
        + "under mpirun, per rank: the global batch is --batch-size × ranks."
    static var fixedBatchSize: Int { TrainingOptions().batchSize }

    @OptionGroup var model: ModelOptions
    @OptionGroup var config: ConfigOptions

    @Option(help: "Training data: \(dataSourceHelp). Class folders and list files carry labels.")
    var data: String

    @OptionGroup(title: "Image preprocessing") var preprocessing: DataOptions

    @Option(help: ArgumentHelp("Images, training only: a random crop of the --crop size (after --resize) and/or a "
                               + "horizontal flip, seeded by --seed and the epoch.", valueName: "crop,flip"))
    var augment: String?

    @OptionGroup var output: OutputPathOptions

    @Option(
        help: ArgumentHelp(
            "The .npz array in --data (and --val) holding class indices: train with cross-entropy; 'none': distill "
                + "even when the source has labels (class folders, list files). Without it: the source's labels, "
                + "else distillation.",
            valueName: "NAME|none"))
    var labels: String?

    @Option(
        help: ArgumentHelp(
            "Without --labels: distill at the graph outputs only (outputs) or also at every quantized layer's "
                + "output (features)."))
    var distill: DistillationMode = TrainingOptions().distillation

    @Option(help: "Temperature of the KL distillation terms (softmax and sigmoid outputs).")
    var temperature: Float = TrainingOptions().temperature

    @Option(help: "Validation data (.npz like --data): scored every epoch; the best epoch is what is written.")
    var val: String?

    @Option(
        help: ArgumentHelp(
            "Epochs (passes over --data); the default suits a small fine-tuning set: on a large one give fewer, "
                + "or --steps."))
    var epochs = TrainingOptions().epochs

    @Option(help: "Stop after this many optimizer steps in all.")
    var steps: Int?

    @OptionGroup var batch: BatchSizeOptions<RetrainCommand>

    @Option(help: ArgumentHelp("Under mpirun: seconds rank 0 waits in a collective (a step's gradient all-reduce) "
                               + "for the other ranks before it ends the job naming the missing one.",
                               valueName: "seconds"))
    var collectiveTimeout = Communicator.defaultTimeout

    @Option(help: "Base learning rate (cosine schedule to 0); default 3e-3 for adam, 1e-2 for sgd.")
    var lr: Float?

    @Option(help: "sgd (momentum 0.9) or adam.")
    var optimizer: OptimizerKind = TrainingOptions().optimizer

    @Option(help: "Seed of the sample order.")
    var seed: UInt64 = TrainingOptions().seed

    @Option(help: "Write the whole training state to DIR/checkpoint.npz after every epoch (atomically).")
    var checkpoint: String?

    @Option(help: "Continue from DIR/checkpoint.npz (same model, config, --seed, --batch-size, --optimizer, --lr).")
    var resume: String?

    @OptionGroup var layout: ModelOutputOptions
    @OptionGroup var printing: JSONOptions
    @OptionGroup var progress: ProgressOptions

    @Flag(help: "Print the time of each op type's forward and backward over the training steps (stderr).")
    var profile = false

    @OptionGroup var shapes: InputShapeOptions

    func validate() throws {
        if epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if !(collectiveTimeout.isFinite && collectiveTimeout > 0) {
            throw ValidationError("--collective-timeout must be a positive number of seconds")
        }
        if let lr, !(lr.isFinite && lr > 0) { throw ValidationError("--lr must be a positive number") }
        if !(temperature.isFinite && temperature > 0) {
            throw ValidationError("--temperature must be a positive number")
        }
        if distill == .features && labels != nil && labels != "none" {
            throw ValidationError("--distill features needs no --labels (it distills)")
        }
    }

    func run() throws {
        try reportingErrors { try execute() }
        Communicator.world.finalize()
    }

    func execute() throws {
        let showProgress = progress.shown && Communicator.world.isRoot
        let training = TrainingOptions(
            epochs: epochs, maxSteps: steps, batchSize: batch.value, learningRate: lr, optimizer: optimizer, seed: seed,
            distillation: distill, temperature: temperature, profile: profile)
        let options = RetrainOptions(
            format: layout.format, training: training, labels: LabelChoice(argument: labels), validation: val,
            inputShapes: try shapes.parsed(), preprocessing: try preprocessing.preprocessing(augment: augmentations()),
            checkpoints: CheckpointOptions(directory: checkpoint, resume: resume), collectiveTimeout: collectiveTimeout,
            progress: showProgress ? { Self.showProgress($0) } : nil,
            calibrationProgress: showProgress ? calibrationProgress : nil)
        let result = try retrainFile(model.input, weights: model.weights, config: config.cfg, data: data,
                                     output: output.path, options: options, record: layout.record)
        if showProgress { FileHandle.standardError.write(Data("\n".utf8)) }
        guard Communicator.world.isRoot else { return }  // rank 0 alone writes and prints
        if let table = result.summary.retrain?.profile { FileHandle.standardError.write(Data(table.utf8)) }
        print(printing.json ? result.summary.json : result.summary.description)
    }

    /// `--augment crop,flip` as a set.
    func augmentations() throws -> Set<Preprocessing.Augmentation> {
        guard let text = augment else { return [] }
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
        let eta = p.secondsLeft < 90
            ? String(format: "%.0f s", p.secondsLeft) : String(format: "%.1f min", p.secondsLeft / 60)
        let line = String(format: "\rretrain: epoch %d/%d  step %d/%d  loss %.4f  %.0f samples/s  ETA %@   ",
                          p.epoch, p.epochs, p.step, p.stepsPerEpoch, p.loss, p.samplesPerSecond, eta)
        FileHandle.standardError.write(Data(line.utf8))
    }
}

extension OptimizerKind: ExpressibleByArgument {}
extension DistillationMode: ExpressibleByArgument {}
