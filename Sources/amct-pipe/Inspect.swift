import ArgumentParser
import Foundation
import Passes

// `amct-pipe inspect`: a model's summary (ModelSummary).

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model's opsets, inputs and outputs, node count by op type, parameter count and size.")

    @OptionGroup var model: ModelOptions

    func run() throws {
        try reportingErrors {
            print(ModelSummary(try model.load()))
        }
    }
}

