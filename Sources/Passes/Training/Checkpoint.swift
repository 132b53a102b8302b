import Foundation
import Graph
import Kernels

// A retraining checkpoint: one .npz (`DIR/checkpoint.npz`), written to a temporary file and renamed, so an
// interrupted run (Ctrl-C included) always leaves the last whole checkpoint. It holds every parameter, both optimizer
// moments, the 2:4 masks, the best epoch's parameters, and a JSON record (epochs done, step, scores, names and shapes,
// the options that must match on resume). Resuming restores all of it, so a resumed run ends with the same
// parameters as an uninterrupted one (same seed and thread count). A `checksum` array (CRC-32 of every other
// array, `NumpyArchive.checksum`) and a checked record make a damaged or edited checkpoint an error, never a resume.

enum Checkpoint {
    static let file = "checkpoint.npz"

    /// The record's version: 2 since checkpoints carry a checksum.
    static let version = 2

    struct Record: Codable {
        var version = Checkpoint.version
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
        func floats(_ name: String, _ v: [Float]) { arrays.append((name, NumpyArray(shape: [v.count], floats: v))) }
        let json = try JSONEncoder().encode(record)
        arrays.append(("record", NumpyArray(shape: [json.count], ints: json.map(Int64.init))))
        for i in 0..<s.count {  // one array per parameter, so a checkpoint names what it holds
            let r = s.range(i)
            floats("value.\(i)", Array(s.values[r]))
            floats("first.\(i)", Array(s.first[r]))
            floats("second.\(i)", Array(s.second[r]))
            if let best = state.best { floats("best.\(i)", Array(best.values[r])) }
        }
        for (k, m) in trainer.masks.enumerated() {
            arrays.append(("mask.\(k)", NumpyArray(shape: [m.mask.count], ints: m.mask.map(Int64.init))))
        }
        let sum = NumpyArchive.checksum(Dictionary(arrays, uniquingKeysWith: { a, _ in a }))
        arrays.append(("checksum", NumpyArray(shape: [1], ints: [Int64(sum)])))
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
        let file = try CheckpointFile(arrays: NumpyArchive.load(path), path: path)
        let (arrays, record) = (file.arrays, file.record)
        let o = trainer.options
        guard record.names == trainer.store.names, record.shapes == trainer.store.shapes else {
            throw PassError(node: path, "was written for another model or config (its parameters differ from this run's)")
        }
        guard record.seed == o.seed, record.batchSize == o.batchSize, record.optimizer == o.optimizer.rawValue,
              record.learningRate == o.effectiveLearningRate else {
            throw PassError(node: path, "was written with --seed \(record.seed), a global batch of \(record.batchSize) "
                + "(--batch-size × mpirun ranks), --optimizer \(record.optimizer) --lr \(record.learningRate); resume with the "
                + "same (on any number of ranks that divides the batch)")
        }
        func floats(_ name: String, count: Int) throws -> [Float] {
            guard let a = arrays[name], case .float(let v) = a.values, v.count == count else {
                throw PassError(node: path, "array \(name) is missing or of the wrong size")
            }
            return v
        }
        var state = TrainingState(epochsDone: record.epochsDone, reports: record.reports, before: record.before)
        state.resumedFrom = record.epochsDone
        var best: [Float] = []
        for i in 0..<trainer.store.count {
            let r = trainer.store.range(i)
            trainer.store[i] = try floats("value.\(i)", count: r.count)
            trainer.store.first.replaceSubrange(r, with: try floats("first.\(i)", count: r.count))
            trainer.store.second.replaceSubrange(r, with: try floats("second.\(i)", count: r.count))
            if record.bestEpoch != nil { best += try floats("best.\(i)", count: r.count) }
        }
        trainer.store.step = record.step
        if let epoch = record.bestEpoch, let score = record.bestScore { state.best = (epoch, score, best) }
        for k in trainer.masks.indices {
            let size = trainer.store.range(trainer.masks[k].parameter).count  // one mask entry per weight element
            guard let a = arrays["mask.\(k)"], case .int64(let v) = a.values, v.count == size else {
                throw PassError(node: path, "mask \(k) is missing or of the wrong size")
            }
            trainer.masks[k].mask = v.map { UInt8(truncatingIfNeeded: $0) }
        }
        return state
    }
}

/// A checkpoint's arrays and record, checked as far as they can be without the run resuming: the checksum (CRC-32 of
/// every other array), the record's version and numbers, and one array of its recorded shape per parameter for the
/// values and both moments (and the best epoch's values). `Checkpoint.restore` then checks it against the run.
public struct CheckpointFile {
    let arrays: [String: NumpyArray]
    let record: Checkpoint.Record

    /// The arrays of a checkpoint file (`NumpyArchive.load`); `path` is for messages.
    public init(arrays given: [String: NumpyArray], path: String) throws {
        var arrays = given
        guard let raw = arrays["record"], case .int64(let bytes) = raw.values,
              let record = try? JSONDecoder().decode(Checkpoint.Record.self,
                                                     from: Data(bytes.map { UInt8(truncatingIfNeeded: $0) }))
        else {
            throw PassError(node: path, "is not an amct-pipe retraining checkpoint (no readable record)")
        }
        guard record.version == Checkpoint.version else {
            throw PassError(node: path, "is a checkpoint of version \(record.version); this amct-pipe reads version "
                + "\(Checkpoint.version) (start again without --resume)")
        }
        guard let stored = arrays.removeValue(forKey: "checksum"), case .int64(let sum) = stored.values, sum.count == 1,
              sum[0] == Int64(NumpyArchive.checksum(arrays)) else {
            throw PassError(node: path, "is damaged: its checksum does not match its contents (resume from an intact copy, "
                + "or start again without --resume)")
        }
        try Self.check(record, path)
        for (i, shape) in record.shapes.enumerated() {
            let count = shape.allSatisfy { $0 >= 0 } ? try? Checked.product(shape, what: "") : nil
            for name in ["value", "first", "second"] + (record.bestEpoch == nil ? [] : ["best"]) {
                guard let a = arrays["\(name).\(i)"], case .float(let v) = a.values, v.count == count else {
                    throw PassError(node: path, "is damaged: array \(name).\(i) is missing or not of shape \(shape)")
                }
            }
        }
        self.arrays = arrays
        self.record = record
    }

    /// A record whose numbers a resume can trust (the checksum says the file is as written; this, that a run wrote it).
    static func check(_ r: Checkpoint.Record, _ path: String) throws {
        let consistent = r.epochsDone >= 0 && r.epochsDone == r.reports.count && r.step >= 0 && r.batchSize >= 1
            && r.names.count == r.shapes.count && (r.bestEpoch.map { (1...max(r.epochsDone, 1)).contains($0) } ?? true)
        guard consistent else {
            throw PassError(node: path, "is damaged: its record (epochs done \(r.epochsDone), \(r.reports.count) epoch "
                + "reports, step \(r.step), best epoch \(r.bestEpoch.map(String.init) ?? "none")) does not hold together")
        }
    }
}
