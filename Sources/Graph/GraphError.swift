/// What can go wrong reading, checking or writing a model. Each message names the file, node or tensor.
public enum GraphError: Error, CustomStringConvertible, Equatable {
    case cannotRead(path: String, reason: String)
    case emptyFile(path: String)
    case notAModel(path: String)
    case noGraph(path: String)
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
        switch self {
        case .cannotRead(let path, let reason): return "cannot read \(path): \(reason)"
        case .emptyFile(let path): return "\(path) is empty: not an ONNX model"
        case .notAModel(let path):
            return "\(path) is not an ONNX model: its bytes do not parse as a ModelProto (truncated or another format?)"
        case .noGraph(let path): return "\(path) parses, but holds no graph: not an ONNX model"
        case .undefinedValue(let node, let value):
            return "node '\(node)' reads '\(value)', which no node, initializer or graph input produces"
        case .notTopologicallySorted(let node, let value):
            return "node '\(node)' reads '\(value)' before the node that produces it (graph is not topologically sorted)"
        case .duplicateProducer(let value, let first, let second):
            return "value '\(value)' is produced twice, by '\(first)' and by '\(second)'"
        case .cycle(let nodes): return "the graph has a cycle through \(nodes.joined(separator: ", "))"
        case .duplicateInitializer(let name): return "two initializers are named '\(name)'"
        case .unnamedInitializer(let index): return "initializer #\(index) has no name"
        case .tensorSize(let tensor, let detail): return "tensor '\(tensor)': \(detail)"
        case .externalData(let tensor, let detail): return "external data of tensor '\(tensor)': \(detail)"
        case .cannotWrite(let path, let reason): return "cannot write \(path): \(reason)"
        case .outputIsInput(let path):
            return "the output \(path) is the input model; amct-pipe never overwrites its input (choose another -o)"
        case .tooLarge(let bytes):
            return "the model would be \(bytes) bytes, over protobuf's 2 GiB limit, even with large tensors in external data"
        }
    }
}
