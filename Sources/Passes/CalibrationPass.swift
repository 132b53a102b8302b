import Dispatch
import Foundation
import Graph
import Kernels

// Calibration: IFMR clips for the layers whose config gives none (SEMANTICS §4), from real inputs.
//
//   before: plan layers with act.init = ifmr; the float graph; calibration data
//   after:  context.calibratedClips[layer] = (clip_min, clip_max) (fixed_min later sets clip_min to 0)
//
// The float model runs twice over the first batch_num batches (read on a thread of their own). Pass 1 keeps, per
// observed input, its k most extreme values each side (k ≈ N·10⁻⁶) and checks it is finite; that fixes the 61
// candidate clips. Pass 2 accumulates every candidate's squared error chunk by chunk (one search per distinct input
// and bit width: layers reading the same tensor share it). Memory is O(candidates + k) per layer, never O(samples),
// and the clips are the same bits as IFMR over the concatenated input (IFMR.SquaredErrors keeps the chunking).

/// What calibration did: IFMR clips for `layers` layers from `batches` batches of `samplesPerBatch` samples.
public struct CalibrationReport: Sendable, Equatable, CustomStringConvertible {
    public var layers: Int
    public var batches: Int
    public var samplesPerBatch: Int
    /// Where the samples came from (a path, or the random source).
    public var source: String
    public var description: String {
        "IFMR clips for \(layers) layers from \(batches) batches of \(samplesPerBatch) (\(source))"
    }
}

public struct CalibrationPass: PlanPass {
    public let name = "calibrate-ifmr"
    public var provides: [PassRequirement] { [.clips] }
    public var data: CalibrationData?
    /// One IFMR search: a layer input at a bit width (layers reading the same tensor at the same width share it).
    typealias Job = (value: String, bits: Int, layer: String)
    public var batchSize: Int
    /// Called with (phase, samples read, samples) after each batch of each of the two passes over the data.
    public var progress: (@Sendable (_ phase: String, _ done: Int, _ of: Int) -> Void)?

    public init(data: CalibrationData?, batchSize: Int = 1, progress: (@Sendable (String, Int, Int) -> Void)? = nil) {
        self.data = data
        self.batchSize = batchSize
        self.progress = progress
    }

    public func run(_ graph: inout Graph, plan: Plan, _ context: inout PassContext) throws {
        let needing = plan.quantized.filter { $0.decision.act.clips == nil }
        guard !needing.isEmpty else { return }
        guard let data else {
            throw PassError(
                node: needing[0].plan.layer.name,
                "these layers need activation clips from IFMR, which needs calibration data (--calib data.npz, or --calib random for a trial): \(needing.map(\.plan.layer.name).joined(separator: ", ")). Or give clip_max_min in the config for them")
        }
        let opset = context.opsetImports.version() ?? 13
        let executor = try GraphExecutor(graph: graph, opset: opset)
        let count = plan.batchNum
        try data.checkBatches(count: count, batchSize: batchSize)
        // One search per distinct (input, bit width); the extremes are per input.
        var jobIndex: [String: Int] = [:]
        var jobs: [Job] = []
        var jobOfLayer: [Int: Int] = [:]
        for (i, p, q) in needing {
            let value = graph[p.layer.node].inputs[0], bits = q.act.type.bits
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
        for (i, job) in jobOfLayer { context.calibratedClips[i] = results[job] }
        if data.isRandom {
            context.warn("calibration used seeded random inputs (--calib random): the clips suit a quick trial, not deployment")
        }
        let report = CalibrationReport(layers: needing.count, batches: count,
                                       samplesPerBatch: data.samplesPerBatch(batchSize: batchSize), source: data.source)
        context.calibration = report
        context.log.append((name, report.description))
    }

    /// Pass 1 over the data: per observed input, the k most extreme values each side (k from the element count,
    /// taken from the first batch × batches; when batches differ in size the pass runs again with the exact k), and
    /// a check that every value is finite.
    func findExtremes(_ executor: GraphExecutor, _ data: CalibrationData, jobs: [Job], batches: Int) throws
        -> [String: IFMR.Extremes] {
        var expected: [String: Int] = [:]
        while true {
            var extremes: [String: IFMR.Extremes] = [:]
            var nonFinite: [String: (count: Int, first: Float)] = [:]
            let reader = data.reader(count: batches, batchSize: batchSize)
            for b in 0..<batches {
                _ = try executor.run(try reader.next(), observe: Set(jobs.map(\.value))) { name, value in
                    let floats = value.floats
                    Self.countNonFinite(floats, into: &nonFinite[name, default: (0, 0)])
                    let n = expected[name] ?? floats.count * batches
                    expected[name] = n
                    extremes[name, default: IFMR.Extremes(k: IFMR.k(count: n))].add(floats)
                }
                let per = data.samplesPerBatch(batchSize: batchSize)
                progress?("IFMR pass 1 of 2: samples read", (b + 1) * per, batches * per)
            }
            for job in jobs {
                guard let bad = nonFinite[job.value], bad.count > 0 else { continue }
                throw PassError(
                    node: job.layer,
                    "its input '\(job.value)' holds \(bad.count) NaN/infinite value\(bad.count == 1 ? "" : "s") (of "
                        + "\(extremes[job.value]?.count ?? 0)) in the calibration run, the first \(bad.first); IFMR needs "
                        + "finite numbers: check the calibration data and the model's weights")
            }
            let exact = extremes.mapValues(\.count)
            if exact == expected { return extremes }
            expected = exact
        }
    }

    /// Pass 2: every candidate clip's squared error, accumulated batch by batch (the search of a job is nil when its
    /// input is all zeros).
    func squaredErrors(_ executor: GraphExecutor, _ data: CalibrationData, jobs: [Job], searches: [IFMR.Search?],
                       batches: Int) throws -> [IFMR.SquaredErrors] {
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
            let per = data.samplesPerBatch(batchSize: batchSize)
            progress?("IFMR pass 2 of 2: samples read", (b + 1) * per, batches * per)
        }
        return errors
    }

    /// Counts the NaN/infinite values of a batch (and keeps the first one seen).
    static func countNonFinite(_ values: [Float], into tally: inout (count: Int, first: Float)) {
        for v in values where !v.isFinite {
            if tally.count == 0 { tally.first = v }
            tally.count += 1
        }
    }
}

/// A pointer handed to concurrent workers that each touch their own elements.
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}
