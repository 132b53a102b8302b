import CProtoSchemas
import CProtobufC
import Foundation

// Reading a Caffe net: the prototxt (NetParameter in text format, through the project's text-format reader) and the
// caffemodel (binary NetParameter, unpacked by protobuf-c), both with BVLC's caffe.proto. Layers come out as
// `CaffeLayer` values: the legacy V1 form (`layers { type: CONVOLUTION }`) upgraded to its V2 type name, layers
// that the TEST phase excludes (`include { phase: TRAIN }`) dropped, and the blobs taken from the caffemodel's layer
// of the same name (a caffemodel is often the training net: its data and loss layers are simply never asked for).

/// A blob of a layer: its shape (the legacy num/channels/height/width as 4 dims) and its values.
struct CaffeBlob {
    var shape: [Int]
    var data: [Float]
}

/// The parameter messages the layer table reads, from a LayerParameter or a V1LayerParameter (nil: not set).
struct CaffeParams {
    var batchNorm: UnsafePointer<Caffe__BatchNormParameter>?
    var concat: UnsafePointer<Caffe__ConcatParameter>?
    var convolution: UnsafePointer<Caffe__ConvolutionParameter>?
    var eltwise: UnsafePointer<Caffe__EltwiseParameter>?
    var flatten: UnsafePointer<Caffe__FlattenParameter>?
    var innerProduct: UnsafePointer<Caffe__InnerProductParameter>?
    var input: UnsafePointer<Caffe__InputParameter>?
    var lrn: UnsafePointer<Caffe__LRNParameter>?
    var pooling: UnsafePointer<Caffe__PoolingParameter>?
    var power: UnsafePointer<Caffe__PowerParameter>?
    var prelu: UnsafePointer<Caffe__PReLUParameter>?
    var relu: UnsafePointer<Caffe__ReLUParameter>?
    var reshape: UnsafePointer<Caffe__ReshapeParameter>?
    var scale: UnsafePointer<Caffe__ScaleParameter>?
    var softmax: UnsafePointer<Caffe__SoftmaxParameter>?

    init(_ l: Caffe__LayerParameter) {
        batchNorm = UnsafePointer(l.batch_norm_param)
        concat = UnsafePointer(l.concat_param)
        convolution = UnsafePointer(l.convolution_param)
        eltwise = UnsafePointer(l.eltwise_param)
        flatten = UnsafePointer(l.flatten_param)
        innerProduct = UnsafePointer(l.inner_product_param)
        input = UnsafePointer(l.input_param)
        lrn = UnsafePointer(l.lrn_param)
        pooling = UnsafePointer(l.pooling_param)
        power = UnsafePointer(l.power_param)
        prelu = UnsafePointer(l.prelu_param)
        relu = UnsafePointer(l.relu_param)
        reshape = UnsafePointer(l.reshape_param)
        scale = UnsafePointer(l.scale_param)
        softmax = UnsafePointer(l.softmax_param)
    }

    init(_ l: Caffe__V1LayerParameter) {
        concat = UnsafePointer(l.concat_param)
        convolution = UnsafePointer(l.convolution_param)
        eltwise = UnsafePointer(l.eltwise_param)
        innerProduct = UnsafePointer(l.inner_product_param)
        lrn = UnsafePointer(l.lrn_param)
        pooling = UnsafePointer(l.pooling_param)
        power = UnsafePointer(l.power_param)
        relu = UnsafePointer(l.relu_param)
        softmax = UnsafePointer(l.softmax_param)
    }
}

/// One layer of the net as the layer table sees it.
struct CaffeLayer {
    var place: CaffeLayerPlace
    var bottoms: [String]
    var tops: [String]
    var params: CaffeParams
    /// The blobs in the caffemodel's layer of this name (or, without one, the prototxt's own), unconverted.
    var blobMessages: [UnsafePointer<Caffe__BlobProto>]
    /// Where the blobs were read from, for messages.
    var blobFile: String?
    var name: String { place.name }
    var type: String { place.type }
}

/// A NetParameter held unpacked (freed with this object); the layers point into it.
final class CaffeNetFile {
    let path: String
    let net: UnsafeMutablePointer<Caffe__NetParameter>
    /// The prototxt as text read it (nil for a caffemodel): where each layer stands.
    let text: ProtoMessage?

