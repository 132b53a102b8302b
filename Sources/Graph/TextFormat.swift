import CProtoSchemas
import CProtobufC
import Foundation

// A protobuf text-format reader driven by protobuf-c's descriptors: it fills any protobuf-c message from text (field
// offsets, quantifiers and oneof cases come from the descriptors, nothing from generated accessors), and builds
// beside it a Swift tree of the same values with their file:line:column. The filled message packs to the bytes
// Python's `text_format.Parse(...).SerializeToString()` gives, which the tests check.
//
// Accepted: `name: value`, `name { }`, `name: { }`, `name < >`, `#` comments, strings in '' or "" with escapes and
// adjacent-string joining, integers (decimal, 0x hex, 0 octal; range-checked), floats (`1e-3`, `2.5f`, `inf`, `nan`),
// bools (true/false/t/f/1/0), enums by name or number, repeated fields by repetition or `[a, b]`, `,`/`;` separators.
// Every unknown field is reported, not just the first; semantic errors are collected; a syntax error stops the read.

/// A place in a text file (1-based line and column).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }
    public var description: String { "\(file):\(line):\(column)" }
}

/// A value read from text, with the field's schema type.
public enum ProtoValue: Sendable, Equatable {
    case int(Int64)
    case uint(UInt64)
    case float(Float)
    case double(Double)
    case bool(Bool)
    case string(String)
    case bytes([UInt8])
    case enumValue(name: String, number: Int32)
    case message(ProtoMessage)
}

/// A field as the text set it: one value (singular) or several (repeated), each with where it stood.
public struct ProtoField: Sendable, Equatable {
    public var name: String
    public var number: Int
    public var isRepeated: Bool
    public var values: [ProtoValue]
    public var locations: [SourceLocation]
}

/// A message read from text: its set fields in the order of the text.
public struct ProtoMessage: Sendable, Equatable {
    public var typeName: String
    public var location: SourceLocation
    public var fields: [ProtoField]

    public func field(_ name: String) -> ProtoField? { fields.first { $0.name == name } }
    public func value(_ name: String) -> ProtoValue? { field(name)?.values.first }
    public func message(_ name: String) -> ProtoMessage? {
        if case .message(let m)? = value(name) { return m }
        return nil
    }
    public func location(_ name: String) -> SourceLocation { field(name)?.locations.first ?? location }
}

/// The schemas this build can read as text.
public enum TextSchema: Sendable {
    case amctRetrainConfig
    /// Caffe's `NetParameter` (a deploy.prototxt).
    case caffeNet

    var descriptor: UnsafePointer<ProtobufCMessageDescriptor> {
        // The generated init function stores the descriptor's address in the message it initializes.
        switch self {
        case .amctRetrainConfig:
            var message = Amct__AMCTRetrainConfig()
            amct__amctretrain_config__init(&message)
            return message.base.descriptor
        case .caffeNet:
            var message = Caffe__NetParameter()
            caffe__net_parameter__init(&message)
            return message.base.descriptor
        }
    }
}

/// The result of a read: the tree and the message packed in protobuf's binary form.
public struct ParsedText: Sendable {
    public var message: ProtoMessage
    public var serialized: [UInt8]
}

public enum TextFormat {
    public static func parse(_ text: String, file: String, schema: TextSchema) throws -> ParsedText {
        var parser = TextParser(text: text, file: file)
        return try parser.parseTop(schema.descriptor)
    }

    public static func parse(contentsOf path: String, schema: TextSchema) throws -> ParsedText {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TextFormatErrors(errors: [
                TextFormatError(kind: .syntax, location: SourceLocation(file: path, line: 0, column: 0), message: "cannot read the file")
            ])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TextFormatErrors(errors: [
                TextFormatError(kind: .syntax, location: SourceLocation(file: path, line: 1, column: 1), message: "the file is not UTF-8 text")
            ])
        }
        return try parse(text, file: path, schema: schema)
    }
}

// MARK: - Tokens

private struct Token {
    enum Kind: Equatable { case identifier, number, string, symbol, eof }
    var kind: Kind
    var text: String
    var bytes: [UInt8] = []  // decoded string contents
    var line: Int
    var column: Int
    /// The text as an error message shows it (escaped, long text cut).
    var shown: String { MessageText.name(text) }
}

