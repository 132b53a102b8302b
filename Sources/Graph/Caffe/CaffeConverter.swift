import CProtoSchemas
import CProtobufC
import Foundation

// Caffe net → the IR, in the loaders' canonical form (weights as initializers, names unique, nodes in topological
// order). One rule per Caffe layer type in `CaffeLayerTable.standard`; each family's rules live in their own file
// (CaffeConvolution, CaffePooling, CaffeNormalization, CaffeActivations, CaffeStructure) with the layer → IR nodes
// mapping at its top.
//
// Naming: every node bears its Caffe layer name (the layer's main node exactly, helper nodes `<layer>/<part>`), so a
// config's Caffe names match and `plan` shows them. Caffe blobs become values: a blob written once keeps its name;
// a blob rewritten in place (top == bottom) keeps its plain name for its last version (and for a graph input), the
// earlier versions are `<top>/<writing layer>`. Weights are `<layer>.weight`, `<layer>.bias`, .... The graph
// outputs are the blobs no layer reads, under their Caffe names.

/// A rule of the layer table: how one Caffe layer type becomes IR nodes.
struct CaffeLayerRule: Sendable {
    let type: String
    /// How many bottoms and tops the layer takes.
    let bottoms: ClosedRange<Int>
    let tops: ClosedRange<Int>
    let convert: @Sendable (CaffeLayer, inout CaffeBuilder) throws -> Void
}

/// The table: one rule per Caffe layer type.
enum CaffeLayerTable {
    static let rules: [CaffeLayerRule] = [
        // CaffeStructure.swift
        .input, .concat, .flatten, .reshape, .softmax, .dropout, .split, .eltwise,
        // CaffeConvolution.swift
        .convolution, .deconvolution, .innerProduct,
        // CaffePooling.swift
        .pooling,
        // CaffeNormalization.swift
        .batchNorm, .scale, .lrn,
        // CaffeActivations.swift
        .relu, .prelu, .sigmoid, .tanh, .power,
    ]
    static let standard: [String: CaffeLayerRule] = Dictionary(uniqueKeysWithValues: rules.map { ($0.type, $0) })
}

/// A blob's value in the IR: its name and its (fully known) shape.
struct CaffeValue {
    var name: String
    var shape: [Int]
}

/// What a rule works with: the graph being built, its layer's bottoms (`input`) and tops (`setOutput`, `alias`),
/// the layer's blobs (`blob`), and helpers that add nodes and constants named after the layer.
struct CaffeBuilder {
    var graph = Graph()
    private(set) var layers: [CaffeLayer]
    /// Per SSA value (a version of a Caffe blob): the IR value once written, its planned name, its readers.
    var values: [CaffeValue?]
    let plannedNames: [String]
    let readers: [[Int]]
    let reserved: Set<String>
    /// The value ids each layer reads and writes.
    let layerInputs: [[Int]]
    let layerOutputs: [[Int]]
    /// The layer being converted.
    var current = 0
    /// A BatchNormalization node (unit scale, zero bias) whose sole reader is a Scale layer, by the value it writes:
    /// the Scale rule folds its γ and β into it.
    var foldableBatchNorm: [Int: NodeID] = [:]

    init(layers: [CaffeLayer], plannedNames: [String], readers: [[Int]], inputs: [[Int]], outputs: [[Int]]) {
        self.layers = layers
        self.plannedNames = plannedNames
        self.readers = readers
        self.reserved = Set(plannedNames)
        self.layerInputs = inputs
        self.layerOutputs = outputs
        self.values = Array(repeating: nil, count: plannedNames.count)
    }

    var layer: CaffeLayer { layers[current] }

    func fail(_ message: String) -> CaffeError { .badLayer(layer.place, message) }

    // MARK: Bottoms and tops

    func input(_ i: Int) -> CaffeValue { values[layerInputs[current][i]]! }
    func inputID(_ i: Int) -> Int { layerInputs[current][i] }
    func outputID(_ i: Int) -> Int { layerOutputs[current][i] }
    var inputCount: Int { layerInputs[current].count }
    func outputName(_ i: Int) -> String { plannedNames[layerOutputs[current][i]] }
    var outputCount: Int { layerOutputs[current].count }

