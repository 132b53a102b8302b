import OrderedCollections

/// A stable handle on a node of one graph; it stays valid while other nodes are inserted or removed.
public struct NodeID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let raw: Int
    public static func < (a: NodeID, b: NodeID) -> Bool { a.raw < b.raw }
    public var description: String { "#\(raw)" }
}

/// `GraphProto` as an editable IR: nodes in order with stable ids, initializers by name, and use lists
/// (who produces a value, who reads it) that every edit through this type keeps correct.
public struct Graph: Sendable {
    public var name: String?
    public var docString: String?
    public var inputs: [ValueInfo] = []
    public var outputs: [ValueInfo] = []
    public var valueInfo: [ValueInfo] = []
    public private(set) var initializers: OrderedDictionary<String, Tensor> = [:]
    public var sparseInitializers: [PreservedMessage] = []
    public var quantizationAnnotations: [PreservedMessage] = []
    public var metadataProps: [StringPair] = []
    public var unknownFields = UnknownFields()

    private var nodeStore: [Node?] = []
    public private(set) var order: [NodeID] = []
    private var producerByValue: [String: NodeID] = [:]
    private var consumersByValue: [String: [NodeID]] = [:]

    public init(name: String? = nil) { self.name = name }

    // MARK: Reading nodes

    public subscript(id: NodeID) -> Node {
        guard let node = nodeStore[id.raw] else { preconditionFailure("node \(id) was removed") }
        return node
    }

    /// Nodes in graph order (a copy of each node; use `order` and the subscript to avoid it).
    public var nodes: [Node] { order.map { self[$0] } }
    public var nodeCount: Int { order.count }

    public func contains(_ id: NodeID) -> Bool { id.raw < nodeStore.count && nodeStore[id.raw] != nil }

    /// The node that writes `value`, if a node does (initializers and graph inputs have none).
    public func producer(of value: String) -> NodeID? { producerByValue[value] }

    /// The nodes that read `value` (each once), in the order they were added.
    public func consumers(of value: String) -> [NodeID] { consumersByValue[value] ?? [] }

    public func isGraphOutput(_ value: String) -> Bool { outputs.contains { $0.name == value } }

    public func firstNode(named name: String) -> NodeID? { order.first { self[$0].name == name } }

    // MARK: Editing nodes

    @discardableResult
    public mutating func appendNode(_ node: Node) -> NodeID {
        let id = allocate(node)
        order.append(id)
        return id
    }

    @discardableResult
    public mutating func insertNode(_ node: Node, before anchor: NodeID) -> NodeID {
        guard let index = order.firstIndex(of: anchor) else { preconditionFailure("node \(anchor) is not in the graph") }
        let id = allocate(node)
        order.insert(id, at: index)
        return id
    }

    @discardableResult
    public mutating func insertNode(_ node: Node, after anchor: NodeID) -> NodeID {
        guard let index = order.firstIndex(of: anchor) else { preconditionFailure("node \(anchor) is not in the graph") }
        let id = allocate(node)
        order.insert(id, at: index + 1)
        return id
    }

    public mutating func removeNode(_ id: NodeID) {
        unindex(id)
        nodeStore[id.raw] = nil
        order.removeAll { $0 == id }
    }

    /// Changes a node in place; its use-list entries follow the change.
    public mutating func updateNode<R>(_ id: NodeID, _ body: (inout Node) throws -> R) rethrows -> R {
        unindex(id)
        var node = self[id]
        defer {
            nodeStore[id.raw] = node
            index(id)
        }
        return try body(&node)
    }

    /// Makes every reader of `old` read `new` instead (inputs and subgraph references; graph outputs too when
    /// asked, which renames the output).
    public mutating func replaceAllUses(of old: String, with new: String, includingGraphOutputs: Bool = false) {
        for id in consumers(of: old) {
            updateNode(id) { $0.renameReads(of: old, to: new) }
        }
        if includingGraphOutputs {
            for i in outputs.indices where outputs[i].name == old { outputs[i].name = new }
        }
    }

    /// Replaces every node with the given ones (used by the loader and by a topological sort).
    public mutating func setNodes(_ nodes: [Node]) {
        nodeStore = []
        order = []
        producerByValue = [:]
        consumersByValue = [:]
        for node in nodes { appendNode(node) }
    }

    private mutating func allocate(_ node: Node) -> NodeID {
        let id = NodeID(raw: nodeStore.count)
        nodeStore.append(node)
        index(id)
        return id
    }

