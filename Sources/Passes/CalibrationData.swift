import Foundation
import Graph
import Kernels

/// Calibration inputs for a model: a data source whose inputs match the model's, batch along axis 0.
public struct CalibrationData {
    public var samples: any DataSource
    /// Seeded standard-normal data made by `--calib random` (the summary says so).
    public var isRandom: Bool
    public var source: String { samples.description }
    let inputs: [ValueInfo]

    /// The model's real inputs (graph inputs that are not initializers).
    public static func modelInputs(of model: Model) -> [ValueInfo] { modelInputs(model) }

    static func modelInputs(_ model: Model) -> [ValueInfo] {
        model.graph.inputs.filter { $0.name.map { model.graph.initializers[$0] == nil } ?? false }
    }

    public init(samples: any DataSource, isRandom: Bool = false, for model: Model) throws {
        self.samples = samples
        self.isRandom = isRandom
        self.inputs = Self.modelInputs(model)
        try Self.check(samples, against: inputs)
    }

    init(arrays: [String: NumpyArray], isRandom: Bool, source: String, inputs: [ValueInfo]) throws {
        self.samples = try MemorySource(arrays: arrays, description: source)
        self.isRandom = isRandom
        self.inputs = inputs
    }

    /// Opens `path` (any data source: .npz/.npy, shards, images) and checks ranks and fixed dimensions (a dimension
    /// is fixed when it is a positive number; `-1`, 0 and symbols take what the data has).
    public static func load(_ path: String, for model: Model, preprocessing: Preprocessing = Preprocessing()) throws
        -> CalibrationData {
        let source = try DataSources.open(path, inputs: modelInputs(model), preprocessing: preprocessing)
        return try CalibrationData(samples: source, for: model)
    }

    /// Every model input is in the source with the rank and fixed dimensions the model has.
    static func check(_ source: any DataSource, against inputs: [ValueInfo]) throws {
        let path = source.description
        for input in inputs {
            guard let name = input.name else { continue }
            guard let spec = source.samples[name] else {
                throw DataError(path: path, "no array named '\(name)' for model input '\(name)' (arrays: "
                                    + "\(source.samples.keys.sorted().joined(separator: ", ")))")
            }
            // A scalar input has no sample axis: `run` feeds its array whole.
            guard let dims = input.type?.tensorShape?.dims, !dims.isEmpty else { continue }
            let shape = [source.count] + spec.shape
            guard dims.count == shape.count else {
                throw DataError(path: path, "'\(name)' has shape \(shape); model input '\(name)' has rank \(dims.count)")
            }
            for (i, d) in dims.enumerated() where i > 0 {
                if let v = d.size, v != shape[i] {
                    throw DataError(path: path, "'\(name)' has shape \(shape); model input '\(name)' needs "
                                        + "dimension \(i) = \(v)")
                }
            }
        }
    }

    /// Seeded standard-normal inputs for `batches` batches (see `samplesPerBatch`); every dimension but the batch
    /// must be known (fix symbolic ones with `InputShape`). The size is checked against the memory available first.
    public static func random(for model: Model, batches: Int, batchSize: Int, seed: UInt64 = 0) throws -> CalibrationData {
        let inputs = modelInputs(model)
        let per = samplesPerBatch(inputs, batchSize: batchSize)
        let (samples, overflow) = batches.multipliedReportingOverflow(by: per)
        guard !overflow, samples > 0 else {
            throw CalibrationSizeError("batch_num \(batches) × \(per) samples per batch is too many samples for --calib random")
        }
        return try random(inputs, samples: samples, seed: seed)
    }

    /// Seeded standard-normal inputs: `samples` along axis 0; every other dimension must be known.
    public static func random(for model: Model, samples: Int, seed: UInt64 = 0) throws -> CalibrationData {
        try random(modelInputs(model), samples: samples, seed: seed)
    }

