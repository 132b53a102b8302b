import ArgumentParser
import Foundation
import Passes

// `amct-pipe data`: what a data source yields (DataSummary), and a preview of its first batch.

struct DataCommand: ParsableCommand, FixedBatchSize {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Show what a data source yields (count, shapes, labels, value range), as the model will see it.")

    static let batchSizeHelp = "Samples per batch read (and in --preview)."
    static let fixedBatchSize = 8

    @Argument(help: "The data: \(dataSourceHelp).")
    var source: String

    @Option(
        help: "The model whose inputs the source feeds (names, channels); without it images feed one 3-channel input.")
    var model: String?

    @OptionGroup(title: "Image preprocessing")
    var data: DataOptions

    @OptionGroup var batch: BatchSizeOptions<DataCommand>

    @Option(help: "Write the first batch as one PNG, un-normalised (image sources).")
    var preview: String?

    @OptionGroup var printing: JSONOptions
    @OptionGroup var progress: ProgressOptions

    func run() throws {
        try reportingErrors {
            let inputs = try model.map { try CalibrationData.modelInputs(of: ModelFile.load($0, weights: nil)) } ?? []
            let samples = try DataSources.open(source, inputs: inputs, preprocessing: data.preprocessing())
            if let preview { try DataPreview.write(samples, batchSize: batch.value, to: preview) }
            let showProgress = !printing.json && progress.shown
            let summary = try DataSummary(
                samples, batchSize: batch.value, progress: showProgress ? samplesReadProgress("data") : nil)
            print(printing.json ? summary.json : summary.text)
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