    private mutating func index(_ id: NodeID) {
        let node = self[id]
        for output in node.outputs where !output.isEmpty { producerByValue[output] = id }
        for value in node.usedValues { consumersByValue[value, default: []].append(id) }
    }

    private mutating func unindex(_ id: NodeID) {
        let node = self[id]
        for output in node.outputs where producerByValue[output] == id { producerByValue[output] = nil }
        for value in node.usedValues {
            consumersByValue[value]?.removeAll { $0 == id }
            if consumersByValue[value]?.isEmpty == true { consumersByValue[value] = nil }
        }
    }

    // MARK: Initializers and constants

    /// Adds or replaces an initializer under its own name.
    public mutating func setInitializer(_ tensor: Tensor) {
        guard let name = tensor.name else { preconditionFailure("an initializer needs a name") }
        initializers[name] = tensor
    }

    @discardableResult
    public mutating func removeInitializer(_ name: String) -> Tensor? { initializers.removeValue(forKey: name) }

    /// Adds an initializer under a name no other value of the graph has (`base`, else `base_1`, `base_2`, ...).
    @discardableResult
    public mutating func addInitializer(_ tensor: Tensor, preferredName base: String) -> String {
        let name = uniqueValueName(base)
        var named = tensor
        named.name = name
        initializers[name] = named
        return name
    }

    /// A value name that nothing in the graph uses yet.
    public func uniqueValueName(_ base: String) -> String {
        func taken(_ n: String) -> Bool {
            initializers[n] != nil || producerByValue[n] != nil || consumersByValue[n] != nil
                || inputs.contains { $0.name == n } || outputs.contains { $0.name == n }
        }
        if !taken(base) { return base }
        var k = 1
        while taken("\(base)_\(k)") { k += 1 }
        return "\(base)_\(k)"
    }

    /// A node name no node of the graph has yet.
    public func uniqueNodeName(_ base: String) -> String {
        let names = Set(order.compactMap { self[$0].name })
        if !names.contains(base) { return base }
        var k = 1
        while names.contains("\(base)_\(k)") { k += 1 }
        return "\(base)_\(k)"
    }

    /// The constant value of `value`, wherever it is kept: an initializer (external data already read), a
    /// `Constant` node (`value`, `value_float(s)`, `value_int(s)`), reached through `Identity` nodes.
    public func constantTensor(_ value: String) -> Tensor? {
        var current = value
        for _ in 0..<64 {
            if let tensor = initializers[current] { return tensor }
            guard let id = producer(of: current) else { return nil }
            let node = self[id]
            guard node.isDefaultDomain else { return nil }
            switch node.op {
            case "Identity":
                guard let input = node.inputs.first else { return nil }
                current = input
            case "Constant":
                return Graph.constantNodeValue(node)
            default:
                return nil
            }
        }
        return nil
    }

    /// The tensor a `Constant` node holds, named after its output.
    public static func constantNodeValue(_ node: Node) -> Tensor? {
        let outputName = node.outputs.first
        for a in node.attributes {
            switch a.name {
            case "value":
                guard var t = a.t else { return nil }
                t.name = outputName
                return t
            case "value_float":
                guard let f = a.f else { return nil }
                return Tensor(name: outputName, dims: [], floats: [f])
            case "value_floats":
                return Tensor(name: outputName, dims: [Int64(a.floats.count)], floats: a.floats)
            case "value_int", "value_ints":
                let values = a.name == "value_int" ? (a.i.map { [$0] } ?? []) : a.ints
                let dims: [Int64] = a.name == "value_int" ? [] : [Int64(values.count)]
                return values.withUnsafeBytes { Tensor(name: outputName, dataType: .int64, dims: dims, rawBytes: $0) }
            default:
                continue
            }
        }
        return nil
    }

    /// The declared type of a value (graph input, output or value_info), if any.
    public func declaredType(of value: String) -> ValueType? {
        if let v = inputs.first(where: { $0.name == value }) { return v.type }
        if let v = outputs.first(where: { $0.name == value }) { return v.type }
        if let v = valueInfo.first(where: { $0.name == value }) { return v.type }
        if let t = initializers[value] { return .tensor(t.dataType, t.dims) }
        return nil
    }

    // MARK: Scope and order