private struct Tokenizer {
    let bytes: [UInt8]
    let file: String
    var index = 0
    var line = 1
    var column = 1

    init(text: String, file: String) {
        bytes = Array(text.utf8)
        self.file = file
    }

    func location(_ line: Int, _ column: Int) -> SourceLocation { SourceLocation(file: file, line: line, column: column) }

    private mutating func advance() {
        if bytes[index] == UInt8(ascii: "\n") {
            line += 1
            column = 1
        } else if bytes[index] & 0xC0 != 0x80 {
            column += 1
        }
        index += 1
    }

    mutating func next() throws -> Token {
        // Skip white space and comments.
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "#") {
                while index < bytes.count && bytes[index] != UInt8(ascii: "\n") { advance() }
            } else if c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0B || c == 0x0C {
                advance()
            } else {
                break
            }
        }
        let startLine = line
        let startColumn = column
        guard index < bytes.count else { return Token(kind: .eof, text: "", line: line, column: column) }
        let c = bytes[index]
        func isIdentStart(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F }
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        if isIdentStart(c) {
            let start = index
            while index < bytes.count && (isIdentStart(bytes[index]) || isDigit(bytes[index])) { advance() }
            return Token(kind: .identifier, text: String(decoding: bytes[start..<index], as: UTF8.self), line: startLine, column: startColumn)
        }
        if isDigit(c) || (c == UInt8(ascii: ".") && index + 1 < bytes.count && isDigit(bytes[index + 1])) {
            let start = index
            var previous: UInt8 = 0
            let isHex = c == UInt8(ascii: "0") && index + 1 < bytes.count && (bytes[index + 1] | 0x20) == UInt8(ascii: "x")
            while index < bytes.count {
                let d = bytes[index]
                let exponentSign = !isHex && (d == UInt8(ascii: "+") || d == UInt8(ascii: "-")) && (previous | 0x20) == UInt8(ascii: "e")
                guard isIdentStart(d) || isDigit(d) || d == UInt8(ascii: ".") || exponentSign else { break }
                previous = d
                advance()
            }
            return Token(kind: .number, text: String(decoding: bytes[start..<index], as: UTF8.self), line: startLine, column: startColumn)
        }
        if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
            return try string(quote: c, line: startLine, column: startColumn)
        }
        advance()
        return Token(kind: .symbol, text: String(UnicodeScalar(c)), line: startLine, column: startColumn)
    }

    private mutating func string(quote: UInt8, line startLine: Int, column startColumn: Int) throws -> Token {
        advance()
        var out: [UInt8] = []
        func fail(_ message: String) -> TextFormatErrors {
            TextFormatErrors(errors: [TextFormatError(kind: .syntax, location: location(startLine, startColumn), message: message)])
        }
        while true {
            guard index < bytes.count, bytes[index] != UInt8(ascii: "\n") else { throw fail("string is not closed on its line") }
            let c = bytes[index]
            advance()
            if c == quote { break }
            guard c == UInt8(ascii: "\\") else {
                out.append(c)
                continue
            }
            guard index < bytes.count else { throw fail("string ends in a backslash") }
            let e = bytes[index]
            advance()
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "a"): out.append(0x07)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "v"): out.append(0x0B)
            case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "?"): out.append(e)
            case UInt8(ascii: "x"):
                var value = 0
                var digits = 0
                while digits < 2, index < bytes.count, let h = hexValue(bytes[index]) {
                    value = value * 16 + h
                    digits += 1
                    advance()
                }
                guard digits > 0 else { throw fail("\\x needs a hex digit") }
                out.append(UInt8(value))
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var value = Int(e - 0x30)
                var digits = 1
                while digits < 3, index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x37 {
                    value = value * 8 + Int(bytes[index] - 0x30)
                    digits += 1
                    advance()
                }
                guard value < 256 else { throw fail("octal escape above \\377") }
                out.append(UInt8(value))
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                let count = e == UInt8(ascii: "u") ? 4 : 8
                var value: UInt32 = 0
                for _ in 0..<count {
                    guard index < bytes.count, let h = hexValue(bytes[index]) else { throw fail("\\\(UnicodeScalar(e)) needs \(count) hex digits") }
                    value = value * 16 + UInt32(h)
                    advance()
                }
                guard let scalar = UnicodeScalar(value) else { throw fail("\\\(UnicodeScalar(e)) names no character") }
                out += Array(String(Character(scalar)).utf8)
            default:
                throw fail("unknown escape \\\(UnicodeScalar(e))")
            }
        }
        return Token(kind: .string, text: String(decoding: out, as: UTF8.self), bytes: out, line: startLine, column: startColumn)
    }

    private func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case 0x30...0x39: return Int(c - 0x30)
        case 0x41...0x46: return Int(c - 0x41 + 10)
        case 0x61...0x66: return Int(c - 0x61 + 10)
        default: return nil
        }
    }
}

