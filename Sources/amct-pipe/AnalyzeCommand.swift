import ArgumentParser
import Foundation
import Passes

// `amct-pipe analyze`: per-layer quantization sensitivity on calibration data (Passes/Analysis), as a table worst
// first, JSON, an HTML/SVG report directory, and a suggested config that reaches a target SQNR.

struct AnalyzeCommand: ParsableCommand, FixedBatchSize {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Measure how much each quantized layer costs (output SQNR with that layer alone quantized).")

    static let batchSizeHelp =
        "Samples per batch (calibration and measurement) when the model's batch dimension is symbolic."
    static var fixedBatchSize: Int { CompressOptions().batchSize }

    @OptionGroup var model: ModelOptions
    @OptionGroup var config: ConfigOptions
    @OptionGroup var calibration: CalibrationOptions
    @OptionGroup(title: "Image preprocessing") var data: DataOptions
    @OptionGroup var batch: BatchSizeOptions<AnalyzeCommand>
    @OptionGroup var shapes: InputShapeOptions

    @Option(help: "Write report.json, sensitivity.svg and index.html into this directory.")
    var report: String?

    @Option(help: "Write a config that raises the most sensitive layers until the output SQNR reaches --min-sqnr.")
    var suggest: String?

    @Option(name: .customLong("min-sqnr"), help: "The output SQNR (dB) --suggest aims for.")
    var minSQNR: Double?

    @OptionGroup var printing: JSONOptions
    @OptionGroup var progress: ProgressOptions

    func validate() throws {
        if (suggest == nil) != (minSQNR == nil) { throw ValidationError("--suggest and --min-sqnr go together") }
        if let m = minSQNR, !m.isFinite { throw ValidationError("--min-sqnr must be a finite number of dB") }
    }

    func run() throws {
        try reportingErrors {
            let loaded = try model.load()
            try fileRoles(loaded).check()
            let config = try self.config.load()
            let options = CompressOptions(calibration: calibration.source, batchSize: batch.value,
                                          inputShapes: try shapes.parsed(), preprocessing: try data.preprocessing())
            let data = try options.calibrationData(for: loaded, batches: config.batchNum)
            // The session prepares (rewrites) its own copy; --suggest plans the model as loaded.
            let original = suggest == nil ? nil : loaded
            let session = try SensitivitySession(loaded, config: config, data: data, batchSize: batch.value,
                                                 progress: progress.shown ? progressBar : nil)
            let result = try session.analyze()
            var suggestion: ConfigSuggestion?
            if let suggest, let minSQNR, let original {
                suggestion = try session.writeSuggestion(result, minSQNR: minSQNR, configFile: self.config.cfg,
                                                         model: original, to: suggest)
            }
            if let report { try explainingWrite(report, "the report") { try result.writeFiles(to: report) } }
            if printing.json {
                print(try result.json(with: suggestion))
            } else {
                print(result.table)
                if let suggestion, let suggest { print(suggestion.summary(path: suggest)) }
            }
            fflush(nil)
            Foundation.exit(0)
        }
    }

    /// What the run reads and writes, for the check that no output replaces an input.
    func fileRoles(_ loaded: Model) -> FileRoles {
        var roles = FileRoles()
        roles.inputs(of: loaded)
        roles.input(config.cfg, "the config (--cfg)")
        if case .file(let path) = calibration.source { roles.input(path, "the calibration data (--calib)") }
        for name in SensitivityReport.files {
            roles.output(report.map { "\($0)/\(name)" }, "the report (--report)")
        }
        roles.output(suggest, "the suggested config (--suggest)")
        return roles
    }
}

/// A one-line bar on stderr: `analyze [#####.....] layer 12 of 50`.
let progressBar: @Sendable (String, Int, Int) -> Void = { phase, done, total in
    let width = 30, filled = total > 0 ? width * done / total : width
    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
    let end = done == total ? "\n" : ""
    FileHandle.standardError.write(Data("\ranalyze [\(bar)] \(phase) \(done) of \(total)   \(end)".utf8))
}
