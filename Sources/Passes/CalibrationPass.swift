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
        let observed = Set(needing.map { graph[$0.element.layer.node].inputs[0] })
        var gathered: [String: [Float]] = [:]
        for b in 0..<count {
            _ = try executor.run(data.batch(b, batchSize: batchSize), observe: observed) { name, value in
                gathered[name, default: []] += value.floats
            }
            if b == 0 { try checkGatheredSize(gathered, batches: count) }
            progress?("batch", b + 1, count)
        }
        // One search per distinct (input, bit width), spread over the cores; each input checked finite first.
        var jobIndex: [String: Int] = [:]
        var jobs: [(value: String, bits: Int)] = []
        var jobOfLayer: [Int: Int] = [:]
        for (i, p) in needing {
            let value = graph[p.layer.node].inputs[0], bits = p.quant.act!.type.bits
            let key = "\(bits)|\(value)"
            if jobIndex[key] == nil {
                jobIndex[key] = jobs.count
                jobs.append((value, bits))
                try checkFinite(gathered[value] ?? [], value: value, layer: p.layer.name)
            }
            jobOfLayer[i] = jobIndex[key]
        }
        let results = ClipResults(count: jobs.count)
        let inputs = gathered, work = jobs, report = progress
        DispatchQueue.concurrentPerform(iterations: work.count) { j in
            let c = IFMR.clips(inputs[work[j].value] ?? [], bits: work[j].bits)
            let done = results.set(j, (c.min, c.max))
            report?("IFMR layer", done, work.count)
        }
        for (i, _) in needing { context.calibratedClips[i] = results.values[jobOfLayer[i]!] }
        if data.isRandom {
            context.warn("calibration used seeded random inputs (--calib random): the clips suit a quick trial, not deployment")
        }
        context.log.append((name, "IFMR clips for \(needing.count) layers from \(count) batches of \(data.samplesPerBatch(batchSize: batchSize)) (\(data.source))"))
    }

    /// After the first batch: what the gathered inputs will take over all batches, against the memory available.
    func checkGatheredSize(_ gathered: [String: [Float]], batches: Int) throws {
        let perBatch = gathered.values.reduce(0) { $0 + $1.count }
        let (total, overflow) = perBatch.multipliedReportingOverflow(by: batches)
        try MemoryBudget.check(
            bytes: overflow ? (0, true) : total.multipliedReportingOverflow(by: 4),
            for: "keeping the inputs of \(gathered.count) IFMR layers over \(batches) batches (batch_num)")
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
