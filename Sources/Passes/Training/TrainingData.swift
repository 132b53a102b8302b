import Foundation
import Graph
import Kernels

/// Samples to train or validate on: arrays by model input name (batch along axis 0), and class indices when the loss
/// is cross-entropy. Read from the same .npz files as calibration data, plus the labels array.
public struct TrainingData: Sendable {
    public let arrays: [String: NumpyArray]
    public let labels: [Int64]?
    public let count: Int
    public let source: String

    public init(arrays: [String: NumpyArray], labels: [Int64]?, source: String) throws {
        var count: Int?
        for (name, a) in arrays {
            guard let n = a.shape.first else { throw NumpyError(path: source, message: "array '\(name)' is a scalar; samples go along axis 0") }
            if let c = count, c != n {
                throw NumpyError(path: source, message: "array '\(name)' has \(n) samples, another input has \(c)")
            }
            count = n
        }
        if let labels, let c = count, labels.count != c {
            throw NumpyError(path: source, message: "the labels hold \(labels.count) values for \(c) samples; one class index per sample")
        }
        guard let c = count, c > 0 else { throw NumpyError(path: source, message: "holds no samples") }
        self.arrays = arrays
        self.labels = labels
        self.count = c
        self.source = source
    }

    /// Reads `path` (.npz) for `model`: one array per model input, and with `labels` the array of that name (integer
    /// class indices, one per sample).
    public static func load(_ path: String, for model: Model, labels: String?) throws -> TrainingData {
        let data = try CalibrationData.load(path, for: model)
        let inputs = CalibrationData.modelInputs(model).compactMap(\.name)
        var classes: [Int64]?
        if let labels {
            guard let a = data.arrays[labels] else {
                throw NumpyError(path: path, message: "no array named '\(labels)' for --labels (arrays: \(data.arrays.keys.sorted().joined(separator: ", ")))")
            }
            guard case .int64(let values) = a.values, a.shape.count == 1 else {
                throw NumpyError(path: path, message: "--labels array '\(labels)' must be 1-D integers (class indices), is \(a.dtype) of shape \(a.shape)")
            }
            classes = values
        }
        return try TrainingData(arrays: data.arrays.filter { inputs.contains($0.key) }, labels: classes, source: path)
    }

    /// The samples at `indices`, as executor inputs, with their labels.
    public func batch(_ indices: ArraySlice<Int>) -> (feeds: [String: DenseTensor], labels: [Int64]?) {
        var feeds: [String: DenseTensor] = [:]
        for (name, a) in arrays {
            let inner = a.shape.dropFirst().reduce(1, *)
            let shape = [indices.count] + a.shape.dropFirst()
            switch a.values {
            case .float(let f):
                var out = [Float]()
                out.reserveCapacity(indices.count * inner)
                for i in indices { out.append(contentsOf: f[(i * inner)..<((i + 1) * inner)]) }
                feeds[name] = DenseTensor(shape: shape, floats: out)
            case .int64(let v):
                var out = [Int64]()
                out.reserveCapacity(indices.count * inner)
                for i in indices { out.append(contentsOf: v[(i * inner)..<((i + 1) * inner)]) }
                feeds[name] = DenseTensor(shape: shape, ints: out)
            }
        }
        return (feeds, labels.map { l in indices.map { l[$0] } })
    }

    /// The sample order of an epoch: a permutation seeded by (seed, epoch), the same on every run.
    public func order(seed: UInt64, epoch: Int) -> [Int] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(truncatingIfNeeded: epoch) &* 0xBF58_476D_1CE4_E5B9 &+ 1
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }
}
