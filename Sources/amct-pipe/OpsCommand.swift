import ArgumentParser
import Foundation
import Passes

// `amct-pipe ops`: the executor's op registry as a table.

struct OpsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "List the ops amct-pipe's executor runs (calibration, analysis, run, retrain), by opset, and which "
            + "have a gradient.")

    func run() throws {
        print(OperatorRegistry.standard.table)
    }
}
