import ArgumentParser
import Foundation
import Passes

// `amct-pipe run`: a float model through the executor (ModelRun), its outputs written as .npz.

struct RunCommand: ParsableCommand, BatchSizeMeaning {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a float model with amct-pipe's CPU executor (the one calibration uses) and write its outputs "
            + "as .npz (one array per graph output).")

    static let batchSizeHelp = """
        Samples per batch (the data runs through the model in batches along axis 0; outputs are concatenated). \
        Default: the model's fixed batch, else as many as fit in memory, at most \(ModelRun.defaultBatchLimit).
        """
    static let defaultBatchSize: Int? = nil

    @OptionGroup var model: ModelOptions

    @Option(help: "The inputs: \(dataSourceHelp). Outputs keep the samples' order.")
    var inputs: String

    @OptionGroup(title: "Image preprocessing")
    var data: DataOptions

    @OptionGroup var output: OutputPathOptions

    @Flag(help: "Print the time spent in each op type (and building the plan) on stderr.")
    var profile = false

    @OptionGroup var shapes: InputShapeOptions
    @OptionGroup var batch: BatchSizeOptions<RunCommand>
    @OptionGroup var progress: ProgressOptions

    func run() throws {
        try reportingErrors {
            let loaded = try model.load()
            try ModelRun.fileRoles(model: loaded, inputs: inputs, output: output.path).check()
            let run = try ModelRun(loaded, inputs: inputs, inputShapes: shapes.parsed(),
                                   batchSize: batch.given, profiling: profile, preprocessing: data.preprocessing(),
                                   writingTo: output.path, progress: progress.shown ? samplesReadProgress("run") : nil)
            if let table = run.profile { FileHandle.standardError.write(Data(table.utf8)) }
        }
    }
}