// MARK: - Parser

/// A syntax error ends the read at once.
private struct SyntaxStop: Error {}

private struct TextParser {
    var tokenizer: Tokenizer
    var token: Token
    var errors: [TextFormatError] = []
    /// Per message instance: field ids already set, for "a second value" and oneof checks.
    var setFields: [UnsafeMutableRawPointer: [UInt32: SourceLocation]] = [:]

    init(text: String, file: String) {
        tokenizer = Tokenizer(text: text, file: file)
        token = Token(kind: .eof, text: "", line: 1, column: 1)
    }

    var file: String { tokenizer.file }
    func location(_ t: Token) -> SourceLocation { tokenizer.location(t.line, t.column) }

    mutating func advance() throws {
        do {
            token = try tokenizer.next()
        } catch let e as TextFormatErrors {
            errors += e.errors
            throw SyntaxStop()
        }
    }

    mutating func syntax(_ message: String, at t: Token? = nil) -> SyntaxStop {
        errors.append(TextFormatError(kind: .syntax, location: location(t ?? token), message: message))
        return SyntaxStop()
    }

    mutating func report(_ kind: TextFormatError.Kind, _ message: String, at t: Token) {
        errors.append(TextFormatError(kind: kind, location: location(t), message: message))
    }

    func isSymbol(_ s: String) -> Bool { token.kind == .symbol && token.text == s }

    mutating func parseTop(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) throws -> ParsedText {
        let message = newMessage(descriptor)
        defer { protobuf_c_message_free_unpacked(message.assumingMemoryBound(to: ProtobufCMessage.self), nil) }
        var tree = ProtoMessage(typeName: String(cString: descriptor.pointee.name), location: SourceLocation(file: file, line: 1, column: 1), fields: [])
        do {
            try advance()
            try parseFields(into: message, descriptor, tree: &tree, closer: nil)
        } catch is SyntaxStop {
            throw TextFormatErrors(errors: errors)
        }
        if !errors.isEmpty { throw TextFormatErrors(errors: errors) }
        let base = message.assumingMemoryBound(to: ProtobufCMessage.self)
        var bytes = [UInt8](repeating: 0, count: protobuf_c_message_get_packed_size(base))
        _ = bytes.withUnsafeMutableBufferPointer { protobuf_c_message_pack(base, $0.baseAddress) }
        return ParsedText(message: tree, serialized: bytes)
    }

