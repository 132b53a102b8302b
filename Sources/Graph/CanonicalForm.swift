// The canonical form every loader ends in (ARCHITECTURE: "weights are initializers"): constant weights that an
// exporter wrote as nodes become initializers, so the passes, the executor and the trainer see one form.
//
//   before:  Constant(value=W) → w        Identity(w) → w_1        Conv(x, w_1)      Gemm(y, w_1)
//   after:   initializer w                                          Conv(x, w)        Gemm(y, w)
//
// - A `Constant` with `value`, `value_float(s)` or `value_int(s)` becomes an initializer under its output's name.
//   One with `sparse_value` or `value_string(s)`, or whose output is a graph output, stays a node.
// - An `Identity` of an initializer is removed and its readers read the initializer (a weight read by several layers
//   through Identities is then one initializer, so retraining trains it as one parameter, its gradients summed).
//   An Identity whose output is a graph output stays, and so does one of a graph input (it is not a constant).
// - Below IR version 4 every initializer must also be a graph input: the new ones are added there.
// Only the main graph is rewritten; subgraphs (If/Loop bodies) read the new initializers from the outer scope.

extension Graph {
    /// What `foldConstantNodes` changed.
    public struct ConstantFolding: Sendable, Equatable {
        public var constants = 0
        public var identities = 0
        public var newInitializers: [String] = []
    }

    /// Turns `Constant` nodes and `Identity` nodes of constants into initializers (see the top of this file).
    @discardableResult
    public mutating func foldConstantNodes() -> ConstantFolding {
        var result = ConstantFolding()
        let outputNames = Set(outputs.compactMap(\.name))
        let inputNames = Set(inputs.compactMap(\.name))
        for id in order {
            let node = self[id]
            guard node.isDefaultDomain, node.op == "Constant", node.outputs.count == 1 else { continue }
            let name = node.outputs[0]
            guard !name.isEmpty, !outputNames.contains(name), !inputNames.contains(name), initializers[name] == nil,
                  let tensor = Graph.constantNodeValue(node), tensor.dataType != .string
            else { continue }
            removeNode(id)
            setInitializer(tensor)
            result.constants += 1
            result.newInitializers.append(name)
        }
        // Identities in graph order; a chain Identity(Identity(w)) folds link by link in one walk when sorted, and
        // the walk repeats for a graph that is not (each walk removes at least one node or ends).
        var changed = true
        while changed {
            changed = false
            for id in order {
                let node = self[id]
                guard node.isDefaultDomain, node.op == "Identity", node.inputs.count == 1, node.outputs.count == 1
                else { continue }
                let (source, output) = (node.inputs[0], node.outputs[0])
                guard initializers[source] != nil, !inputNames.contains(source), !output.isEmpty,
                      !outputNames.contains(output), producer(of: output) == id
                else { continue }
                removeNode(id)
                replaceAllUses(of: output, with: source)
                valueInfo.removeAll { $0.name == output }
                result.identities += 1
                changed = true
            }
        }
        return result
    }
}

extension Model {
    /// Brings the graph to the canonical form (`Graph.foldConstantNodes`); below IR version 4 the new initializers
    /// are also declared as graph inputs, as that version requires.
    @discardableResult
    public mutating func canonicalize() -> Graph.ConstantFolding {
        let folding = graph.foldConstantNodes()
        if let ir = irVersion, ir < 4 {
            for name in folding.newInitializers {
                guard let t = graph.initializers[name] else { continue }
                graph.inputs.append(ValueInfo(name: name, type: .tensor(t.dataType, t.dims)))
            }
        }
        return folding
    }
}
