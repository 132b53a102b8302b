import Graph

// The default pipelines, as values a caller prints, edits or extends (ARCHITECTURE "Default pipeline"):
//
//   Pipeline.plan     validate-graph → match-layers → mark-skips → resolve-overrides                 (steps 2–5)
//   Pipeline.prune    prune-filters → prune-2of4 → fuse-pruning                                       (steps 6–8)
//   Pipeline.compress plan → prune → calibrate-ifmr → insert-fake-quant → upgrade-opset → dead-code   (qdq, 2–11)
//                     plan → prune → calibrate-ifmr → fold-batchnorm → quant-parameters
//                       → *_fake_quant_model.onnx: amct-fake-quant → upgrade-opset → dead-code        (amct)
//                       → *_deploy_model.onnx:     ascend-deploy   → upgrade-opset → dead-code
//   Pipeline.retrain  compress with fold-batchnorm → retrain after calibrate-ifmr                     (step 9b)

/// Output layouts.
public enum OutputFormat: String, Sendable, CaseIterable, Codable {
    /// QuantizeLinear/DequantizeLinear, runs in onnxruntime.
    case qdq
    /// The AMCT fake-quant and deploy models for the Ascend toolchain.
    case amct
}

extension Pipeline {
    /// Steps 2–5: the per-layer plan (changes nothing in the graph but a topological sort).
    public static var plan: Pipeline {
        Pipeline([ValidateGraphPass(), LayerMatchingPass(), SkipMarkingPass(), OverrideResolutionPass()], name: "plan")
    }

    /// Steps 6–8: filter pruning (shapes change), 2:4 masks, then the pruned weights settle, so quantization scales
    /// see the pruned, masked weights.
    public static var prune: Pipeline {
        Pipeline([FilterPruningPass(), TwoOfFourPruningPass(), PruneFusionPass()], name: "prune")
    }

    /// Steps 2–9: plan, prune, calibrate; what compress, retrain and analyze share.
    public static func prepare(calibration: CalibrationPass) -> Pipeline {
        Pipeline(plan.passes + prune.passes + [calibration], name: "prepare")
    }

    /// Steps 2–11 for one output layout: QDQ writes one model; AMCT folds BatchNormalization, computes the parameters
    /// once and branches into the fake-quant and the deploy model.
    public static func compress(format: OutputFormat = .qdq, calibration: CalibrationPass = CalibrationPass(data: nil))
        -> Pipeline
    {
        var pipeline = prepare(calibration: calibration)
        pipeline.name = "compress (\(format.rawValue))"
        pipeline.format = format
        let finish: [any Pass] = [OpsetUpgradePass(), DeadCodeCleanupPass()]
        switch format {
        case .qdq:
            pipeline.passes += [FakeQuantInsertionPass()] + finish
        case .amct:
            pipeline.passes += [BatchNormFoldingPass(), QuantParametersPass()]
            pipeline.branches = [
                Branch(suffix: "_fake_quant_model.onnx", passes: [AMCTFakeQuantPass()] + finish),
                Branch(suffix: "_deploy_model.onnx", passes: [AscendDeployPass()] + finish),
            ]
        }
        return pipeline
    }
}

/// The models a run writes: one for QDQ; the fake-quant and the deploy model for the AMCT layout.
public struct CompressionResult {
    /// Each model with the suffix its file takes after the output prefix ("" for QDQ: the -o path itself).
    public var models: [(suffix: String, model: Model)]
    public var context: PassContext
    /// What the run did, for people (`description`) and scripts (`Codable`); `save` adds the files and their sizes.
    public var summary: CompressionSummary

    /// The file each model goes to: QDQ at `output`; AMCT at `<output without .onnx>_fake_quant_model.onnx` and
    /// `..._deploy_model.onnx`.
    public func paths(for output: String) -> [String] { models.map { Self.path(output, suffix: $0.suffix) } }

    /// The file of the model with `suffix` ("" for the -o path itself).
    static func path(_ output: String, suffix: String) -> String {
        let prefix = output.hasSuffix(".onnx") ? String(output.dropLast(5)) : output
        return suffix.isEmpty ? output : prefix + suffix
    }

