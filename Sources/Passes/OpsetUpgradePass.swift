import Graph

// Opset upgrade: raise the default-domain opset to what the rewritten graph needs (context.requiredOpset), converting
// every node whose signature changed on the way (SEMANTICS §6; a version bump alone leaves an invalid model).
//
//   before (opset 11):  Unsqueeze(x) {axes=[0]}          ReduceMean(x) {axes=[2,3]}
//   after  (opset 21):  Unsqueeze(x, [0] as int64 input)  ReduceMean(x, [2,3] as int64 input)
//
// 11/12 → 13: Squeeze, Unsqueeze, ReduceSum take axes as an input; Split takes `split` as an input; Dropout (at 12)
// takes `ratio` as an input; Softmax, LogSoftmax and Hardmax normalise along `axis` alone (default −1 instead of
// flattening to 2-D at `axis`, default 1), so they get an explicit last axis, or Flatten before and Reshape after.
// → 18: ReduceMean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare take axes as an input; a Split into equal parts
// (no `split`) says how many in `num_outputs`.
// Models older than opset 11, and ops removed or replaced on the way (Upsample, Scatter), are refused by name.

public struct OpsetUpgradePass: Pass {
    public let name = "upgrade-opset"
    public init() {}

    static let reduceOpsAt18: Set<String> = [
        "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
    ]
    static let removed: Set<String> = ["Upsample", "Scatter", "ImageScaler", "Crop"]
    /// Ops that flatten their input to 2-D at `axis` before opset 13 and work along `axis` alone from 13.
    static let coercedTo2DBefore13: Set<String> = ["Softmax", "LogSoftmax", "Hardmax"]

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        let target = context.requiredOpset
        guard let index = context.opsetImports.index() else { return }
        let current = context.opsetImports[index].version ?? 1
        guard target > current else { return }
        guard current >= 11 else {
            throw PassError(node: "model", "its opset is \(current); amct-pipe converts from opset 11 or later (convert it first, e.g. with onnx.version_converter)")
        }
        let converted = try Self.convert(&graph, from: current, to: target)
        context.opsetImports[index].version = target
        context.log.append((name, "opset \(current) → \(target); \(converted) nodes converted"))
    }

    /// Converts the nodes of `graph` (and its subgraphs); returns how many changed.
    static func convert(_ graph: inout Graph, from: Int64, to: Int64) throws -> Int {
        var changed = 0
        for id in graph.order {
            let node = graph[id]
            guard node.isDefaultDomain else { continue }
            if removed.contains(node.op) {
                throw PassError(node: node.displayName, "\(node.op) does not exist at opset \(to); replace it before quantizing")
            }
            if from < 12 && to >= 12 && node.op == "Dropout", let ratio = node.float("ratio") {
                guard node.inputs.count == 1 else {
                    throw PassError(
                        node: node.displayName, "Dropout has both a 'ratio' attribute and \(node.inputs.count) inputs")
                }
                let input = graph.addInitializer(
                    Tensor(name: nil, dims: [], floats: [ratio]), preferredName: "\(node.name ?? node.op)_ratio")
                graph.updateNode(id) { n in
                    n.removeAttribute("ratio")
                    n.inputs.append(input)
                }
                changed += 1
                continue
            }
            if from < 13 && to >= 13 && coercedTo2DBefore13.contains(node.op) {
                try alongOneAxis(&graph, id)
                changed += 1
                continue
            }
            var attribute: String?
            if from < 13 && ["Squeeze", "Unsqueeze", "ReduceSum"].contains(node.op) {
                attribute = "axes"
            } else if from < 13 && node.op == "Split" {
                attribute = "split"
            } else if from < 18 && to >= 18 && reduceOpsAt18.contains(node.op) {
                attribute = "axes"
            }
            if let attribute, let values = node.ints(attribute) {
                let tensor = values.withUnsafeBytes { Tensor(name: nil, dataType: .int64, dims: [Int64(values.count)], rawBytes: $0) }
                let input = graph.addInitializer(tensor, preferredName: "\(node.name ?? node.op)_\(attribute)")
                // Before the conversion these ops have the data as their only input; the attribute becomes input 1.
                guard node.inputs.count == 1 else {
                    throw PassError(node: node.displayName, "\(node.op) has both an '\(attribute)' attribute and \(node.inputs.count) inputs")
                }
                graph.updateNode(id) { n in
                    n.removeAttribute(attribute)
                    n.inputs.append(input)
                }
                changed += 1
            }
            if from < 18 && to >= 18 && node.op == "Split" {
                let now = graph[id]
                if now.inputs.count < 2 || now.inputs[1].isEmpty, now.attribute("num_outputs") == nil {
                    graph.updateNode(id) { $0.setAttribute(.int("num_outputs", Int64(now.outputs.count))) }
                    changed += 1
                }
            }
            if !node.subgraphs.isEmpty {
                var inner = 0
                try graph.updateNode(id) { n in
                    for a in n.attributes.indices {
                        if var g = n.attributes[a].g {
                            inner += try convert(&g, from: from, to: to)
                            n.attributes[a].g = g
                        }
                        for k in n.attributes[a].graphs.indices {
                            inner += try convert(&n.attributes[a].graphs[k], from: from, to: to)
                        }
                    }
                }
                changed += inner
            }
        }
        return changed
    }

    /// A Softmax/LogSoftmax/Hardmax of opset < 13 as opset 13 computes it: with an explicit last axis when `axis`
    /// (default 1) is the input's last, else Shape(x), Flatten(x, axis) → the op on axis −1 → Reshape to Shape(x).
    static func alongOneAxis(_ graph: inout Graph, _ id: NodeID) throws {
        let node = graph[id]
        let axis = node.int("axis") ?? 1
        guard let x = node.inputs.first, !x.isEmpty, let y = node.outputs.first, !y.isEmpty else {
            throw PassError(node: node.displayName, "\(node.op) needs one input and one output")
        }
        // The output has the input's shape: either declaration gives the rank.
        let rank = (graph.declaredType(of: x) ?? graph.declaredType(of: y))?.tensorShape?.dims.count
        if let rank, axis == Int64(rank) - 1 || axis == -1 {
            graph.updateNode(id) { $0.setAttribute(.int("axis", -1)) }
            return
        }
        let base = node.name ?? node.op
        let shape = graph.uniqueValueName("\(y)_shape"), flat = graph.uniqueValueName("\(y)_2d")
        let flatOut = graph.uniqueValueName("\(y)_2d_\(node.op)")
        let shapeNode = Node(opType: "Shape", name: graph.uniqueNodeName("\(base)/Shape"), inputs: [x], outputs: [shape])
        graph.insertNode(shapeNode, before: id)
        graph.insertNode(
            Node(opType: "Flatten", name: graph.uniqueNodeName("\(base)/Flatten"), inputs: [x], outputs: [flat],
                 attributes: [.int("axis", axis)]),
            before: id)
        graph.updateNode(id) { n in
            n.inputs[0] = flat
            n.outputs[0] = flatOut
            n.setAttribute(.int("axis", -1))
        }
        let reshape = Node(
            opType: "Reshape", name: graph.uniqueNodeName("\(base)/Reshape"), inputs: [flatOut, shape], outputs: [y])
        graph.insertNode(reshape, after: id)
    }
}
