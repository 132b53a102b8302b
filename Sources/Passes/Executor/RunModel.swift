import Graph
import Kernels

// `amct-pipe run` for a Swift caller: a float model on the CPU executor (the one calibration uses), inputs from any
// data source streamed through the model in batches along axis 0 (read on a thread of their own), outputs in sample
// order: written batch by batch into an .npz (`writingTo`: memory follows the batch, not the samples) or gathered
// in memory. The plan (and its memory) is checked for a batch before any runs.

/// What a run of a model returns: one array per graph output, in graph order (none when written to a file), and
/// the profile when asked.
public struct ModelRun {
    public var outputs: [(name: String, array: NumpyArray)] = []
    /// Time per op type and building the plan (`GraphExecutor.Profile.table`), when profiling.
    public var profile: String?
    /// Samples per batch the run used.
    public var batchSize = 0

    /// Runs `model` (its symbolic input dimensions fixed by `inputShapes`) on the samples of `inputs` (.npz by input
    /// name, .npy for a one-input model, or any data source), `batchSize` samples at a time: by default the model's
    /// fixed batch, else as many as fit in memory (at most `defaultBatchLimit`). With `output`, the outputs go into
    /// that .npz as they come (whole or not at all); `progress` hears (samples read, samples) after each batch.
    public init(_ input: Model, inputs: String, inputShapes: [InputShape] = [], batchSize: Int? = nil,
                profiling: Bool = false, preprocessing: Preprocessing = Preprocessing(),
                writingTo output: String? = nil, progress: ((Int, Int) -> Void)? = nil) throws {
        var model = input
        try InputShape.apply(inputShapes, to: &model)
        let executor = try GraphExecutor(graph: model.graph, opset: model.opsetVersion() ?? 13)
        executor.profiling = profiling
        let data = try CalibrationData.load(inputs, for: model, preprocessing: preprocessing)
        let names = model.graph.outputs.compactMap(\.name)
        var sink = OutputSink(path: output, names: names)
        if Self.runsWhole(data.samples) {
            self.batchSize = 1
            let results = try executor.run(try data.wholeArrays())
            try sink.add(results, batch: 0, rows: 0, samples: 0)
        } else {
            let samples = data.samples.count
            self.batchSize = try Self.batchSize(batchSize, fixed: data.fixedBatch, samples: samples, executor,
                                                data.samples.samples)
            let batches = stride(from: 0, to: samples, by: self.batchSize).map {
                Array($0..<min($0 + self.batchSize, samples))
            }
            let reader = BatchReader(data.samples, batches: batches)
            for (b, indices) in batches.enumerated() {
                let results = try executor.run(try reader.next())
                try sink.add(results, batch: b, rows: indices.count, samples: samples)
                progress?(indices.last! + 1, samples)
            }
        }
        profile = profiling ? executor.profile.table : nil
        outputs = try sink.finish()
    }

    /// Arrays that are not samples (inputs of different lengths along axis 0, one broadcast against another, a scalar
    /// input) or hold no values run whole, as one batch (an empty sample has nothing to stream).
    static func runsWhole(_ source: any DataSource) -> Bool {
        guard let arrays = source as? ArraySource else { return false }
        return arrays.problem != nil || arrays.samples.values.contains { $0.shape.contains(0) }
    }

    /// The most samples a batch takes when neither the model nor the caller fixes it.
    public static let defaultBatchLimit = 256

    /// Writes the outputs gathered in memory as an .npz (whole or not at all).
    public func save(to path: String) throws { try NumpyArchive.save(outputs.map { ($0.name, $0.array) }, to: path) }

    /// The files a run reads (the model and its external data, the inputs) and writes, for `FileRoles.check`.
    public static func fileRoles(model: Model, inputs: String, output: String) -> FileRoles {
        var roles = FileRoles()
        roles.inputs(of: model)
        roles.input(inputs, "the inputs (--inputs)")
        roles.output(output, "the output (-o)")
        return roles
    }

    // MARK: Batches

    /// The caller's size, else the model's fixed batch (which must divide the samples), else what fits: the plan of
    /// one sample says how much memory a sample takes.
    static func batchSize(_ asked: Int?, fixed: Int?, samples: Int, _ executor: GraphExecutor,
                          _ specs: [String: SampleSpec]) throws -> Int {
        if let asked { return asked }  // a fixed batch follows the data (BatchOverride) when the caller asks
        if let fixed {
            guard samples % max(fixed, 1) == 0 else {
                throw PassError(node: "inputs", "\(samples) samples do not make whole batches of the model's \(fixed)")
            }
            return max(fixed, 1)
        }
        guard samples > 1 else { return 1 }
        try executor.prepare(specs.mapValues { TensorSpec($0.isInteger ? .int64 : .float, [1] + $0.shape) })
        let perSample = max(executor.plannedBytes ?? 1, 1)
        return max(1, min(samples, defaultBatchLimit, MemoryBudget.availableBytes / 2 / perSample))
    }
}