    /// Records that the node just added wrote top `i` (under `outputName(i)`) with `shape`.
    mutating func setOutput(_ i: Int, shape: [Int]) {
        values[layerOutputs[current][i]] = CaffeValue(name: outputName(i), shape: shape)
    }

    /// Top `i` is `value` unchanged (Dropout, Split, an identity Power): readers read `value`; a top nobody reads
    /// (a graph output) gets an Identity node so that it keeps its Caffe name.
    mutating func alias(_ i: Int, to value: CaffeValue) {
        let id = layerOutputs[current][i]
        if readers[id].isEmpty {
            node("Identity", [value.name], output: outputName(i), part: i == 0 ? nil : "identity")
            setOutput(i, shape: value.shape)
        } else {
            values[id] = value
        }
    }

    /// The sole reader of top `i`, when exactly one layer reads it.
    func soleReader(ofOutput i: Int) -> CaffeLayer? {
        let r = readers[layerOutputs[current][i]]
        return r.count == 1 ? layers[r[0]] : nil
    }

    /// Adds a graph input for top `i`.
    mutating func addGraphInput(_ i: Int, shape: [Int]) {
        graph.inputs.append(ValueInfo(name: outputName(i), type: .tensor(.float, shape.map(Int64.init))))
        setOutput(i, shape: shape)
    }

    // MARK: Nodes and constants

    /// A value name for a helper result: `<layer>/<part>`, unique in the graph and among the Caffe names.
    func temporary(_ part: String) -> String { fresh("\(layer.name)/\(part)") }

    func fresh(_ base: String) -> String {
        var name = graph.uniqueValueName(base)
        var k = 1
        while reserved.contains(name) {
            k += 1
            name = graph.uniqueValueName("\(base)_\(k)")
        }
        return name
    }

