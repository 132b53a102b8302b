import Foundation
import Graph
import Kernels

/// Runs a graph in float32 on the CPU for calibration: nodes in order, each op through the kernels, every
/// intermediate freed as soon as its last reader ran. An op it cannot run is an error before any work starts.
public struct GraphExecutor {
    public static let supportedOps: Set<String> = [
        "Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh",
        "HardSigmoid", "HardSwish", "Erf", "Gelu", "Softmax", "LayerNormalization", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt",
        "Exp", "Neg", "Abs", "Reciprocal", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape",
        "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze", "Shape", "Gather", "Cast", "Constant",
        "ConstantOfShape", "Identity", "Dropout", "Pad", "ReduceMean", "Where", "Expand", "Range", "Equal", "Less", "Greater",
        "Resize",
    ]

    public let graph: Graph
    public let opset: Int64
    private var lastUse: [String: Int] = [:]

    public init(graph: Graph, opset: Int64) throws {
        self.graph = graph
        self.opset = opset
        for (position, id) in graph.order.enumerated() {
            let node = graph[id]
            if node.op == "QuantizeLinear" || node.op == "DequantizeLinear" {
                throw PassError(node: node.displayName, "the model is already quantized (\(node.op)); calibrate the float model")
            }
            guard node.isDefaultDomain, Self.supportedOps.contains(node.op) else {
                throw PassError(node: node.displayName, "op \(node.domain.map { $0.isEmpty ? "" : "\($0)." } ?? "")\(node.op) (opset \(opset)) is not one the calibration executor runs")
            }
            for v in node.inputs where !v.isEmpty { lastUse[v] = position }
        }
        for o in graph.outputs { if let n = o.name { lastUse[n] = Int.max } }
    }

    /// Runs one batch. `observe` names values to hand to `onValue` when produced; returns the graph outputs.
    public func run(_ inputs: [String: DenseTensor], observe: Set<String> = [], onValue: (String, DenseTensor) -> Void = { _, _ in }) throws -> [String: DenseTensor] {
        var values = inputs
        for name in observe { if let v = inputs[name] { onValue(name, v) } }
        func value(_ name: String) throws -> DenseTensor? {
            if name.isEmpty { return nil }
            if let v = values[name] { return v }
            if let t = graph.initializers[name] { return try dense(t) }
            throw PassError(node: name, "value is not available (a graph input without data?)")
        }
        for (position, id) in graph.order.enumerated() {
            let node = graph[id]
            let args = try node.inputs.map(value)
            let results: [DenseTensor]
            do {
                results = try evaluate(node, args)
            } catch let e as KernelError {
                throw PassError(node: node.displayName, "\(node.op): \(e.message)")
            }
            for (name, result) in zip(node.outputs, results) where !name.isEmpty {
                values[name] = result
                if observe.contains(name) { onValue(name, result) }
            }
            for v in node.inputs where lastUse[v] == position && inputs[v] == nil { values[v] = nil }
        }
        var outputs: [String: DenseTensor] = [:]
        for o in graph.outputs {
            guard let n = o.name else { continue }
            if let v = values[n] {
                outputs[n] = v
            } else if let t = graph.initializers[n], t.dataType != .string {
                outputs[n] = try dense(t)
            }
        }
        return outputs
    }

    func dense(_ t: Tensor) throws -> DenseTensor {
        let shape = t.dims.map(Int.init)
        switch t.dataType {
        case .float: return DenseTensor(shape: shape, floats: t.floatArray)
        case .float16: return DenseTensor(shape: shape, floats: t.withElements(as: Float16.self) { $0.map(Float.init) })
        case .double: return DenseTensor(shape: shape, floats: t.withElements(as: Double.self) { $0.map(Float.init) })
        case .int64, .int32: return DenseTensor(shape: shape, ints: t.int64Array!)
        case .int8: return DenseTensor(shape: shape, ints: t.withElements(as: Int8.self) { $0.map(Int64.init) })
        case .uint8: return DenseTensor(shape: shape, ints: t.withElements(as: UInt8.self) { $0.map(Int64.init) })
        case .bool: return DenseTensor(shape: shape, bools: t.withElements(as: UInt8.self) { $0.map { $0 != 0 } })
        default: throw KernelError("tensor '\(t.name ?? "")' of type \(t.dataType) is not read by the executor")
        }
    }

