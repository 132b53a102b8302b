import ArgumentParser
import Foundation
import Passes

// `amct-pipe compress` (the default command): the options mapped onto `CompressOptions`, then `compressFile`.

struct CompressCommand: ParsableCommand, FixedBatchSize {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Compress a model as the config says (the default command: "
            + "`amct-pipe in.onnx --cfg c.cfg -o out.onnx`).")

    static let batchSizeHelp =
        "Samples per calibration batch when the model's batch dimension is symbolic (a fixed one wins)."
    static var fixedBatchSize: Int { CompressOptions().batchSize }

    @OptionGroup var model: ModelOptions
    @OptionGroup var config: ConfigOptions
    @OptionGroup var output: OutputPathOptions
    @OptionGroup var layout: ModelOutputOptions
    @OptionGroup var calibration: CalibrationOptions
    @OptionGroup(title: "Image preprocessing") var data: DataOptions
    @OptionGroup var batch: BatchSizeOptions<CompressCommand>
    @OptionGroup var shapes: InputShapeOptions
    @OptionGroup var progress: ProgressOptions
    @OptionGroup var printing: JSONOptions

    func run() throws {
        try reportingErrors {
            let options = CompressOptions(
                format: layout.format, calibration: calibration.source, batchSize: batch.value,
                inputShapes: try shapes.parsed(), progress: progress.shown ? calibrationProgress : nil,
                preprocessing: try data.preprocessing())
            let result = try compressFile(model.input, weights: model.weights, config: config.cfg, output: output.path,
                                          options: options, record: layout.record)
            print(printing.json ? result.summary.json : result.summary.description)
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
