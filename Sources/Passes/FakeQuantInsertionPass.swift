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

public struct FakeQuantInsertionPass: Pass {
    public let name = "insert-fake-quant"
    public init() {}

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        guard let plan = context.plan else { return }
        let missing = plan.layers.enumerated().filter { i, p in
            p.quant.enabled && p.quant.act?.clipMin == nil && context.calibratedClips[i] == nil
        }
        if !missing.isEmpty {
            throw PassError(
                node: missing[0].element.layer.name,
                "these layers need activation clips from IFMR, which needs calibration data (--calib): \(missing.map(\.element.layer.name).joined(separator: ", ")). Give clip_max_min in the config for them, or calibration data")
        }
        var shared: [String: String] = [:]
        var required: Int64 = 13
        for (i, p) in plan.layers.enumerated() where p.quant.enabled {
            guard let act = p.quant.act, let wts = p.quant.wts else { continue }
            let layer = p.layer
            let node = graph[layer.node]
            let clips = act.clipMin.map { ($0, act.clipMax!) } ?? context.calibratedClips[i]!
            let clipMin = act.fixedMin ? 0 : clips.0
            let (scale, offset) = Quantization.asymmetricParameters(clipMin: clipMin, clipMax: clips.1, bits: act.type.bits)
            let written = plan.forceFP16Quant ? Quantization.roundScaleToFloat16(scale) : scale
            if act.type != .int8 || wts.type != .int8 { required = 21 }

            // Activation quantizer, shared per (value, settings).
            let input = node.inputs[0]
            let key = "\(input)|\(act.type.bits)|\(written.bitPattern)|\(offset)"
            let dequantized: String
            if let existing = shared[key] {
                dequantized = existing
            } else {
                let base = sanitized(input)
                let s = graph.addInitializer(Tensor(name: nil, dims: [], floats: [written]), preferredName: "\(base)_scale")
                let zp = graph.addInitializer(integerScalar(offset, act.type), preferredName: "\(base)_zero_point")
                let q = graph.uniqueValueName("\(base)_quantized")
                graph.insertNode(
                    Node(opType: "QuantizeLinear", name: graph.uniqueNodeName("\(layer.name)/input_QuantizeLinear"), inputs: [input, s, zp], outputs: [q]),
                    before: layer.node)
                dequantized = graph.uniqueValueName("\(base)_dequantized")
                graph.insertNode(
                    Node(opType: "DequantizeLinear", name: graph.uniqueNodeName("\(layer.name)/input_DequantizeLinear"), inputs: [q, s, zp], outputs: [dequantized]),
                    before: layer.node)
                shared[key] = dequantized
            }
            graph.updateNode(layer.node) { $0.inputs[0] = dequantized }

            // Weights: integers behind a DequantizeLinear.
            guard let weight = graph.constantTensor(layer.weight), weight.dataType == .float else {
                throw PassError(node: layer.name, "its weight '\(layer.weight)' is not a float32 constant; only float32 weights quantize")
            }
            let transB = (node.int("transB") ?? 0) == 1
            let wl = WeightLayout(layer: layer, transB: transB, channelWise: wts.channelWise)
            let bits = wts.type.bits
            var integers = [Int8](repeating: 0, count: weight.elementCount)
            let scales = weight.withElements(as: Float.self) { w -> [Float] in
                let (lo, hi) = Quantization.channelMinMax(w, wl.layout)
                let scales = zip(lo, hi).map { Quantization.symmetricScale(min: $0, max: $1, bits: bits) }
                integers.withUnsafeMutableBufferPointer { Quantization.quantizeSymmetric(w, wl.layout, scales: scales, bits: bits, into: $0) }
                return scales
            }
            let base = sanitized(layer.weight)
            let replacement: String
            if wts.channelWise && wl.axis == nil {
                // Per-output-channel scales of a grouped ConvTranspose are not one axis: store the dequantized values.
                var values = [Float](repeating: 0, count: integers.count)
                wl.layout.forEachRun { c, run in for j in run { values[j] = Float(integers[j]) * scales[c] } }
                replacement = graph.addInitializer(Tensor(name: nil, dims: weight.dims, floats: values), preferredName: "\(base)_fakequant")
                context.warn("grouped ConvTranspose: per-channel weight scales are not one axis, so the weight is stored dequantized (float values on the integer grid)", node: layer.name)
            } else {
                let wq = graph.addInitializer(integerTensor(integers, dims: weight.dims, wts.type), preferredName: "\(base)_quantized")
                let perAxis = wts.channelWise
                let ws = graph.addInitializer(Tensor(name: nil, dims: perAxis ? [Int64(scales.count)] : [], floats: scales), preferredName: "\(base)_scale")
                let wz = graph.addInitializer(
                    integerTensor([Int8](repeating: 0, count: perAxis ? scales.count : 1), dims: perAxis ? [Int64(scales.count)] : [], wts.type),
                    preferredName: "\(base)_zero_point")
                replacement = graph.uniqueValueName("\(base)_dequantized")
                var dq = Node(opType: "DequantizeLinear", name: graph.uniqueNodeName("\(layer.name)/weight_DequantizeLinear"), inputs: [wq, ws, wz], outputs: [replacement])
                if perAxis, let axis = wl.axis { dq.setAttribute(.int("axis", Int64(axis))) }
                graph.insertNode(dq, before: layer.node)
            }
            graph.updateNode(layer.node) { $0.inputs[1] = replacement }
            context.record.entries.append(QuantRecordEntry(
                layer: layer.name, op: layer.op.rawValue, actType: act.type, weightType: wts.type, channelWise: wts.channelWise,
                clipMin: clipMin, clipMax: clips.1, scaleD: written, offsetD: offset, scaleW: scales,
                clipsFrom: act.clipMin != nil ? "config" : "ifmr"))
        }
        context.requiredOpset = max(context.requiredOpset, context.record.entries.isEmpty ? 0 : required)
        context.log.append((name, "\(context.record.entries.count) layers quantized, \(shared.count) activation quantizers"))
    }

    private func sanitized(_ name: String) -> String {
        let trimmed = name.hasPrefix("/") ? String(name.dropFirst()) : name
        return trimmed.replacingOccurrences(of: "/", with: "_")
    }
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

/// A pass that cannot handle a node: which node, and why.
public struct PassError: Error, Sendable, CustomStringConvertible {
    public var node: String
    public var message: String
    public init(node: String, _ message: String) {
        self.node = node
        self.message = message
    }
    public var description: String { "node '\(node)': \(message)" }
}