    // MARK: Ops

    func evaluate(_ node: Node, _ a: [DenseTensor?]) throws -> [DenseTensor] {
        func input(_ i: Int) throws -> DenseTensor {
            guard i < a.count, let v = a[i] else { throw KernelError("input \(i) is missing") }
            return v
        }
        func ints(_ name: String) -> [Int]? { node.ints(name).map { $0.map(Int.init) } }
        func unary(_ f: (Float) -> Float) throws -> [DenseTensor] {
            let x = try input(0)
            return [DenseTensor(shape: x.shape, floats: x.floats.map(f))]
        }
        func window(_ x: DenseTensor, kernel: [Int]) throws -> NeuralOps.Window {
            let spatial = x.shape.count - 2
            guard spatial == 1 || spatial == 2 else { throw KernelError("\(spatial)-D windows are not run (1-D and 2-D are)") }
            let k = spatial == 1 ? [1] + kernel : kernel
            let s = ints("strides").map { spatial == 1 ? [1] + $0 : $0 } ?? [1, 1]
            let d = ints("dilations").map { spatial == 1 ? [1] + $0 : $0 } ?? [1, 1]
            var p = ints("pads").map { spatial == 1 ? [0, $0[0], 0, $0[1]] : [$0[0], $0[1], $0[2], $0[3]] } ?? [0, 0, 0, 0]
            let autoPad = node.string("auto_pad") ?? "NOTSET"
            if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
                let dims = spatial == 1 ? [1, x.shape[2]] : [x.shape[2], x.shape[3]]
                for i in 0..<2 {
                    let out = (dims[i] + s[i] - 1) / s[i]
                    let total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - dims[i])
                    let small = total / 2, big = total - small
                    p[i] = autoPad == "SAME_UPPER" ? small : big
                    p[i + 2] = autoPad == "SAME_UPPER" ? big : small
                }
            } else if autoPad == "VALID" {
                p = [0, 0, 0, 0]
            }
            return NeuralOps.Window(kernel: (k[0], k[1]), strides: (s[0], s[1]), dilations: (d[0], d[1]), pads: (p[0], p[1], p[2], p[3]))
        }
        func as4D(_ x: DenseTensor) -> [Int] { x.shape.count == 3 ? [x.shape[0], x.shape[1], 1, x.shape[2]] : x.shape }
        func from4D(_ shape: [Int], like x: DenseTensor) -> [Int] { x.shape.count == 3 ? [shape[0], shape[1], shape[3]] : shape }
        func binary(_ f: @escaping (Float, Float) -> Float) throws -> [DenseTensor] {
            let x = try input(0), y = try input(1)
            if !x.isFloat && !y.isFloat {
                // Integer tensors (shape arithmetic) stay exact in Int64.
                let op: (Int64, Int64) -> Int64
                switch node.op {
                case "Add": op = (+)
                case "Sub": op = (-)
                case "Mul": op = (*)
                case "Div": op = { $1 == 0 ? 0 : $0 / $1 }
                default: op = { Int64(f(Float($0), Float($1))) }
                }
                let (v, s) = try Elementwise.binary(x.ints, x.shape, y.ints, y.shape, op)
                return [DenseTensor(shape: s, ints: v)]
            }
            let (v, s) = try Elementwise.binary(x.floats, x.shape, y.floats, y.shape, f)
            return [DenseTensor(shape: s, floats: v)]
        }
        func compare(_ f: (Float, Float) -> Bool) throws -> [DenseTensor] {
            let x = try input(0), y = try input(1)
            let (v, s) = try Elementwise.binary(x.floats, x.shape, y.floats, y.shape, f)
            return [DenseTensor(shape: s, bools: v)]
        }
        func axesInput(_ i: Int, attribute: String = "axes") -> [Int]? {
            if i < a.count, let t = a[i] { return t.ints.map(Int.init) }
            return ints(attribute)
        }
        func reshaped(_ x: DenseTensor, _ shape: [Int]) -> DenseTensor {
            var y = x
            y.shape = shape
            return y
        }

        switch node.op {
        case "Identity", "Dropout":
            return [try input(0)]
        case "Constant":
            guard let t = Graph.constantNodeValue(node) else { throw KernelError("Constant without a value") }
            return [try dense(t)]
        case "Relu": return try unary { max($0, 0) }
        case "LeakyRelu":
            let alpha = node.float("alpha") ?? 0.01
            return try unary { $0 >= 0 ? $0 : alpha * $0 }
        case "Sigmoid": return try unary { 1 / (1 + expf(-$0)) }
        case "Tanh": return try unary { tanhf($0) }
        case "HardSigmoid":
            let alpha = node.float("alpha") ?? 0.2, beta = node.float("beta") ?? 0.5
            return try unary { max(0, min(1, alpha * $0 + beta)) }
        case "HardSwish": return try unary { $0 * max(0, min(1, $0 / 6 + 0.5)) }
        case "Erf": return try unary(Elementwise.erf)
        case "Gelu":
            let tanhApprox = node.string("approximate") == "tanh"
            return try unary { Elementwise.gelu($0, tanhApproximation: tanhApprox) }
        case "Sqrt": return try unary { $0.squareRoot() }
        case "Exp": return try unary { expf($0) }
        case "Neg": return try unary { -$0 }
        case "Abs": return try unary { abs($0) }
        case "Reciprocal": return try unary { 1 / $0 }
        case "Clip":
            let lo = a.count > 1 ? a[1]?.floats.first : node.float("min")
            let hi = a.count > 2 ? a[2]?.floats.first : node.float("max")
            let l = lo ?? -.infinity, h = hi ?? .infinity
            return try unary { min(max($0, l), h) }
        case "Add": return try binary(+)
        case "Sub": return try binary(-)
        case "Mul": return try binary(*)
        case "Div": return try binary(/)
        case "Pow": return try binary { powf($0, $1) }
        case "Equal": return try compare(==)
        case "Less": return try compare(<)
        case "Greater": return try compare(>)
        case "Where":
            let c = try input(0), x = try input(1), y = try input(2)
            let cb: [Bool]
            if case .bool(let b) = c.elements { cb = b } else { cb = c.ints.map { $0 != 0 } }
            let shape = try Elementwise.broadcastShape(try Elementwise.broadcastShape(c.shape, x.shape), y.shape)
            let xf = x.floats, yf = y.floats
            var out = [Float]()
            out.reserveCapacity(shape.reduce(1, *))
            Elementwise.forEachBroadcast(shape, [c.shape, x.shape, y.shape]) { _, o in out.append(cb[o[0]] ? xf[o[1]] : yf[o[2]]) }
            if !x.isFloat && !y.isFloat { return [DenseTensor(shape: shape, ints: out.map { Int64($0) })] }
            return [DenseTensor(shape: shape, floats: out)]
        case "Conv":
            let x = try input(0), w = try input(1)
            guard w.shape.count == 3 || w.shape.count == 4 else { throw KernelError("only 1-D and 2-D convolutions are run") }
            let w4 = w.shape.count == 3 ? [w.shape[0], w.shape[1], 1, w.shape[2]] : w.shape
            let win = try window(x, kernel: Array(w.shape.dropFirst(2)))
            let (v, s) = try NeuralOps.conv2d(x.floats, as4D(x), w.floats, w4, bias: a.count > 2 ? a[2]?.floats : nil, window: win, group: Int(node.int("group") ?? 1))
            return [DenseTensor(shape: from4D(s, like: x), floats: v)]
        case "ConvTranspose":
            let x = try input(0), w = try input(1)
            guard w.shape.count == 4, node.ints("output_shape") == nil else { throw KernelError("only 2-D ConvTranspose without output_shape is run") }
            let win = try window(x, kernel: Array(w.shape.dropFirst(2)))
            let op = ints("output_padding") ?? [0, 0]
            let (v, s) = try NeuralOps.convTranspose2d(x.floats, x.shape, w.floats, w.shape, bias: a.count > 2 ? a[2]?.floats : nil, window: win, group: Int(node.int("group") ?? 1), outputPadding: (op[0], op[1]))
            return [DenseTensor(shape: s, floats: v)]
        case "Gemm":
            let x = try input(0), w = try input(1)
            let c = a.count > 2 ? a[2].map { ($0.floats, $0.shape) } : nil
            let (v, s) = try NeuralOps.gemm(x.floats, x.shape, w.floats, w.shape, c: c, alpha: node.float("alpha") ?? 1, beta: node.float("beta") ?? 1,
                                            transA: (node.int("transA") ?? 0) == 1, transB: (node.int("transB") ?? 0) == 1)
            return [DenseTensor(shape: s, floats: v)]
        case "MatMul":
            let x = try input(0), w = try input(1)
            let (v, s) = try NeuralOps.matmul(x.floats, x.shape, w.floats, w.shape)
            return [DenseTensor(shape: s, floats: v)]
        case "BatchNormalization":
            let x = try input(0)
            let v = NeuralOps.batchNorm(x.floats, x.shape, scale: try input(1).floats, bias: try input(2).floats, mean: try input(3).floats,
                                        variance: try input(4).floats, epsilon: node.float("epsilon") ?? 1e-5)
            return [DenseTensor(shape: x.shape, floats: v)]
        case "MaxPool", "AveragePool":
            let x = try input(0)
            guard let kernel = ints("kernel_shape") else { throw KernelError("no kernel_shape") }
            let win = try window(x, kernel: kernel)
            let (v, s) = NeuralOps.pool2d(x.floats, as4D(x), window: win, max: node.op == "MaxPool", ceilMode: (node.int("ceil_mode") ?? 0) == 1,
                                          countIncludePad: (node.int("count_include_pad") ?? 0) == 1)
            return [DenseTensor(shape: from4D(s, like: x), floats: v)]
        case "GlobalAveragePool", "GlobalMaxPool":
            let x = try input(0)
            let (v, s) = NeuralOps.globalPool(x.floats, x.shape, max: node.op == "GlobalMaxPool")
            return [DenseTensor(shape: s, floats: v)]
        case "Softmax":
            let x = try input(0)
            let axis = try normalizedAxis(Int(node.int("axis") ?? (opset >= 13 ? -1 : 1)), rank: x.shape.count)
            return [DenseTensor(shape: x.shape, floats: NeuralOps.softmax(x.floats, x.shape, axis: axis, coerce2D: opset < 13))]
        case "LayerNormalization":
            let x = try input(0)
            let axis = try normalizedAxis(Int(node.int("axis") ?? -1), rank: x.shape.count)
            return [DenseTensor(shape: x.shape, floats: NeuralOps.layerNorm(x.floats, x.shape, axis: axis, epsilon: node.float("epsilon") ?? 1e-5,
                                                                           scale: try input(1).floats, bias: a.count > 2 ? a[2]?.floats : nil))]
        case "Flatten":
            let x = try input(0)
            let axis = try normalizedAxis(Int(node.int("axis") ?? 1), rank: x.shape.count + 1)
            return [reshaped(x, [x.shape[..<axis].reduce(1, *), x.shape[axis...].reduce(1, *)])]
        case "Reshape":
            let x = try input(0)
            var target = try input(1).ints.map(Int.init)
            let allowZero = (node.int("allowzero") ?? 0) == 1
            for i in target.indices where target[i] == 0 && !allowZero { target[i] = x.shape[i] }
            if let m = target.firstIndex(of: -1) {
                let known = target.enumerated().filter { $0.offset != m }.reduce(1) { $0 * $1.element }
                target[m] = known == 0 ? 0 : x.count / known
            }
            guard target.reduce(1, *) == x.count else { throw KernelError("cannot reshape \(x.shape) to \(target)") }
            return [reshaped(x, target)]
        case "Squeeze":
            let x = try input(0)
            let axes = try (axesInput(1) ?? x.shape.indices.filter { x.shape[$0] == 1 }).map { try normalizedAxis($0, rank: x.shape.count) }
            return [reshaped(x, x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))]
        case "Unsqueeze":
            let x = try input(0)
            guard let raw = axesInput(1) else { throw KernelError("no axes") }
            let rank = x.shape.count + raw.count
            let axes = try raw.map { try normalizedAxis($0, rank: rank) }.sorted()
            var shape = x.shape
            for ax in axes { shape.insert(1, at: ax) }
            return [reshaped(x, shape)]
        case "Transpose":
            let x = try input(0)
            let perm = ints("perm") ?? Array(x.shape.indices.reversed())
            switch x.elements {
            case .float(let f): let (v, s) = ShapeOps.transpose(f, x.shape, perm: perm); return [DenseTensor(shape: s, floats: v)]
            case .int64(let i): let (v, s) = ShapeOps.transpose(i, x.shape, perm: perm); return [DenseTensor(shape: s, ints: v)]
            case .bool(let b): let (v, s) = ShapeOps.transpose(b, x.shape, perm: perm); return [DenseTensor(shape: s, bools: v)]
            }
        case "Concat":
            let parts = try a.compactMap { $0 }.filter { $0.count > 0 || $0.shape.count > 0 }
            guard let first = parts.first else { throw KernelError("no inputs") }
            let axis = try normalizedAxis(Int(node.int("axis") ?? 0), rank: first.shape.count)
            if parts.allSatisfy({ !$0.isFloat }) {
                let (v, s) = ShapeOps.concat(parts.map { ($0.ints, $0.shape) }, axis: axis)
                return [DenseTensor(shape: s, ints: v)]
            }
            let (v, s) = ShapeOps.concat(parts.map { ($0.floats, $0.shape) }, axis: axis)
            return [DenseTensor(shape: s, floats: v)]
        case "Split":
            let x = try input(0)
            let axis = try normalizedAxis(Int(node.int("axis") ?? 0), rank: x.shape.count)
            let n = node.outputs.count
            let sizes = axesInput(1, attribute: "split") ?? {
                let each = (x.shape[axis] + n - 1) / n
                return (0..<n).map { min(each, x.shape[axis] - $0 * each) }
            }()
            var start = 0
            return sizes.map { size in
                var starts = [Int](repeating: 0, count: x.shape.count), counts = x.shape
                starts[axis] = start
                counts[axis] = size
                start += size
                let steps = [Int](repeating: 1, count: x.shape.count)
                return x.isFloat ? DenseTensor(shape: counts, floats: ShapeOps.slice(x.floats, x.shape, starts: starts, steps: steps, counts: counts))
                    : DenseTensor(shape: counts, ints: ShapeOps.slice(x.ints, x.shape, starts: starts, steps: steps, counts: counts))
            }
        case "Slice":
            let x = try input(0)
            let starts = try input(1).ints, ends = try input(2).ints
            let axes = try (a.count > 3 ? a[3]?.ints : nil)?.map { try normalizedAxis(Int($0), rank: x.shape.count) } ?? Array(0..<starts.count)
            let stepsIn = (a.count > 4 ? a[4]?.ints : nil) ?? Array(repeating: 1, count: starts.count)
            var st = [Int](repeating: 0, count: x.shape.count), steps = [Int](repeating: 1, count: x.shape.count), counts = x.shape
            for (i, ax) in axes.enumerated() {
                let dim = x.shape[ax], step = Int(stepsIn[i])
                guard step != 0 else { throw KernelError("a step of 0") }
                func clampIndex(_ v: Int64, _ lo: Int, _ hi: Int) -> Int {
                    let v = v < 0 ? Int(max(v + Int64(dim), Int64(Int.min / 2))) : Int(min(v, Int64(Int.max / 2)))
                    return min(max(v, lo), hi)
                }
                let s = step > 0 ? clampIndex(starts[i], 0, dim) : clampIndex(starts[i], 0, dim - 1)
                let e = step > 0 ? clampIndex(ends[i], 0, dim) : clampIndex(ends[i], -1, dim - 1)
                st[ax] = s
                steps[ax] = step
                counts[ax] = step > 0 ? max(0, (e - s + step - 1) / step) : max(0, (s - e + (-step) - 1) / (-step))
            }
            return [x.isFloat ? DenseTensor(shape: counts, floats: ShapeOps.slice(x.floats, x.shape, starts: st, steps: steps, counts: counts))
                    : DenseTensor(shape: counts, ints: ShapeOps.slice(x.ints, x.shape, starts: st, steps: steps, counts: counts))]
        case "Shape":
            let x = try input(0)
            let rank = x.shape.count
            var start = Int(node.int("start") ?? 0), end = Int(node.int("end") ?? Int64(rank))
            if start < 0 { start += rank }
            if end < 0 { end += rank }
            start = min(max(start, 0), rank)
            end = min(max(end, start), rank)
            let dims = x.shape[start..<end].map(Int64.init)
            return [DenseTensor(shape: [dims.count], ints: dims)]
        case "Gather":
            let x = try input(0), idx = try input(1)
            let axis = try normalizedAxis(Int(node.int("axis") ?? 0), rank: x.shape.count)
            if x.isFloat {
                let (v, s) = try ShapeOps.gather(x.floats, x.shape, indices: idx.ints, indicesShape: idx.shape, axis: axis)
                return [DenseTensor(shape: s, floats: v)]
            }
            let (v, s) = try ShapeOps.gather(x.ints, x.shape, indices: idx.ints, indicesShape: idx.shape, axis: axis)
            return [DenseTensor(shape: s, ints: v)]
        case "Cast":
            let x = try input(0)
            switch DataType(rawValue: Int32(node.int("to") ?? 1)) {
            case .float, .float16, .double: return [DenseTensor(shape: x.shape, floats: x.floats)]
            case .bool: return [DenseTensor(shape: x.shape, bools: x.floats.map { $0 != 0 })]
            default: return [DenseTensor(shape: x.shape, ints: x.ints)]
            }
        case "ConstantOfShape":
            let shape = try input(0).ints.map(Int.init)
            if let t = node.attribute("value")?.t, t.dataType != .float {
                return [DenseTensor(shape: shape, ints: Array(repeating: t.int64Array?.first ?? 0, count: shape.reduce(1, *)))]
            }
            let v = node.attribute("value")?.t?.floatArray.first ?? 0
            return [DenseTensor(shape: shape, floats: Array(repeating: v, count: shape.reduce(1, *)))]
        case "Expand":
            let x = try input(0)
            let shape = try Elementwise.broadcastShape(x.shape, try input(1).ints.map(Int.init))
            return [x.isFloat ? DenseTensor(shape: shape, floats: Elementwise.expand(x.floats, x.shape, to: shape))
                    : DenseTensor(shape: shape, ints: Elementwise.expand(x.ints, x.shape, to: shape))]
        case "Range":
            let s = try input(0), l = try input(1), d = try input(2)
            if s.isFloat {
                let (a0, b0, c0) = (s.floats[0], l.floats[0], d.floats[0])
                let n = max(0, Int(((b0 - a0) / c0).rounded(.up)))
                return [DenseTensor(shape: [n], floats: (0..<n).map { a0 + Float($0) * c0 })]
            }
            let (a0, b0, c0) = (s.ints[0], l.ints[0], d.ints[0])
            let n = max(0, Int((Double(b0 - a0) / Double(c0)).rounded(.up)))
            return [DenseTensor(shape: [n], ints: (0..<n).map { a0 + Int64($0) * c0 })]
        case "Pad":
            let x = try input(0)
            guard (node.string("mode") ?? "constant") == "constant" else { throw KernelError("only constant padding is run") }
            var pads = axesInput(1, attribute: "pads") ?? []
            let value = (a.count > 2 ? a[2]?.floats.first : nil) ?? node.float("value") ?? 0
            if a.count > 3, let axesT = a[3] {
                let axes = try axesT.ints.map { try normalizedAxis(Int($0), rank: x.shape.count) }
                var full = [Int](repeating: 0, count: 2 * x.shape.count)
                for (i, ax) in axes.enumerated() {
                    full[ax] = pads[i]
                    full[ax + x.shape.count] = pads[i + axes.count]
                }
                pads = full
            }
            let (v, s) = ShapeOps.pad(x.floats, x.shape, pads: pads, value: value)
            return [DenseTensor(shape: s, floats: v)]
        case "ReduceMean":
            let x = try input(0)
            let keep = (node.int("keepdims") ?? 1) == 1
            let axes = try (axesInput(1) ?? Array(x.shape.indices)).map { try normalizedAxis($0, rank: x.shape.count) }
            var outShape = x.shape
            for ax in axes { outShape[ax] = 1 }
            var sums = [Float](repeating: 0, count: outShape.reduce(1, *))
            let f = x.floats
            Elementwise.forEachBroadcast(x.shape, [outShape]) { i, off in sums[off[0]] += f[i] }
            let n = Float(axes.reduce(1) { $0 * x.shape[$1] })
            let finalShape = keep ? outShape : x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
            return [DenseTensor(shape: finalShape, floats: sums.map { $0 / n })]
        case "Resize":
            let x = try input(0)
            guard x.shape.count == 4 else { throw KernelError("only 4-D Resize is run") }
            let mode = node.string("mode") ?? "nearest"
            var outHW: (Int, Int)
            if a.count > 3, let sizes = a[3], sizes.count == 4 {
                outHW = (Int(sizes.ints[2]), Int(sizes.ints[3]))
            } else if a.count > 2, let scales = a[2], scales.count == 4 {
                outHW = (Int(Float(x.shape[2]) * scales.floats[2]), Int(Float(x.shape[3]) * scales.floats[3]))
            } else {
                throw KernelError("Resize needs scales or sizes")
            }
            let (h, w) = (x.shape[2], x.shape[3])
            let sy = Float(h) / Float(outHW.0), sx = Float(w) / Float(outHW.1)
            let f = x.floats
            var out = [Float]()
            out.reserveCapacity(x.shape[0] * x.shape[1] * outHW.0 * outHW.1)
            let asymmetric = node.string("coordinate_transformation_mode") == "asymmetric"
            for plane in 0..<(x.shape[0] * x.shape[1]) {
                for oy in 0..<outHW.0 {
                    for ox in 0..<outHW.1 {
                        let fy = asymmetric ? Float(oy) * sy : (Float(oy) + 0.5) * sy - 0.5
                        let fx = asymmetric ? Float(ox) * sx : (Float(ox) + 0.5) * sx - 0.5
                        if mode == "nearest" {
                            let iy = min(h - 1, max(0, Int(asymmetric ? fy.rounded(.down) : (fy + 0.5).rounded(.down))))
                            let ix = min(w - 1, max(0, Int(asymmetric ? fx.rounded(.down) : (fx + 0.5).rounded(.down))))
                            out.append(f[plane * h * w + iy * w + ix])
                        } else {
                            let cy = min(max(fy, 0), Float(h - 1)), cx = min(max(fx, 0), Float(w - 1))
                            let y0 = Int(cy), x0 = Int(cx), y1 = min(y0 + 1, h - 1), x1 = min(x0 + 1, w - 1)
                            let dy = cy - Float(y0), dx = cx - Float(x0)
                            let p = plane * h * w
                            let top = f[p + y0 * w + x0] * (1 - dx) + f[p + y0 * w + x1] * dx
                            let bottom = f[p + y1 * w + x0] * (1 - dx) + f[p + y1 * w + x1] * dx
                            out.append(top * (1 - dy) + bottom * dy)
                        }
                    }
                }
            }
            return [DenseTensor(shape: [x.shape[0], x.shape[1], outHW.0, outHW.1], floats: out)]
        default:
            throw KernelError("not run")
        }
    }
}
