import Graph
import Kernels

/// The numbers quantization settles for one layer, computed once and used by every output layout.
public struct LayerQuantParameters: Sendable {
    public var plan: LayerPlan
    /// Effective clips (clip_min is 0 under fixed_min) and where they came from.
    public var clipMin: Float
    public var clipMax: Float
    public var clipsFrom: ClipOrigin
    public var actBits: Int
    /// s_d as computed, and as written (float16-rounded under FORCE_FP16_QUANT).
    public var scaleD: Float
    public var writtenScaleD: Float
    public var offsetD: Int
    public var weightBits: Int
    public var weightLayout: WeightLayout
    /// One scale per output channel (one when per-tensor).
    public var scaleW: [Float]
    /// The layer's output channels (the length of its per-channel bias and dequant scales).
    public var outputChannels: Int
    /// The integer weights, in the weight's own layout.
    public var integers: [Int8]
    public var weightDims: [Int64]

    /// The layer's quantization decision.
    public var decision: QuantDecision

    /// The record entry for this layer.
    public var recordEntry: QuantRecordEntry {
        QuantRecordEntry(
            layer: plan.layer.name, op: plan.layer.op.rawValue, actType: decision.act.type, weightType: decision.wts.type,
            channelWise: decision.wts.channelWise, clipMin: clipMin, clipMax: clipMax, scaleD: writtenScaleD,
            offsetD: offsetD, scaleW: scaleW, clipsFrom: clipsFrom)
    }

    /// Computes the parameters of plan layer `index` from the graph as it is now (the weight the node reads now, so
    /// a folded BatchNormalization is included). `clips` are the calibrated ones when the config gives none.
    /// `trained` clips (retraining) win over the config's; `weightClips` (WtsULQ, learned) give s_w = c / (2^(b−1) − 1).
    public static func compute(
        _ p: LayerPlan, graph: Graph, calibrated clips: (Float, Float)?, forceFP16: Bool,
        trained: (Float, Float)? = nil, weightClips: [Float]? = nil
    ) throws -> LayerQuantParameters {
        guard let decision = p.quant else { throw PassError(node: p.layer.name, "is not planned for quantization") }
        let act = decision.act, wts = decision.wts
        guard let (cMin, cMax) = trained ?? act.clips.map({ ($0.min, $0.max) }) ?? clips else {
            throw PassError(node: p.layer.name, "needs activation clips from IFMR (calibration data)")
        }
        let clipMin = act.fixedMin ? 0 : cMin
        guard clipMin.isFinite, cMax.isFinite, (Swift.max(cMax, 0) - Swift.min(clipMin, 0)).isFinite else {
            throw PassError(node: p.layer.name, "activation clips [\(clipMin), \(cMax)] are not finite numbers with a finite range; give smaller clips")
        }
        let (scale, offset) = Quantization.asymmetricParameters(clipMin: clipMin, clipMax: cMax, bits: act.type.bits)
        let node = graph[p.layer.node]
        let weightName = try requiredInput(node, 1, "weight")
        let weight = try requiredFloatConstant(graph, weightName, node: p.layer.name, role: "weight")
        try requireFinite(weight, weightName, node: p.layer.name, role: "weight")
        guard weight.elementCount > 0, weight.dims.count == p.layer.weightShape.count else {
            throw PassError(node: p.layer.name, "its weight '\(weightName)' has dims \(weight.dims); a \(p.layer.op.rawValue) weight needs \(p.layer.weightShape.count) non-zero dimensions")
        }
        let layout = WeightLayout(layer: p.layer, weightShape: weight.dims, channelWise: wts.channelWise)
        let outputChannels = WeightLayout(layer: p.layer, weightShape: weight.dims, channelWise: true).layout.channels
        let bits = wts.type.bits
        var integers = [Int8](repeating: 0, count: weight.elementCount)
        let scales = weight.withElements(as: Float.self) { w -> [Float] in
            let (lo, hi) = Quantization.channelMinMax(w, layout.layout)
            let scales = weightClips.map { $0.map { TrainingQuant.wtsULQScale(clip: $0, bits: bits) } }
                ?? zip(lo, hi).map { Quantization.symmetricScale(min: $0, max: $1, bits: bits) }
            integers.withUnsafeMutableBufferPointer { Quantization.quantizeSymmetric(w, layout.layout, scales: scales, bits: bits, into: $0) }
            return scales
        }
        let written = forceFP16 ? Quantization.roundScaleToFloat16(scale) : scale
        guard written.isFinite, written > 0, scales.allSatisfy({ ($0 * written).isFinite && $0 * written > 0 }) else {
            throw PassError(
                node: p.layer.name,
                "its scales do not fit float32\(forceFP16 ? "/float16 (FORCE_FP16_QUANT)" : ""): scale_d \(written) from clips [\(clipMin), \(cMax)]; give clips of a smaller range")
        }
        return LayerQuantParameters(
            plan: p, clipMin: clipMin, clipMax: cMax, clipsFrom: trained != nil ? .retrained : act.initialization,
            actBits: act.type.bits, scaleD: scale, writtenScaleD: written, offsetD: offset,
            weightBits: bits, weightLayout: layout, scaleW: scales, outputChannels: outputChannels, integers: integers,
            weightDims: weight.dims, decision: decision)
    }

    /// The parameters of every quantized layer of the plan, in plan order; names the layers that lack clips.
    public static func computeAll(_ graph: Graph, plan: Plan, _ context: PassContext) throws -> [LayerQuantParameters] {
        let missing = plan.quantized.filter { i, _, q in
            q.act.clips == nil && context.calibratedClips[i] == nil && context.trainedClips[i] == nil
        }
        if !missing.isEmpty {
            throw PassError(
                node: missing[0].plan.layer.name,
                "these layers need activation clips from IFMR, which needs calibration data (--calib): \(missing.map(\.plan.layer.name).joined(separator: ", ")). Give clip_max_min in the config for them, or calibration data")
        }
        return try plan.quantized.map { i, p, _ in
            try compute(p, graph: graph, calibrated: context.calibratedClips[i], forceFP16: plan.forceFP16Quant,
                        trained: context.trainedClips[i], weightClips: context.trainedWeightClips[i])
        }
    }

    /// s_w · s_d per output channel (the dequantization of an integer-domain layer output).
    public var dequantScales: [Float] { scaleW.map { $0 * writtenScaleD } }

    /// The bias in the integer domain, round(b / (s_w · s_d)) per output channel (a scalar bias or a single scale is
    /// broadcast, so every layout gets one value per output channel). The bias must be float32 with one value or one
    /// per output channel, all finite.
    public func integerBias(_ bias: Tensor, name: String) throws -> [Float] {
        let layer = plan.layer.name
        try checkComplete(bias, name, node: layer, role: "bias")
        guard bias.dataType == .float else {
            throw PassError(node: layer, "its bias '\(name)' is \(bias.dataType); the integer-domain layout needs a FLOAT bias")
        }
        guard bias.elementCount == 1 || bias.elementCount == outputChannels else {
            throw PassError(
                node: layer, "its bias '\(name)' has dims \(bias.dims) (\(bias.elementCount) values); the layer has \(outputChannels) output channels")
        }
        try requireFinite(bias, name, node: layer, role: "bias")
        let deq = dequantScales
        let b = bias.floatArray
        return (0..<outputChannels).map { c in
            (b[b.count == 1 ? 0 : c] / deq[deq.count == 1 ? 0 : c]).rounded(.toNearestOrEven)
        }
    }
}
