import Dispatch
import Foundation
import Graph
import Kernels

// Per-layer sensitivity (issue 13): which quantized layers cost accuracy, measured on the calibration data.
//
//   prepareCompression (plan, pruning, IFMR clips) ─▶ LayerQuantParameters of every quantized layer
//   per batch: one float run, keeping each layer's output and the values its downstream part reads (the boundary)
//              per layer: the graph with that layer alone fake-quantized (FakeQuantGraph), cut to the nodes that
//                         depend on its quantizer (DownstreamGraph), run from the cached float values
//              all layers fake-quantized: one full run
//
// A single-layer run re-runs only the nodes after the layer (on average about half a pass for a chain; the report
// gives the share measured), and the float pass is shared by all layers. `SensitivitySession` keeps the prepared
// graph, the clips and the float outputs so `--suggest` can evaluate other bit widths without a new float pass.

/// Analyzes a model under a config: the sensitivity of every layer the plan quantizes.
public func analyzeSensitivity(
    _ model: consuming Model, config: CompressionConfig, data: CalibrationData?, batchSize: Int,
    progress: (@Sendable (_ phase: String, _ done: Int, _ of: Int) -> Void)? = nil
) throws -> SensitivityReport {
    try SensitivitySession(model, config: config, data: data, batchSize: batchSize, progress: progress).analyze()
}

public final class SensitivitySession {
    public let graph: Graph
    public let context: PassContext
    public let plan: Plan
    let data: CalibrationData
    let batchSize: Int
    let opset: Int64
    let progress: (@Sendable (String, Int, Int) -> Void)?
    /// Quantized layers: plan index and parameters as configured.
    public let parameters: [(index: Int, q: LayerQuantParameters)]
    /// Float outputs by batch, kept while they fit `referenceBudget` bytes (the others are run again when needed), so
    /// memory does not grow with the number of batches.
    var references: [Int: [String: DenseTensor]] = [:]
    var referenceBytes = 0
    var referenceBudget = SensitivitySession.defaultReferenceBudget
    /// The float model, planned once.
    let floatExecutor: GraphExecutor
    /// IFMR clips per activation bit width, by plan index (the configured widths from calibration, others on demand).
    var clipsByBits: [Int: [Int: (Float, Float)]] = [:]
    let prepareSeconds: Double

    public init(
        _ model: consuming Model, config: CompressionConfig, data: CalibrationData?, batchSize: Int,
        progress: (@Sendable (String, Int, Int) -> Void)? = nil
    ) throws {
        guard let data else { throw AnalysisError.noCalibrationData }
        let start = DispatchTime.now()
        let calibration = CalibrationPass(data: data, batchSize: batchSize, progress: progress)
        let (prepared, context) = try prepareCompression(model, config: config, calibration: calibration)
        guard let plan = context.plan else { throw AnalysisError.nothingQuantized }
        let params = try LayerQuantParameters.computeAll(prepared.graph, plan: plan, context)
        guard !params.isEmpty else { throw AnalysisError.nothingQuantized }
        graph = prepared.graph
        self.context = context
        self.plan = plan
        self.data = data
        self.batchSize = batchSize
        self.progress = progress
        opset = context.opsetImports.version() ?? 13
        floatExecutor = try GraphExecutor(graph: prepared.graph, opset: opset)
        parameters = Array(zip(plan.quantized.map(\.index), params))
        for (i, p) in parameters where p.clipsFrom == .ifmr {
            clipsByBits[p.actBits, default: [:]][i] = context.calibratedClips[i]
        }
        try data.checkBatches(count: plan.batchNum, batchSize: batchSize)
        prepareSeconds = seconds(since: start)
    }

    var batches: Int { plan.batchNum }