    /// Writes every model (each whole or not at all) and, when asked, the record; the summary then names the files
    /// and their sizes. Returns the paths written.
    @discardableResult
    public mutating func save(to output: String, record: String? = nil) throws -> [String] {
        let paths = paths(for: output)
        for ((_, model), path) in zip(models, paths) { try ModelFile.save(model, to: path) }
        if let record { try writeTextAtomically(context.record.text, to: record) }
        summary.outputs = paths
        summary.sizeAfter = paths.map(fileSize)
        return paths
    }
}

extension Pipeline {
    /// The files the pipeline's models go to for `-o output`, before it runs (`CompressionResult.paths`, after).
    public func outputPaths(for output: String) -> [String] {
        branches.isEmpty ? [output] : branches.map { CompressionResult.path(output, suffix: $0.suffix) }
    }

    /// The files a compress or retrain run reads (the model and its external data, the config, the calibration
    /// file) and writes (every model, the record), for the one check that no output replaces an input.
    public static func fileRoles(model: Model, config: String, output: String, format: OutputFormat,
                                 calibration: CalibrationSource = .none, record: String? = nil) -> FileRoles {
        var roles = FileRoles()
        roles.inputs(of: model)
        roles.input(config, "the config (--cfg)")
        if case .file(let path) = calibration { roles.input(path, "the calibration data (--calib)") }
        for path in compress(format: format).outputPaths(for: output) { roles.output(path, "the output model (-o)") }
        roles.output(record, "the record (--record)")
        return roles
    }

    /// Runs the pipeline on a model under a config: the main passes, then each branch on its own copy of the graph.
    /// Every requirement of every pass (branches included) is checked before the first pass runs.
    public func run(_ input: consuming Model, config: CompressionConfig?, context start: PassContext? = nil) throws
        -> CompressionResult
    {
        var model = input
        let elementsBefore = parameterElements(model), source = model.sourcePath, companions = model.companionPaths
        var context = start ?? PassContext(opsetImports: model.opsetImports)
        if start == nil, let config {
            context.config = config
            context.diagnostics += config.warnings
        }
        let provided = passes.reduce(into: Set<PassRequirement>()) { $0.formUnion($1.provides) }
        try Self.check(passes, context)
        for branch in branches { try Self.check(branch.passes, context, provided: provided) }
        try Self.runPasses(passes, &model.graph, &context)
        var models: [(String, Model)] = []
        var merged = context
        if branches.isEmpty {
            Self.finish(&model, context)
            models = [("", model)]
            merged = context
        } else {
            for (i, branch) in branches.enumerated() {
                var copy = model, branchContext = context
                try Self.runPasses(branch.passes, &copy.graph, &branchContext)
                Self.finish(&copy, branchContext)
                models.append((branch.suffix, copy))
                if i == 0 {
                    merged = branchContext
                } else {
                    merged.log += branchContext.log.suffix(from: context.log.count)
                    merged.diagnostics += branchContext.diagnostics.suffix(from: context.diagnostics.count)
                }
            }
        }
        var summary = CompressionSummary(
            context: merged, format: format, elementsBefore: elementsBefore,
            elementsAfter: models.first.map { parameterElements($0.1) } ?? 0)
        if let source {
            summary.input = source
            summary.sizeBefore = ([source] + companions).map(fileSize).reduce(0, +)  // a Caffe net: with its caffemodel
        }
        return CompressionResult(models: models, context: merged, summary: summary)
    }

    /// The model takes the context's opsets, and the IR version they need (opset 21 needs IR 10; opset 13 needs 7).
    static func finish(_ model: inout Model, _ context: PassContext) {
        model.opsetImports = context.opsetImports
        let neededIR: Int64 = context.requiredOpset >= 21 ? 10 : (context.requiredOpset >= 13 ? 7 : 0)
        if let ir = model.irVersion, ir < neededIR { model.irVersion = neededIR }
    }
}