    /// Adds a node named after the layer (`part` nil: the layer's own name; else `<layer>/<part>`).
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], _ attributes: [Attribute] = [], output: String,
                       part: String? = nil) -> NodeID {
        let name = graph.uniqueNodeName(part.map { "\(layer.name)/\($0)" } ?? layer.name)
        return graph.appendNode(Node(opType: op, name: name, inputs: inputs, outputs: [output], attributes: attributes))
    }

    /// A float initializer `<layer>.<part>`.
    mutating func constant(_ part: String, dims: [Int], _ floats: [Float]) -> String {
        let name = fresh("\(layer.name).\(part)")
        graph.setInitializer(Tensor(name: name, dims: dims.map(Int64.init), floats: floats))
        return name
    }

    /// An int64 initializer `<layer>.<part>` (a Reshape's shape).
    mutating func int64Constant(_ part: String, _ values: [Int]) -> String {
        let name = fresh("\(layer.name).\(part)")
        let v = values.map(Int64.init)
        v.withUnsafeBytes {
            graph.setInitializer(Tensor(name: name, dataType: .int64, dims: [Int64(v.count)], rawBytes: $0))
        }
        return name
    }

    // MARK: Blobs

    /// Blob `i` of the layer as floats, checked: its values match its own shape and the `expected` shape
    /// (leading 1s aside, as Caffe's legacy 4-D blobs have them).
    func blob(_ i: Int, expected: [Int], _ what: String) throws -> [Float] {
        let blobs = layer.blobMessages
        guard i < blobs.count else {
            if blobs.isEmpty {
                throw fail("has no weights (\(what)): give the caffemodel with --weights, holding a layer of this name")
            }
            throw fail("has \(blobs.count) blob(s) in \(layer.blobFile ?? "the net"), \(what) (blob \(i)) is missing")
        }
        let b = blobs[i].pointee
        let place = "blob \(i) (\(what)) in \(MessageText.name(layer.blobFile ?? "the net", limit: 4096))"
        var shape: [Int] = []
        if let s = b.shape?.pointee {
            for k in 0..<s.n_dim {
                guard s.dim[k] >= 0, let d = Int(exactly: s.dim[k]) else {
                    throw fail("\(place): dimension \(s.dim[k]) is negative")
                }
                shape.append(d)
            }
        } else if b.has_num != 0 || b.has_channels != 0 || b.has_height != 0 || b.has_width != 0 {
            shape = [Int(b.num), Int(b.channels), Int(b.height), Int(b.width)]
            if shape.contains(where: { $0 < 0 }) { throw fail("\(place): a dimension of \(shape) is negative") }
        }
        guard let count = Self.count(shape) else {
            throw fail("\(place): the shape \(Self.show(shape)) has more elements than can be counted (overflow)")
        }
        let held = b.n_data > 0 ? b.n_data : b.n_double_data
        guard held == count else {
            throw fail("\(place): the shape \(Self.show(shape)) needs \(count) values, the blob holds \(held)")
        }
        guard let expectedCount = Self.count(expected) else {
            throw fail("\(what): the expected shape \(Self.show(expected)) overflows")
        }
        let trim = { (s: [Int]) in Array(s.drop { $0 == 1 }) }
        guard count == expectedCount, trim(shape) == trim(expected) else {
            throw fail("\(place) has shape \(Self.show(shape)) (\(count) values); the layer needs "
                + "\(Self.show(expected)) (\(expectedCount) values) for its parameters and input")
        }
        if b.n_data > 0 { return Array(UnsafeBufferPointer(start: b.data, count: count)) }
        return UnsafeBufferPointer(start: b.double_data, count: count).map { Float($0) }
    }

    /// The element count of a shape, nil on a negative dimension or a count past what a tensor may hold
    /// (`Tensor.checkedElementCount`'s bound, so sums of a few dimensions and parameters cannot overflow either).
    static func count(_ shape: [Int]) -> Int? {
        Tensor.checkedElementCount(shape.map(Int64.init))
    }

    /// The largest kernel, stride, pad or dilation accepted (keeps every size computation far from overflow).
    static let parameterLimit = 1 << 24

    /// a·b, or an error naming the layer when it overflows.
    func product(_ a: Int, _ c: Int) throws -> Int {
        let (p, o) = a.multipliedReportingOverflow(by: c)
        guard !o, p <= Int.max / 128 else { throw fail("a size computation overflows (\(a) × \(c))") }
        return p
    }

    static func show(_ shape: [Int]) -> String { shape.isEmpty ? "[]" : shape.map(String.init).joined(separator: "x") }

    /// A shape whose element count fits (every blob shape that a rule computes goes through this).
    func checked(_ shape: [Int], _ what: String) throws -> [Int] {
        guard Self.count(shape) != nil, shape.allSatisfy({ $0 > 0 }) else {
            throw fail("\(what) would have shape \(Self.show(shape)): every dimension must be positive and the "
                + "element count must fit")
        }
        return shape
    }

    /// Caffe's axis index (negative counts from the end) checked against a rank.
    func axis(_ a: Int32, rank: Int, _ field: String) throws -> Int {
        let r = Int(a) < 0 ? Int(a) + rank : Int(a)
        guard r >= 0 && r < rank else { throw fail("\(field) \(a) is out of range for an input of rank \(rank)") }
        return r
    }
}

/// Loading a Caffe net (prototxt + caffemodel) as a `Model`.
public enum CaffeModel {
    /// True for a path that names a Caffe prototxt.
    public static func isPrototxt(_ path: String) -> Bool {
        let lower = path.lowercased()
        return lower.hasSuffix(".prototxt") || lower.hasSuffix(".prototxt.txt") || lower.hasSuffix(".pbtxt")
    }

    /// The net of `prototxt` with the weights of `weights` (a caffemodel; nil: only layers without weights work).
    public static func load(prototxt: String, weights: String?) throws -> Model {
        let net = try CaffeNetFile.prototxt(prototxt)
        let weightsFile = try weights.map { try CaffeNetFile.caffemodel($0) }
        var model = try model(net, weights: weightsFile)
        model.sourcePath = URL(fileURLWithPath: prototxt).standardizedFileURL.path
        if let weights { model.companionPaths = [URL(fileURLWithPath: weights).standardizedFileURL.path] }
        return model
    }

