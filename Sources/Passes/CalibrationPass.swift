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
        guard let plan = context.plan else { return }
        let needing = plan.layers.enumerated().filter { $0.element.quant.enabled && $0.element.quant.act?.clipMin == nil }
        guard !needing.isEmpty else { return }
        guard let data else {
            throw PassError(
                node: needing[0].element.layer.name,
                "these layers need activation clips from IFMR, which needs calibration data (--calib data.npz, or --calib random for a trial): \(needing.map(\.element.layer.name).joined(separator: ", ")). Or give clip_max_min in the config for them")
        }
        let opset = context.opsetImports.first { ($0.domain ?? "").isEmpty || $0.domain == "ai.onnx" }?.version ?? 13
        let executor = try GraphExecutor(graph: graph, opset: opset)
        let batches = try data.batches(count: plan.batchNum, batchSize: batchSize)
        let observed = Set(needing.map { graph[$0.element.layer.node].inputs[0] })
        var gathered: [String: [Float]] = [:]
        for (i, batch) in batches.enumerated() {
            _ = try executor.run(batch, observe: observed) { name, value in gathered[name, default: []] += value.floats }
            progress?("batch", i + 1, batches.count)
        }
        // One search per distinct (input, bit width), spread over the cores.
        var jobs: [(value: String, bits: Int)] = []
        for (_, p) in needing {
            let job = (graph[p.layer.node].inputs[0], p.quant.act!.type.bits)
            if !jobs.contains(where: { $0 == job }) { jobs.append(job) }
        }
        let results = ClipResults(count: jobs.count)
        let inputs = gathered, work = jobs, report = progress
        DispatchQueue.concurrentPerform(iterations: work.count) { j in
            let c = IFMR.clips(inputs[work[j].value] ?? [], bits: work[j].bits)
            let done = results.set(j, (c.min, c.max))
            report?("IFMR layer", done, work.count)
        }
        for (i, p) in needing {
            let j = jobs.firstIndex { $0 == (graph[p.layer.node].inputs[0], p.quant.act!.type.bits) }!
            context.calibratedClips[i] = results.values[j]
        }
        if data.isRandom {
            context.warn("calibration used seeded random inputs (--calib random): the clips suit a quick trial, not deployment")
        }
        context.log.append((name, "IFMR clips for \(needing.count) layers from \(batches.count) batches of \(data.samplesPerBatch(batchSize: batchSize)) (\(data.source))"))
    }
}
