import Dispatch
import Foundation
import Graph
import Kernels

/// Results written by concurrent IFMR searches, one slot each.
final class ClipResults: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [(Float, Float)]
    private var finished = 0
    init(count: Int) { values = Array(repeating: (0, 0), count: count) }
    /// Stores a result; returns how many are done.
    func set(_ index: Int, _ value: (Float, Float)) -> Int {
        lock.lock()
        defer { lock.unlock() }
        values[index] = value
        finished += 1
        return finished
    }
}

// Calibration: IFMR clips for the layers whose config gives none (SEMANTICS §4), from real inputs.
//
//   before: plan layers with act.init = ifmr; the float graph; calibration data
//   after:  context.calibratedClips[layer] = (clip_min, clip_max) (fixed_min later sets clip_min to 0)
//
// The float model runs on the first batch_num batches; the input of every such layer is gathered over all batches
// (one copy per distinct input value and bit width: layers reading the same tensor share it), then IFMR searches the
// 61 candidate clips on it. What is kept per layer is its concatenated float32 input; nothing else outlives a batch.

public struct CalibrationPass: Pass {
    public let name = "calibrate-ifmr"
    public var requirements: [PassRequirement] { [.plan] }
    public var provides: [PassRequirement] { [.clips] }
    public var data: CalibrationData?
    public var batchSize: Int
    /// Called with ("batch", i, n) after each batch and ("IFMR layer", i, n) as searches finish.
    public var progress: (@Sendable (_ phase: String, _ done: Int, _ of: Int) -> Void)?

    public init(data: CalibrationData?, batchSize: Int = 1, progress: (@Sendable (String, Int, Int) -> Void)? = nil) {
        self.data = data
        self.batchSize = batchSize
        self.progress = progress
    }

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        guard let plan = context.plan else { throw PipelineError(pass: name, missing: .plan) }
        let needing = plan.layers.enumerated().filter { $0.element.quant.enabled && $0.element.quant.act?.clipMin == nil }
        guard !needing.isEmpty else { return }
        guard let data else {
            throw PassError(
                node: needing[0].element.layer.name,
                "these layers need activation clips from IFMR, which needs calibration data (--calib data.npz, or --calib random for a trial): \(needing.map(\.element.layer.name).joined(separator: ", ")). Or give clip_max_min in the config for them")
        }
        let opset = context.opsetImports.version() ?? 13
        let executor = try GraphExecutor(graph: graph, opset: opset)
        let count = plan.batchNum
        try data.checkBatches(count: count, batchSize: batchSize)
        // One search per distinct (input, bit width); the extremes are per input.
        var jobIndex: [String: Int] = [:]
        var jobs: [(value: String, bits: Int, layer: String)] = []
        var jobOfLayer: [Int: Int] = [:]
        for (i, p) in needing {
            let value = graph[p.layer.node].inputs[0], bits = p.quant.act!.type.bits
            let key = "\(bits)|\(value)"
            if jobIndex[key] == nil {
                jobIndex[key] = jobs.count
                jobs.append((value, bits, p.layer.name))
            }
            jobOfLayer[i] = jobIndex[key]
        }
        let extremes = try findExtremes(executor, data, jobs: jobs, batches: count)
        let searches = jobs.map { IFMR.Search(extremes[$0.value]!, bits: $0.bits) }
        let losses = try squaredErrors(executor, data, jobs: jobs, searches: searches, batches: count)
        let results = zip(searches, losses).map { search, errors -> (Float, Float) in
            var errors = errors
            return search.map { $0.clips(errors.means()) } ?? (0, 0)
        }
        for (i, _) in needing { context.calibratedClips[i] = results[jobOfLayer[i]!] }
        if data.isRandom {
            context.warn("calibration used seeded random inputs (--calib random): the clips suit a quick trial, not deployment")
        }
        context.log.append((name, "IFMR clips for \(needing.count) layers from \(count) batches of \(data.samplesPerBatch(batchSize: batchSize)) (\(data.source))"))
    }

    /// Pass 1 over the data: per observed input, the k most extreme values each side (k from the element count,
    /// taken from the first batch × batches; when batches differ in size the pass runs again with the exact k), and
    /// a check that every value is finite.
    func findExtremes(_ executor: GraphExecutor, _ data: CalibrationData, jobs: [(value: String, bits: Int, layer: String)],
                      batches: Int) throws -> [String: IFMR.Extremes] {
        var expected: [String: Int] = [:]
        while true {
            var extremes: [String: IFMR.Extremes] = [:]
            let reader = data.reader(count: batches, batchSize: batchSize)
            for b in 0..<batches {
                var failure: (any Error)?
                _ = try executor.run(try reader.next(), observe: Set(jobs.map(\.value))) { name, value in
                    let floats = value.floats
                    if failure == nil, let job = jobs.first(where: { $0.value == name }) {
                        do { try checkFinite(floats, value: name, layer: job.layer) } catch { failure = error }
                    }
                    let n = expected[name] ?? floats.count * batches
                    expected[name] = n
                    extremes[name, default: IFMR.Extremes(k: IFMR.k(count: n))].add(floats)
                }
                if let failure { throw failure }
                progress?("IFMR pass 1, batch", b + 1, batches)
            }
            let exact = extremes.mapValues(\.count)
            if exact == expected { return extremes }
            expected = exact
        }
    }

    /// Pass 2: every candidate clip's squared error, accumulated batch by batch (the search of a job is nil when its
    /// input is all zeros).
    func squaredErrors(_ executor: GraphExecutor, _ data: CalibrationData, jobs: [(value: String, bits: Int, layer: String)],
                       searches: [IFMR.Search?], batches: Int) throws -> [IFMR.SquaredErrors] {
        var errors = searches.map { IFMR.SquaredErrors($0?.clipsAndScales ?? []) }
        let live = jobs.indices.filter { searches[$0] != nil }
        guard !live.isEmpty else { return errors }
        let reader = data.reader(count: batches, batchSize: batchSize)
        for b in 0..<batches {
            var observed: [String: [Float]] = [:]
            _ = try executor.run(try reader.next(), observe: Set(live.map { jobs[$0].value })) { name, value in
                observed[name] = value.floats
            }
            errors.withUnsafeMutableBufferPointer { e in
                let target = SendablePointer(e.baseAddress!), inputs = observed
                DispatchQueue.concurrentPerform(iterations: live.count) { i in
                    let j = live[i]
                    target.pointer[j].add(inputs[jobs[j].value]!)
                }
            }
            progress?("IFMR pass 2, batch", b + 1, batches)
        }
        return errors
    }

    /// The gathered input of an IFMR layer must be finite: NaN or infinity has no clip.
    func checkFinite(_ values: [Float], value: String, layer: String) throws {
        var bad = 0
        var first: Float = 0
        for v in values where !v.isFinite {
            if bad == 0 { first = v }
            bad += 1
        }
        guard bad > 0 else { return }
        throw PassError(
            node: layer,
            "its input '\(value)' holds \(bad) NaN/infinite value\(bad == 1 ? "" : "s") (of \(values.count)) in the calibration "
                + "run, the first \(first); IFMR needs finite numbers: check the calibration data and the model's weights")
    }
}

/// A pointer handed to concurrent workers that each touch their own elements.
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}