    private init(path: String, net: UnsafeMutablePointer<Caffe__NetParameter>, text: ProtoMessage?) {
        self.path = path
        self.net = net
        self.text = text
    }

    deinit { caffe__net_parameter__free_unpacked(net, nil) }

    /// A prototxt: text format through `TextFormat` (an unknown field is an error at its line:column).
    static func prototxt(_ path: String) throws -> CaffeNetFile {
        try prototxt(parsed: TextFormat.parse(contentsOf: path, schema: .caffeNet), path: path)
    }

    /// A prototxt's text (`file` names it in messages).
    static func prototxt(text: String, file: String) throws -> CaffeNetFile {
        try prototxt(parsed: TextFormat.parse(text, file: file, schema: .caffeNet), path: file)
    }

    private static func prototxt(parsed: ParsedText, path: String) throws -> CaffeNetFile {
        let net = parsed.serialized.withUnsafeBufferPointer { caffe__net_parameter__unpack(nil, $0.count, $0.baseAddress) }
        guard let net else { throw CaffeError.badNet(path: path, "the text does not make a NetParameter") }
        return CaffeNetFile(path: path, net: net, text: parsed.message)
    }

    /// A caffemodel's bytes (`path` names it in messages).
    static func caffemodel(bytes: UnsafeRawBufferPointer, path: String) throws -> CaffeNetFile {
        guard bytes.count > 0 else { throw CaffeError.notANet(path: path) }
        let net = caffe__net_parameter__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
        guard let net else { throw CaffeError.notANet(path: path) }
        let file = CaffeNetFile(path: path, net: net, text: nil)
        if net.pointee.n_layer == 0 && net.pointee.n_layers == 0 {
            throw CaffeError.badNet(path: path, "the caffemodel parses but holds no layers (not a caffemodel?)")
        }
        return file
    }