    /// Names this graph reads but does not define: values of an enclosing graph (for If/Loop bodies).
    public func outerScopeReferences() -> [String] {
        var defined = Set(inputs.compactMap(\.name))
        defined.formUnion(initializers.keys)
        for id in order { defined.formUnion(self[id].outputs) }
        var result: [String] = []
        var seen = Set<String>()
        for id in order {
            for value in self[id].usedValues where !defined.contains(value) && seen.insert(value).inserted {
                result.append(value)
            }
        }
        return result
    }

    mutating func renameOuterReference(_ old: String, to new: String) {
        let defined = Set(inputs.compactMap(\.name)).union(initializers.keys)
        guard !defined.contains(old) else { return }
        for id in order {
            let node = self[id]
            guard !node.outputs.contains(old) else { return }  // shadowed from here on
            if node.usedValues.contains(old) {
                updateNode(id) { $0.renameReads(of: old, to: new) }
            }
        }
    }

    /// Checks that every value a node reads is defined somewhere (a graph input, an initializer, a node output,
    /// or `outerScope` for a subgraph) and that no value has two producers. Order is not required (see `validate`).
    public func checkReferences(outerScope: Set<String> = []) throws {
        var defined = outerScope
        defined.formUnion(inputs.compactMap(\.name))
        defined.formUnion(initializers.keys)
        var producedBy: [String: String] = [:]
        for id in order {
            let node = self[id]
            for output in node.outputs where !output.isEmpty {
                if let first = producedBy[output] {
                    throw GraphError.duplicateProducer(value: output, first: first, second: node.displayName)
                }
                producedBy[output] = node.displayName
                defined.insert(output)
            }
        }
        for id in order {
            let node = self[id]
            for input in node.inputs where !input.isEmpty && !defined.contains(input) {
                throw GraphError.undefinedValue(node: node.displayName, value: input)
            }
            for sub in node.subgraphs { try sub.checkReferences(outerScope: defined) }
        }
        for output in outputs {
            if let name = output.name, !defined.contains(name) {
                throw GraphError.undefinedValue(node: "graph output", value: name)
            }
        }
    }

    /// Checks that nodes are in topological order: every value is defined before a node reads it.
    public func validate(outerScope: Set<String> = []) throws {
        try checkReferences(outerScope: outerScope)
        var defined = outerScope
        defined.formUnion(inputs.compactMap(\.name))
        defined.formUnion(initializers.keys)
        for id in order {
            let node = self[id]
            for input in node.inputs where !input.isEmpty && !defined.contains(input) {
                throw GraphError.notTopologicallySorted(node: node.displayName, value: input)
            }
            for sub in node.subgraphs { try sub.validate(outerScope: defined) }
            defined.formUnion(node.outputs)
        }
    }

    /// Puts the nodes in topological order, keeping the present order wherever it already is one (stable Kahn).
    public mutating func sortTopologically() throws {
        var available = Set(inputs.compactMap(\.name)).union(initializers.keys)
        let producedHere = Set(order.flatMap { self[$0].outputs })
        var pending = order
        var sorted: [Node] = []
        while !pending.isEmpty {
            var progressed = false
            var rest: [NodeID] = []
            for id in pending {
                let node = self[id]
                let ready = node.usedValues.allSatisfy { available.contains($0) || !producedHere.contains($0) }
                if ready {
                    sorted.append(node)
                    available.formUnion(node.outputs)
                    progressed = true
                } else {
                    rest.append(id)
                }
            }
            if !progressed {
                throw GraphError.cycle(nodes: rest.prefix(5).map { self[$0].displayName })
            }
            pending = rest
        }
        setNodes(sorted)
    }

    /// Removes nodes whose outputs nobody reads (and that are not graph outputs), then initializers nobody reads.
    /// Returns how many nodes and initializers went.
    @discardableResult
    public mutating func removeDeadCode() -> (nodes: Int, initializers: Int) {
        let outputNames = Set(outputs.compactMap(\.name))
        var removedNodes = 0
        var changed = true
        while changed {
            changed = false
            for id in order.reversed() {
                let node = self[id]
                let used = node.outputs.contains { !$0.isEmpty && (outputNames.contains($0) || !consumers(of: $0).isEmpty) }
                if !used {
                    removeNode(id)
                    removedNodes += 1
                    changed = true
                }
            }
        }
        let inputNames = Set(inputs.compactMap(\.name))
        let dead = initializers.keys.filter {
            consumers(of: $0).isEmpty && !outputNames.contains($0) && !inputNames.contains($0)
        }
        for name in dead { initializers.removeValue(forKey: name) }
        return (removedNodes, dead.count)
    }
}
