// Fuzz target: the executor's prepare on structurally mutated graphs. The input bytes build a chain of up to three
// nodes of the registry's ops, with integer extremes in any attribute (INT64_MIN/MAX, ±2^62, 2^40, -1, 0, …; huge
// pads, strides, kernels, dims), constant int64 inputs of the same extremes, small float constants, absent optional
// inputs and a graph input of any shape. Planning must succeed or throw a typed error; a plan that succeeds on a small
// input then runs one batch of zeros, and a one-node graph also its gradient (the node's kernel forward, then backward
// from gradients of ones, as retraining calls it); each must succeed or throw. Nothing may trap.
import CLibFuzzer
import Foundation
import Graph
import Kernels
import Passes

/// The fuzz input read front to back; past its end every read is 0.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var at = 0
    mutating func next() -> Int {
        guard at < bytes.count else { return 0 }
        defer { at += 1 }
        return Int(bytes[at])
    }
    mutating func pick<T>(_ choices: [T]) -> T { choices[next() % choices.count] }
    var exhausted: Bool { at >= bytes.count }
}

let extremes: [Int64] = [
    0, 1, 2, 3, 4, -1, -2, -3, 7, 8, 64, 8000, 1 << 20, 1 << 31, -(1 << 31), (1 << 40) - 1, 1 << 40, -(1 << 40),
    1 << 62, -(1 << 62), .max, .min, .max - 1, .min + 1, 255, 16,
]
let inputDims: [Int64] = [1, 1, 2, 3, 4, 8, 0, 5, 16, 1 << 20, 1 << 31, 1 << 40, 1 << 62, .max]
let floatValues: [Float] = [0, 1, -1, 0.5, 2, 1e30, -1e30, .infinity, -.infinity, .nan, 3, 6]
let intAttributes = [
    "axis", "group", "to", "allowzero", "keepdims", "start", "end", "ceil_mode", "count_include_pad", "transA",
    "transB", "noop_with_empty_axes", "training_mode", "antialias", "bits", "offset", "exclude_outside",
    "select_last_index",
]
let intsAttributes = [
    "axes", "pads", "strides", "dilations", "kernel_shape", "perm", "split", "output_padding", "output_shape", "shape",
]
let floatAttributes = ["alpha", "beta", "epsilon", "min", "max", "value", "scale", "cubic_coeff_a", "extrapolation_value"]
let stringAttributes: [(String, [String])] = [
    ("mode", ["constant", "reflect", "edge", "wrap", "nearest", "linear", "cubic", "bogus", ""]),
    ("auto_pad", ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", "x"]),
    ("coordinate_transformation_mode",
     ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_crop_and_resize"]),
    ("nearest_mode", ["round_prefer_floor", "floor", "ceil", "round_prefer_ceil"]),
    ("approximate", ["none", "tanh", "x"]),
]
let opTypes = Array(Set(OperatorRegistry.standard.operators.map(\.opType))).sorted()
let opsets: [Int64] = [7, 9, 10, 11, 12, 13, 17, 18, 21]

func attributes(_ r: inout ByteReader) -> [Attribute] {
    var out: [Attribute] = []
    let count = r.next() % 6
    for _ in 0..<count {
        switch r.next() % 5 {
        case 0: out.append(.int(r.pick(intAttributes), r.pick(extremes)))
        case 1, 2:
            let name = r.pick(intsAttributes)
            out.append(.ints(name, (0..<(r.next() % 9)).map { _ in r.pick(extremes) }))
        case 3: out.append(.float(r.pick(floatAttributes), r.pick(floatValues)))
        default:
            let (name, values) = r.pick(stringAttributes)
            out.append(.string(name, r.pick(values)))
        }
    }
    if r.next() % 16 == 0 {  // a tensor `value` (Constant, ConstantOfShape)
        let dims: [Int64] = r.next() % 2 == 0 ? [] : [1]
        out.append(.tensor("value", Tensor(name: nil, dims: dims, floats: [r.pick(floatValues)])))
    }
    return out
}

/// The constants of the graph being built, as executor values (for the one-node gradient).
nonisolated(unsafe) var constants: [String: DenseTensor] = [:]

/// One input of a node: the graph input, an earlier node's output, an int64 or float constant, or absent ("").
func argument(_ r: inout ByteReader, _ graph: inout Graph, previous: String?, index: Int) -> String {
    let name = "c\(graph.initializers.count)"
    switch r.next() % 6 {
    case 0: return "x"
    case 1: return previous ?? "x"
    case 2, 3:
        let values = (0..<(r.next() % 9)).map { _ in r.pick(extremes) }
        let dims: [Int64] = r.next() % 4 == 0 && values.count == 1 ? [] : [Int64(values.count)]
        values.withUnsafeBytes { graph.setInitializer(Tensor(name: name, dataType: .int64, dims: dims, rawBytes: $0)) }
        constants[name] = DenseTensor(shape: dims.map { Int($0) }, ints: values)
        return name
    case 4:
        let dims = (0..<(r.next() % 4)).map { _ in Int64(r.pick([1, 2, 3, 4, 0])) }
        let count = Int(dims.reduce(1, *))
        let values = (0..<count).map { _ in r.pick(floatValues) }
        graph.setInitializer(Tensor(name: name, dims: dims, floats: values))
        constants[name] = DenseTensor(shape: dims.map { Int($0) }, floats: values)
        return name
    default: return index == 0 ? "x" : ""
    }
}

func model(_ r: inout ByteReader) -> (Graph, Int64, [Int]) {
    var graph = Graph(name: "fuzz")
    let rank = r.next() % 6
    let shape = (0..<rank).map { _ in r.pick(inputDims) }
    graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, shape))]
    var previous: String?
    let nodes = 1 + r.next() % 3
    for k in 0..<nodes where !r.exhausted || k == 0 {
        let op = r.pick(opTypes)
        let inputs = (0..<(1 + r.next() % 5)).map { argument(&r, &graph, previous: previous, index: $0) }
        let outputs = (0..<(1 + (r.next() % 8 == 0 ? r.next() % 3 : 0))).map { "y\(k).\($0)" }
        let node = Node(opType: op, name: "n\(k)", inputs: inputs, outputs: outputs, attributes: attributes(&r))
        _ = graph.appendNode(node)
        previous = outputs[0]
    }
    graph.outputs = [ValueInfo(name: previous, type: nil)]
    return (graph, r.pick(opsets), shape.map { Int(clamping: $0) })
}

