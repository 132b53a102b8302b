/// One dimension of a shape: a number, a symbolic name, or unknown.
public struct Dimension: Sendable, Equatable, Hashable {
    public enum Value: Sendable, Equatable, Hashable {
        case known(Int64)
        case symbolic(String)
        case unknown
    }
    public var value: Value
    public var denotation: String?
    public var unknownFields: UnknownFields
    public init(_ value: Value, denotation: String? = nil, unknownFields: UnknownFields = UnknownFields()) {
        self.value = value
        self.denotation = denotation
        self.unknownFields = unknownFields
    }
    public var knownValue: Int64? {
        if case .known(let v) = value { return v }
        return nil
    }
}

public struct Shape: Sendable, Equatable, Hashable {
    public var dims: [Dimension]
    public var unknownFields: UnknownFields
    public init(_ dims: [Dimension], unknownFields: UnknownFields = UnknownFields()) {
        self.dims = dims
        self.unknownFields = unknownFields
    }
    public init(known: [Int64]) { self.init(known.map { Dimension(.known($0)) }) }
    /// All dimensions as numbers, or nil when any is symbolic or unknown.
    public var knownDims: [Int64]? {
        var result: [Int64] = []
        for d in dims {
            guard let v = d.knownValue else { return nil }
            result.append(v)
        }
        return result
    }
}

/// `TypeProto`: the type of a value (tensor, sequence, map, optional, sparse tensor, opaque).
public indirect enum ValueKind: Sendable, Equatable, Hashable {
    /// Each `elemType`/`shape` is nil when the file did not set it; `unknownFields` are those of the inner message.
    case tensor(elemType: Int32?, shape: Shape?, unknownFields: UnknownFields)
    case sparseTensor(elemType: Int32?, shape: Shape?, unknownFields: UnknownFields)
    case sequence(ValueType?, unknownFields: UnknownFields)
    case map(keyType: Int32?, value: ValueType?, unknownFields: UnknownFields)
    case optional(ValueType?, unknownFields: UnknownFields)
    case opaque(domain: String?, name: String?, unknownFields: UnknownFields)
    case notSet
}

public struct ValueType: Sendable, Equatable, Hashable {
    public var kind: ValueKind
    public var denotation: String?
    public var unknownFields: UnknownFields
    public init(_ kind: ValueKind, denotation: String? = nil, unknownFields: UnknownFields = UnknownFields()) {
        self.kind = kind
        self.denotation = denotation
        self.unknownFields = unknownFields
    }
    /// A tensor type with a fully known shape.
    public static func tensor(_ elemType: DataType, _ dims: [Int64]) -> ValueType {
        ValueType(.tensor(elemType: elemType.rawValue, shape: Shape(known: dims), unknownFields: UnknownFields()))
    }
    /// The shape when this is a tensor type.
    public var tensorShape: Shape? {
        if case .tensor(_, let s, _) = kind { return s }
        return nil
    }
}

/// `ValueInfoProto`: a named value with its type.
public struct ValueInfo: Sendable, Equatable {
    public var name: String?
    public var type: ValueType?
    public var docString: String?
    public var metadataProps: [StringPair]
    public var unknownFields: UnknownFields
    public init(
        name: String?, type: ValueType?, docString: String? = nil, metadataProps: [StringPair] = [],
        unknownFields: UnknownFields = UnknownFields()
    ) {
        self.name = name
        self.type = type
        self.docString = docString
        self.metadataProps = metadataProps
        self.unknownFields = unknownFields
    }
}
