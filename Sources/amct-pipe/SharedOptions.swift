import ArgumentParser
import Foundation
import Passes

// The options several commands share, each declared once here as a group that a command takes with `@OptionGroup`:
// the model read, the config, input shapes, the output files, calibration data, the batch size, JSON and progress.
// (The image preprocessing flags are `DataOptions`, in DataOptions.swift.) A group maps its strings onto the
// library's values (`load()`, `parsed()`, ...) and validates what it alone can.

/// The model a command reads: an ONNX file, or a Caffe deploy.prototxt with its caffemodel.
struct ModelOptions: ParsableArguments {
    @Argument(help: "The model: ONNX, or a Caffe deploy.prototxt with --weights (read, never modified).")
    var input: String

    @Option(
        help: ArgumentHelp(
            "The Caffe weights (a caffemodel) of a prototxt input; its layers are matched by name.",
            valueName: "model.caffemodel"))
    var weights: String?

    func load() throws -> Model { try ModelFile.load(input, weights: weights) }
}

/// `--cfg`: the compression config.
struct ConfigOptions: ParsableArguments {
    @Option(help: "The AMCT config (text format: quant.cfg, prune.cfg, compressed1.cfg, ...).")
    var cfg: String

    func load() throws -> CompressionConfig { try CompressionConfig.load(cfg) }
}

/// `--input-shape`: fixed sizes for a model's symbolic input dimensions.
struct InputShapeOptions: ParsableArguments {
    @Option(
        name: .customLong("input-shape"),
        help: ArgumentHelp(
            "Fixes the symbolic or -1 dimensions of a graph input, e.g. x:1,3,48,320 (repeatable; the rank must match "
                + "and fixed dimensions agree).",
            valueName: "name:d0,d1,..."))
    var inputShapes: [String] = []

    /// The shapes; a malformed one, or an input named twice, is an error naming it.
    func parsed() throws -> [InputShape] { try InputShape.parseAll(inputShapes) }
}

/// `-o`: the file a command writes.
struct OutputPathOptions: ParsableArguments {
    @Option(
        name: [.customShort("o"), .customLong("output")],
        help: ArgumentHelp("Where to write the result (written whole or not at all).", valueName: "output"))
    var path: String
}

/// How a compressed model is written (compress, retrain): its layout and the record beside it.
struct ModelOutputOptions: ParsableArguments {
    @Option(help: "Output layout: qdq (QuantizeLinear/DequantizeLinear, runs in onnxruntime) or amct.")
    var format: OutputFormat = .qdq

    @Option(help: "Also write the record file (text format): per layer scale_d, offset_d, scale_w, offset_w, types.")
    var record: String?
}

/// `--calib`: calibration data (compress, analyze).
struct CalibrationOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Calibration data, for the layers whose clips come from IFMR (and what analyze measures on): "
                + "\(dataSourceHelp); or 'random' (seeded standard normal) for a quick trial."))
    var calib: String?

    var source: CalibrationSource { CalibrationSource(argument: calib) }
}

/// What `--batch-size` means to a command, and its default: a calibration batch, a training step, a batch read.
protocol BatchSizeMeaning {
    static var batchSizeHelp: String { get }
    /// nil: the library chooses (shown in the help text).
    static var defaultBatchSize: Int? { get }
}

/// `--batch-size`, its help and default from the command (`Command`). At least 1.
struct BatchSizeOptions<Command: BatchSizeMeaning>: ParsableArguments {
    @Option(
        name: .customLong("batch-size"), parsing: .unconditional,
        help: ArgumentHelp(Command.batchSizeHelp + (Command.defaultBatchSize.map { " (default: \($0))" } ?? "")))
    var given: Int?

    func validate() throws {
        if let given, given < 1 { throw ValidationError("--batch-size must be at least 1 (it is \(given))") }
    }
}

/// A command with a fixed default batch size.
protocol FixedBatchSize: BatchSizeMeaning {
    static var fixedBatchSize: Int { get }
}

extension FixedBatchSize {
    static var defaultBatchSize: Int? { fixedBatchSize }
}

extension BatchSizeOptions where Command: FixedBatchSize {
    /// The value given, else the command's default.
    var value: Int { given ?? Command.fixedBatchSize }
}

/// `--json`: the result as JSON instead of text.
struct JSONOptions: ParsableArguments {
    @Flag(help: "Print the result as JSON (stable keys) instead of text.")
    var json = false
}

/// `--quiet`: no progress display (there is none either when stderr is not a terminal).
struct ProgressOptions: ParsableArguments {
    @Flag(help: "No progress output.")
    var quiet = false

    /// Whether to show progress: not --quiet, and stderr a terminal.
    var shown: Bool { !quiet && isatty(2) != 0 }
}

let dataSourceHelp =
    ".npz (arrays by input name) or .npy (one input), batch along axis 0; a folder of .npy/.npz "
    + "shards; a folder of images (.jpg/.png) or of class folders of images; or a list file (.txt: path<TAB>label)"
