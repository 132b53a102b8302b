/// `AttributeProto`, field for field: every field keeps its presence, so a round trip is lossless whatever an
/// exporter set. Read through the typed accessors (`int`, `ints`, `float`, ...), which follow `type`.
public struct Attribute: Sendable {
    public enum Kind: Int32, Sendable {
        case undefined = 0, float = 1, int = 2, string = 3, tensor = 4, graph = 5, floats = 6, ints = 7,
            strings = 8, tensors = 9, graphs = 10, sparseTensor = 11, sparseTensors = 12, typeProto = 13,
            typeProtos = 14
    }
    public var name: String?
    public var refAttrName: String?
    public var docString: String?
    /// The `type` field as the file gave it (nil when unset).
    public var type: Int32?
    public var f: Float?
    public var i: Int64?
    public var s: [UInt8]?
    public var t: Tensor?
    public var g: Graph?
    public var sparseTensor: PreservedMessage?
    public var tp: ValueType?
    public var floats: [Float] = []
    public var ints: [Int64] = []
    public var strings: [[UInt8]] = []
    public var tensors: [Tensor] = []
    public var graphs: [Graph] = []
    public var sparseTensors: [PreservedMessage] = []
    public var typeProtos: [ValueType] = []
    public var unknownFields = UnknownFields()

    public init(name: String?) { self.name = name }

    public static func int(_ name: String, _ value: Int64) -> Attribute {
        var a = Attribute(name: name)
        a.type = Kind.int.rawValue
        a.i = value
        return a
    }
    public static func float(_ name: String, _ value: Float) -> Attribute {
        var a = Attribute(name: name)
        a.type = Kind.float.rawValue
        a.f = value
        return a
    }
    public static func ints(_ name: String, _ values: [Int64]) -> Attribute {
        var a = Attribute(name: name)
        a.type = Kind.ints.rawValue
        a.ints = values
        return a
    }
    public static func floats(_ name: String, _ values: [Float]) -> Attribute {
        var a = Attribute(name: name)
        a.type = Kind.floats.rawValue
        a.floats = values
        return a
    }
    public static func string(_ name: String, _ value: String) -> Attribute {
        var a = Attribute(name: name)
        a.type = Kind.string.rawValue
        a.s = Array(value.utf8)
        return a
    }
    public static func tensor(_ name: String, _ value: Tensor) -> Attribute {
        var a = Attribute(name: name)
        a.type = Kind.tensor.rawValue
        a.t = value
        return a
    }

    public var kind: Kind? { type.flatMap(Kind.init(rawValue:)) }
    public var stringValue: String? { s.map { String(decoding: $0, as: UTF8.self) } }
}
