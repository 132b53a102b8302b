import Graph
import Kernels

// Fake-quant insertion, QDQ layout (SEMANTICS §4, §6): the default output, which onnxruntime runs.
//
//   before:  x ─────────────────────────────────────────────▶ Conv(x, W, b)
//   after:   x ─▶ QuantizeLinear(s_d, o_d) ─▶ DequantizeLinear(s_d, o_d) ─▶ Conv(x̂, Ŵ, b)
//            W_int (INT8/INT4 initializer) ─▶ DequantizeLinear(s_w, 0, axis) ─▶ Ŵ
//
// Activations (ULQ, asymmetric): max' = max(clip_max, 0), min' = min(clip_min, 0) (0 with fixed_min),
// s_d = (max' − min') / (2^b − 1), o_d = round(−2^(b−1) − min'/s_d). QuantizeLinear computes exactly
// clamp(round(x/s_d) + o_d), so x̂ = (q − o_d)·s_d. Under FORCE_FP16_QUANT the written s_d is rounded to float16
// (o_d is computed from the unrounded scale, as the record keeps it).
// Weights (ARQ, symmetric, per output channel when channel_wise): s_w = max(|max|,|min|)/(2^(b−1)−1), or /2^(b−1)
// when |min| > |max|; W_int = clamp(round(W/s_w)); stored as integers, the bias stays float.
// One activation quantizer per tensor and settings: layers reading the same value with the same (b, s, o) share it.
// The opset needed (13 for per-axis scales, 21 for INT4/INT16) is left in context.requiredOpset for the upgrade pass.

public struct FakeQuantInsertionPass: PlanPass {
    public let name = "insert-fake-quant"
    public var requirements: [PassRequirement] { [.plan, .clips] }
    public init() {}