    /// Runs the analysis.
    public func analyze() throws -> SensitivityReport {
        let start = DispatchTime.now()
        let subs = parameters.map { index, q in
            let fq = FakeQuantGraph(graph, parameters: [(index, q)])
            return DownstreamGraph(fq.graph, from: fq.quantizer[index]!)
        }
        let outputNames = parameters.map { graph[$0.q.plan.layer.node].outputs[0] }
        let inputNames = parameters.map { graph[$0.q.plan.layer.node].inputs[0] }
        let observe = Set(subs.flatMap(\.boundary) + outputNames + inputNames)
        var outputAcc = [SQNRAccumulator](repeating: .init(), count: subs.count)
        var layerAcc = outputAcc
        var layerSeconds = [Double](repeating: 0, count: subs.count)
        var shapes: [String: [Int]] = [:]
        var floatSeconds = 0.0
        references = [:]
        referenceBytes = 0
        var executors = [(key: String, executor: GraphExecutor)?](repeating: nil, count: subs.count)
        let reader = data.reader(count: batches, batchSize: batchSize)
        for b in 0..<batches {
            let t0 = DispatchTime.now()
            var cache: [String: DenseTensor] = [:]
            let batch = try reader.next()
            let reference = try floatExecutor.run(batch, observe: observe) { cache[$0] = $1 }
            keep(reference, batch: b)
            floatSeconds += seconds(since: t0)
            if b == 0 { shapes = cache.mapValues(\.shape) }
            for (k, sub) in subs.enumerated() {
                let t1 = DispatchTime.now()
                let (subGraph, feeds, key) = sub.instance(cache)
                if executors[k]?.key != key {  // one executor (and plan) per graph variant, not per batch
                    executors[k] = (key, try GraphExecutor(graph: subGraph, opset: opset, registry: AnalysisOps.registry))
                }
                let executor = executors[k]!.executor
                var layerOutput: DenseTensor?
                let outputs = try executor.run(feeds, observe: [outputNames[k]]) { layerOutput = $1 }
                addOutputs(&outputAcc[k], reference: reference, quantized: outputs)
                if let f = cache[outputNames[k]], let q = layerOutput {
                    layerAcc[k].add(reference: f.floats, quantized: q.floats)
                }
                layerSeconds[k] += seconds(since: t1)
                progress?("layer", b * subs.count + k + 1, batches * subs.count)
            }
        }
        let layersTotal = layerSeconds.reduce(0, +)
        let t2 = DispatchTime.now()
        let all = try outputSQNR(parameters)
        let allSeconds = seconds(since: t2)
        let layers = parameters.enumerated().map { k, entry in
            layerEntry(entry.index, entry.q, output: outputAcc[k].decibels, own: layerAcc[k].decibels,
                       input: shapes[inputNames[k]] ?? [], out: shapes[outputNames[k]] ?? [], rerun: subs[k].nodeCount,
                       seconds: layerSeconds[k])
        }
        let timing = SensitivityReport.Timing(
            prepare: prepareSeconds, floatForward: floatSeconds, layers: layersTotal, allLayers: allSeconds,
            total: prepareSeconds + seconds(since: start))
        return SensitivityReport(
            layers: layers, allLayersSQNR: all, samples: batches * data.samplesPerBatch(batchSize: batchSize),
            batches: batches, graphNodes: graph.order.count, seconds: timing)
    }

    /// The SQNR of the model's outputs with these layers fake-quantized (one full run per batch).
    public func outputSQNR(_ quantized: [(index: Int, q: LayerQuantParameters)]) throws -> Double {
        let fq = FakeQuantGraph(graph, parameters: quantized)
        let executor = try GraphExecutor(graph: fq.graph, opset: opset, registry: AnalysisOps.registry)
        var acc = SQNRAccumulator()
        let reader = data.reader(count: batches, batchSize: batchSize)
        for b in 0..<batches {
            let batch = try reader.next()
            let reference = try references[b] ?? floatExecutor.run(batch)
            keep(reference, batch: b)
            addOutputs(&acc, reference: reference, quantized: try executor.run(batch))
        }
        return acc.decibels
    }

    /// Bytes of float outputs kept across runs: a quarter of the memory available, at most 256 MiB.
    static var defaultReferenceBudget: Int { min(256 << 20, MemoryBudget.availableBytes / 4) }

    /// Keeps batch `b`'s float outputs when they fit the budget.
    func keep(_ reference: [String: DenseTensor], batch b: Int) {
        guard references[b] == nil else { return }
        let bytes = reference.values.reduce(0) { $0 + 8 * $1.count }
        guard referenceBytes + bytes <= referenceBudget else { return }
        references[b] = reference
        referenceBytes += bytes
    }

    /// Every float graph output; one the quantized run does not produce is unaffected (its error is 0).
    func addOutputs(_ acc: inout SQNRAccumulator, reference: [String: DenseTensor], quantized: [String: DenseTensor]) {
        for info in graph.outputs {
            guard let name = info.name, let r = reference[name], r.isFloat else { continue }
            acc.add(reference: r.floats, quantized: (quantized[name] ?? r).floats)
        }
    }

    func layerEntry(_ index: Int, _ q: LayerQuantParameters, output: Double, own: Double, input: [Int], out: [Int],
                    rerun: Int, seconds: Double) -> SensitivityReport.Layer {
        let p = plan.layers[index], d = q.decision
        let location: SourceLocation? = switch d.source {
        case .overrideByName(let l), .overrideByType(_, let l), .skippedByName(_, let l), .skippedByType(_, _, let l): l
        default: nil
        }
        return SensitivityReport.Layer(
            index: index, name: p.layer.name, op: p.layer.op.rawValue, actType: d.act.type.rawValue,
            weightType: d.wts.type.rawValue, channelWise: d.wts.channelWise, clipMin: q.clipMin,
            clipMax: q.clipMax, clipsFrom: q.clipsFrom, inputShape: input, outputShape: out, weightShape: q.weightDims,
            source: d.source.description, sourceLine: location?.line, sourceColumn: location?.column,
            outputSQNR: output, layerSQNR: own, rerunNodes: rerun, seconds: seconds)
    }
}

func seconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}
