import Graph

/// A node the config can address: a quantizable or prunable layer (SEMANTICS §2).
public struct Layer: Sendable, Equatable {
    public enum Op: String, Sendable {
        case conv = "Conv", convTranspose = "ConvTranspose", gemm = "Gemm", matMul = "MatMul"
    }
    public var node: NodeID
    /// The node's name (or a display name when it has none).
    public var name: String
    public var op: Op
    /// Spatial rank of a convolution's kernel (1, 2, 3); 0 for Gemm/MatMul.
    public var kernelRank: Int
    public var group: Int
    /// The weight's value name and shape.
    public var weight: String
    public var weightShape: [Int64]
    /// Gemm's transB (false for every other op): it decides which weight axis holds which channels.
    public var transB: Bool
    /// Input channels the weight reads (Conv: C/group × group; Gemm/MatMul: K).
    public var inputChannels: Int
    /// The PyTorch module name recovered from the node's scopes or the weight's name, when there is one.
    public var moduleName: String?
    /// The op that produces the layer's data input (for the fixed_min rule), if a node does.
    public var inputProducerOp: String?

    /// The weight axes that hold the output and the input channels of a layer of this op: Conv [Cout, Cin/g, …] and
    /// Gemm(transB=1) [N, K] put output channels on axis 0; ConvTranspose [Cin, Cout/g, …], MatMul [K, N] and
    /// Gemm(transB=0) [K, N] on axis 1. The one place this rule lives.
    public static func channelAxes(_ op: Op, transB: Bool) -> (output: Int, input: Int) {
        op == .conv || (op == .gemm && transB) ? (0, 1) : (1, 0)
    }

    /// The weight axis holding this layer's output channels (per ConvTranspose group when group > 1).
    public var outputChannelAxis: Int { Self.channelAxes(op, transB: transB).output }
    /// The weight axis holding the input channels the layer reads (per group for a grouped Conv).
    public var inputChannelAxis: Int { Self.channelAxes(op, transB: transB).input }
    /// Output channels: the weight's size on `outputChannelAxis` (× group for a ConvTranspose).
    public var outputChannels: Int {
        Int(weightShape[outputChannelAxis]) * (op == .convTranspose ? group : 1)
    }

    /// Which input of a node of this op is its bias (Conv/ConvTranspose B, Gemm C); nil for MatMul, which has none.
    public static func biasInputIndex(_ op: Op) -> Int? { op == .matMul ? nil : 2 }

    /// The name of the node's bias input, when it has one.
    public static func bias(of node: Node) -> String? {
        guard let op = Op(rawValue: node.op), let i = biasInputIndex(op), node.inputs.count > i, !node.inputs[i].isEmpty
        else { return nil }
        return node.inputs[i]
    }

    /// This layer's bias input in `graph`, when it has one.
    public func bias(in graph: Graph) -> String? { Self.bias(of: graph[node]) }

    /// The same layer as the graph has it now (a pass may have replaced its weight or changed its group); nil when the
    /// node is no longer a layer (its weight now comes from a DequantizeLinear, say).
    public func refreshed(in graph: Graph) throws -> Layer? {
        guard graph.contains(node) else { return nil }
        return try Layer(node, in: graph)
    }

    public var isConvolution: Bool { op == .conv || op == .convTranspose }
    public var isFilterPrunable: Bool { (op == .conv && kernelRank == 2 && group == 1) || op == .gemm || op == .matMul }
    public var isTwoOfFourPrunable: Bool { (isConvolution && kernelRank == 2) || op == .gemm || op == .matMul }

    /// Every name a config may use for this layer.
    public var names: [String] {
        var result = [name]
        if let moduleName, moduleName != name { result.append(moduleName) }
        if weight.hasSuffix(".weight") {
            let base = String(weight.dropLast(".weight".count))
            if !result.contains(base) { result.append(base) }
        }
        return result
    }

    /// The layers of a graph, in graph order.
    public static func find(in graph: Graph) throws -> [Layer] {
        try graph.order.compactMap { id in try Layer(id, in: graph) }
    }

    /// Nil for a node that is not a layer; an error for a layer whose weight or attributes cannot be right.
    init?(_ id: NodeID, in graph: Graph) throws {
        let node = graph[id]
        guard node.isDefaultDomain, let op = Op(rawValue: node.op), node.inputs.count >= 2,
            let weightTensor = graph.constantTensor(node.inputs[1])
        else { return nil }
        let shape = weightTensor.dims
        guard checkedElementCount(shape) != nil else {
            throw PassError(node: node.displayName, "its weight '\(node.inputs[1])' has dims \(shape), which are negative or too large")
        }
        var rank = 0
        var group = 1
        var inputChannels = 0
        let transB = op == .gemm && (node.int("transB") ?? 0) == 1
        switch op {
        case .conv, .convTranspose:
            guard shape.count >= 3 else { return nil }
            rank = shape.count - 2
            let g = node.int("group") ?? 1
            guard g >= 1, g <= Int64(Int32.max), shape[0] > 0, shape[0] % g == 0 else {
                throw PassError(
                    node: node.displayName,
                    "\(op.rawValue) with group \(g) and weight dims \(shape): group must be at least 1 and divide the channels")
            }
            group = Int(g)
            let (cin, overflow) = Int(shape[1]).multipliedReportingOverflow(by: group)
            guard !overflow else { throw PassError(node: node.displayName, "group \(g) × weight dims \(shape) overflows") }
            inputChannels = op == .conv ? cin : Int(shape[0])
        case .gemm:
            guard shape.count == 2, (node.int("transA") ?? 0) == 0 else { return nil }
            inputChannels = Int(shape[Self.channelAxes(op, transB: transB).input])
        case .matMul:
            guard shape.count == 2 else { return nil }
            inputChannels = Int(shape[Self.channelAxes(op, transB: false).input])
        }
        self.node = id
        self.name = node.displayName
        self.op = op
        self.kernelRank = rank
        self.group = group
        self.weight = node.inputs[1]
        self.weightShape = shape
        self.transB = transB
        self.inputChannels = inputChannels
        self.moduleName = Layer.moduleName(fromNodeName: node.name ?? "")
        self.inputProducerOp = graph.producer(of: node.inputs[0]).map { graph[$0].op }
    }