/// Compresses a model under a config: the `Pipeline.compress` of the options, with calibration data resolved against
/// the model (`--input-shape` shapes fix its symbolic dimensions for calibration only; the output keeps them).
public func compress(_ input: consuming Model, config: CompressionConfig,
                     options: CompressOptions = CompressOptions()) throws -> CompressionResult
{
    let model = input
    let data = try options.calibrationData(for: model, batches: config.batchNum)
    let calibration = CalibrationPass(data: data, batchSize: options.batchSize, progress: options.progress)
    return try Pipeline.compress(format: options.format, calibration: calibration).run(consume model, config: config)
}

/// What `amct-pipe compress` does, for a Swift caller: loads the model and the config, compresses, writes every output
/// whole (and the record), and returns the result, whose `summary` the CLI prints. (The models come back too, so a
/// caller that ends the process next need not free them first.)
/// `weights` is the caffemodel when `input` is a Caffe prototxt.
public func compressFile(_ input: String, weights: String? = nil, config cfg: String, output: String,
                         options: CompressOptions = CompressOptions(), record: String? = nil) throws -> CompressionResult
{
    let model = try ModelFile.load(input, weights: weights)
    try Pipeline.fileRoles(model: model, config: cfg, output: output, format: options.format,
                           calibration: options.calibration, record: record).check()
    let config = try CompressionConfig.load(cfg)
    var result = try compress(consume model, config: config, options: options)
    result.summary.input = input
    try result.save(to: output, record: record)
    return result
}

/// Options of a compress run beyond the config.
public struct CompressOptions: Sendable {
    public var format: OutputFormat
    /// Where calibration data comes from, for layers whose clips come from IFMR.
    public var calibration: CalibrationSource
    /// Samples per calibration batch when the model's batch dimension is symbolic (a fixed one wins).
    public var batchSize: Int
    /// Fixes symbolic dimensions of inputs for calibration (`--input-shape`).
    public var inputShapes: [InputShape]
    /// Called with (phase, i, n) after each calibration batch of each pass over the data.
    public var progress: (@Sendable (_ phase: String, _ done: Int, _ of: Int) -> Void)?
    /// What is done to images of an image source (`--resize`, `--crop`, ...).
    public var preprocessing: Preprocessing

    public init(format: OutputFormat = .qdq, calibration: CalibrationSource = .none, batchSize: Int = 1,
                inputShapes: [InputShape] = [], progress: (@Sendable (String, Int, Int) -> Void)? = nil,
                preprocessing: Preprocessing = Preprocessing()) {
        self.preprocessing = preprocessing
        self.format = format
        self.calibration = calibration
        self.batchSize = batchSize
        self.inputShapes = inputShapes
        self.progress = progress
    }

    /// The calibration data for `model` with the input shapes applied; nil without a source.
    public func calibrationData(for model: Model, batches: Int) throws -> CalibrationData? {
        let shaped = inputShapes.isEmpty ? model : try InputShape.applied(inputShapes, to: model)
        switch calibration {
        case .none: return nil
        case .random: return try CalibrationData.random(for: shaped, batches: batches, batchSize: batchSize)
        case .file(let path): return try CalibrationData.load(path, for: shaped, preprocessing: preprocessing)
        }
    }
}

/// Calibration data: none, a .npz/.npy file, or seeded standard-normal inputs for a quick trial.
public enum CalibrationSource: Sendable, Equatable {
    case none
    case file(String)
    case random

    /// `--calib` as the CLI takes it: "random", or a path.
    public init(argument: String?) {
        switch argument {
        case nil: self = .none
        case "random"?: self = .random
        case let path?: self = .file(path)
        }
    }
}

/// Steps 2–9 (`Pipeline.prepare`) on a model: what compress, retrain and analyze share.
public func prepareCompression(_ input: consuming Model, config: CompressionConfig, calibration: CalibrationPass) throws
    -> (Model, PassContext)
{
    var model = input
    var context = PassContext(opsetImports: model.opsetImports)
    context.config = config
    context.diagnostics += config.warnings
    try Pipeline.prepare(calibration: calibration).run(&model.graph, &context)
    return (model, context)
}
