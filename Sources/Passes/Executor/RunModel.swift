import Graph
import Kernels

// `amct-pipe run` for a Swift caller: a float model on the CPU executor (the one calibration uses), inputs from
// .npz/.npy, outputs as arrays ready for an .npz.

/// What a run of a model returns: one array per graph output, in graph order, and the profile when asked.
public struct ModelRun {
    public var outputs: [(name: String, array: NumpyArray)]
    /// Time per op type and building the plan (`GraphExecutor.Profile.table`), when profiling.
    public var profile: String?

    /// Runs `model` (its symbolic input dimensions fixed by `inputShapes`) on the arrays of `inputs` (.npz by input
    /// name, or .npy for a one-input model).
    public init(_ input: Model, inputs: String, inputShapes: [InputShape] = [], profiling: Bool = false,
                preprocessing: Preprocessing = Preprocessing()) throws {
        var model = input
        try InputShape.apply(inputShapes, to: &model)
        let executor = try GraphExecutor(graph: model.graph, opset: model.opsetVersion() ?? 13)
        let feeds = try CalibrationData.load(inputs, for: model, preprocessing: preprocessing).wholeArrays()
        executor.profiling = profiling
        let results = try executor.run(feeds)
        profile = profiling ? executor.profile.table : nil
        outputs = model.graph.outputs.compactMap { o in
            guard let name = o.name, let t = results[name] else { return nil }
            switch t.elements {
            case .float, .floatView: return (name, NumpyArray(shape: t.shape, values: .float(t.floats), dtype: "<f4"))
            default: return (name, NumpyArray(shape: t.shape, values: .int64(t.ints), dtype: "<i8"))
            }
        }
    }

    /// Writes the outputs as an .npz (whole or not at all).
    public func save(to path: String) throws { try NumpyArchive.save(outputs.map { ($0.name, $0.array) }, to: path) }
}
