import ArgumentParser
import Foundation
import Passes

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Show what a data source yields (count, shapes, labels, value range), as the model will see it.")

    @Argument(help: "The data: \(dataSourceHelp).")
    var source: String

    @Option(
        help: "The model whose inputs the source feeds (names, channels); without it images feed one 3-channel input.")
    var model: String?

    @OptionGroup(title: "Image preprocessing")
    var data: DataOptions

    @Option(help: "Samples per batch read (and in --preview).")
    var batchSize = 8

    @Option(help: "Write the first batch as one PNG, un-normalised (image sources).")
    var preview: String?

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @Flag(help: "No progress output.")
    var quiet = false

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        try reportingErrors {
            let inputs = try model.map { try CalibrationData.modelInputs(of: ModelFile.load($0, weights: nil)) } ?? []
            let samples = try DataSources.open(source, inputs: inputs, preprocessing: data.preprocessing())
            if let preview { try DataPreview.write(samples, batchSize: batchSize, to: preview) }
            let showProgress = !json && !quiet && isatty(2) != 0
            let summary = try DataSummary(
                samples, batchSize: batchSize, progress: showProgress ? samplesReadProgress("data") : nil)
            print(json ? summary.json : summary.text)
        }
    }
}

/// A one-line count of samples read on stderr (`label: 96 of 256 samples read`), ending its line when done.
func samplesReadProgress(_ label: String) -> (Int, Int) -> Void {
    { done, total in
        FileHandle.standardError.write(
            Data("\r\(label): \(done) of \(total) samples read   \(done == total ? "\n" : "")".utf8))
    }
}
