import Graph

// Opset upgrade: raise the default-domain opset to what the rewritten graph needs (context.requiredOpset), converting
// every node whose signature changed on the way (SEMANTICS §6; a version bump alone leaves an invalid model).
//
//   before (opset 11):  Unsqueeze(x) {axes=[0]}          ReduceMean(x) {axes=[2,3]}
//   after  (opset 21):  Unsqueeze(x, [0] as int64 input)  ReduceMean(x, [2,3] as int64 input)
//
// 11/12 → 13: Squeeze, Unsqueeze, ReduceSum take axes as an input; Split takes `split` as an input.
// → 18: ReduceMean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare take axes as an input.
// Models older than opset 11, and ops removed or replaced on the way (Upsample, Scatter), are refused by name.

public struct OpsetUpgradePass: Pass {
    public let name = "upgrade-opset"
    public init() {}

    static let reduceOpsAt18: Set<String> = [
        "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
    ]
    static let removed: Set<String> = ["Upsample", "Scatter", "ImageScaler", "Crop"]

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
}
