import ArgumentParser
import Foundation
import Graph
import Passes

struct AMCTPipe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amct-pipe",
        abstract: "Compress ONNX models as an AMCT simplified QAT config describes (quantization, pruning, 2:4 sparsity).",
        discussion: """
            amct-pipe in.onnx --cfg compressed1.cfg -o out.onnx     compress (the default command)
            amct-pipe convert in.onnx -o out.onnx [--external-data] load and save losslessly
            amct-pipe inspect in.onnx                               opsets, inputs/outputs, ops, parameters
            """,
        subcommands: [CompressCommand.self, Convert.self, Inspect.self, PlanCommand.self, RunCommand.self],
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
        FileHandle.standardError.write(Data("amct-pipe: error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// glibc's mallopt (malloc.h is not part of Swift's Glibc module).
@_silgen_name("mallopt")
func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32

// Process tuning for the command line (a library user keeps their own allocator settings): keep large freed blocks in
// the heap for the next allocation instead of returning them to the kernel. The calibration executor allocates every
// op's output, and fresh pages cost a fault each (about a third of a ResNet-50 forward pass otherwise).
_ = glibcMallopt(-3, 1 << 30)  // M_MMAP_THRESHOLD
_ = glibcMallopt(-1, 1 << 30)  // M_TRIM_THRESHOLD

AMCTPipe.main()
