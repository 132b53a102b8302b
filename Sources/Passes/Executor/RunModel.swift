import Graph
import Kernels

// `amct-pipe run` for a Swift caller: a float model on the CPU executor (the one calibration uses), inputs from
// .npz/.npy streamed through the model in batches along axis 0, outputs concatenated in order, as arrays ready for an
// .npz. The plan (and its memory) is checked for a batch before any runs; the outputs are checked to fit once the
// first batch has shown their size.

/// What a run of a model returns: one array per graph output, in graph order, and the profile when asked.
public struct ModelRun {
    public var outputs: [(name: String, array: NumpyArray)]
    /// Time per op type and building the plan (`GraphExecutor.Profile.table`), when profiling.
    public var profile: String?
    /// Samples per batch the run used.
    public var batchSize = 0

    /// Runs `model` (its symbolic input dimensions fixed by `inputShapes`) on the arrays of `inputs` (.npz by input
    /// name, or .npy for a one-input model; or any data source), `batchSize` samples at a time: by default the
    /// model's fixed batch, else as many as fit in memory (at most `defaultBatchLimit`).
    public init(_ input: Model, inputs: String, inputShapes: [InputShape] = [], batchSize: Int? = nil,
                profiling: Bool = false, preprocessing: Preprocessing = Preprocessing()) throws {
        var model = input
        try InputShape.apply(inputShapes, to: &model)
        let executor = try GraphExecutor(graph: model.graph, opset: model.opsetVersion() ?? 13)
        let data = try CalibrationData.load(inputs, for: model, preprocessing: preprocessing)
        let feeds = try data.wholeArrays()
        executor.profiling = profiling
        // Inputs of different lengths along axis 0 (one broadcast against another) run whole, as one batch.
        let counts = Set(feeds.values.map { $0.shape.first ?? 1 }), whole = counts.count != 1
        let samples = whole ? 1 : counts.first!
        self.batchSize = whole
            ? 1 : try Self.batchSize(batchSize, fixed: data.fixedBatch, samples: samples, executor, feeds)
        var gathered: [String: NumpyArray] = [:]
        var start = 0
        repeat {
            let end = min(samples, start + self.batchSize)
            let results = try executor.run(whole ? feeds : feeds.mapValues { $0.rows(start..<end) })
            if start == 0 { try Self.checkOutputMemory(results, batches: 1 + (samples - 1) / self.batchSize) }
            try Self.checkBatched(results, rows: end - start, batches: samples > self.batchSize)
            for (name, t) in results { Self.append(t, to: &gathered[name]) }
            start = end
        } while start < samples
        profile = profiling ? executor.profile.table : nil
        outputs = model.graph.outputs.compactMap { o in o.name.flatMap { name in gathered[name].map { (name, $0) } } }
    }

    /// The most samples a batch takes when neither the model nor the caller fixes it.
    public static let defaultBatchLimit = 256

    /// Writes the outputs as an .npz (whole or not at all).
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
                          _ feeds: [String: DenseTensor]) throws -> Int {
        if let asked { return asked }  // a fixed batch follows the data (BatchOverride) when the caller asks
        if let fixed {
            guard samples % max(fixed, 1) == 0 else {
                throw PassError(node: "inputs", "\(samples) samples do not make whole batches of the model's \(fixed)")
            }
            return max(fixed, 1)
        }
        guard samples > 1 else { return 1 }
        try executor.prepare(feeds.mapValues { TensorSpec($0.isFloat ? .float : .int64, [1] + $0.shape.dropFirst()) })
        let perSample = max(executor.plannedBytes ?? 1, 1)
        return max(1, min(samples, defaultBatchLimit, MemoryBudget.availableBytes / 2 / perSample))
    }

    /// Every output holds one row per sample when the run takes several batches (their rows are concatenated).
    static func checkBatched(_ results: [String: DenseTensor], rows: Int, batches: Bool) throws {
        guard batches else { return }
        for (name, t) in results where t.shape.first != rows {
            throw PassError(node: name, "output '\(name)' has shape \(t.shape) for a batch of \(rows) samples: it is "
                + "not batched along axis 0, so batches cannot be concatenated; give --batch-size the number of samples")
        }
    }

    /// The outputs of all batches fit in memory (refused after the first batch, before the others run).
    static func checkOutputMemory(_ first: [String: DenseTensor], batches: Int) throws {
        let perBatch = first.values.reduce(0) { $0 + 4 * $1.count }
        let (total, overflow) = perBatch.multipliedReportingOverflow(by: batches)
        try MemoryBudget.check(bytes: (total, overflow), for: "the outputs of \(batches) batches")
    }

    /// Appends a batch's output to the rows gathered so far (float stays float; anything else is int64).
    static func append(_ t: DenseTensor, to gathered: inout NumpyArray?) {
        guard var array = gathered else {
            gathered = t.isFloat ? NumpyArray(shape: t.shape, values: .float(t.floats), dtype: "<f4")
                : NumpyArray(shape: t.shape, values: .int64(t.ints), dtype: "<i8")
            return
        }
        gathered = nil  // the array's storage held once, so appending does not copy it
        array.shape[0] += t.shape[0]
        switch array.values {
        case .float(var f):
            array.values = .int64([])
            t.withFloats { f.append(contentsOf: $0) }
            array.values = .float(f)
        case .int64(var i):
            array.values = .float([])
            i.append(contentsOf: t.ints)
            array.values = .int64(i)
        }
        gathered = array
    }
}

extension DenseTensor {
    /// Rows `range` along axis 0 (the whole tensor when the range covers it: no copy).
    func rows(_ range: Range<Int>) -> DenseTensor {
        guard let n = shape.first, range != 0..<n else { return self }
        let inner = shape.dropFirst().reduce(1, *)
        let shape = [range.count] + shape.dropFirst()
        let span = (range.lowerBound * inner)..<(range.upperBound * inner)
        switch elements {
        case .int64(let i): return DenseTensor(shape: shape, ints: Array(i[span]))
        case .bool(let b): return DenseTensor(shape: shape, bools: Array(b[span]))
        default: return DenseTensor(shape: shape, floats: withFloats { Array($0[span]) })
        }
    }
}
