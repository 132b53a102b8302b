/// Text from an input file (a node, tensor or field name, a dtype) made safe to print in an error message: control
/// characters are escaped (`\n`, `\t`, `\x1b`, `\u{85}`), so a name cannot rewrite the terminal or forge lines, and a
/// name longer than `limit` characters is cut with "…" and its full length, so a 4 MB name is not echoed whole.
/// Every error type of the Graph module passes the names it prints through here.
public enum MessageText {
    public static let nameLimit = 200

    public static func name(_ text: String, limit: Int = nameLimit) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= limit {
                return out + "…(\(text.unicodeScalars.count) characters)"
            }
            out += escaped(scalar)
            count += 1
        }
        return out
    }

    /// A whole message: control characters other than the newlines between lines are escaped.
    public static func message(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { line in line.unicodeScalars.map(escaped).joined() }.joined(separator: "\n")
    }

    static func escaped(_ scalar: Unicode.Scalar) -> String {
        switch scalar.value {
        case 0x0A: return "\\n"
        case 0x09: return "\\t"
        case 0x0D: return "\\r"
        case 0x00..<0x20, 0x7F: return "\\x" + hex(scalar.value, digits: 2)
        case 0x80..<0xA0, 0x2028, 0x2029, 0xFEFF: return "\\u{" + hex(scalar.value, digits: 4) + "}"
        default: return String(scalar)
        }
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }
}
