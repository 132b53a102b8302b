/// `NodeProto`. Every optional field keeps its presence (nil = not in the file).
public struct Node: Sendable {
    public var opType: String?
    public var domain: String?
    public var name: String?
    public var overload: String?
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [Attribute]
    public var docString: String?
    public var metadataProps: [StringPair]
    public var deviceConfigurations: [PreservedMessage]
    public var unknownFields: UnknownFields

    public init(
        opType: String?, domain: String? = nil, name: String? = nil, inputs: [String], outputs: [String],
        attributes: [Attribute] = [], docString: String? = nil, overload: String? = nil,
        metadataProps: [StringPair] = [], deviceConfigurations: [PreservedMessage] = [],
        unknownFields: UnknownFields = UnknownFields()
    ) {
        self.opType = opType
        self.domain = domain
        self.name = name
        self.overload = overload
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.docString = docString
        self.metadataProps = metadataProps
        self.deviceConfigurations = deviceConfigurations
        self.unknownFields = unknownFields
    }

    /// The op type ("" when unset).
    public var op: String { opType ?? "" }
    /// True for the default ONNX domain ("" or "ai.onnx").
    public var isDefaultDomain: Bool { domain == nil || domain == "" || domain == "ai.onnx" }
    /// The name to show a user: the node name, else its first output.
    public var displayName: String {
        if let name, !name.isEmpty { return name }
        return "\(op) → \(outputs.first ?? "?")"
    }

    public func attribute(_ name: String) -> Attribute? { attributes.first { $0.name == name } }
    public func int(_ name: String) -> Int64? { attribute(name)?.i }
    public func ints(_ name: String) -> [Int64]? {
        guard let a = attribute(name) else { return nil }
        return a.ints
    }
    public func float(_ name: String) -> Float? { attribute(name)?.f }
    public func string(_ name: String) -> String? { attribute(name)?.stringValue }

    /// Sets an attribute, replacing one of the same name in place.
    public mutating func setAttribute(_ attribute: Attribute) {
        if let index = attributes.firstIndex(where: { $0.name == attribute.name }) {
            attributes[index] = attribute
        } else {
            attributes.append(attribute)
        }
    }

    public mutating func removeAttribute(_ name: String) { attributes.removeAll { $0.name == name } }

    /// Makes the node read `new` wherever it read `old`: its inputs, and outer-scope reads of its subgraphs.
    mutating func renameReads(of old: String, to new: String) {
        for i in inputs.indices where inputs[i] == old { inputs[i] = new }
        for a in attributes.indices {
            attributes[a].g?.renameOuterReference(old, to: new)
            for g in attributes[a].graphs.indices { attributes[a].graphs[g].renameOuterReference(old, to: new) }
        }
    }

    /// The graphs held in attributes (If/Loop/Scan bodies).
    public var subgraphs: [Graph] { attributes.flatMap { a in (a.g.map { [$0] } ?? []) + a.graphs } }

    /// Values this node reads: its inputs (empty names are absent optional inputs) and the outer-scope values its
    /// subgraphs read.
    public var usedValues: [String] {
        var result: [String] = []
        var seen = Set<String>()
        for input in inputs where !input.isEmpty && seen.insert(input).inserted { result.append(input) }
        for graph in subgraphs {
            for name in graph.outerScopeReferences() where seen.insert(name).inserted { result.append(name) }
        }
        return result
    }
}
