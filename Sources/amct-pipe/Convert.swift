import ArgumentParser
import Passes

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load a model and save it again: a re-save in the canonical form (Constant weights as initializers), or a move of large tensors to external data.")

    @Argument(help: "The model (ONNX, or a Caffe deploy.prototxt with --weights) to read (never modified).")
    var input: String

    @Option(help: ArgumentHelp(weightsHelp, valueName: "model.caffemodel"))
    var weights: String?

    @Option(name: .shortAndLong, help: "Where to write the model (written whole or not at all).")
    var output: String

    @Flag(help: "Move every initializer of at least --threshold bytes into '<output>.data' beside the model.")
    var externalData = false

    @Option(help: "Smallest initializer (bytes) that --external-data moves.")
    var threshold = 1024

    @Flag(help: "Write every tensor inline, reading external data into the model (refused past 2 GiB).")
    var inlineData = false

    func validate() throws {
        if externalData && inlineData { throw ValidationError("--external-data and --inline-data exclude each other") }
    }

    func run() throws {
        try reportingErrors {
            let model = try ModelFile.load(input, weights: weights)
            let files = try ModelFile.save(
                model, to: output, externalData: externalData ? .moveLarge(threshold: threshold) : inlineData ? .inline : .asLoaded)
            print("wrote \(files.joined(separator: ", "))")
        }
    }
}
