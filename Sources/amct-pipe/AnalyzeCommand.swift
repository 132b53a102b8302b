import ArgumentParser
import Foundation
import Passes

// `amct-pipe analyze`: per-layer quantization sensitivity on calibration data (Passes/Analysis), as a table worst
// first, JSON, an HTML/SVG report directory, and a suggested config that reaches a target SQNR.

struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Measure how much each quantized layer costs (output SQNR with that layer alone quantized).")

    @Argument(help: "The model (ONNX, or a Caffe deploy.prototxt with --weights) (never modified).")
    var input: String

    @Option(help: ArgumentHelp(weightsHelp, valueName: "model.caffemodel"))
    var weights: String?

    @Option(help: "The AMCT config (text format).")
    var cfg: String

    @Option(help: "Calibration data: \(dataSourceHelp); or 'random' for a trial.")
    var calib: String?

    @OptionGroup(title: "Image preprocessing")
    var data: DataOptions

    @Option(parsing: .unconditional, help: "Samples per batch when the model's batch dimension is symbolic.")
    var batchSize = 1

    @Option(name: .customLong("input-shape"), help: ArgumentHelp(inputShapeHelp, valueName: "name:d0,d1,..."))
    var inputShapes: [String] = []

    @Option(help: "Write report.json, sensitivity.svg and index.html into this directory.")
    var report: String?

    @Option(help: "Write a config that raises the most sensitive layers until the output SQNR reaches --min-sqnr.")
    var suggest: String?

    @Option(name: .customLong("min-sqnr"), help: "The output SQNR (dB) --suggest aims for.")
    var minSQNR: Double?

    @Flag(help: "Print the analysis as JSON.")
    var json = false

    @Flag(help: "No progress output.")
    var quiet = false

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1 (it is \(batchSize))") }
        if (suggest == nil) != (minSQNR == nil) { throw ValidationError("--suggest and --min-sqnr go together") }
        if let m = minSQNR, !m.isFinite { throw ValidationError("--min-sqnr must be a finite number of dB") }
    }

    func run() throws {
        try reportingErrors {
            let model = try ModelFile.load(input, weights: weights)
            var roles = FileRoles()
            roles.inputs(of: model)
            roles.input(cfg, "the config (--cfg)")
            if case .file(let path) = CalibrationSource(argument: calib) {
                roles.input(path, "the calibration data (--calib)")
            }
            for name in SensitivityReport.files {
                roles.output(report.map { "\($0)/\(name)" }, "the report (--report)")
            }
            roles.output(suggest, "the suggested config (--suggest)")
            try roles.check()
            let config = try CompressionConfig.load(cfg)
            let calibration = CompressOptions(calibration: CalibrationSource(argument: calib), batchSize: batchSize,
                                              inputShapes: try InputShape.parseAll(inputShapes),
                                              preprocessing: try data.preprocessing())
            let data = try calibration.calibrationData(for: model, batches: config.batchNum)
            let session = try SensitivitySession(model, config: config, data: data, batchSize: batchSize,
                                                 progress: !quiet && isatty(2) != 0 ? progressBar : nil)
            let result = try session.analyze()
            var suggestion: ConfigSuggestion?
            if let suggest, let minSQNR {
                suggestion = try session.writeSuggestion(result, minSQNR: minSQNR, configFile: cfg,
                                                         model: ModelFile.load(input, weights: weights), to: suggest)
            }
            if let report { try explainingWrite(report, "the report") { try result.writeFiles(to: report) } }
            if json {
                print(try result.json(with: suggestion))
            } else {
                print(result.table)
                if let suggestion, let suggest { print(suggestion.summary(path: suggest)) }
            }
            fflush(nil)
            Foundation.exit(0)
        }
    }
}

/// A one-line bar on stderr: `analyze [#####.....] layer 12 of 50`.
let progressBar: @Sendable (String, Int, Int) -> Void = { phase, done, total in
    let width = 30, filled = total > 0 ? width * done / total : width
    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
    let end = done == total ? "\n" : ""
    FileHandle.standardError.write(Data("\ranalyze [\(bar)] \(phase) \(done) of \(total)   \(end)".utf8))
}
