import Foundation
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
    // The order is a doubly linked list over raw ids (-1: none), so inserting or removing a node is O(1); `order`
    // is materialized on first read after an edit and shared until the next edit.
    private var nextRaw: [Int] = []
    private var previousRaw: [Int] = []
    private var headRaw = -1
    private var tailRaw = -1
    public private(set) var nodeCount = 0
    private var orderCache = OrderCache()
    private var producerByValue: [String: NodeID] = [:]
    private var consumersByValue: [String: [NodeID]] = [:]
    /// How many nodes bear each name (names may repeat in a file).
    private var nodeNameCounts: [String: Int] = [:]
    /// Per base name, a k such that every `base_1` … `base_(k-1)` is taken: `uniqueNodeName`/`uniqueValueName` start
    /// there, so a thousand nodes of one name cost O(n), not O(n²). Kept by every edit through this type (a name
    /// freed by editing `inputs`/`outputs` directly only makes a later name less small, never taken twice).
    private var nodeSuffixFloor: [String: Int] = [:]
    private var valueSuffixFloor: [String: Int] = [:]
    /// Every name entered into `initializers`, `producerByValue` or `consumersByValue` (and maybe names since gone):
    /// `isValueTaken` skips the three lookups for a name it never saw.
    private var enteredValues = NameFilter()

    public init(name: String? = nil) { self.name = name }

    // MARK: Reading nodes

    public subscript(id: NodeID) -> Node {
        guard let node = nodeStore[id.raw] else { preconditionFailure("node \(id) was removed") }
        return node
    }

    /// The node ids in graph order.
    public var order: [NodeID] {
        orderCache.ids {
            var ids: [NodeID] = []
            ids.reserveCapacity(nodeCount)
            var raw = headRaw
            while raw >= 0 {
                ids.append(NodeID(raw: raw))
                raw = nextRaw[raw]
            }
            return ids
        }
    }

    /// Nodes in graph order (a copy of each node; use `order` and the subscript to avoid it).
    public var nodes: [Node] { order.map { self[$0] } }

    public func contains(_ id: NodeID) -> Bool { id.raw >= 0 && id.raw < nodeStore.count && nodeStore[id.raw] != nil }

    /// The node that writes `value`, if a node does (initializers and graph inputs have none).
    public func producer(of value: String) -> NodeID? { producerByValue[value] }

    /// The nodes that read `value` (each once), in the order they were added.
    public func consumers(of value: String) -> [NodeID] { consumersByValue[value] ?? [] }

    public func isGraphOutput(_ value: String) -> Bool { outputs.contains { $0.name == value } }

    public func firstNode(named name: String) -> NodeID? {
        guard nodeNameCounts[name] != nil else { return nil }
        return order.first { self[$0].name == name }
    }

    // MARK: Editing nodes

    @discardableResult
    public mutating func appendNode(_ node: consuming Node) -> NodeID {
        let id = allocate(node)
        link(id.raw, after: tailRaw)
        return id
    }

    @discardableResult
    public mutating func insertNode(_ node: consuming Node, before anchor: NodeID) -> NodeID {
        guard contains(anchor) else { preconditionFailure("node \(anchor) is not in the graph") }
        let id = allocate(node)
        link(id.raw, after: previousRaw[anchor.raw])
        return id
    }

    @discardableResult
    public mutating func insertNode(_ node: consuming Node, after anchor: NodeID) -> NodeID {
        guard contains(anchor) else { preconditionFailure("node \(anchor) is not in the graph") }
        let id = allocate(node)
        link(id.raw, after: anchor.raw)
        return id
    }

    public mutating func removeNode(_ id: NodeID) {
        guard contains(id) else { return }
        unindex(id)
        nodeStore[id.raw] = nil
        let (p, n) = (previousRaw[id.raw], nextRaw[id.raw])
        if p >= 0 { nextRaw[p] = n } else { headRaw = n }
        if n >= 0 { previousRaw[n] = p } else { tailRaw = p }
        nodeCount -= 1
        orderChanged()
    }

    /// Changes a node in place; its use-list entries follow the change.
    public mutating func updateNode<R>(_ id: NodeID, _ body: (inout Node) throws -> R) rethrows -> R {
        var node = self[id]
        let (oldOutputs, oldName) = (node.outputs, node.name)
        var oldUsed: [String] = []
        Graph.forEachUsedValue(node) { oldUsed.append($0) }
        nodeStore[id.raw] = nil  // the store holds no second reference while `body` edits the node
        defer {
            nodeStore[id.raw] = node
            reindex(id, outputs: oldOutputs, used: oldUsed, name: oldName)
        }
        return try body(&node)
    }

    /// Updates the use lists for what changed in node `id` since it had `outputs`, read `used` and was called `name`
    /// (an entry that stays keeps its place).
    private mutating func reindex(_ id: NodeID, outputs: [String], used: [String], name: String?) {
        let node = self[id]
        if node.outputs != outputs {
            for output in outputs where producerByValue[output] == id && !node.outputs.contains(output) {
                producerByValue[output] = nil
                noteValueRemoved(output)
            }
            for output in node.outputs where !output.isEmpty {
                producerByValue[output] = id
                noteValueAdded(output)
            }
        }
        var newUsed: [String] = []
        Graph.forEachUsedValue(node) { newUsed.append($0) }
        if newUsed != used {
            // Small lists compare directly; long ones (a Concat of thousands) through sets.
            let small = used.count + newUsed.count <= 32
            let (oldSet, newSet) = small ? (Set<String>(), Set<String>()) : (Set(used), Set(newUsed))
            for value in used where !(small ? newUsed.contains(value) : newSet.contains(value)) {
                consumersByValue[value]?.removeAll { $0 == id }
                if consumersByValue[value]?.isEmpty == true { consumersByValue[value] = nil }
            }
            for value in newUsed where !(small ? used.contains(value) : oldSet.contains(value)) {
                consumersByValue[value, default: []].append(id)
                enterValueName(value)
            }
        }
        if node.name != name {
            if let name { removeNodeName(name) }
            if let new = node.name { addNodeName(new) }
        }
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
    public mutating func setNodes(_ nodes: consuming [Node]) {
        nodeStore = []
        nextRaw = []
        previousRaw = []
        headRaw = -1
        tailRaw = -1
        nodeCount = 0
        producerByValue = [:]
        consumersByValue = [:]
        nodeNameCounts = [:]
        nodeSuffixFloor = [:]
        reserveNodeTables(nodes: nodes.count, values: nodes.count * 2)
        enteredValues.reserve(nodes.count * 2)
        // Moved out one by one (last first, so reversed once): no node is copied.
        var remaining = nodes
        remaining.reverse()
        while let node = remaining.popLast() { appendNode(node) }
    }

    /// Makes room for `nodes` more nodes and `values` more values and initializers, so a pass that adds many grows
    /// its tables once.
    public mutating func reserveCapacity(nodes: Int, values: Int) {
        reserveNodeTables(nodes: nodes, values: values)
        reserveInitializers(values)
        enteredValues.reserve(values)
    }

    /// Room for `count` more initializers (the loader calls it with the file's count).
    mutating func reserveInitializers(_ count: Int) {
        initializers.reserveCapacity(initializers.count + count)
        enteredValues.reserve(count)
    }

    /// Room for `nodes` more nodes and the `values` more values they read or write. A node writes about one value,
    /// so the producer table grows by the smaller of the two.
    private mutating func reserveNodeTables(nodes: Int, values: Int) {
        nodeStore.reserveCapacity(nodeStore.count + nodes)
        nextRaw.reserveCapacity(nextRaw.count + nodes)
        previousRaw.reserveCapacity(previousRaw.count + nodes)
        nodeNameCounts.reserveCapacity(nodeNameCounts.count + nodes)
        producerByValue.reserveCapacity(producerByValue.count + min(nodes, values))
        consumersByValue.reserveCapacity(consumersByValue.count + values)
    }

    private mutating func allocate(_ node: consuming Node) -> NodeID {
        let id = NodeID(raw: nodeStore.count)
        index(id, node)
        nodeStore.append(node)
        nextRaw.append(-1)
        previousRaw.append(-1)
        return id
    }

    /// Forgets the materialized order: this graph's own cache is cleared; one shared with a copy is left to the copy.
    private mutating func orderChanged() {
        if isKnownUniquelyReferenced(&orderCache) { orderCache.clear() } else { orderCache = OrderCache() }
    }

    /// Puts `raw` after `previous` in the order (-1: first).
    private mutating func link(_ raw: Int, after previous: Int) {
        let next = previous >= 0 ? nextRaw[previous] : headRaw
        previousRaw[raw] = previous
        nextRaw[raw] = next
        if previous >= 0 { nextRaw[previous] = raw } else { headRaw = raw }
        if next >= 0 { previousRaw[next] = raw } else { tailRaw = raw }
        nodeCount += 1
        orderChanged()
    }

    private mutating func index(_ id: NodeID, _ node: borrowing Node) {
        for output in node.outputs where !output.isEmpty { producerByValue[output] = id }
        Graph.forEachUsedValue(node) { value in
            consumersByValue[value, default: []].append(id)
            enterValueName(value)
        }
        if let name = node.name { addNodeName(name) }
        for output in node.outputs where !output.isEmpty { noteValueAdded(output) }
    }

    /// `node.usedValues` without building a set for the common node (no subgraph, a few inputs).
    private static func forEachUsedValue(_ node: Node, _ body: (String) -> Void) {
        guard node.inputs.count <= 8, node.attributes.allSatisfy({ $0.g == nil && $0.graphs.isEmpty }) else {
            for value in node.usedValues { body(value) }
            return
        }
        for (i, input) in node.inputs.enumerated() where !input.isEmpty && !node.inputs[..<i].contains(input) {
            body(input)
        }
    }

    private mutating func unindex(_ id: NodeID) {
        let node = self[id]
        for output in node.outputs where producerByValue[output] == id { producerByValue[output] = nil }
        Graph.forEachUsedValue(node) { value in
            consumersByValue[value]?.removeAll { $0 == id }
            if consumersByValue[value]?.isEmpty == true { consumersByValue[value] = nil }
        }
        if let name = node.name { removeNodeName(name) }
        for output in node.outputs where producerByValue[output] == nil { noteValueRemoved(output) }
    }

    // MARK: Initializers and constants

    /// Adds or replaces an initializer under its own name.
    public mutating func setInitializer(_ tensor: consuming Tensor) {
        guard let name = tensor.name else { preconditionFailure("an initializer needs a name") }
        initializers[name] = tensor
        noteValueAdded(name)
    }

    /// Adds an initializer the loader read under its own name `name`; false when an initializer has that name already.
    mutating func addLoadedInitializer(_ tensor: consuming Tensor, name: String) -> Bool {
        guard initializers.updateValue(tensor, forKey: name) == nil else { return false }
        noteValueAdded(name)
        return true
    }

    @discardableResult
    public mutating func removeInitializer(_ name: String) -> Tensor? {
        noteValueRemoved(name)
        return initializers.removeValue(forKey: name)
    }

    /// Adds an initializer under a name no other value of the graph has (`base`, else `base_1`, `base_2`, ...).
    @discardableResult
    public mutating func addInitializer(_ tensor: consuming Tensor, preferredName base: String) -> String {
        let name = uniqueValueName(base)
        tensor.name = name
        initializers[name] = tensor
        noteValueAdded(name)
        return name
    }

    /// A value name that nothing in the graph uses yet (`base`, else `base_1`, `base_2`, ...).
    public func uniqueValueName(_ base: String) -> String {
        Graph.firstFree(base, from: valueSuffixFloor[base] ?? 1, isValueTaken)
    }

    /// A node name no node of the graph has yet (`base`, else `base_1`, `base_2`, ...).
    public func uniqueNodeName(_ base: String) -> String {
        Graph.firstFree(base, from: nodeSuffixFloor[base] ?? 1) { nodeNameCounts[$0] != nil }
    }

    private func isValueTaken(_ n: String) -> Bool {
        if inputs.contains(where: { $0.name == n }) || outputs.contains(where: { $0.name == n }) { return true }
        guard enteredValues.mightContain(n) else { return false }
        return initializers.index(forKey: n) != nil || producerByValue[n] != nil || consumersByValue[n] != nil
    }

    /// Notes that `name` went into one of the value tables (for `isValueTaken`).
    private mutating func enterValueName(_ name: String) { enteredValues.insert(name) }

    private static func firstFree(_ base: String, from floor: Int, _ taken: (String) -> Bool) -> String {
        if !taken(base) { return base }
        var k = floor
        while taken("\(base)_\(k)") { k += 1 }
        return "\(base)_\(k)"
    }

    /// `name` as `base_k` (k ≥ 1 without leading zeros), if it is of that form.
    private static func suffixed(_ name: String) -> (base: String, k: Int)? {
        let bytes = name.utf8
        guard let underscore = bytes.lastIndex(of: UInt8(ascii: "_")) else { return nil }
        let digits = bytes[bytes.index(after: underscore)...]
        guard (1...18).contains(digits.count), digits.first != UInt8(ascii: "0"),
            digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        let k = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        return (String(name[..<underscore]), k)
    }

    /// After `name` became taken: when it is `base_k` at the floor, the floor moves past every taken `base_j`.
    private static func noteTaken(_ name: String, _ floors: inout [String: Int], _ taken: (String) -> Bool) {
        guard let (base, k) = suffixed(name), k == (floors[base] ?? 1) else { return }
        var floor = k + 1
        while taken("\(base)_\(floor)") { floor += 1 }
        floors[base] = floor
    }

    /// After `name` may have become free: the floor of its base comes down to it.
    private static func noteFreed(_ name: String, _ floors: inout [String: Int]) {
        guard let (base, k) = suffixed(name), let floor = floors[base], k < floor else { return }
        floors[base] = k
    }

    private mutating func addNodeName(_ name: String) {
        nodeNameCounts[name, default: 0] += 1
        let counts = nodeNameCounts
        Graph.noteTaken(name, &nodeSuffixFloor) { counts[$0] != nil }
    }

    private mutating func removeNodeName(_ name: String) {
        let left = (nodeNameCounts[name] ?? 1) - 1
        nodeNameCounts[name] = left > 0 ? left : nil
        if left <= 0 { Graph.noteFreed(name, &nodeSuffixFloor) }
    }

    private mutating func noteValueAdded(_ name: String) {
        enterValueName(name)
        guard Graph.suffixed(name) != nil else { return }
        var floors = valueSuffixFloor
        valueSuffixFloor = [:]
        Graph.noteTaken(name, &floors, isValueTaken)
        valueSuffixFloor = floors
    }

    private mutating func noteValueRemoved(_ name: String) { Graph.noteFreed(name, &valueSuffixFloor) }

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
        if let positions = indexedPositions() {
            return try checkByIndex(positions, outerScope: outerScope, order: false)
        }
        var defined = outerScope
        defined.formUnion(inputs.compactMap(\.name))
        defined.formUnion(initializers.keys)
        var producedBy: [String: NodeID] = [:]
        producedBy.reserveCapacity(order.count)
        defined.reserveCapacity(defined.count + order.count)
        for id in order {
            for output in self[id].outputs where !output.isEmpty {
                if let first = producedBy.updateValue(id, forKey: output) {
                    throw GraphError.duplicateProducer(value: output, first: self[first].displayName, second: self[id].displayName)
                }
                defined.insert(output)
            }
        }
        for id in order {
            let node = self[id]
            for input in node.inputs where !input.isEmpty && !defined.contains(input) {
                throw GraphError.undefinedValue(node: node.displayName, value: input)
            }
            if node.attributes.contains(where: { $0.g != nil || !$0.graphs.isEmpty }) {
                for sub in node.subgraphs { try sub.checkReferences(outerScope: defined) }
            }
        }
        for output in outputs {
            if let name = output.name, !defined.contains(name) {
                throw GraphError.undefinedValue(node: "graph output", value: name)
            }
        }
    }

    /// Checks what `checkReferences` checks, and that nodes are in topological order: every value is defined before
    /// a node reads it. One pass over the nodes (the use lists say whether a value read too early is produced later);
    /// an order problem is reported only when the references are otherwise sound.
    public func validate(outerScope: Set<String> = []) throws {
        if let positions = indexedPositions() {
            return try checkByIndex(positions, outerScope: outerScope, order: true)
        }
        var defined = outerScope
        defined.formUnion(inputs.compactMap(\.name))
        defined.formUnion(initializers.keys)
        var orderError: GraphError?
        for id in order {
            let node = self[id]
            for input in node.inputs where !input.isEmpty && !defined.contains(input) {
                guard producerByValue[input] != nil else {
                    throw GraphError.undefinedValue(node: node.displayName, value: input)
                }
                if orderError == nil { orderError = .notTopologicallySorted(node: node.displayName, value: input) }
            }
            for sub in node.subgraphs { try sub.validate(outerScope: defined) }
            for output in node.outputs where !output.isEmpty {
                if let other = producerByValue[output], other != id {
                    // Two nodes write it; the index keeps the later one.
                    let first = order.first { self[$0].outputs.contains(output) } ?? id
                    throw GraphError.duplicateProducer(
                        value: output, first: self[first].displayName, second: self[first == id ? other : id].displayName)
                }
                defined.insert(output)
            }
        }
        for output in outputs {
            if let name = output.name, !defined.contains(name) {
                throw GraphError.undefinedValue(node: "graph output", value: name)
            }
        }
        if let orderError { throw orderError }
    }

    /// Each node's position in the order (by raw id), when the use lists alone can answer `checkReferences` and
    /// `validate`: no value has two producers (as many producer entries as outputs) and no node holds a subgraph.
    /// Nil otherwise (then the full checks run, which find the first such problem in order).
    private func indexedPositions() -> [Int]? {
        var positions = [Int](repeating: -1, count: nodeStore.count)
        var outputCount = 0
        for (i, id) in order.enumerated() {
            let node = nodeStore[id.raw]!
            for output in node.outputs where !output.isEmpty { outputCount += 1 }
            if node.attributes.contains(where: { $0.g != nil || !$0.graphs.isEmpty }) { return nil }
            positions[id.raw] = i
        }
        return outputCount == producerByValue.count ? positions : nil
    }

    /// `checkReferences` (`order` false) or `validate` (`order` true) through the use lists, with no set of every
    /// defined name: a value is defined by a graph input, `outerScope`, an initializer or its one producer, and is
    /// defined in time when that producer comes earlier. Same errors, in the same precedence, as the full checks.
    private func checkByIndex(_ positions: [Int], outerScope: Set<String>, order checkOrder: Bool) throws {
        var scope = outerScope
        scope.formUnion(inputs.compactMap(\.name))
        func definedOutsideNodes(_ value: String) -> Bool {
            initializers.index(forKey: value) != nil || scope.contains(value)
        }
        var orderError: GraphError?
        for (i, id) in order.enumerated() {
            for input in nodeStore[id.raw]!.inputs where !input.isEmpty {
                let producer = producerByValue[input]
                if let producer, !checkOrder || positions[producer.raw] < i { continue }
                if definedOutsideNodes(input) { continue }
                guard producer != nil else { throw GraphError.undefinedValue(node: self[id].displayName, value: input) }
                if orderError == nil { orderError = .notTopologicallySorted(node: self[id].displayName, value: input) }
            }
        }
        for output in outputs {
            if let name = output.name, producerByValue[name] == nil, !definedOutsideNodes(name) {
                throw GraphError.undefinedValue(node: "graph output", value: name)
            }
        }
        if let orderError { throw orderError }
    }

    /// Puts the nodes in topological order, keeping the present order wherever it already is one: Kahn's algorithm
    /// taking, among the ready nodes, the one that comes first now (O(n log n)).
    public mutating func sortTopologically() throws {
        let ids = order
        var producerPosition: [String: Int] = [:]
        for (i, id) in ids.enumerated() { for output in self[id].outputs where !output.isEmpty { producerPosition[output] = i } }
        var waiting = [Int](repeating: 0, count: ids.count)
        var readers = [[Int]](repeating: [], count: ids.count)
        for (i, id) in ids.enumerated() {
            for value in self[id].usedValues {
                guard let p = producerPosition[value] else { continue }
                waiting[i] += 1
                readers[p].append(i)
            }
        }
        var ready = MinHeap(ids.indices.filter { waiting[$0] == 0 })
        var sorted: [Node] = []
        sorted.reserveCapacity(ids.count)
        while let i = ready.popMin() {
            sorted.append(self[ids[i]])
            for r in readers[i] {
                waiting[r] -= 1
                if waiting[r] == 0 { ready.insert(r) }
            }
        }
        if sorted.count < ids.count {
            let stuck = ids.indices.filter { waiting[$0] > 0 }.prefix(5)
            throw GraphError.cycle(nodes: stuck.map { self[ids[$0]].displayName })
        }
        setNodes(sorted)
    }

    /// Removes nodes whose outputs nobody reads (and that are not graph outputs), then initializers nobody reads.
    /// Returns how many nodes and initializers went.
    @discardableResult
    public mutating func removeDeadCode() -> (nodes: Int, initializers: Int) {
        let outputNames = Set(outputs.compactMap(\.name))
        var removedNodes = 0
        // A worklist, last node first: removing a node puts the producers of what it read back on the list, so
        // every node is looked at once plus once per consumer removed.
        var pending = order
        while let id = pending.popLast() {
            guard contains(id), !isRead(nodeStore[id.raw]!.outputs, outputNames) else { continue }
            Graph.forEachUsedValue(nodeStore[id.raw]!) { value in
                if let p = producerByValue[value] { pending.append(p) }
            }
            removeNode(id)
            removedNodes += 1
        }
        return (removedNodes, removeUnreadInitializers(outputNames))
    }

    /// Whether a graph output or a node reads one of `values`.
    private func isRead(_ values: [String], _ outputNames: Set<String>) -> Bool {
        values.contains { !$0.isEmpty && (consumersByValue[$0] != nil || outputNames.contains($0)) }
    }

    /// Removes the initializers that no node reads and that are not graph inputs or outputs, keeping the order of the
    /// rest. One pass over the names, then (when some go) one compaction that moves the entries and hashes the kept
    /// names once (removing entries one by one from an OrderedDictionary is linear each).
    private mutating func removeUnreadInitializers(_ outputNames: Set<String>) -> Int {
        let inputNames = Set(inputs.compactMap(\.name))
        var keep: [Bool] = []
        keep.reserveCapacity(initializers.count)
        for name in initializers.keys {
            keep.append(consumersByValue[name] != nil || outputNames.contains(name) || inputNames.contains(name))
        }
        let kept = keep.reduce(0) { $0 + ($1 ? 1 : 0) }
        guard kept < keep.count else { return 0 }
        var names = initializers.keys.elements
        var tensors = initializers.values.elements
        initializers = [:]  // the two arrays are now the only references to their storage, so moves need no copy
        var removed: [String] = []
        removed.reserveCapacity(keep.count - kept)
        names.withUnsafeMutableBufferPointer { names in
            tensors.withUnsafeMutableBufferPointer { tensors in
                var next = 0
                for i in keep.indices {
                    if keep[i] {
                        names.swapAt(next, i)
                        tensors.swapAt(next, i)
                        next += 1
                    } else {
                        removed.append(names[i])
                    }
                }
            }
        }
        names.removeLast(names.count - kept)
        tensors.removeLast(tensors.count - kept)
        initializers = OrderedDictionary(uncheckedUniqueKeys: names, values: tensors)
        for name in removed { noteValueRemoved(name) }
        return removed.count
    }
}

/// The materialized order of a graph: shared by copies of the graph until one of them edits its nodes (an edit
/// gives the edited copy a cache of its own), filled on first read under a lock so concurrent readers are safe.
private final class OrderCache: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: [NodeID]?

    func clear() {
        lock.lock()
        defer { lock.unlock() }
        ids = nil
    }

    func ids(_ make: () -> [NodeID]) -> [NodeID] {
        lock.lock()
        defer { lock.unlock() }
        if let ids { return ids }
        let made = make()
        ids = made
        return made
    }
}

/// A binary min-heap of positions (for the topological sort).
private struct MinHeap {
    private var items: [Int]
    init(_ items: [Int]) { self.items = items.sorted() }

    mutating func insert(_ x: Int) {
        items.append(x)
        var i = items.count - 1
        while i > 0, items[(i - 1) / 2] > items[i] {
            items.swapAt(i, (i - 1) / 2)
            i = (i - 1) / 2
        }
    }

    mutating func popMin() -> Int? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return first }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, items[l] < items[m] { m = l }
            if r < items.count, items[r] < items[m] { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return first
    }
}
