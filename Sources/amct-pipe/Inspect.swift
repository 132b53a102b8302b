import ArgumentParser
import Foundation
import Passes

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model's opsets, inputs and outputs, node count by op type, parameter count and size.")

    @Argument(help: "The ONNX model to read.")
    var input: String

    func run() throws {
        try reportingErrors {
            let model = try ModelFile.load(input)
            print(ModelSummary(model))
        }
    }
}