    /// A torch export names a node by its module scopes, each scope repeating its parent's dotted prefix:
    /// `/layer1/layer1.0/conv1/Conv` is module `layer1.0.conv1`; `/features/features.1/conv/conv.0/conv.0.0/Conv` is
    /// `features.1.conv.0.0`. Nil for a name that is not of that form.
    public static func moduleName(fromNodeName name: String) -> String? {
        guard name.hasPrefix("/") else { return nil }
        var scopes = name.split(separator: "/").map(String.init)
        guard scopes.count >= 2 else { return nil }
        scopes.removeLast()  // the op (Conv, Gemm_1, ...)
        var segments: [String] = []
        var previous = ""
        for scope in scopes {
            if !previous.isEmpty && scope.hasPrefix(previous + ".") {
                segments.append(String(scope.dropFirst(previous.count + 1)))
            } else {
                segments.append(scope)
            }
            previous = scope
        }
        return segments.joined(separator: ".")
    }
}

/// The layer-type names a config may use: ONNX op types, PyTorch module names and Caffe layer types (SEMANTICS §2).
public enum LayerTypeVocabulary {
    public static let onnx = ["Conv", "Gemm", "MatMul", "ConvTranspose", "AveragePool"]
    public static let pytorch = ["Conv1d", "Conv2d", "Conv3d", "Linear", "ConvTranspose1d", "ConvTranspose2d", "AvgPool2d"]
    public static let caffe = ["Convolution", "InnerProduct", "Deconvolution", "Pooling"]
    public static var all: [String] { onnx + pytorch + caffe }

    public static func isKnown(_ type: String) -> Bool { all.contains(type) }

    /// Types whose layers have a single weight scale (no channel_wise).
    public static func isLinearOrPooling(_ type: String) -> Bool {
        ["Gemm", "MatMul", "Linear", "InnerProduct", "AveragePool", "AvgPool2d", "Pooling"].contains(type)
    }

    /// Whether a config type names this layer.
    public static func matches(_ type: String, _ layer: Layer) -> Bool {
        switch type {
        case "Conv", "Convolution": return layer.op == .conv
        case "Conv1d": return layer.op == .conv && layer.kernelRank == 1
        case "Conv2d": return layer.op == .conv && layer.kernelRank == 2
        case "Conv3d": return layer.op == .conv && layer.kernelRank == 3
        case "Gemm": return layer.op == .gemm
        case "MatMul": return layer.op == .matMul
        case "Linear", "InnerProduct": return layer.op == .gemm || layer.op == .matMul
        case "ConvTranspose", "Deconvolution": return layer.op == .convTranspose
        case "ConvTranspose1d": return layer.op == .convTranspose && layer.kernelRank == 1
        case "ConvTranspose2d": return layer.op == .convTranspose && layer.kernelRank == 2
        default: return false  // pooling types name no weighted layer
        }
    }

    static func unknownTypeError(_ type: Located<String>) -> ConfigError {
        let hint = closest(type.value, in: all).map { " Did you mean '\($0)'?" } ?? ""
        return ConfigError(
            .unknownLayerType, type.location,
            "unknown layer type '\(type.value)'.\(hint) Accepted: ONNX \(onnx.joined(separator: ", ")); PyTorch \(pytorch.joined(separator: ", ")); Caffe \(caffe.joined(separator: ", "))")
    }
}

/// Finds the layer each config name means: the node's name, the PyTorch module name, or the weight's name.
public struct LayerNameIndex {
    private var byName: [String: [Int]] = [:]
    public let layers: [Layer]

    public init(_ layers: [Layer]) {
        self.layers = layers
        for (i, layer) in layers.enumerated() {
            for name in layer.names where !(byName[name]?.contains(i) ?? false) { byName[name, default: []].append(i) }
        }
    }

    /// The index of the one layer `name` means, or an error naming the closest names.
    public func resolve(_ name: Located<String>, field: String) throws -> Int {
        let hits = byName[name.value] ?? []
        if hits.count == 1 { return hits[0] }
        if hits.isEmpty {
            let hint = closest(name.value, in: Array(byName.keys)).map { " Closest: '\($0)'." } ?? ""
            let some = layers.prefix(6).map { $0.moduleName ?? $0.name }.joined(separator: ", ")
            throw ConfigError(.unknownLayerName, name.location, "\(field) names '\(name.value)', which matches no quantizable or prunable layer.\(hint) Layers are named like: \(some)")
        }
        throw ConfigError(
            .ambiguousLayerName, name.location,
            "\(field) names '\(name.value)', which matches \(hits.count) layers (\(hits.map { layers[$0].name }.joined(separator: ", "))); use a node name")
    }
}
