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
