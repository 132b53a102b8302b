import Graph
import Kernels

// The AMCT layout (SEMANTICS §6, `--format amct`): two models from the same parameters (LayerQuantParameters, computed
// once after Conv+BatchNormalization folding).
//
// Fake-quant model (standard ops; onnxruntime runs it):
//   x ─▶ Mul(1/s_d) ─▶ Round ─▶ Add(o_d) ─▶ Clip(−2^(b−1), 2^(b−1)−1) ─▶ Sub(o_d) ─▶ Conv(W_int, round(b/(s_w·s_d)))
//     ─▶ Mul(s_w·s_d, shaped to broadcast on C) ─▶ y
//   nodes <layer>.quant.fakequant.{mul,round,add,clip,sub} and <layer>.fakedequant.mul; W_int are the integer weights
//   kept as float.
// Deploy model (custom domain "amct"):
//   x ─▶ AscendQuant{scale = 1/s_d, offset = o_d, dst_type} ─▶ Conv(W INT8 | INT4 packed along Cin, bias INT32)
//     ─▶ AscendDequant(deq_scale UINT64[C]) ─▶ y
//   deq_scale bits 0–31: float32 bits of s_w·s_d truncated to 19 significant bits; bits 40–47: weight offset (0).

/// Where the layer's output channels are in its output, for a per-channel tensor that broadcasts on C.
func channelBroadcastDims(_ layer: Layer, channels: Int) -> [Int64] {
    guard channels > 1 else { return [] }
    switch layer.op {
    case .conv, .convTranspose: return [1, Int64(channels)] + Array(repeating: 1, count: layer.kernelRank)
    case .gemm, .matMul: return [Int64(channels)]
    }
}

/// The index of the layer's bias input, when it has one (Layer.bias says which input that is).
func biasInput(_ node: Node) -> Int? {
    guard let op = Layer.Op(rawValue: node.op), Layer.bias(of: node) != nil else { return nil }
    return Layer.biasInputIndex(op)
}

/// The layer in the integer domain: `inputs` replace its leading inputs, it writes a new value (`<output><suffix>`), and
/// the node `dequantize(integerOutput, output)` right after it writes the original output again.
func rewireIntoIntegerDomain(
    _ graph: inout Graph, _ layer: Layer, inputs: [String], suffix: String, dequantize: (_ integerOutput: String, _ output: String) -> Node
) {
    let y = graph[layer.node].outputs[0]
    let yInt = graph.uniqueValueName("\(y)\(suffix)")
    graph.updateNode(layer.node) { n in
        n.inputs = inputs + n.inputs.dropFirst(inputs.count)
        n.outputs[0] = yInt
    }
    graph.insertNode(dequantize(yInt, y), after: layer.node)
}

/// The bias a layer reads, which the integer-domain layout rewrites, so it must be a constant.
func constantBias(_ graph: Graph, _ node: Node, _ index: Int, _ layer: Layer) throws -> Tensor {
    guard let bias = graph.constantTensor(node.inputs[index]) else {
        throw PassError(
            node: layer.name, "its bias '\(node.inputs[index])' is not a constant; the AMCT layout needs a constant bias (use --format qdq)")
    }
    return bias
}

func checkGemmForIntegerDomain(_ node: Node, _ layer: Layer) throws {
    if node.op == "Gemm", (node.float("alpha") ?? 1) != 1 || (node.float("beta") ?? 1) != 1 {
        throw PassError(node: layer.name, "Gemm with alpha or beta other than 1 has no integer-domain form in the AMCT layout; use --format qdq")
    }
}

public struct AMCTFakeQuantPass: Pass {
    public let name = "amct-fake-quant"
    public var requirements: [PassRequirement] { [.quantParameters] }
    public init() {}

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        for q in context.quantParameters {
            let layer = q.plan.layer
            let node = graph[layer.node]
            try checkGemmForIntegerDomain(node, layer)
            let p = layer.name
            let lo = Float(-(1 << (q.actBits - 1))), hi = Float((1 << (q.actBits - 1)) - 1)
            func scalar(_ v: Float, _ suffix: String) -> String {
                graph.addInitializer(Tensor(name: nil, dims: [], floats: [v]), preferredName: "\(p).quant.\(suffix)")
            }
            let inv = scalar(1 / q.writtenScaleD, "scale_reciprocal")
            let offset = scalar(Float(q.offsetD), "offset")
            let clipLo = scalar(lo, "clip_min"), clipHi = scalar(hi, "clip_max")
            var current = node.inputs[0]
            for (op, extra) in [("Mul", [inv]), ("Round", []), ("Add", [offset]), ("Clip", [clipLo, clipHi]), ("Sub", [offset])] {
                let out = graph.uniqueValueName("\(p).quant.fakequant.\(op.lowercased())_output")
                graph.insertNode(
                    Node(opType: op, name: graph.uniqueNodeName("\(p).quant.fakequant.\(op.lowercased())"), inputs: [current] + extra, outputs: [out]),
                    before: layer.node)
                current = out
            }
            let weight = graph.addInitializer(
                Tensor(name: nil, dims: q.weightDims, floats: q.integers.map(Float.init)), preferredName: "\(node.inputs[1])_int")
            var inputs = [current, weight]
            if let b = biasInput(node) {
                let values = try q.integerBias(constantBias(graph, node, b, layer), name: node.inputs[b])
                inputs.append(graph.addInitializer(Tensor(name: nil, dims: [Int64(values.count)], floats: values), preferredName: "\(node.inputs[b])_int"))
            }
            let deq = q.dequantScales
            let deqName = graph.addInitializer(
                Tensor(name: nil, dims: channelBroadcastDims(layer, channels: deq.count), floats: deq), preferredName: "\(p).fakedequant.scale")
            let mulName = graph.uniqueNodeName("\(p).fakedequant.mul")
            rewireIntoIntegerDomain(&graph, layer, inputs: inputs, suffix: "_int") { yInt, y in
                Node(opType: "Mul", name: mulName, inputs: [yInt, deqName], outputs: [y])
            }
        }
        context.log.append((name, "\(context.quantParameters.count) layers in the integer domain"))
    }
}

