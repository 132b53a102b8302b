import ArgumentParser
import Foundation
import Passes

// The root command: its subcommands (each one file), and how a run ends on an error.

struct AMCTPipe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amct-pipe",
        abstract: "Compress ONNX models as an AMCT simplified QAT config describes (quantization, pruning, 2:4 "
            + "sparsity).",
        discussion: """
            Without a command name, amct-pipe compresses: amct-pipe in.onnx --cfg c.cfg -o out.onnx. Wherever a \
            command takes a model, a Caffe net works too: deploy.prototxt --weights model.caffemodel. \
            `amct-pipe help <command>` shows a command's options.
            """,
        subcommands: [
            CompressCommand.self, AnalyzeCommand.self, RetrainCommand.self, Convert.self, Inspect.self,
            PlanCommand.self, RunCommand.self, OpsCommand.self, DataCommand.self,
        ],
        defaultSubcommand: CompressCommand.self
    )
}

/// Runs `body`, turning a typed error into one line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        let rank = Communicator.launchedRank.map { "(\($0)) " } ?? ""  // under mpirun: which rank failed
        let message = MessageText.message(String(describing: error))
        FileHandle.standardError.write(Data("amct-pipe: error: \(rank)\(message)\n".utf8))
        throw ExitCode.failure
    }
}

AMCTPipe.main()