    public func run(_ graph: inout Graph, plan: Plan, _ context: inout PassContext) throws {
        var shared: [QuantizerKey: String] = [:]
        var required: Int64 = 13
        let parameters = try LayerQuantParameters.computeAll(graph, plan: plan, context)
        // Per layer at most 3 nodes and 8 values (scale, zero point, quantized and dequantized input and weight).
        graph.reserveCapacity(nodes: 3 * parameters.count, values: 8 * parameters.count)
        for q in parameters {
            let layer = q.plan.layer
            if q.actBits != 8 || q.weightBits != 8 { required = 21 }
            let actType = q.decision.act.type, wtsType = q.decision.wts.type

            // Activation quantizer, shared per (value, settings).
            let input = graph[layer.node].inputs[0]
            let key = QuantizerKey(value: input, bits: q.actBits, scale: q.writtenScaleD.bitPattern, offset: q.offsetD)
            let dequantized: String
            if let existing = shared[key] {
                dequantized = existing
            } else {
                let base = sanitizedName(input)
                let s = graph.addInitializer(Tensor(name: nil, dims: [], floats: [q.writtenScaleD]), preferredName: "\(base)_scale")
                let zp = graph.addInitializer(integerScalar(q.offsetD, actType), preferredName: "\(base)_zero_point")
                let quantized = graph.uniqueValueName("\(base)_quantized")
                graph.insertNode(
                    Node(opType: "QuantizeLinear", name: graph.uniqueNodeName("\(layer.name)/input_QuantizeLinear"), inputs: [input, s, zp], outputs: [quantized]),
                    before: layer.node)
                dequantized = graph.uniqueValueName("\(base)_dequantized")
                graph.insertNode(
                    Node(opType: "DequantizeLinear", name: graph.uniqueNodeName("\(layer.name)/input_DequantizeLinear"), inputs: [quantized, s, zp], outputs: [dequantized]),
                    before: layer.node)
                shared[key] = dequantized
            }

            // Weights: integers behind a DequantizeLinear.
            let base = sanitizedName(graph[layer.node].inputs[1])
            let replacement: String
            if q.decision.wts.channelWise && q.weightLayout.axis == nil {
                // Per-output-channel scales of a grouped ConvTranspose are not one axis: store the dequantized values.
                var values = [Float](repeating: 0, count: q.integers.count)
                q.weightLayout.layout.forEachRun { c, run in for j in run { values[j] = Float(q.integers[j]) * q.scaleW[c] } }
                replacement = graph.addInitializer(Tensor(name: nil, dims: q.weightDims, floats: values), preferredName: "\(base)_fakequant")
                context.warn("grouped ConvTranspose: per-channel weight scales are not one axis, so the weight is stored dequantized (float values on the integer grid)", node: layer.name)
            } else {
                let perAxis = q.decision.wts.channelWise
                let channels = q.scaleW.count
                let wq = graph.addInitializer(integerTensor(q.integers, dims: q.weightDims, wtsType), preferredName: "\(base)_quantized")
                let ws = graph.addInitializer(Tensor(name: nil, dims: perAxis ? [Int64(channels)] : [], floats: q.scaleW), preferredName: "\(base)_scale")
                let wz = graph.addInitializer(
                    integerTensor([Int8](repeating: 0, count: perAxis ? channels : 1), dims: perAxis ? [Int64(channels)] : [], wtsType),
                    preferredName: "\(base)_zero_point")
                replacement = graph.uniqueValueName("\(base)_dequantized")
                var dq = Node(opType: "DequantizeLinear", name: graph.uniqueNodeName("\(layer.name)/weight_DequantizeLinear"), inputs: [wq, ws, wz], outputs: [replacement])
                if perAxis, let axis = q.weightLayout.axis { dq.setAttribute(.int("axis", Int64(axis))) }
                graph.insertNode(dq, before: layer.node)
            }
            graph.updateNode(layer.node) { n in  // both inputs in one edit of the use lists
                n.inputs[0] = dequantized
                n.inputs[1] = replacement
            }
            context.record.entries.append(q.recordEntry)
        }
        context.requiredOpset = max(context.requiredOpset, context.record.entries.isEmpty ? 0 : required)
        context.log.append((name, "\(context.record.entries.count) layers quantized, \(shared.count) activation quantizers"))
    }
}

/// An activation quantizer's identity: layers reading the same value with the same settings share one.
struct QuantizerKey: Hashable {
    var value: String
    var bits: Int
    var scale: UInt32
    var offset: Int
}

/// A value name made safe to extend (no leading slash, no slashes).
func sanitizedName(_ name: String) -> String {
    let trimmed = name.hasPrefix("/") ? name.dropFirst() : Substring(name)
    return String(decoding: trimmed.utf8.map { $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0 }, as: UTF8.self)
}

/// A scalar zero point of the activation type.
func integerScalar(_ value: Int, _ type: BitWidth) -> Tensor {
    switch type {
    case .int8:
        return withUnsafeBytes(of: Int8(value)) { Tensor(name: nil, dataType: .int8, dims: [], rawBytes: $0) }
    case .int16:
        return withUnsafeBytes(of: Int16(value)) { Tensor(name: nil, dataType: .int16, dims: [], rawBytes: $0) }
    case .int4:
        return [UInt8(bitPattern: Int8(value)) & 0x0F].withUnsafeBytes { Tensor(name: nil, dataType: .int4, dims: [], rawBytes: $0) }
    }
}

/// Integer weights as an INT8 tensor, or an INT4 tensor packed two per byte.
func integerTensor(_ values: [Int8], dims: [Int64], _ type: BitWidth) -> Tensor {
    if type == .int4 {
        let packed = values.withUnsafeBufferPointer { Quantization.packInt4($0) }
        return packed.withUnsafeBytes { Tensor(name: nil, dataType: .int4, dims: dims, rawBytes: $0) }
    }
    return values.withUnsafeBytes { Tensor(name: nil, dataType: .int8, dims: dims, rawBytes: $0) }
}
