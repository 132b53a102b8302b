import ArgumentParser
import Foundation
import Passes

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model's opsets, inputs and outputs, node count by op type, parameter count and size.")

    @Argument(help: "The model (ONNX, or a Caffe deploy.prototxt with --weights) to read.")
    var input: String

    @Option(help: ArgumentHelp(weightsHelp, valueName: "model.caffemodel"))
    var weights: String?

    func run() throws {
        try reportingErrors {
            let model = try ModelFile.load(input, weights: weights)
            print(ModelSummary(model))
        }
    }
}

