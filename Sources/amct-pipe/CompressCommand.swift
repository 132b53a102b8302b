import ArgumentParser
import Foundation
import Passes

struct CompressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Compress a model as the config says (the default command: `amct-pipe in.onnx --cfg c.cfg -o out.onnx`).")

    @Argument(help: "The model (ONNX, or a Caffe deploy.prototxt with --weights) to compress (never modified).")
    var input: String

    @Option(help: ArgumentHelp(weightsHelp, valueName: "model.caffemodel"))
    var weights: String?

    @Option(help: "The AMCT config (text format).")
    var cfg: String

    @Option(name: .shortAndLong, help: "Where to write the compressed model (written whole or not at all).")
    var output: String

    @Option(help: "Output layout: qdq (QuantizeLinear/DequantizeLinear, runs in onnxruntime) or amct.")
    var format: OutputFormat = .qdq

    @Option(help: "Calibration data for layers whose clips come from IFMR: \(dataSourceHelp); or 'random' (seeded standard normal) for a quick trial.")
    var calib: String?

    @OptionGroup(title: "Image preprocessing")
    var data: DataOptions

    @Option(parsing: .unconditional, help: "Samples per calibration batch when the model's batch dimension is symbolic (a fixed one wins).")
    var batchSize = 1

    @Option(name: .customLong("input-shape"), help: ArgumentHelp(inputShapeHelp, valueName: "name:d0,d1,..."))
    var inputShapes: [String] = []

    @Flag(help: "No progress output.")
    var quiet = false

    @Option(help: "Also write the record file (text format): per layer scale_d, offset_d, scale_w, offset_w, types.")
    var record: String?

    @Flag(help: "Print the run summary as JSON.")
    var json = false

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1 (it is \(batchSize))") }
    }

    func run() throws {
        try reportingErrors {
            let showProgress = !quiet && isatty(2) != 0
            let options = CompressOptions(
                format: format, calibration: CalibrationSource(argument: calib), batchSize: batchSize,
                inputShapes: try InputShape.parseAll(inputShapes), progress: showProgress ? calibrationProgress : nil,
                preprocessing: try data.preprocessing())
            let result = try compressFile(input, weights: weights, config: cfg, output: output, options: options, record: record)
            print(json ? result.summary.json : result.summary.description)
            // Done: end here, the models still held, rather than free them one object at a time (a tenth of a large
            // model's run).
            fflush(nil)
            withExtendedLifetime(result) { Foundation.exit(0) }
        }
    }
}

/// A one-line progress display of calibration on stderr.
let calibrationProgress: @Sendable (String, Int, Int) -> Void = { phase, i, n in
    FileHandle.standardError.write(Data("\rcalibration: \(phase) \(i) of \(n)   \(i == n ? "\n" : "")".utf8))
}

extension OutputFormat: ExpressibleByArgument {}

let weightsHelp = "The Caffe weights (a caffemodel) of a prototxt input; its layers are matched by name."

let inputShapeHelp = "Fixes the symbolic or -1 dimensions of a graph input, e.g. x:1,3,48,320 (repeatable; the rank must match and fixed dimensions agree)."