public struct AscendDeployPass: Pass {
    public let name = "ascend-deploy"
    public var requirements: [PassRequirement] { [.quantParameters] }
    public static let domain = "amct"
    public init() {}

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        for q in context.quantParameters {
            let layer = q.plan.layer
            let node = graph[layer.node]
            try checkGemmForIntegerDomain(node, layer)
            let p = layer.name
            let dstType = q.decision.act.type.rawValue
            let xq = graph.uniqueValueName("\(p).quant_output")
            graph.insertNode(
                Node(opType: "AscendQuant", domain: Self.domain, name: graph.uniqueNodeName("\(p).quant"), inputs: [node.inputs[0]], outputs: [xq],
                     attributes: [.float("scale", 1 / q.writtenScaleD), .float("offset", Float(q.offsetD)), .string("dst_type", dstType)]),
                before: layer.node)
            // Weights: INT8, or INT4 packed two per byte along Cin in an INT8 container.
            var dims = q.weightDims
            let weight: Tensor
            if q.weightBits == 4 {
                let cinAxis = layer.inputChannelAxis
                let outer = dims[..<cinAxis].reduce(1, *), axis = dims[cinAxis], inner = dims[(cinAxis + 1)...].reduce(1, *)
                let packed = q.integers.withUnsafeBufferPointer { Quantization.packInt4($0, outer: Int(outer), axis: Int(axis), inner: Int(inner)) }
                dims[cinAxis] = (axis + 1) / 2
                weight = packed.withUnsafeBytes { Tensor(name: nil, dataType: .int8, dims: dims, rawBytes: $0) }
            } else {
                weight = q.integers.withUnsafeBytes { Tensor(name: nil, dataType: .int8, dims: dims, rawBytes: $0) }
            }
            var inputs = [xq, graph.addInitializer(weight, preferredName: "\(node.inputs[1])_int\(q.weightBits)")]
            if let b = biasInput(node) {
                let values = try q.integerBias(constantBias(graph, node, b, layer), name: node.inputs[b])
                let integer = values.map(saturatingInt32)
                if let v = values.first(where: { $0 != Float(saturatingInt32($0)) }) {
                    context.warn("its integer bias \(v) does not fit INT32 and is saturated", node: layer.name)
                }
                inputs.append(graph.addInitializer(
                    integer.withUnsafeBytes { Tensor(name: nil, dataType: .int32, dims: [Int64(integer.count)], rawBytes: $0) },
                    preferredName: "\(node.inputs[b])_int32"))
            }
            // Bits 0–31: the S19 float32 of s_w·s_d; bits 40–47: the weight offset, which ARQ makes 0.
            let params: [UInt64] = q.dequantScales.map { UInt64(Quantization.truncateToS19($0).bitPattern) }
            let param = graph.addInitializer(
                params.withUnsafeBytes { Tensor(name: nil, dataType: .uint64, dims: [Int64(params.count)], rawBytes: $0) },
                preferredName: "\(p).dequant.deq_scale")
            let dequantName = graph.uniqueNodeName("\(p).dequant")
            rewireIntoIntegerDomain(&graph, layer, inputs: inputs, suffix: "_int32") { yInt, y in
                Node(opType: "AscendDequant", domain: Self.domain, name: dequantName, inputs: [yInt, param], outputs: [y])
            }
        }
        if !context.opsetImports.contains(where: { $0.domain == Self.domain }) {
            context.opsetImports.append(OpsetImport(domain: Self.domain, version: 1))
        }
        context.log.append((name, "\(context.quantParameters.count) layers with AscendQuant/AscendDequant"))
    }
}