/// A one-node graph's node prepared alone, run forward on `x`, then backward from output gradients of ones.
func gradient(_ graph: Graph, _ opset: Int64, _ x: DenseTensor) throws {
    guard graph.order.count == 1, let id = graph.order.first else { return }
    let node = graph[id]
    guard let op = OperatorRegistry.standard.lookup(domain: "", opType: node.op, opset: Int(opset)), op.hasGradient,
          node.inputs.allSatisfy({ $0.isEmpty || $0 == "x" || constants[$0] != nil }) else { return }
    let values: [DenseTensor?] = node.inputs.map { $0 == "x" ? x : constants[$0] }
    let specs: [TensorSpec?] = node.inputs.map { name in
        name == "x" ? TensorSpec(.float, x.shape) : constants[name].map { TensorSpec(constant: $0) }
    }
    let prepared = try op.prepare(OpContext(node: node, opset: Int(opset), inputs: specs))
    guard let kernel = prepared.kernel as? any DifferentiableKernel else { return }
    let pool = BufferPool()
    let outputs = try kernel.forward(values, pool)
    let ones = outputs.map { $0.isFloat ? DenseTensor(shape: $0.shape, floats: .init(repeating: 1, count: $0.count)) : nil }
    _ = try kernel.backward(inputs: values, outputs: outputs, outputGradients: ones, needs: values.map { $0 != nil }, pool)
}

func fuzzPrepare(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    var reader = ByteReader(bytes: UnsafeRawBufferPointer(start: data, count: size))
    constants = [:]
    let (graph, opset, shape) = model(&reader)
    do {
        let executor = try GraphExecutor(graph: graph, opset: opset)
        try executor.prepare(["x": TensorSpec(.float, shape)])
        // A plan that holds little memory runs one batch (its values at most 1 MiB, so a MatMul's work, at most the
        // product of its operands' and output's sizes to the power 1/2, stays fast).
        guard let bytes = executor.plannedBytes, bytes <= 1 << 20 else { return 0 }
        let x = DenseTensor(shape: shape, floats: [Float](repeating: 0.5, count: shape.reduce(1, *)))
        _ = try executor.run(["x": x])
        try gradient(graph, opset, x)
    } catch {
        _ = String(describing: error)
    }
    return 0
}

// Memory a plan may take: well under libFuzzer's -rss_limit_mb (2 GiB), and small enough that ASan's cost of
// allocating and freeing it stays under -timeout.
setenv(MemoryBudget.environmentVariable, "64M", 1)
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzzPrepare($0, $1) }))
