import Foundation
import Graph
import Kernels

/// Calibration inputs for a model: arrays by graph-input name, batch along axis 0.
public struct CalibrationData {
    public var arrays: [String: NumpyArray]
    /// Seeded standard-normal data made by `--calib random` (the summary says so).
    public var isRandom: Bool
    public var source: String
    let inputs: [ValueInfo]

    /// The model's real inputs (graph inputs that are not initializers).
    static func modelInputs(_ model: Model) -> [ValueInfo] {
        model.graph.inputs.filter { $0.name.map { model.graph.initializers[$0] == nil } ?? false }
    }

    /// Reads `.npz` (inputs by name) or `.npy` (a model with one input) and checks ranks and fixed dimensions.
    public static func load(_ path: String, for model: Model) throws -> CalibrationData {
        let inputs = modelInputs(model)
        var arrays = try NumpyArchive.load(path)
        if let single = arrays[""] {
            guard inputs.count == 1, let name = inputs[0].name else {
                throw NumpyError(path: path, message: "a .npy holds one array, and the model has \(inputs.count) inputs (\(inputs.compactMap(\.name).joined(separator: ", "))); use a .npz with one array per input name")
            }
            arrays = [name: single]
        }
        for input in inputs {
            guard let name = input.name else { continue }
            guard let array = arrays[name] else {
                throw NumpyError(path: path, message: "no array named '\(name)' for model input '\(name)' (arrays: \(arrays.keys.sorted().joined(separator: ", ")))")
            }
            if let dims = input.type?.tensorShape?.dims {
                guard dims.count == array.shape.count else {
                    throw NumpyError(path: path, message: "array '\(name)' has shape \(array.shape); model input '\(name)' has rank \(dims.count)")
                }
                for (i, d) in dims.enumerated() where i > 0 {
                    if let v = d.knownValue, Int(v) != array.shape[i] {
                        throw NumpyError(path: path, message: "array '\(name)' has shape \(array.shape); model input '\(name)' needs dimension \(i) = \(v)")
                    }
                }
            }
        }
        return CalibrationData(arrays: arrays, isRandom: false, source: path, inputs: inputs)
    }

    /// Seeded standard-normal inputs: `samples` along axis 0; every other dimension must be known.
    public static func random(for model: Model, samples: Int, seed: UInt64 = 0) throws -> CalibrationData {
        let inputs = modelInputs(model)
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func uniform() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(state >> 40) + 0.5) / Float(1 << 24)
        }
        var arrays: [String: NumpyArray] = [:]
        for input in inputs {
            guard let name = input.name, let dims = input.type?.tensorShape?.dims else { continue }
            var shape = [samples]
            for (i, d) in dims.enumerated() where i > 0 {
                guard let v = d.knownValue else {
                    throw PassError(node: name, "--calib random needs every dimension but the batch known; dimension \(i) is \(d.value)")
                }
                shape.append(Int(v))
            }
            let count = shape.reduce(1, *)
            var values = [Float](repeating: 0, count: count)
            for i in 0..<count { values[i] = (-2 * logf(uniform())).squareRoot() * cosf(2 * .pi * uniform()) }
            arrays[name] = NumpyArray(shape: shape, values: .float(values), dtype: "<f4")
        }
        return CalibrationData(arrays: arrays, isRandom: true, source: "random (seeded standard normal)", inputs: inputs)
    }

    func dense(_ a: NumpyArray) -> DenseTensor {
        switch a.values {
        case .float(let f): return DenseTensor(shape: a.shape, floats: f)
        case .int64(let i): return DenseTensor(shape: a.shape, ints: i)
        }
    }

    /// Every array whole (for `amct-pipe run`).
    public func wholeArrays() throws -> [String: DenseTensor] { arrays.filter { k, _ in inputs.contains { $0.name == k } }.mapValues(dense) }

    /// The samples per batch: the model's fixed batch dimension, else `batchSize`.
    public func samplesPerBatch(batchSize: Int) -> Int {
        for input in inputs {
            if let d = input.type?.tensorShape?.dims.first?.knownValue { return Int(d) }
        }
        return batchSize
    }

    /// `count` batches taken in order along axis 0.
    public func batches(count: Int, batchSize: Int) throws -> [[String: DenseTensor]] {
        let per = samplesPerBatch(batchSize: batchSize)
        return try (0..<count).map { b in
            var feed: [String: DenseTensor] = [:]
            for input in inputs {
                guard let name = input.name, let a = arrays[name] else { continue }
                let available = a.shape.first ?? 0
                guard (b + 1) * per <= available else {
                    throw NumpyError(path: source, message: "array '\(name)' has \(available) samples; batch_num \(count) × \(per) samples per batch needs \(count * per)")
                }
                let inner = a.shape.dropFirst().reduce(1, *)
                let range = (b * per * inner)..<((b + 1) * per * inner)
                let shape = [per] + a.shape.dropFirst()
                switch a.values {
                case .float(let f): feed[name] = DenseTensor(shape: shape, floats: Array(f[range]))
                case .int64(let i): feed[name] = DenseTensor(shape: shape, ints: Array(i[range]))
                }
            }
            return feed
        }
    }
}
