// The Graph module's errors, in one file (the Caffe reader's are in Caffe/CaffeError.swift): reading, checking and
// writing a model (GraphError), .npy/.npz arrays (NumpyError), text-format files (TextFormatError), and a file that
// would be written over another (FileRoleError).

/// What can go wrong reading, checking or writing a model. Each message names the file, node or tensor.
public enum GraphError: Error, CustomStringConvertible, Equatable {
    case cannotRead(path: String, reason: String)
    case emptyFile(path: String)
    case notAModel(path: String)
    case noGraph(path: String)
    case malformed(path: String, detail: String)
    case undefinedValue(node: String, value: String)
    case notTopologicallySorted(node: String, value: String)
    case duplicateProducer(value: String, first: String, second: String)
    case cycle(nodes: [String])
    case duplicateInitializer(name: String)
    case unnamedInitializer(index: Int)
    case tensorSize(tensor: String, detail: String)
    case externalData(tensor: String, detail: String)
    case cannotWrite(path: String, reason: String)
    case outputIsInput(path: String)
    case tooLarge(bytes: Int)

    public var description: String {
        let n = { (s: String) in MessageText.name(s) }
        let f = { (s: String) in MessageText.name(s, limit: 4096) }
        switch self {
        case .cannotRead(let path, let reason): return "cannot read \(f(path)): \(MessageText.message(reason))"
        case .emptyFile(let path): return "\(f(path)) is empty: not an ONNX model"
        case .notAModel(let path):
            return "\(f(path)) is not an ONNX model: its bytes do not parse as a ModelProto (truncated or another format?)"
        case .malformed(let path, let detail):
            return "\(f(path)) is not a valid ONNX model: \(MessageText.message(detail))"
        case .noGraph(let path): return "\(f(path)) parses, but holds no graph: not an ONNX model"
        case .undefinedValue(let node, let value):
            return "node '\(n(node))' reads '\(n(value))', which no node, initializer or graph input produces"
        case .notTopologicallySorted(let node, let value):
            return "node '\(n(node))' reads '\(n(value))' before the node that produces it (graph is not topologically sorted)"
        case .duplicateProducer(let value, let first, let second):
            return "value '\(n(value))' is produced twice, by '\(n(first))' and by '\(n(second))'"
        case .cycle(let nodes):
            let shown = nodes.prefix(20).map(n).joined(separator: ", ")
            return "the graph has a cycle through \(shown)\(nodes.count > 20 ? ", … (\(nodes.count) nodes)" : "")"
        case .duplicateInitializer(let name): return "two initializers are named '\(n(name))'"
        case .unnamedInitializer(let index): return "initializer #\(index) has no name"
        case .tensorSize(let tensor, let detail): return "tensor '\(n(tensor))': \(MessageText.message(detail))"
        case .externalData(let tensor, let detail):
            return "external data of tensor '\(n(tensor))': \(MessageText.message(detail))"
        case .cannotWrite(let path, let reason): return "cannot write \(f(path)): \(MessageText.message(reason))"
        case .outputIsInput(let path):
            return "the output \(f(path)) is the input model; amct-pipe never overwrites its input (choose another -o)"
        case .tooLarge(let bytes):
            return "the model would be \(bytes) bytes, over protobuf's 2 GiB limit, even with large tensors in external data"
        }
    }
}

/// An .npy or .npz file that cannot be read or written: the path and why.
public struct NumpyError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(MessageText.message(message))" }
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
}

/// One problem in a text-format file.
public struct TextFormatError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case syntax, unknownField, badEnumValue, wrongType, outOfRange, duplicateField, oneofConflict, missingRequired
    }
    public var kind: Kind
    public var location: SourceLocation
    public var message: String
    public var description: String { "\(location): \(MessageText.message(message))" }
}

/// All the problems found in one file (at least one).
public struct TextFormatErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [TextFormatError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// An output that would replace an input (or another output).
public struct FileRoleError: Error, CustomStringConvertible, Sendable {
    public var output: FileRoles.Role
    public var other: FileRoles.Role
    public var otherIsInput: Bool

    public var description: String {
        let what = "\(output.what) \(output.path)", which = "\(other.what) \(other.path)"
        if otherIsInput {
            return "\(what) is \(which); amct-pipe never overwrites an input: choose another path"
        }
        return "\(what) and \(which) are one file; give them different paths"
    }
}
