import ArgumentParser
import Passes

// `amct-pipe convert`: load a model (ONNX or Caffe) and save it as ONNX, its large tensors inline or external.

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load a model and save it again: a re-save in the canonical form (Constant weights as "
            + "initializers), or a move of large tensors to external data.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var output: OutputPathOptions

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
            let policy: ExternalDataPolicy =
                externalData ? .moveLarge(threshold: threshold) : inlineData ? .inline : .asLoaded
            let files = try ModelFile.save(model.load(), to: output.path, externalData: policy)
            print("wrote \(files.joined(separator: ", "))")
        }
    }
}
