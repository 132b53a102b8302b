import Foundation

// The JSON every `--json` output and report file is encoded with: one encoder setting for the whole program.

/// The JSON every `--json` prints: indented, sorted snake_case keys, infinities and NaN as "inf", "-inf", "nan".
public func jsonData<T: Encodable>(_ value: T) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
        positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return try encoder.encode(value)
}

/// `jsonData` as text ("null" if the value cannot be encoded).
public func encodeJSON<T: Encodable>(_ value: T) -> String {
    (try? jsonData(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
}

// `--json` writes every key, null when there is nothing, so scripts can rely on the keys; Swift's synthesized
// Codable leaves a nil optional out. `@NullEncoded` on an optional property writes it as null and reads a null or a
// missing key back as nil, so a report type keeps its synthesized Codable instead of a hand-written encode(to:).
@propertyWrapper
public struct NullEncoded<Value: Codable & Sendable>: Codable, Sendable {
    public var wrappedValue: Value?

    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        wrappedValue = c.decodeNil() ? nil : try c.decode(Value.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let wrappedValue { try c.encode(wrappedValue) } else { try c.encodeNil() }
    }
}

extension KeyedDecodingContainer {
    /// A missing key is nil, as for a plain optional.
    public func decode<T>(_ type: NullEncoded<T>.Type, forKey key: Key) throws -> NullEncoded<T> {
        try decodeIfPresent(type, forKey: key) ?? NullEncoded(wrappedValue: nil)
    }
}
