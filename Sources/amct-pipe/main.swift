import ArgumentParser
import Foundation
import Passes

struct AMCTPipe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amct-pipe",
        abstract: "Compress ONNX models as an AMCT simplified QAT config describes (quantization, pruning, 2:4 sparsity).",
        discussion: """
            amct-pipe in.onnx --cfg compressed1.cfg -o out.onnx     compress (the default command)
            amct-pipe deploy.prototxt --weights m.caffemodel --cfg c.cfg -o out.onnx
                                                                    the same from a Caffe net (every command)
            amct-pipe convert in.onnx -o out.onnx [--external-data] load and save losslessly
            amct-pipe inspect in.onnx                               opsets, inputs/outputs, ops, parameters
            amct-pipe ops                                           the ops the executor runs, by opset
            amct-pipe data images/ --resize 256 --crop 224,224      what a data source yields (--preview out.png)
            """,
        subcommands: [CompressCommand.self, AnalyzeCommand.self, RetrainCommand.self, Convert.self, Inspect.self, PlanCommand.self, RunCommand.self, OpsCommand.self, DataCommand.self],
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
