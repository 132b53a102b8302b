import ArgumentParser
import Foundation
import Passes

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a float model with amct-pipe's CPU executor (the one calibration uses) and write its outputs as .npz.")

    @Argument(help: "The model (ONNX, or a Caffe deploy.prototxt with --weights).")
    var input: String

    @Option(help: ArgumentHelp(weightsHelp, valueName: "model.caffemodel"))
    var weights: String?

    @Option(help: "The inputs: \(dataSourceHelp). Outputs keep the samples' order.")
    var inputs: String

    @OptionGroup(title: "Image preprocessing")
    var data: DataOptions

    @Option(name: .shortAndLong, help: "Where to write the outputs (.npz, one array per graph output).")
    var output: String

    @Flag(help: "Print the time spent in each op type (and building the plan) on stderr.")
    var profile = false

    @Option(name: .customLong("input-shape"), help: ArgumentHelp(inputShapeHelp, valueName: "name:d0,d1,..."))
    var inputShapes: [String] = []

    @Option(help: """
        Samples per batch (the data runs through the model in batches along axis 0; outputs are concatenated). \
        Default: the model's fixed batch, else as many as fit in memory, at most \(ModelRun.defaultBatchLimit).
        """)
    var batchSize: Int?

    @Flag(help: "No progress output.")
    var quiet = false

    func validate() throws {
        if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be at least 1 (it is \(batchSize))") }
    }

    func run() throws {
        try reportingErrors {
            let model = try ModelFile.load(input, weights: weights)
            try ModelRun.fileRoles(model: model, inputs: inputs, output: output).check()
            let progress = !quiet && isatty(2) != 0 ? samplesReadProgress("run") : nil
            let run = try ModelRun(model, inputs: inputs, inputShapes: InputShape.parseAll(inputShapes),
                                   batchSize: batchSize, profiling: profile, preprocessing: data.preprocessing(),
                                   writingTo: output, progress: progress)
            if let table = run.profile { FileHandle.standardError.write(Data(table.utf8)) }
        }
    }
}
