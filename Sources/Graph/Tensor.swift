import Foundation

/// An ONNX element type (`TensorProto.DataType`). A struct over the raw code, so a type this build does not
/// know still loads and saves unchanged.
public struct DataType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let undefined = DataType(rawValue: 0)
    public static let float = DataType(rawValue: 1)
    public static let uint8 = DataType(rawValue: 2)
    public static let int8 = DataType(rawValue: 3)
    public static let uint16 = DataType(rawValue: 4)
    public static let int16 = DataType(rawValue: 5)
    public static let int32 = DataType(rawValue: 6)
    public static let int64 = DataType(rawValue: 7)
    public static let string = DataType(rawValue: 8)
    public static let bool = DataType(rawValue: 9)
    public static let float16 = DataType(rawValue: 10)
    public static let double = DataType(rawValue: 11)
    public static let uint32 = DataType(rawValue: 12)
    public static let uint64 = DataType(rawValue: 13)
    public static let complex64 = DataType(rawValue: 14)
    public static let complex128 = DataType(rawValue: 15)
    public static let bfloat16 = DataType(rawValue: 16)
    public static let float8e4m3fn = DataType(rawValue: 17)
    public static let float8e4m3fnuz = DataType(rawValue: 18)
    public static let float8e5m2 = DataType(rawValue: 19)
    public static let float8e5m2fnuz = DataType(rawValue: 20)
    public static let uint4 = DataType(rawValue: 21)
    public static let int4 = DataType(rawValue: 22)
    public static let float4e2m1 = DataType(rawValue: 23)
    public static let float8e8m0 = DataType(rawValue: 24)
    public static let uint2 = DataType(rawValue: 25)
    public static let int2 = DataType(rawValue: 26)

    /// Bits one element takes in `raw_data`; nil for strings and for codes this build does not know.
    public var bitsPerElement: Int? {
        switch rawValue {
        case 1, 6, 12: return 32
        case 2, 3, 9, 17, 18, 19, 20, 24: return 8
        case 4, 5, 10, 16: return 16
        case 7, 11, 13, 14: return 64
        case 15: return 128
        case 21, 22, 23: return 4
        case 25, 26: return 2
        default: return nil
        }
    }

    /// Bytes that `count` elements take in `raw_data` (sub-byte types are packed, the last byte padded).
    /// Nil too when the size does not fit in an Int (`Tensor.checkedElementCount` rules that out for loaded tensors).
    public func byteCount(elements count: Int) -> Int? {
        guard let bits = bitsPerElement, count >= 0 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: bits)
        guard !overflow, product <= Int.max - 7 else { return nil }
        return (product + 7) / 8
    }

    public var description: String {
        let names = [
            "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL", "FLOAT16",
            "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ",
            "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4", "FLOAT4E2M1", "FLOAT8E8M0", "UINT2", "INT2",
        ]
        return rawValue >= 0 && Int(rawValue) < names.count ? names[Int(rawValue)] : "DataType(\(rawValue))"
    }
}

/// Contiguous bytes owned by one allocation from `malloc` (so a buffer that protobuf-c allocated while unpacking
/// is adopted as it is, not copied). Shared between tensors until one of them writes (copy on write in `Tensor`).
public final class TensorBuffer: @unchecked Sendable {
    public let byteCount: Int
    public let baseAddress: UnsafeMutableRawPointer?

    /// Takes ownership of `pointer`, which must come from `malloc` (it is released with `free`).
    public init(adoptingMallocPointer pointer: UnsafeMutableRawPointer?, byteCount: Int) {
        self.baseAddress = byteCount == 0 ? nil : pointer
        if byteCount == 0, let pointer { free(pointer) }
        self.byteCount = byteCount
    }

    /// Zero-filled bytes.
    public init(zeroed byteCount: Int) {
        self.byteCount = byteCount
        self.baseAddress = byteCount == 0 ? nil : calloc(byteCount, 1)
        precondition(byteCount == 0 || baseAddress != nil, "out of memory allocating \(byteCount) bytes")
    }

    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(zeroed: bytes.count)
        if let source = bytes.baseAddress, let destination = baseAddress {
            destination.copyMemory(from: source, byteCount: bytes.count)
        }
    }

    deinit { free(baseAddress) }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: baseAddress, count: byteCount) }
    public var mutableBytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: baseAddress, count: byteCount)
    }
}

/// Where the file kept a tensor's data; saving writes it back the same way.
public enum TensorEncoding: Sendable, Equatable {
    /// `raw_data` (little-endian, packed for sub-byte types).
    case raw
    /// The typed repeated fields (`float_data`, `int32_data`, `int64_data`, ...), or no data at all.
    case typedFields
    /// `data_location: EXTERNAL`, with the `external_data` entries as the file gave them.
    case external([StringPair])
}