    func newMessage(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> UnsafeMutableRawPointer {
        let memory = calloc(1, descriptor.pointee.sizeof_message)!
        descriptor.pointee.message_init(memory.assumingMemoryBound(to: ProtobufCMessage.self))
        return memory
    }

    /// Fields until `closer` ("}" or ">") or, at the top, the end of the file.
    mutating func parseFields(
        into message: UnsafeMutableRawPointer, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
        tree: inout ProtoMessage, closer: String?
    ) throws {
        while true {
            if let closer, isSymbol(closer) { break }
            if token.kind == .eof {
                if let closer { throw syntax("the file ends inside a message: '\(closer)' expected") }
                break
            }
            guard token.kind == .identifier else {
                if token.kind == .symbol && token.text == "[" { throw syntax("extension fields ([name]) are not supported") }
                throw syntax("a field name is expected here, found '\(token.shown)'")
            }
            let nameToken = token
            try advance()
            guard let field = protobuf_c_message_descriptor_get_field_by_name(descriptor, nameToken.text) else {
                let known = (0..<Int(descriptor.pointee.n_fields)).map { String(cString: descriptor.pointee.fields[$0].name) }
                let hint = closest(nameToken.text, in: known).map { " (did you mean '\($0)'?)" } ?? ""
                report(.unknownField, "unknown field '\(nameToken.shown)' in \(String(cString: descriptor.pointee.name))\(hint)", at: nameToken)
                try skipValue()
                try skipSeparator()
                continue
            }
            try parseField(field, nameToken: nameToken, into: message, tree: &tree)
            try skipSeparator()
        }
        // Required fields.
        let set = setFields[message] ?? [:]
        for i in 0..<Int(descriptor.pointee.n_fields) {
            let f = descriptor.pointee.fields[i]
            if f.label == PROTOBUF_C_LABEL_REQUIRED && set[f.id] == nil {
                errors.append(TextFormatError(
                    kind: .missingRequired, location: tree.location,
                    message: "\(String(cString: descriptor.pointee.name)) is missing required field '\(String(cString: f.name))'"))
            }
        }
    }

    mutating func skipSeparator() throws {
        if isSymbol(",") || isSymbol(";") { try advance() }
    }

    mutating func parseField(
        _ field: UnsafePointer<ProtobufCFieldDescriptor>, nameToken: Token, into message: UnsafeMutableRawPointer,
        tree: inout ProtoMessage
    ) throws {
        let isMessage = field.pointee.type == PROTOBUF_C_TYPE_MESSAGE
        let repeated = field.pointee.label == PROTOBUF_C_LABEL_REPEATED
        var sawColon = false
        if isSymbol(":") {
            sawColon = true
            try advance()
        }
        if isSymbol("[") {
            guard repeated else {
                report(.wrongType, "'\(nameToken.shown)' is not repeated, so it takes no [list]", at: nameToken)
                try skipValue()
                return
            }
            try advance()
            if isSymbol("]") {
                try advance()
                return
            }
            while true {
                try parseOneValue(field, nameToken: nameToken, into: message, tree: &tree)
                if isSymbol(",") {
                    try advance()
                    continue
                }
                guard isSymbol("]") else { throw syntax("',' or ']' expected in the list of '\(nameToken.shown)'") }
                try advance()
                break
            }
            return
        }
        if !isMessage && !sawColon { throw syntax("':' expected after '\(nameToken.shown)'") }
        try parseOneValue(field, nameToken: nameToken, into: message, tree: &tree)
    }

    /// One value of `field` at the current token; stores it in the C message and in the tree.
    mutating func parseOneValue(
        _ field: UnsafePointer<ProtobufCFieldDescriptor>, nameToken: Token, into message: UnsafeMutableRawPointer,
        tree: inout ProtoMessage
    ) throws {
        let f = field.pointee
        let name = String(cString: f.name)
        let valueToken = token
        let value: ProtoValue?
        // A nested message belongs to this function until `store` hands it to the parent; any exit before frees it.
        var child: UnsafeMutableRawPointer?
        defer { if let child { protobuf_c_message_free_unpacked(child.assumingMemoryBound(to: ProtobufCMessage.self), nil) } }
        if f.type == PROTOBUF_C_TYPE_MESSAGE {
            guard isSymbol("{") || isSymbol("<") else { throw syntax("'{' expected to open message '\(name)'") }
            let closer = isSymbol("{") ? "}" : ">"
            try advance()
            let descriptor = f.descriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
            child = newMessage(descriptor)
            var subtree = ProtoMessage(typeName: String(cString: descriptor.pointee.name), location: location(nameToken), fields: [])
            try parseFields(into: child!, descriptor, tree: &subtree, closer: closer)
            try advance()  // the closer
            value = .message(subtree)
        } else {
            value = try scalar(field, name: name)
        }
        guard let value else { return }
        // Singular fields: once only, and one member per oneof.
        if f.label != PROTOBUF_C_LABEL_REPEATED {
            if let first = setFields[message]?[f.id] {
                report(.duplicateField, "'\(name)' is set a second time (first at \(first.line):\(first.column)); it is not repeated", at: nameToken)
                return
            }
            if f.flags & UInt32(PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue) != 0 {
                let current = message.load(fromByteOffset: Int(f.quantifier_offset), as: UInt32.self)
                if current != 0 && current != f.id {
                    let other = tree.fields.first { $0.number == Int(current) }?.name ?? "another member"
                    report(.oneofConflict, "'\(name)' and '\(other)' are members of one oneof; set only one", at: nameToken)
                    return
                }
            }
            setFields[message, default: [:]][f.id] = location(nameToken)
        }
        store(value, child: child, field: field, in: message)
        child = nil  // the parent owns it now
        let at = location(f.type == PROTOBUF_C_TYPE_MESSAGE ? nameToken : valueToken)
        if let i = tree.fields.firstIndex(where: { $0.number == Int(f.id) }) {
            tree.fields[i].values.append(value)
            tree.fields[i].locations.append(at)
        } else {
            tree.fields.append(ProtoField(
                name: name, number: Int(f.id), isRepeated: f.label == PROTOBUF_C_LABEL_REPEATED, values: [value], locations: [at]))
        }
        if f.label == PROTOBUF_C_LABEL_REPEATED { setFields[message, default: [:]][f.id] = at }
    }

    /// A scalar of the field's type at the current token (nil after reporting a semantic error).
    mutating func scalar(_ field: UnsafePointer<ProtobufCFieldDescriptor>, name: String) throws -> ProtoValue? {
        let f = field.pointee
        let start = token
        switch f.type {
        case PROTOBUF_C_TYPE_STRING, PROTOBUF_C_TYPE_BYTES:
            guard token.kind == .string else {
                try skipScalar()
                report(.wrongType, "'\(name)' takes a quoted string, not '\(start.shown)'", at: start)
                return nil
            }
            var bytes: [UInt8] = []
            while token.kind == .string {
                bytes += token.bytes
                try advance()
            }
            return f.type == PROTOBUF_C_TYPE_STRING ? .string(String(decoding: bytes, as: UTF8.self)) : .bytes(bytes)
        default:
            break
        }
        if token.kind == .string {
            try skipScalar()
            report(.wrongType, "'\(name)' takes \(typeDescription(f.type)), not the string \"\(start.shown)\"", at: start)
            return nil
        }
        // Number-like: optional '-', then a number or identifier.
        var negative = false
        if isSymbol("-") {
            negative = true
            try advance()
        }
        let t = token
        guard t.kind == .number || t.kind == .identifier else {
            throw syntax("a value is expected for '\(name)', found '\(t.shown)'")
        }
        try advance()
        let text = t.text
        switch f.type {
        case PROTOBUF_C_TYPE_FLOAT, PROTOBUF_C_TYPE_DOUBLE:
            var d: Double?
            let lower = text.lowercased()
            if t.kind == .identifier {
                if lower == "inf" || lower == "infinity" { d = .infinity } else if lower == "nan" { d = .nan }
            } else if !lower.hasPrefix("0x") && !(lower.count > 1 && lower.hasPrefix("0") && lower.allSatisfy(\.isNumber)) {
                // Decimal only, as protobuf's text format reads floats (no hex, no octal-looking 010).
                var body = text
                if body.hasSuffix("f") || body.hasSuffix("F") { body.removeLast() }
                d = Double(body)
            }
            guard var value = d else {
                report(.wrongType, "'\(name)' takes a number, not '\(negative ? "-" : "")\(MessageText.name(text))'", at: start)
                return nil
            }
            if negative { value = -value }
            return f.type == PROTOBUF_C_TYPE_FLOAT ? .float(Float(value)) : .double(value)
        case PROTOBUF_C_TYPE_BOOL:
            switch (t.kind, text) {
            case (.identifier, "true"), (.identifier, "True"), (.identifier, "t"), (.number, "1"): return negative ? badBool(name, start) : .bool(true)
            case (.identifier, "false"), (.identifier, "False"), (.identifier, "f"), (.number, "0"): return negative ? badBool(name, start) : .bool(false)
            default: return badBool(name, start)
            }
        case PROTOBUF_C_TYPE_ENUM:
            let e = f.descriptor.assumingMemoryBound(to: ProtobufCEnumDescriptor.self)
            let names = (0..<Int(e.pointee.n_values)).map { String(cString: e.pointee.values[$0].name) }
            if t.kind == .identifier && !negative {
                guard let v = protobuf_c_enum_descriptor_get_value_by_name(e, text) else {
                    report(.badEnumValue, "'\(MessageText.name(text))' is not a value of \(String(cString: e.pointee.name)) for '\(name)' (accepted: \(names.joined(separator: ", ")))", at: start)
                    return nil
                }
                return .enumValue(name: String(cString: v.pointee.name), number: v.pointee.value)
            }
            guard let i = parseInteger(text), let magnitude = Int64(exactly: i), let n = Int32(exactly: negative ? -magnitude : magnitude),
                let v = protobuf_c_enum_descriptor_get_value(e, n)
            else {
                report(.badEnumValue, "'\(negative ? "-" : "")\(MessageText.name(text))' is not a value of \(String(cString: e.pointee.name)) for '\(name)' (accepted: \(names.joined(separator: ", ")))", at: start)
                return nil
            }
            return .enumValue(name: String(cString: v.pointee.name), number: v.pointee.value)
        default:
            guard t.kind == .number, let magnitude = parseInteger(text) else {
                report(.wrongType, "'\(name)' takes an integer, not '\(negative ? "-" : "")\(MessageText.name(text))'", at: start)
                return nil
            }
            let signed = f.type == PROTOBUF_C_TYPE_INT32 || f.type == PROTOBUF_C_TYPE_SINT32 || f.type == PROTOBUF_C_TYPE_SFIXED32
                || f.type == PROTOBUF_C_TYPE_INT64 || f.type == PROTOBUF_C_TYPE_SINT64 || f.type == PROTOBUF_C_TYPE_SFIXED64
            let bits32 = f.type == PROTOBUF_C_TYPE_INT32 || f.type == PROTOBUF_C_TYPE_SINT32 || f.type == PROTOBUF_C_TYPE_SFIXED32
                || f.type == PROTOBUF_C_TYPE_UINT32 || f.type == PROTOBUF_C_TYPE_FIXED32
            if signed {
                let limit: UInt64 = bits32 ? 1 << 31 : 1 << 63
                guard magnitude < limit || (negative && magnitude == limit) else {
                    report(.outOfRange, "\(negative ? "-" : "")\(MessageText.name(text)) is out of range for '\(name)' (\(bits32 ? "int32" : "int64"))", at: start)
                    return nil
                }
                return .int(negative ? Int64(bitPattern: 0 &- magnitude) : Int64(magnitude))
            }
            guard !negative || magnitude == 0, magnitude <= (bits32 ? UInt64(UInt32.max) : UInt64.max) else {
                report(.outOfRange, "\(negative ? "-" : "")\(MessageText.name(text)) is out of range for '\(name)' (\(bits32 ? "uint32" : "uint64"))", at: start)
                return nil
            }
            return .uint(magnitude)
        }
    }

    func typeDescription(_ type: ProtobufCType) -> String {
        switch type {
        case PROTOBUF_C_TYPE_FLOAT, PROTOBUF_C_TYPE_DOUBLE: return "a number"
        case PROTOBUF_C_TYPE_BOOL: return "true or false"
        case PROTOBUF_C_TYPE_ENUM: return "an enum value"
        default: return "an integer"
        }
    }

    mutating func badBool(_ name: String, _ start: Token) -> ProtoValue? {
        report(.wrongType, "'\(name)' takes true or false, not '\(start.shown)'", at: start)
        return nil
    }

    /// Decimal, 0x hex or 0-leading octal; nil for anything else (floats included).
    func parseInteger(_ text: String) -> UInt64? {
        let lower = text.lowercased()
        if lower.hasPrefix("0x") { return UInt64(lower.dropFirst(2), radix: 16) }
        if lower.count > 1 && lower.hasPrefix("0") { return UInt64(lower.dropFirst(), radix: 8) }
        return UInt64(lower, radix: 10)
    }

    mutating func skipScalar() throws {
        if isSymbol("-") { try advance() }
        if token.kind == .string {
            while token.kind == .string { try advance() }
        } else if token.kind == .number || token.kind == .identifier {
            try advance()
        } else {
            throw syntax("a value is expected, found '\(token.shown)'")
        }
    }

    /// Skips what follows an unknown field name: `: scalar`, `: [..]`, `{..}` or `<..>`.
    mutating func skipValue() throws {
        if isSymbol(":") { try advance() }
        if isSymbol("{") || isSymbol("<") || isSymbol("[") {
            var depth = 0
            repeat {
                if isSymbol("{") || isSymbol("<") || isSymbol("[") { depth += 1 }
                if isSymbol("}") || isSymbol(">") || isSymbol("]") { depth -= 1 }
                if token.kind == .eof { throw syntax("the file ends inside a block") }
                try advance()
            } while depth > 0
        } else {
            try skipScalar()
        }
    }

    /// Writes a value into the C message at the field's offset (appending for repeated fields).
    func store(_ value: ProtoValue, child: UnsafeMutableRawPointer?, field: UnsafePointer<ProtobufCFieldDescriptor>, in message: UnsafeMutableRawPointer) {
        let f = field.pointee
        let size = elementSize(f.type)
        let slot: UnsafeMutableRawPointer
        if f.label == PROTOBUF_C_LABEL_REPEATED {
            let countPointer = message + Int(f.quantifier_offset)
            let count = countPointer.load(as: Int.self)
            let arrayPointer = message + Int(f.offset)
            let old = arrayPointer.load(as: UnsafeMutableRawPointer?.self)
            let grown = realloc(old, (count + 1) * size)!
            arrayPointer.storeBytes(of: grown, as: UnsafeMutableRawPointer?.self)
            countPointer.storeBytes(of: count + 1, as: Int.self)
            slot = grown + count * size
        } else {
            slot = message + Int(f.offset)
            if f.flags & UInt32(PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue) != 0 {
                (message + Int(f.quantifier_offset)).storeBytes(of: f.id, as: UInt32.self)
            } else if f.label == PROTOBUF_C_LABEL_OPTIONAL && f.type != PROTOBUF_C_TYPE_MESSAGE && f.type != PROTOBUF_C_TYPE_STRING {
                (message + Int(f.quantifier_offset)).storeBytes(of: Int32(1), as: Int32.self)
            }
        }
        switch value {
        case .int(let v):
            if size == 4 { slot.storeBytes(of: Int32(truncatingIfNeeded: v), as: Int32.self) } else { slot.storeBytes(of: v, as: Int64.self) }
        case .uint(let v):
            if size == 4 { slot.storeBytes(of: UInt32(truncatingIfNeeded: v), as: UInt32.self) } else { slot.storeBytes(of: v, as: UInt64.self) }
        case .float(let v): slot.storeBytes(of: v, as: Float.self)
        case .double(let v): slot.storeBytes(of: v, as: Double.self)
        case .bool(let v): slot.storeBytes(of: Int32(v ? 1 : 0), as: Int32.self)
        case .enumValue(_, let n): slot.storeBytes(of: n, as: Int32.self)
        case .string(let s):
            let c = strdup(s)
            slot.storeBytes(of: UnsafeMutableRawPointer(c), as: UnsafeMutableRawPointer?.self)
        case .bytes(let b):
            let data = malloc(max(b.count, 1))!
            b.withUnsafeBytes { data.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(data), byteCount: b.count) }
            slot.storeBytes(of: ProtobufCBinaryData(len: b.count, data: data.assumingMemoryBound(to: UInt8.self)), as: ProtobufCBinaryData.self)
        case .message:
            slot.storeBytes(of: child, as: UnsafeMutableRawPointer?.self)
        }
    }

