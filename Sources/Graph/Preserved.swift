/// Fields the schema does not know, as protobuf-c kept them while unpacking: saved back unchanged after the
/// known fields of the same message, so a model written by a newer ONNX survives a round trip.
public struct UnknownFields: Sendable, Equatable, Hashable {
    public struct Field: Sendable, Equatable, Hashable {
        public var tag: UInt32
        public var wireType: UInt32
        public var bytes: [UInt8]
        public init(tag: UInt32, wireType: UInt32, bytes: [UInt8]) {
            self.tag = tag
            self.wireType = wireType
            self.bytes = bytes
        }
    }
    public var fields: [Field]
    public init(_ fields: [Field] = []) { self.fields = fields }
    public var isEmpty: Bool { fields.isEmpty }
}

/// A message the IR carries without looking inside (functions, training info, sparse tensors, tensor
/// annotations, device configurations): its serialized bytes, as protobuf-c packed them at load.
public struct PreservedMessage: Sendable, Equatable, Hashable {
    public var serialized: [UInt8]
    public init(serialized: [UInt8]) { self.serialized = serialized }
}