/// The elements of a tensor: bytes in `raw_data` layout, or the strings of a STRING tensor.
public enum TensorData: Sendable {
    case bytes(TensorBuffer)
    case strings([[UInt8]])
}

public struct StringPair: Sendable, Equatable, Hashable {
    public var key: String?
    public var value: String?
    public var unknownFields: UnknownFields
    public init(key: String?, value: String?, unknownFields: UnknownFields = UnknownFields()) {
        self.key = key
        self.value = value
        self.unknownFields = unknownFields
    }
}

/// `TensorProto.Segment`: which part of a large tensor this one is.
public struct TensorSegment: Sendable, Equatable {
    public var begin: Int64?
    public var end: Int64?
    public var unknownFields: UnknownFields
}

/// A tensor: `TensorProto` with its elements in one contiguous buffer.
public struct Tensor: Sendable {
    public var name: String?
    public var dataType: DataType
    public var dims: [Int64]
    public var data: TensorData
    public var encoding: TensorEncoding
    public var docString: String?
    /// `segment { begin end }`, kept as the file gave it.
    public var segment: TensorSegment?
    /// `data_location` when the file set it (presence kept for a lossless round trip).
    public var dataLocation: Int32?
    public var metadataProps: [StringPair]
    public var unknownFields: UnknownFields

    public init(
        name: String?, dataType: DataType, dims: [Int64], data: TensorData, encoding: TensorEncoding = .raw,
        docString: String? = nil, segment: TensorSegment? = nil, dataLocation: Int32? = nil,
        metadataProps: [StringPair] = [], unknownFields: UnknownFields = UnknownFields()
    ) {
        self.name = name
        self.dataType = dataType
        self.dims = dims
        self.data = data
        self.encoding = encoding
        self.docString = docString
        self.segment = segment
        self.dataLocation = dataLocation
        self.metadataProps = metadataProps
        self.unknownFields = unknownFields
    }

    /// A new float32 tensor in raw layout.
    public init(name: String?, dims: [Int64], floats: [Float]) {
        precondition(Int(dims.reduce(1, *)) == floats.count, "dims \(dims) do not hold \(floats.count) elements")
        let buffer = floats.withUnsafeBytes { TensorBuffer(copying: $0) }
        self.init(name: name, dataType: .float, dims: dims, data: .bytes(buffer))
    }

    /// A new tensor of any fixed-size element type from its raw bytes.
    public init(name: String?, dataType: DataType, dims: [Int64], rawBytes: UnsafeRawBufferPointer) {
        self.init(name: name, dataType: dataType, dims: dims, data: .bytes(TensorBuffer(copying: rawBytes)))
    }

    public var elementCount: Int { dims.reduce(1) { $0 * Int($1) } }

    /// The number of elements `dims` describe, or nil when a dimension is negative or the count, in bits of the
    /// widest element type (128), does not fit in an Int. The loader checks every tensor with this once, so
    /// `elementCount` and `byteCount` never overflow on a loaded tensor.
    public static func checkedElementCount(_ dims: [Int64]) -> Int? {
        var count = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow else { return nil }
            count = product
        }
        return count <= Int.max / 128 ? count : nil
    }

    /// Bytes of the elements (empty for STRING tensors).
    public var byteCount: Int {
        if case .bytes(let buffer) = data { return buffer.byteCount }
        return 0
    }

    public var rawBytes: UnsafeRawBufferPointer {
        if case .bytes(let buffer) = data { return buffer.bytes }
        return UnsafeRawBufferPointer(start: nil, count: 0)
    }

    /// Reads the elements as `T` (the caller checks `dataType`); a view, no copy.
    public func withElements<T, R>(as type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R) rethrows -> R {
        try body(rawBytes.bindMemory(to: T.self))
    }

    /// Writes the elements as `T`; copies the buffer first only when another tensor shares it.
    public mutating func withMutableElements<T, R>(
        as type: T.Type, _ body: (UnsafeMutableBufferPointer<T>) throws -> R
    ) rethrows -> R {
        guard case .bytes(var buffer) = data else {
            return try body(UnsafeMutableBufferPointer(start: nil, count: 0))
        }
        if !isKnownUniquelyReferenced(&buffer) {
            buffer = TensorBuffer(copying: buffer.bytes)
        }
        data = .bytes(buffer)
        return try body(buffer.mutableBytes.bindMemory(to: T.self))
    }

    /// Float32 elements as an array (a copy; for small tensors and tests).
    public var floatArray: [Float] {
        precondition(dataType == .float, "floatArray on a \(dataType) tensor")
        return withElements(as: Float.self) { Array($0) }
    }

    /// Integer elements of an INT64/INT32 tensor as Int64 (a copy; for shapes and axes).
    public var int64Array: [Int64]? {
        switch dataType {
        case .int64: return withElements(as: Int64.self) { Array($0) }
        case .int32: return withElements(as: Int32.self) { $0.map(Int64.init) }
        default: return nil
        }
    }
}
