import Graph
import Kernels

// A model that fixes its batch (commonly 1, as torchvision's and many exporters' examples do) runs on batches of any
// size, as an onnxruntime user gets by making the leading dimension symbolic: the plan re-infers every shape from the
// inputs given, so only dimension 0 of a graph input may differ from the model's declared size.
//
//   declared  x: [1, 3, 224, 224]     data: [8, 3, 224, 224]  →  plan built for 8 (every shape inferred anew)
//
// A graph that bakes its batch into a constant cannot follow: a `Reshape` to `[1, -1]` of a value that carries the
// batch gives [1, 8·k] and every later shape is wrong (or fails). Such a node is an error naming it, and what to do.

/// The batch a run uses against the batch the model declares.
struct BatchOverride: Equatable {
    /// The graph input whose dimension 0 differs (for messages).
    let input: String
    let declared: Int
    let batch: Int

    /// The override these inputs make, if any: a graph input whose declared dimension 0 is a fixed size other than
    /// the data's (every other fixed dimension must still agree: `GraphExecutor.checkInputs`).
    static func find(_ graph: Graph, _ inputs: [String: TensorSpec]) -> BatchOverride? {
        for info in graph.inputs {
            guard let name = info.name, let given = inputs[name], let first = given.shape.first,
                  let declared = info.type?.tensorShape?.dims.first?.size, declared != first
            else { continue }
            return BatchOverride(input: name, declared: declared, batch: first)
        }
        return nil
    }

    /// What the user can do, appended to an error the new batch caused.
    var advice: String {
        "the model fixes its batch at \(declared) (graph input '\(input)') and this node does not follow a batch of "
            + "\(batch): export the model with a dynamic batch dimension, or use --batch-size \(declared)"
    }

    /// Builds the plan for the new batch; an error on the way, or a node that bakes the batch in, names the node.
    func plan(_ build: () throws -> ExecutionPlan, graph: Graph) throws -> ExecutionPlan {
        let plan: ExecutionPlan
        do {
            plan = try build()
        } catch let e as PassError {
            if let baked = bakedReshape(graph) {  // the likely cause, named before the node that failed
                throw PassError(node: baked.displayName, "Reshape to a constant shape that starts with \(declared) "
                                    + "(then '\(e.node)': \(e.message)): \(advice)")
            }
            throw PassError(node: e.node, "\(e.message); \(advice)")
        }
        if let node = bakedReshape(plan, graph) {
            throw PassError(node: node.displayName, "Reshape to a shape that starts with \(declared): \(advice)")
        }
        return plan
    }

    /// Without a plan (it failed): the first Reshape of a computed value to a constant shape starting with the
    /// declared batch.
    func bakedReshape(_ graph: Graph) -> Node? {
        for id in graph.order {
            let node = graph[id]
            guard node.isDefaultDomain, node.op == "Reshape", node.inputs.count >= 2,
                  graph.constantTensor(node.inputs[0]) == nil,
                  graph.constantTensor(node.inputs[1])?.int64Array?.first == Int64(declared)
            else { continue }
            return node
        }
        return nil
    }

    /// A Reshape whose constant target shape starts with the declared batch while its data input carries the
    /// batch of this run in dimension 0.
    func bakedReshape(_ plan: ExecutionPlan, _ graph: Graph) -> Node? {
        for step in plan.steps where step.opType == "Reshape" && step.inputs.count >= 2 {
            let (data, target) = (step.inputs[0], step.inputs[1])
            guard data >= 0, target >= 0, plan.shapes[data]?.first == batch,
                  let shape = plan.constantValue(target), case .int64(let dims) = shape.elements,
                  dims.first == Int64(declared)
            else { continue }
            return plan.node(step)
        }
        return nil
    }
}