    static func random(_ inputs: [ValueInfo], samples: Int, seed: UInt64) throws -> CalibrationData {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func uniform() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(state >> 40) + 0.5) / Float(1 << 24)
        }
        var shapes: [(String, [Int])] = []
        var total = 0
        for input in inputs {
            guard let name = input.name, let dims = input.type?.tensorShape?.dims else { continue }
            var shape = [samples]
            for (i, d) in dims.enumerated() where i > 0 {
                guard let v = d.size else {
                    throw PassError(
                        node: name,
                        "--calib random needs every dimension but the batch known; dimension \(i) of \(describe(Shape(dims))) "
                            + "is not (give it with --input-shape \(name):D0,D1,...)")
                }
                shape.append(v)
            }
            guard let count = checkedElementCount(shape.map(Int64.init)), case (let sum, false) = total.addingReportingOverflow(count)
            else {
                throw CalibrationSizeError("--calib random for input '\(name)' of shape \(shape) is too large")
            }
            total = sum
            shapes.append((name, shape))
        }
        try MemoryBudget.check(bytes: total.multipliedReportingOverflow(by: 4), for: "--calib random inputs (\(samples) samples)")
        var arrays: [String: NumpyArray] = [:]
        for (name, shape) in shapes {
            let count = shape.reduce(1, *)
            var values = [Float](repeating: 0, count: count)
            for i in 0..<count { values[i] = (-2 * logf(uniform())).squareRoot() * cosf(2 * .pi * uniform()) }
            arrays[name] = NumpyArray(shape: shape, floats: values)
        }
        return try CalibrationData(arrays: arrays, isRandom: true, source: "random (seeded standard normal)",
                                   inputs: inputs)
    }

    /// Every sample at once (for `amct-pipe run`).
    public func wholeArrays() throws -> [String: DenseTensor] {
        try samples.readAll().filter { k, _ in inputs.contains { $0.name == k } }
    }

    /// The model's fixed batch dimension (of its first input that fixes one), if any.
    public var fixedBatch: Int? { inputs.lazy.compactMap { $0.type?.tensorShape?.dims.first?.size }.first }

    /// The samples per batch: the model's fixed batch dimension, else `batchSize`.
    public func samplesPerBatch(batchSize: Int) -> Int { Self.samplesPerBatch(inputs, batchSize: batchSize) }

    static func samplesPerBatch(_ inputs: [ValueInfo], batchSize: Int) -> Int {
        for input in inputs {
            if let d = input.type?.tensorShape?.dims.first?.size { return d }
        }
        return batchSize
    }

    /// Checks that the data holds `count` batches, before any is taken.
    public func checkBatches(count: Int, batchSize: Int) throws {
        if let problem = (samples as? ArraySource)?.problem { throw problem }
        let per = samplesPerBatch(batchSize: batchSize)
        let (needed, overflow) = count.multipliedReportingOverflow(by: per)
        let available = samples.count
        guard !overflow, needed <= available else {
            let array = samples is ImageSource ? "" : inputs.first?.name.map { "array '\($0)' " } ?? ""
            throw DataError(
                path: source,
                "\(array)has \(available) samples; batch_num \(count) × \(per) samples per batch needs "
                    + "\(overflow ? "more" : String(needed)); lower batch_num in the config or --batch-size, "
                    + "or give more samples")
        }
    }

    /// The sample indices of batch `b` (0-based), in order along axis 0.
    public func indices(ofBatch b: Int, batchSize: Int) -> [Int] {
        let per = samplesPerBatch(batchSize: batchSize)
        return Array((b * per)..<((b + 1) * per))
    }

    /// Batch `b` (0-based), taken in order along axis 0; `checkBatches` said it is there.
    public func batch(_ b: Int, batchSize: Int) throws -> [String: DenseTensor] {
        try samples.read(indices(ofBatch: b, batchSize: batchSize), epoch: nil)
    }

    /// The first `count` batches, read on a thread of their own (`checkBatches` said they are there).
    public func reader(count: Int, batchSize: Int) -> BatchReader {
        BatchReader(samples, batches: (0..<count).map { indices(ofBatch: $0, batchSize: batchSize) })
    }

    /// `count` batches taken in order along axis 0.
    public func batches(count: Int, batchSize: Int) throws -> [[String: DenseTensor]] {
        try checkBatches(count: count, batchSize: batchSize)
        return try (0..<count).map { try batch($0, batchSize: batchSize) }
    }
}

/// Memory a run may allocate: what the system reports available (Linux MemAvailable), else the physical memory.
public enum MemoryBudget {
    /// Caps what is counted available (bytes, or with a K/M/G/T suffix): to try a smaller machine's limit.
    public static let environmentVariable = "AMCT_PIPE_MAX_MEMORY_BYTES"

    public static var availableBytes: Int {
        let cap = getenv(environmentVariable).flatMap { InputLimit.parse(String(cString: $0)) } ?? Int.max
        return min(cap, systemAvailableBytes)
    }

    static var systemAvailableBytes: Int {
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
                let fields = line.split(separator: " ")
                if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 }
            }
        }
        return Int(clamping: ProcessInfo.processInfo.physicalMemory)
    }

    /// Throws when `bytes` (an overflow counts as too many) exceed the memory available.
    public static func check(bytes: (partialValue: Int, overflow: Bool), for what: String) throws {
        let available = availableBytes
        guard bytes.overflow || bytes.partialValue > available else { return }
        let needed = bytes.overflow ? "more than \(Int.max) bytes" : formatSize(bytes.partialValue)
        throw CalibrationSizeError(
            "\(what) would need \(needed); \(formatSize(available)) of memory is available. Lower batch_num or the batch size")
    }

    static func formatSize(_ bytes: Int) -> String {
        let gib = Double(bytes) / Double(1 << 30)
        return gib >= 1 ? "\(Int(gib.rounded(.up))) GiB" : "\(bytes / (1 << 20)) MiB"
    }
}
