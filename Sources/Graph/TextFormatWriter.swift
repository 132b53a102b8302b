// The protobuf text format, written: fields and nested messages as lines, strings escaped the way `TextFormat`
// (and protobuf's own parsers) read them back, floats as Swift prints them with nan/inf spelled as protobuf does.
//
//   [Field("key", .string("a\"b")), Field("value", .message([Field("offset_d", .int(3))]))]
//   ⟶  key: "a\"b"
//       value {
//         offset_d: 3
//       }

public enum TextFormatWriter {
    public indirect enum Value: Sendable {
        case string(String)
        case int(Int64)
        case float(Float)
        /// An enum value's name (written bare).
        case identifier(String)
        case message([Field])
    }

    public struct Field: Sendable {
        public var name: String
        public var value: Value
        public init(_ name: String, _ value: Value) {
            self.name = name
            self.value = value
        }
    }

    /// The fields as text lines, `indent` spaces deep, two more per nesting level.
    public static func lines(_ fields: [Field], indent: Int = 0) -> [String] {
        let pad = String(repeating: " ", count: indent)
        var lines: [String] = []
        for field in fields {
            switch field.value {
            case .message(let inner):
                lines.append("\(pad)\(field.name) {")
                lines += Self.lines(inner, indent: indent + 2)
                lines.append("\(pad)}")
            case .string(let s): lines.append("\(pad)\(field.name): \(quoted(s))")
            case .int(let i): lines.append("\(pad)\(field.name): \(i)")
            case .float(let x): lines.append("\(pad)\(field.name): \(number(x))")
            case .identifier(let id): lines.append("\(pad)\(field.name): \(id)")
            }
        }
        return lines
    }

    /// A float as the text format reads it: Swift's shortest round-trip form, nan, inf or -inf.
    public static func number(_ x: Float) -> String {
        x.isFinite ? "\(x)" : (x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf"))
    }

    /// `s` in double quotes: backslash, quotes and control characters escaped (octal), UTF-8 kept as it is.
    public static func quoted(_ s: String) -> String {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\\"), UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), byte]
            case 0x0A: out += Array("\\n".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0..<0x20, 0x7F: out += [UInt8(ascii: "\\"), 0x30 + byte >> 6, 0x30 + (byte >> 3) & 7, 0x30 + byte & 7]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
        return String(decoding: out, as: UTF8.self)
    }
}
