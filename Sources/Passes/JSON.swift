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