    /// The same from memory: the prototxt's text and the caffemodel's bytes (`file` names the prototxt in messages).
    public static func decode(prototxt text: String, caffemodel: UnsafeRawBufferPointer?,
                              file: String = "<prototxt>") throws -> Model {
        let net = try CaffeNetFile.prototxt(text: text, file: file)
        let weights = try caffemodel.map { try CaffeNetFile.caffemodel(bytes: $0, path: "<caffemodel>") }
        return try model(net, weights: weights)
    }

    static func model(_ net: CaffeNetFile, weights: CaffeNetFile?) throws -> Model {
        try withExtendedLifetime((net, weights)) {
            let layers = try net.layers(weights: weights)
            var graph = try convert(net, layers: layers)
            // The net's name, else the prototxt's (ONNX requires one).
            let name = net.net.pointee.name.map { String(cString: $0) } ?? ""
            graph.name = name.isEmpty ? URL(fileURLWithPath: net.path).deletingPathExtension().lastPathComponent : name
            try graph.checkReferences()
            return Model(graph: graph, irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 13)],
                         producerName: "amct-pipe", docString: "converted from the Caffe net \(net.path)")
        }
    }

    static func convert(_ file: CaffeNetFile, layers: [CaffeLayer]) throws -> Graph {
        // 1. SSA: each top written makes a new value; each bottom reads the latest value of its name.
        var latest: [String: Int] = [:]
        var topOf: [String] = []
        var writer: [Int] = []  // layer index, -1 for the net's legacy inputs
        var isInput: [Bool] = []
        var readers: [[Int]] = []
        func newValue(_ top: String, _ layer: Int, input: Bool) -> Int {
            topOf.append(top)
            writer.append(layer)
            isInput.append(input)
            readers.append([])
            latest[top] = topOf.count - 1
            return topOf.count - 1
        }
        let net = file.net.pointee
        let legacyInputs = strings(net.input, net.n_input)
        let legacyIDs = legacyInputs.map { newValue($0, -1, input: true) }
        var inputs: [[Int]] = []
        var outputs: [[Int]] = []
        for (li, layer) in layers.enumerated() {
            if (layer.bottoms + layer.tops).contains("") {
                throw CaffeError.badLayer(layer.place, "a bottom or top has no name")
            }
            var ids: [Int] = []
            for bottom in layer.bottoms {
                guard let id = latest[bottom] else { throw CaffeError.undefinedBottom(layer.place, bottom: bottom) }
                if !readers[id].contains(li) { readers[id].append(li) }
                ids.append(id)
            }
            inputs.append(ids)
            outputs.append(layer.tops.map { newValue($0, li, input: layer.type == "Input") })
        }
        // 2. Names: the plain top name for an input version, else for the last version; the others are
        // `<top>/<writer>`.
        var owner: [String: Int] = [:]
        for id in topOf.indices where isInput[id] && owner[topOf[id]] == nil { owner[topOf[id]] = id }
        for (top, id) in latest where owner[top] == nil { owner[top] = id }
        var names = Array(repeating: "", count: topOf.count)
        var taken = Set<String>()
        for (top, id) in owner {
            names[id] = top
            taken.insert(top)
        }
        for id in topOf.indices where owner[topOf[id]] != id {
            let base = "\(topOf[id])/\(writer[id] >= 0 ? layers[writer[id]].name : "input")"
            var name = base
            var k = 1
            while taken.contains(name) {
                k += 1
                name = "\(base)_\(k)"
            }
            names[id] = name
            taken.insert(name)
        }
        // 3. The legacy inputs (`input` + `input_shape` / `input_dim`), then every layer through its rule.
        var b = CaffeBuilder(layers: layers, plannedNames: names, readers: readers, inputs: inputs, outputs: outputs)
        try addLegacyInputs(net, names: legacyInputs, ids: legacyIDs, path: file.path, into: &b)
        for li in layers.indices {
            b.current = li
            let layer = layers[li]
            guard !layer.type.isEmpty else { throw CaffeError.badLayer(layer.place, "the layer has no type") }
            guard let rule = CaffeLayerTable.standard[layer.type] else {
                throw CaffeError.unsupportedLayer(layer.place, supported: CaffeLayerTable.standard.keys.sorted())
            }
            guard rule.bottoms.contains(layer.bottoms.count) else {
                throw b.fail("takes \(countText(rule.bottoms)) bottom(s), it has \(layer.bottoms.count)")
            }
            guard rule.tops.contains(layer.tops.count) else {
                throw b.fail("takes \(countText(rule.tops)) top(s), it has \(layer.tops.count)")
            }
            try rule.convert(layer, &b)
            for (i, id) in outputs[li].enumerated() where b.values[id] == nil {
                throw b.fail("top \(i) was not produced (a bug in the \(layer.type) rule)")
            }
        }
        guard !b.graph.inputs.isEmpty else {
            throw CaffeError.badNet(path: file.path, "the net has no input: add an Input layer (or input + input_shape)")
        }
        // 4. Outputs: the values no layer reads; every other value gets its shape in value_info.
        var seen = Set(b.graph.inputs.compactMap(\.name))
        for id in topOf.indices {
            guard let v = b.values[id], !seen.contains(v.name) else { continue }
            seen.insert(v.name)
            let info = ValueInfo(name: v.name, type: .tensor(.float, v.shape.map(Int64.init)))
            if readers[id].isEmpty && !isInput[id] { b.graph.outputs.append(info) } else { b.graph.valueInfo.append(info) }
        }
        guard !b.graph.outputs.isEmpty else {
            throw CaffeError.badNet(path: file.path, "the net has no output (every blob is read by a layer)")
        }
        return b.graph
    }

    static func countText(_ r: ClosedRange<Int>) -> String {
        r.lowerBound == r.upperBound ? "\(r.lowerBound)" : r.upperBound > 1_000 ? "\(r.lowerBound) or more"
            : "\(r.lowerBound) to \(r.upperBound)"
    }

    static func addLegacyInputs(_ net: Caffe__NetParameter, names: [String], ids: [Int], path: String,
                                into b: inout CaffeBuilder) throws {
        guard !names.isEmpty else { return }
        if names.contains("") { throw CaffeError.badNet(path: path, "an input has no name") }
        var shapes: [[Int]] = []
        if net.n_input_shape > 0 {
            guard net.n_input_shape == names.count else {
                throw CaffeError.badNet(path: path, "\(names.count) input(s) but \(net.n_input_shape) input_shape(s)")
            }
            for i in 0..<net.n_input_shape {
                let s = net.input_shape[i]!.pointee
                shapes.append((0..<s.n_dim).map { Int(clamping: s.dim[$0]) })
            }
        } else if net.n_input_dim > 0 {
            guard net.n_input_dim == 4 * names.count else {
                throw CaffeError.badNet(path: path, "\(names.count) input(s) need \(4 * names.count) input_dim values, "
                    + "the net has \(net.n_input_dim)")
            }
            for i in 0..<names.count { shapes.append((0..<4).map { Int(net.input_dim[4 * i + $0]) }) }
        } else {
            throw CaffeError.badNet(path: path, "input '\(MessageText.name(names[0]))' has no shape: give input_shape "
                + "(or input_dim)")
        }
        for (k, id) in ids.enumerated() {
            let shape = shapes[k]
            guard !shape.isEmpty, shape.allSatisfy({ $0 > 0 }), CaffeBuilder.count(shape) != nil else {
                throw CaffeError.badNet(path: path, "input '\(MessageText.name(names[k]))' has shape "
                    + "\(CaffeBuilder.show(shape)): every dimension must be positive and the element count must fit")
            }
            b.graph.inputs.append(ValueInfo(name: b.plannedNames[id], type: .tensor(.float, shape.map(Int64.init))))
            b.values[id] = CaffeValue(name: b.plannedNames[id], shape: shape)
        }
    }
}

extension ModelFile {
    /// An ONNX model, or a Caffe net converted into the IR: Caffe when `weights` (a caffemodel) is given or the
    /// path ends in `.prototxt`.
    public static func load(_ path: String, weights: String?) throws -> Model {
        if weights != nil || CaffeModel.isPrototxt(path) { return try CaffeModel.load(prototxt: path, weights: weights) }
        return try load(path)
    }
}