    func elementSize(_ type: ProtobufCType) -> Int {
        switch type {
        case PROTOBUF_C_TYPE_INT64, PROTOBUF_C_TYPE_SINT64, PROTOBUF_C_TYPE_SFIXED64, PROTOBUF_C_TYPE_UINT64,
            PROTOBUF_C_TYPE_FIXED64, PROTOBUF_C_TYPE_DOUBLE:
            return 8
        case PROTOBUF_C_TYPE_STRING, PROTOBUF_C_TYPE_MESSAGE: return MemoryLayout<UnsafeRawPointer>.stride
        case PROTOBUF_C_TYPE_BYTES: return MemoryLayout<ProtobufCBinaryData>.stride
        default: return 4
        }
    }
}

/// The candidate nearest to `word` by edit distance, if it is near enough to be a likely typo.
public func closest(_ word: String, in candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let old = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = old
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }
    let w = Array(word.lowercased())
    let limit = max(2, w.count / 3)
    // The distance is at least the difference in length: a candidate that far off is not scored (a 4 MB word
    // against every field name would otherwise take minutes).
    let near = candidates.filter { abs($0.count - w.count) <= limit }
    // Ties go to the first name in sorted order, so the hint does not depend on the order of a dictionary's keys.
    let scored = near.map { ($0, distance(w, Array($0.lowercased()))) }.min { ($0.1, $0.0) < ($1.1, $1.0) }
    guard let (best, d) = scored, d <= limit else { return nil }
    return best
}
