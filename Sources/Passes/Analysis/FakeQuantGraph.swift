import Graph
import Kernels

// Analysis graphs: the prepared float graph with chosen layers fake-quantized in float (SEMANTICS §4), for the
// executor, which runs no QuantizeLinear/DequantizeLinear.
//
//   before:  x ─────────────────────────────────────▶ Conv(x, W, b)
//   after:   x ─▶ amct.analysis.FakeQuant(s_d, o_d, b) ─▶ Conv(x̂, Ŵ, b)      Ŵ = W_int · s_w (a float initializer)
//
// (s_d, o_d) and W_int, s_w come from `LayerQuantParameters` (the numbers the QDQ export writes), and the fake-quant
// kernel is `Quantization.fakeQuantizeAsymmetric`, i.e. exactly QuantizeLinear → DequantizeLinear.
// `downstream(of:)` cuts the graph to the part that depends on one node: the sub-graph a single-layer run needs,
// fed the float values it reads from outside (the boundary).

enum AnalysisOps {
    static let domain = "amct.analysis"

    struct FakeQuantKernel: OpKernel {
        let scale: Float, offset: Int, bits: Int
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            // Any float storage: a small boundary value of a downstream cut is an initializer (a shared view).
            guard let x = inputs[0], x.isFloat else { throw KernelError("needs a float input") }
            var out = buffers.floats(x.count)
            x.withFloats { v in
                out.withUnsafeMutableBufferPointer {
                    Quantization.fakeQuantizeAsymmetric(v, scale: scale, offset: offset, bits: bits, into: $0)
                }
            }
            return [DenseTensor(shape: x.shape, floats: out)]
        }
    }

    /// FakeQuant(x) with attributes scale (float), offset and bits (int).
    static let fakeQuant = Operator("FakeQuant", domain: domain, versions: 1...Operator.newestOpset) { c in
        let x = try c.floatInput(0)
        let kernel = FakeQuantKernel(scale: c.float("scale", default: 1), offset: try c.int("offset", default: 0),
                                     bits: try c.int("bits", default: 8))
        return Prepared([TensorSpec(.float, x.shape)], kernel)
    }

    /// The standard registry plus FakeQuant.
    static let registry: OperatorRegistry = {
        var r = OperatorRegistry.standard
        r.register(fakeQuant)
        return r
    }()
}

/// A graph with some layers fake-quantized, and where each layer's activation quantizer sits.
struct FakeQuantGraph {
    var graph: Graph
    /// Per quantized layer (by plan index): the FakeQuant node in front of it, and the layer's output value.
    var quantizer: [Int: NodeID] = [:]

    /// `parameters` by plan index. Layers reading the same value with the same (b, s, o) share one quantizer.
    init(_ prepared: Graph, parameters: [(index: Int, q: LayerQuantParameters)]) {
        graph = prepared
        var shared: [QuantizerKey: (String, NodeID)] = [:]
        for (index, q) in parameters {
            let layer = q.plan.layer
            let input = graph[layer.node].inputs[0]
            let key = QuantizerKey(value: input, bits: q.actBits, scale: q.writtenScaleD.bitPattern, offset: q.offsetD)
            if shared[key] == nil {
                let out = graph.uniqueValueName(sanitizedName(input) + "_fakequant")
                let node = Node(
                    opType: "FakeQuant", domain: AnalysisOps.domain,
                    name: graph.uniqueNodeName("\(layer.name)/input_FakeQuant"), inputs: [input], outputs: [out],
                    attributes: [.float("scale", q.writtenScaleD), .int("offset", Int64(q.offsetD)),
                                 .int("bits", Int64(q.actBits))])
                shared[key] = (out, graph.insertNode(node, before: layer.node))
            }
            let (dequantized, quantizerNode) = shared[key]!
            quantizer[index] = quantizerNode
            var values = [Float](repeating: 0, count: q.integers.count)
            q.weightLayout.layout.forEachRun { c, run in
                for j in run { values[j] = Float(q.integers[j]) * q.scaleW[c] }
            }
            let base = sanitizedName(graph[layer.node].inputs[1])
            let weight = graph.addInitializer(Tensor(name: nil, dims: q.weightDims, floats: values),
                                              preferredName: "\(base)_fakequant")
            graph.updateNode(layer.node) { n in
                n.inputs[0] = dequantized
                n.inputs[1] = weight
            }
        }
    }
}

/// The part of a graph that depends on one node, as a graph of its own whose inputs are the values it reads from
/// outside (`boundary`) and whose outputs are the original outputs it produces.
struct DownstreamGraph {
    var graph: Graph
    var boundary: Set<String>
    /// Nodes of the cut (for the cost figure).
    var nodeCount: Int

    init(_ full: Graph, from start: NodeID) {
        var produced = Set<String>(), constant = Set<String>()
        var kept: [Node] = [], downCount = 0, boundary = Set<String>()
        for id in full.order {
            let node = full[id]
            let reads = node.inputs.filter { !$0.isEmpty && full.initializers[$0] == nil }
            if id == start || reads.contains(where: produced.contains) {
                produced.formUnion(node.outputs)
                kept.append(node)
                downCount += 1
                boundary.formUnion(reads.filter { !produced.contains($0) && !constant.contains($0) })
            } else if reads.allSatisfy(constant.contains) {
                constant.formUnion(node.outputs)
                kept.append(node)
            }
        }
        var g = full
        g.setNodes(kept)
        g.inputs = []
        g.outputs = full.outputs.filter { $0.name.map(produced.contains) ?? false }
        graph = g
        self.boundary = boundary
        nodeCount = downCount
    }
}

extension DownstreamGraph {
    /// The graph and feeds for one batch, from the float run's values. Boundary values that are not float data
    /// (int64 shapes and indices, bools) or are tiny become initializers of the cut: a Reshape or Expand downstream
    /// needs its shape as a constant (the float run knew it before the data ran), not as a fed input.
    /// `key` names the values the graph holds as initializers: batches with the same key share one graph (and one
    /// executor and plan).
    func instance(_ values: [String: DenseTensor]) -> (graph: Graph, feeds: [String: DenseTensor], key: String) {
        var g = graph
        var feeds: [String: DenseTensor] = [:]
        var key = ""
        for name in boundary {
            guard let v = values[name] else { continue }
            if v.isFloat && v.count > 64 {
                feeds[name] = v
            } else {
                g.setInitializer(v.tensor(named: name))
                key += "\(name)\(v.shape)\(v.isFloat ? v.floats.map(\.bitPattern) : v.ints.map { UInt32(truncatingIfNeeded: $0) });"
            }
        }
        return (g, feeds, key)
    }
}
