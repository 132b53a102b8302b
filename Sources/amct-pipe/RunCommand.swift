import ArgumentParser
import Foundation
import Graph
import Kernels
import Passes

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a float model with amct-pipe's CPU executor (the one calibration uses) and write its outputs as .npz.")

    @Argument(help: "The ONNX model.")
    var input: String

    @Option(help: "The inputs, by name (.npz) or the one input (.npy).")
    var inputs: String

    @Option(name: .shortAndLong, help: "Where to write the outputs (.npz, one array per graph output).")
    var output: String

    @Flag(help: "Print the time spent in each op type (and building the plan) on stderr.")
    var profile = false

    @Option(name: .customLong("input-shape"), help: ArgumentHelp(inputShapeHelp, valueName: "name:d0,d1,..."))
    var inputShapes: [String] = []

    func run() throws {
        try reportingErrors {
            var model = try ModelFile.load(input)
            try InputShape.apply(parsing: inputShapes, to: &model)
            let executor = try GraphExecutor(graph: model.graph, opset: model.opsetVersion() ?? 13)
            let feeds = try CalibrationData.load(inputs, for: model).wholeArrays()
            executor.profiling = profile
            let outputs = try executor.run(feeds)
            if profile { FileHandle.standardError.write(Data(executor.profile.table.utf8)) }
            let arrays: [(String, NumpyArray)] = model.graph.outputs.compactMap { o in
                guard let name = o.name, let t = outputs[name] else { return nil }
                switch t.elements {
                case .float, .floatView: return (name, NumpyArray(shape: t.shape, values: .float(t.floats), dtype: "<f4"))
                default: return (name, NumpyArray(shape: t.shape, values: .int64(t.ints), dtype: "<i8"))
                }
            }
            try NumpyArchive.save(arrays, to: output)
        }
    }
}