    /// A caffemodel: the binary NetParameter.
    static func caffemodel(_ path: String) throws -> CaffeNetFile {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw GraphError.cannotRead(path: path, reason: "no such file")
        }
        guard !isDirectory.boolValue else { throw GraphError.cannotRead(path: path, reason: "it is a folder") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GraphError.cannotRead(path: path, reason: "cannot open it for reading")
        }
        return try data.withUnsafeBytes { try caffemodel(bytes: $0, path: path) }
    }

    /// The blobs of each named layer (V2 and V1 layers; the first layer of a name wins).
    func blobsByLayer() -> [String: [UnsafePointer<Caffe__BlobProto>]] {
        var result: [String: [UnsafePointer<Caffe__BlobProto>]] = [:]
        let n = net.pointee
        for i in 0..<n.n_layer {
            guard let l = n.layer[i]?.pointee else { continue }
            let name = cString(l.name)
            if result[name] == nil { result[name] = pointers(l.blobs, l.n_blobs) }
        }
        for i in 0..<n.n_layers {
            guard let l = n.layers[i]?.pointee else { continue }
            let name = cString(l.name)
            if result[name] == nil { result[name] = pointers(l.blobs, l.n_blobs) }
        }
        return result
    }

    /// The layers the TEST phase includes, in order, V1 layers upgraded; blobs from `weights` by name.
    func layers(weights: CaffeNetFile?) throws -> [CaffeLayer] {
        let n = net.pointee
        if n.n_layer > 0 && n.n_layers > 0 {
            throw CaffeError.badNet(path: path, "the net mixes 'layer' and the legacy 'layers'; use one of them")
        }
        let weightBlobs = weights?.blobsByLayer() ?? [:]
        let textLayers = text?.field(n.n_layers > 0 ? "layers" : "layer")
        var result: [CaffeLayer] = []
        func location(_ i: Int) -> SourceLocation? {
            guard let t = textLayers, i < t.locations.count else { return nil }
            return t.locations[i]
        }
        func blobs(_ name: String, own: [UnsafePointer<Caffe__BlobProto>]) -> ([UnsafePointer<Caffe__BlobProto>], String?) {
            if let w = weightBlobs[name] { return (w, weights?.path) }
            return (own, own.isEmpty ? nil : path)
        }
        for i in 0..<n.n_layer {
            guard let l = n.layer[i]?.pointee else { continue }
            guard Self.included(l.include, l.n_include, l.exclude, l.n_exclude) else { continue }
            let place = CaffeLayerPlace(name: cString(l.name), type: cString(l.type), location: location(i), file: path)
            let (b, from) = blobs(place.name, own: pointers(l.blobs, l.n_blobs))
            result.append(CaffeLayer(
                place: place, bottoms: strings(l.bottom, l.n_bottom), tops: strings(l.top, l.n_top),
                params: CaffeParams(l), blobMessages: b, blobFile: from))
        }
        for i in 0..<n.n_layers {
            guard let l = n.layers[i]?.pointee else { continue }
            guard Self.included(l.include, l.n_include, l.exclude, l.n_exclude) else { continue }
            var place = CaffeLayerPlace(name: cString(l.name), type: "", location: location(i), file: path)
            if l.layer != nil {
                throw CaffeError.badNet(path: path, "\(place): the V0 layer format is not supported (upgrade it with "
                    + "Caffe's upgrade_net_proto_text)")
            }
            place.type = Self.v1TypeName(l.type)
            let (b, from) = blobs(place.name, own: pointers(l.blobs, l.n_blobs))
            result.append(CaffeLayer(
                place: place, bottoms: strings(l.bottom, l.n_bottom), tops: strings(l.top, l.n_top),
                params: CaffeParams(l), blobMessages: b, blobFile: from))
        }
        return result
    }

    /// Caffe's `StateMeetsRule` for the deploy state: phase TEST, level 0, no stages.
    static func meets(_ rule: Caffe__NetStateRule) -> Bool {
        if rule.has_phase != 0 && rule.phase != CAFFE__PHASE__TEST { return false }
        if rule.has_min_level != 0 && 0 < rule.min_level { return false }
        if rule.has_max_level != 0 && 0 > rule.max_level { return false }
        return rule.n_stage == 0
    }

    static func included(
        _ include: UnsafeMutablePointer<UnsafeMutablePointer<Caffe__NetStateRule>?>?, _ nInclude: Int,
        _ exclude: UnsafeMutablePointer<UnsafeMutablePointer<Caffe__NetStateRule>?>?, _ nExclude: Int
    ) -> Bool {
        for i in 0..<nExclude { if let r = exclude?[i], meets(r.pointee) { return false } }
        if nInclude == 0 { return true }
        for i in 0..<nInclude { if let r = include?[i], meets(r.pointee) { return true } }
        return false
    }

    /// Caffe's `UpgradeV1LayerType`: the V1 enum name as a V2 type string.
    static func v1TypeName(_ type: Caffe__V1LayerParameter__LayerType) -> String {
        let special = [
            "ABSVAL": "AbsVal", "ARGMAX": "ArgMax", "BNLL": "BNLL", "HDF5_DATA": "HDF5Data",
            "HDF5_OUTPUT": "HDF5Output", "IM2COL": "Im2col", "LRN": "LRN", "MVN": "MVN", "RELU": "ReLU",
            "SOFTMAX_LOSS": "SoftmaxWithLoss", "TANH": "TanH",
        ]
        // The enum's descriptor, through the message descriptor that the generated init stores.
        var message = Caffe__V1LayerParameter()
        caffe__v1_layer_parameter__init(&message)
        guard let field = protobuf_c_message_descriptor_get_field_by_name(message.base.descriptor, "type"),
            let value = protobuf_c_enum_descriptor_get_value(
                field.pointee.descriptor.assumingMemoryBound(to: ProtobufCEnumDescriptor.self), Int32(type.rawValue))
        else { return "V1 type \(type.rawValue)" }
        let name = String(cString: value.pointee.name)
        if name == "NONE" { return "" }
        if let s = special[name] { return s }
        return name.split(separator: "_").map { $0.prefix(1) + $0.dropFirst().lowercased() }.joined()
    }
}

func cString(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

func strings(_ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ n: Int) -> [String] {
    (0..<n).map { cString(p?[$0]) }
}

func pointers<T>(_ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?, _ n: Int) -> [UnsafePointer<T>] {
    (0..<n).compactMap { p?[$0].map { UnsafePointer($0) } }
}
