import Foundation
import Graph
import Kernels

// A retraining checkpoint: one .npz (`DIR/checkpoint.npz`), written to a temporary file and renamed, so an
// interrupted run (Ctrl-C included) always leaves the last whole checkpoint. It holds every parameter, both optimizer
// moments, the 2:4 masks, the best epoch's parameters, and a JSON record (epochs done, step, scores, names and shapes,
// the options that must match on resume). Resuming restores all of it, so a resumed run ends with the same
// parameters as an uninterrupted one (same seed and thread count).

enum Checkpoint {
    static let file = "checkpoint.npz"

    struct Record: Codable {
        var version = 1
        var epochsDone: Int
        var step: Int
        var names: [String]
        var shapes: [[Int]]
        var reports: [EpochReport]
        var before: Score?
        var bestEpoch: Int?
        var bestScore: Score?
        var seed: UInt64
        var batchSize: Int
        var optimizer: String
        var learningRate: Float
    }

    static func save(_ trainer: Trainer, _ state: TrainingState, to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let s = trainer.store
        let record = Record(
            epochsDone: state.epochsDone, step: s.step, names: s.names, shapes: s.shapes, reports: state.reports,
            before: state.before, bestEpoch: state.best?.epoch, bestScore: state.best?.score, seed: trainer.options.seed,
            batchSize: trainer.options.batchSize, optimizer: trainer.options.optimizer.rawValue,
            learningRate: trainer.options.effectiveLearningRate)
        var arrays: [(String, NumpyArray)] = []
        func floats(_ name: String, _ v: [Float]) { arrays.append((name, NumpyArray(shape: [v.count], values: .float(v), dtype: "<f4"))) }
        let json = try JSONEncoder().encode(record)
        arrays.append(("record", NumpyArray(shape: [json.count], values: .int64(json.map(Int64.init)), dtype: "<i8")))
        for i in s.values.indices {
            floats("value.\(i)", s.values[i])
            floats("first.\(i)", s.first[i])
            floats("second.\(i)", s.second[i])
            if let best = state.best { floats("best.\(i)", best.values[i]) }
        }
        for (k, m) in trainer.masks.enumerated() {
            arrays.append(("mask.\(k)", NumpyArray(shape: [m.mask.count], values: .int64(m.mask.map(Int64.init)), dtype: "<i8")))
        }
        let path = (directory as NSString).appendingPathComponent(file)
        let temporary = path + ".tmp-\(getpid())"
        try NumpyArchive.save(arrays, to: temporary)
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw PassError(node: directory, "cannot replace \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func restore(_ trainer: Trainer, from directory: String) throws -> TrainingState {
        let path = (directory as NSString).appendingPathComponent(file)
        let arrays = try NumpyArchive.load(path)
        guard let raw = arrays["record"], case .int64(let bytes) = raw.values,
              let record = try? JSONDecoder().decode(Record.self, from: Data(bytes.map { UInt8(truncatingIfNeeded: $0) })) else {
            throw PassError(node: path, "is not an amct-pipe retraining checkpoint (no readable record)")
        }
        let o = trainer.options
        guard record.names == trainer.store.names, record.shapes == trainer.store.shapes else {
            throw PassError(node: path, "was written for another model or config (its parameters differ from this run's)")
        }
        guard record.seed == o.seed, record.batchSize == o.batchSize, record.optimizer == o.optimizer.rawValue,
              record.learningRate == o.effectiveLearningRate else {
            throw PassError(node: path, "was written with --seed \(record.seed) --batch-size \(record.batchSize) --optimizer \(record.optimizer) --lr \(record.learningRate); resume with the same")
        }
        func floats(_ name: String, count: Int) throws -> [Float] {
            guard let a = arrays[name], case .float(let v) = a.values, v.count == count else {
                throw PassError(node: path, "array \(name) is missing or of the wrong size")
            }
            return v
        }
        var state = TrainingState(epochsDone: record.epochsDone, reports: record.reports, before: record.before)
        state.resumedFrom = record.epochsDone
        var best: [[Float]] = []
        for i in trainer.store.values.indices {
            let n = trainer.store.values[i].count
            trainer.store.values[i] = try floats("value.\(i)", count: n)
            trainer.store.first[i] = try floats("first.\(i)", count: n)
            trainer.store.second[i] = try floats("second.\(i)", count: n)
            if record.bestEpoch != nil { best.append(try floats("best.\(i)", count: n)) }
        }
        trainer.store.step = record.step
        if let epoch = record.bestEpoch, let score = record.bestScore { state.best = (epoch, score, best) }
        for k in trainer.masks.indices {
            guard let a = arrays["mask.\(k)"], case .int64(let v) = a.values else { throw PassError(node: path, "mask \(k) is missing") }
            trainer.masks[k].mask = v.map { UInt8(truncatingIfNeeded: $0) }
        }
        return state
    }
}
