import CProtoSchemas
import CProtobufC
import Foundation

// protobuf-c's unpacked ModelProto → the IR. Large buffers (raw_data, and float_data/int64_data/... when the type
// matches) are adopted from protobuf-c, which allocated them with malloc: the pointer moves into a TensorBuffer and
// the field is cleared so `free_unpacked` leaves it alone. That makes load "file bytes + one copy", never a third.

struct ProtoReader {
    /// The folder external data is read relative to (nil: a model from memory, which may not use external data).
    let baseDirectory: URL?
    /// The first thing protobuf-c accepted but could not write back (noted where found, thrown at the end of
    /// `model`): a field number out of protobuf's range, a kept message that does not unpack again.
    private let damage = Damage()

    private final class Damage {
        var first: String?
        func note(_ detail: @autoclosure () -> String) { if first == nil { first = detail() } }
    }

    init(baseDirectory: URL?) { self.baseDirectory = baseDirectory }

    func model(_ m: UnsafeMutablePointer<Onnx__ModelProto>, path: String) throws -> Model {
        guard let g = m.pointee.graph else { throw GraphError.noGraph(path: path) }
        let graph = try self.graph(g, topLevel: true)
        var model = Model(graph: graph)
        model.irVersion = m.pointee.has_ir_version != 0 ? m.pointee.ir_version : nil
        model.opsetImports = list(m.pointee.opset_import, m.pointee.n_opset_import).map { o in
            OpsetImport(
                domain: string(o.pointee.domain), version: o.pointee.has_version != 0 ? o.pointee.version : nil,
                unknownFields: unknownFields(o))
        }
        model.producerName = string(m.pointee.producer_name)
        model.producerVersion = string(m.pointee.producer_version)
        model.domain = string(m.pointee.domain)
        model.modelVersion = m.pointee.has_model_version != 0 ? m.pointee.model_version : nil
        model.docString = string(m.pointee.doc_string)
        model.metadataProps = pairs(m.pointee.metadata_props, m.pointee.n_metadata_props)
        model.trainingInfo = list(m.pointee.training_info, m.pointee.n_training_info).map(preserved)
        model.functions = list(m.pointee.functions, m.pointee.n_functions).map(preserved)
        model.configuration = list(m.pointee.configuration, m.pointee.n_configuration).map(preserved)
        model.unknownFields = unknownFields(m)
        if let detail = damage.first { throw GraphError.malformed(path: path, detail: detail) }
        return model
    }

    /// `topLevel`: the model's main graph, whose external tensors stay external on save; elsewhere (subgraphs,
    /// attributes) external data is read and saved inline.
    func graph(_ g: UnsafeMutablePointer<Onnx__GraphProto>, topLevel: Bool = false) throws -> Graph {
        var graph = Graph(name: string(g.pointee.name))
        graph.docString = string(g.pointee.doc_string)
        graph.reserveInitializers(g.pointee.n_initializer)
        for (index, t) in list(g.pointee.initializer, g.pointee.n_initializer).enumerated() {
            let tensor = try self.tensor(t, keepExternal: topLevel)
            guard let name = tensor.name else { throw GraphError.unnamedInitializer(index: index) }
            guard graph.addLoadedInitializer(tensor, name: name) else { throw GraphError.duplicateInitializer(name: name) }
        }
        graph.sparseInitializers = list(g.pointee.sparse_initializer, g.pointee.n_sparse_initializer).map(preserved)
        graph.inputs = list(g.pointee.input, g.pointee.n_input).map(valueInfo)
        graph.outputs = list(g.pointee.output, g.pointee.n_output).map(valueInfo)
        graph.valueInfo = list(g.pointee.value_info, g.pointee.n_value_info).map(valueInfo)
        graph.quantizationAnnotations = list(g.pointee.quantization_annotation, g.pointee.n_quantization_annotation)
            .map(preserved)
        graph.metadataProps = pairs(g.pointee.metadata_props, g.pointee.n_metadata_props)
        graph.unknownFields = unknownFields(g)
        graph.setNodes(try list(g.pointee.node, g.pointee.n_node).map(node))
        return graph
    }

    func node(_ n: UnsafeMutablePointer<Onnx__NodeProto>) throws -> Node {
        Node(
            opType: string(n.pointee.op_type), domain: string(n.pointee.domain), name: string(n.pointee.name),
            inputs: strings(n.pointee.input, n.pointee.n_input), outputs: strings(n.pointee.output, n.pointee.n_output),
            attributes: try list(n.pointee.attribute, n.pointee.n_attribute).map(attribute),
            docString: string(n.pointee.doc_string), overload: string(n.pointee.overload),
            metadataProps: pairs(n.pointee.metadata_props, n.pointee.n_metadata_props),
            deviceConfigurations: list(n.pointee.device_configurations, n.pointee.n_device_configurations)
                .map(preserved),
            unknownFields: unknownFields(n))
    }

    func attribute(_ a: UnsafeMutablePointer<Onnx__AttributeProto>) throws -> Attribute {
        let p = a.pointee
        var attr = Attribute(name: string(p.name))
        attr.refAttrName = string(p.ref_attr_name)
        attr.docString = string(p.doc_string)
        attr.type = p.has_type != 0 ? Int32(bitPattern: p.type.rawValue) : nil
        attr.f = p.has_f != 0 ? p.f : nil
        attr.i = p.has_i != 0 ? p.i : nil
        attr.s = p.has_s != 0 ? bytes(p.s) : nil
        attr.t = try p.t.map(tensor)
        attr.g = try p.g.map { try graph($0) }
        attr.sparseTensor = p.sparse_tensor.map(preserved)
        attr.tp = p.tp.map(valueType)
        attr.floats = Array(UnsafeBufferPointer(start: p.floats, count: p.n_floats))
        attr.ints = Array(UnsafeBufferPointer(start: p.ints, count: p.n_ints))
        attr.strings = UnsafeBufferPointer(start: p.strings, count: p.n_strings).map(bytes)
        attr.tensors = try list(p.tensors, p.n_tensors).map(tensor)
        attr.graphs = try list(p.graphs, p.n_graphs).map { try graph($0) }
        attr.sparseTensors = list(p.sparse_tensors, p.n_sparse_tensors).map(preserved)
        attr.typeProtos = list(p.type_protos, p.n_type_protos).map(valueType)
        attr.unknownFields = unknownFields(a)
        return attr
    }

    func valueInfo(_ v: UnsafeMutablePointer<Onnx__ValueInfoProto>) -> ValueInfo {
        ValueInfo(
            name: string(v.pointee.name), type: v.pointee.type.map(valueType), docString: string(v.pointee.doc_string),
            metadataProps: pairs(v.pointee.metadata_props, v.pointee.n_metadata_props), unknownFields: unknownFields(v))
    }

    func valueType(_ t: UnsafeMutablePointer<Onnx__TypeProto>) -> ValueType {
        let kind: ValueKind
        switch t.pointee.value_case {
        case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE:
            let x = t.pointee.tensor_type!
            kind = .tensor(
                elemType: x.pointee.has_elem_type != 0 ? x.pointee.elem_type : nil, shape: x.pointee.shape.map(shape),
                unknownFields: unknownFields(x))
        case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE:
            let x = t.pointee.sparse_tensor_type!
            kind = .sparseTensor(
                elemType: x.pointee.has_elem_type != 0 ? x.pointee.elem_type : nil, shape: x.pointee.shape.map(shape),
                unknownFields: unknownFields(x))
        case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE:
            let x = t.pointee.sequence_type!
            kind = .sequence(x.pointee.elem_type.map(valueType), unknownFields: unknownFields(x))
        case ONNX__TYPE_PROTO__VALUE_MAP_TYPE:
            let x = t.pointee.map_type!
            kind = .map(
                keyType: x.pointee.has_key_type != 0 ? x.pointee.key_type : nil,
                value: x.pointee.value_type.map(valueType), unknownFields: unknownFields(x))
        case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
            let x = t.pointee.optional_type!
            kind = .optional(x.pointee.elem_type.map(valueType), unknownFields: unknownFields(x))
        case ONNX__TYPE_PROTO__VALUE_OPAQUE_TYPE:
            let x = t.pointee.opaque_type!
            kind = .opaque(
                domain: string(x.pointee.domain), name: string(x.pointee.name), unknownFields: unknownFields(x))
        default:
            kind = .notSet
        }
        return ValueType(kind, denotation: string(t.pointee.denotation), unknownFields: unknownFields(t))
    }

    func shape(_ s: UnsafeMutablePointer<Onnx__TensorShapeProto>) -> Shape {
        let dims = list(s.pointee.dim, s.pointee.n_dim).map { d -> Dimension in
            let value: Dimension.Value
            switch d.pointee.value_case {
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE: value = .known(d.pointee.dim_value)
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM:
                value = .symbolic(string(d.pointee.dim_param) ?? "")
            default: value = .unknown
            }
            return Dimension(value, denotation: string(d.pointee.denotation), unknownFields: unknownFields(d))
        }
        return Shape(dims, unknownFields: unknownFields(s))
    }

    // MARK: Tensors

    func tensor(_ t: UnsafeMutablePointer<Onnx__TensorProto>) throws -> Tensor { try tensor(t, keepExternal: false) }

    func tensor(_ t: UnsafeMutablePointer<Onnx__TensorProto>, keepExternal: Bool) throws -> Tensor {
        let p = t.pointee
        let dataType = DataType(rawValue: p.has_data_type != 0 ? p.data_type : 0)
        let dims = Array(UnsafeBufferPointer(start: p.dims, count: p.n_dims))
        let name = string(p.name)
        let label = name ?? "<unnamed>"
        guard dims.allSatisfy({ $0 >= 0 }) else {
            throw GraphError.tensorSize(tensor: label, detail: "negative dimension in \(dims)")
        }
        guard let elements = Tensor.checkedElementCount(dims) else {
            throw GraphError.tensorSize(
                tensor: label, detail: "dims \(dims) describe more elements than fit in memory (the product overflows)")
        }
        let expectedBytes = dataType.byteCount(elements: elements)
        let location = p.has_data_location != 0 ? Int32(bitPattern: p.data_location.rawValue) : nil

        var encoding = TensorEncoding.typedFields
        let data: TensorData
        var dataLocation = location
        if location == 1 {
            let entries = pairs(p.external_data, p.n_external_data)
            data = .bytes(try readExternal(entries, tensor: label, expectedBytes: expectedBytes))
            if keepExternal {
                encoding = .external(entries)
            } else {
                encoding = .raw
                dataLocation = nil
            }
        } else if p.has_raw_data != 0 {
            encoding = .raw
            if let expectedBytes, expectedBytes != p.raw_data.len {
                throw GraphError.tensorSize(
                    tensor: label, detail: "raw_data holds \(p.raw_data.len) bytes; \(dataType) \(dims) needs \(expectedBytes)")
            }
            let buffer = TensorBuffer(adoptingMallocPointer: UnsafeMutableRawPointer(p.raw_data.data), byteCount: p.raw_data.len)
            t.pointee.raw_data.data = nil
            t.pointee.raw_data.len = 0
            data = .bytes(buffer)
        } else {
            data = try typedFieldData(t, dataType: dataType, dims: dims, elements: elements, label: label)
        }
        // A type this build does not know: at least one bit per element, so element counts stay bounded by bytes.
        if expectedBytes == nil, case .bytes(let buffer) = data, elements / 8 > buffer.byteCount {
            throw GraphError.tensorSize(
                tensor: label, detail: "its \(buffer.byteCount) bytes are too few for \(dataType) \(dims)")
        }
        return Tensor(
            name: name, dataType: dataType, dims: dims, data: data, encoding: encoding,
            docString: string(p.doc_string), segment: p.segment.map { TensorSegment(begin: $0.pointee.has_begin != 0 ? $0.pointee.begin : nil, end: $0.pointee.has_end != 0 ? $0.pointee.end : nil, unknownFields: unknownFields($0)) }, dataLocation: dataLocation,
            metadataProps: pairs(p.metadata_props, p.n_metadata_props), unknownFields: unknownFields(t))
    }

    /// The elements kept in the typed repeated fields, in raw layout. A field whose element type is the storage type
    /// is adopted; narrower types (int8, float16, ... kept one per int32) are packed into a new buffer.
    private func typedFieldData(
        _ t: UnsafeMutablePointer<Onnx__TensorProto>, dataType: DataType, dims: [Int64], elements: Int, label: String
    ) throws -> TensorData {
        let p = t.pointee
        let counts = [
            ("float_data", p.n_float_data), ("int32_data", p.n_int32_data), ("string_data", p.n_string_data),
            ("int64_data", p.n_int64_data), ("double_data", p.n_double_data), ("uint64_data", p.n_uint64_data),
        ]
        let field: String
        var expectedCount = elements
        switch dataType {
        case .float: field = "float_data"
        case .complex64: field = "float_data"; expectedCount = elements * 2  // no overflow: checkedElementCount
        case .double: field = "double_data"
        case .complex128: field = "double_data"; expectedCount = elements * 2
        case .int64: field = "int64_data"
        case .uint64, .uint32: field = "uint64_data"
        case .string: field = "string_data"
        default:
            field = "int32_data"
            if let bits = dataType.bitsPerElement, bits < 8 { expectedCount = (elements * bits + 7) / 8 }
        }
        for (other, count) in counts where other != field && count > 0 {
            throw GraphError.tensorSize(tensor: label, detail: "a \(dataType) tensor holds data in \(other)")
        }
        let present = counts.first { $0.0 == field }!.1
        if present == 0 && expectedCount == 0 {
            return dataType == .string ? .strings([]) : .bytes(TensorBuffer(zeroed: 0))
        }
        guard present == expectedCount else {
            let holds = present == 0
                ? "holds no data (no raw_data, \(field) empty)" : "\(field) holds \(present) values"
            throw GraphError.tensorSize(
                tensor: label, detail: "\(holds); \(dataType) \(dims) needs \(expectedCount) values in \(field)")
        }
        func adopt<T>(_ pointer: UnsafeMutablePointer<T>?, _ clear: (inout Onnx__TensorProto) -> Void) -> TensorData {
            let buffer = TensorBuffer(adoptingMallocPointer: UnsafeMutableRawPointer(pointer), byteCount: present * MemoryLayout<T>.stride)
            clear(&t.pointee)
            return .bytes(buffer)
        }
        switch field {
        case "float_data": return adopt(p.float_data) { $0.float_data = nil; $0.n_float_data = 0 }
        case "double_data": return adopt(p.double_data) { $0.double_data = nil; $0.n_double_data = 0 }
        case "int64_data": return adopt(p.int64_data) { $0.int64_data = nil; $0.n_int64_data = 0 }
        case "string_data": return .strings(UnsafeBufferPointer(start: p.string_data, count: present).map(bytes))
        case "uint64_data":
            if dataType == .uint64 { return adopt(p.uint64_data) { $0.uint64_data = nil; $0.n_uint64_data = 0 } }
            let buffer = TensorBuffer(zeroed: present * 4)
            let out = buffer.mutableBytes.bindMemory(to: UInt32.self)
            for i in 0..<present { out[i] = UInt32(truncatingIfNeeded: p.uint64_data[i]) }
            return .bytes(buffer)
        default:
            if dataType == .int32 { return adopt(p.int32_data) { $0.int32_data = nil; $0.n_int32_data = 0 } }
            let width = (dataType.bitsPerElement ?? 8) >= 16 ? 2 : 1
            let buffer = TensorBuffer(zeroed: present * width)
            if width == 2 {
                let out = buffer.mutableBytes.bindMemory(to: UInt16.self)
                for i in 0..<present { out[i] = UInt16(truncatingIfNeeded: p.int32_data[i]) }
            } else {
                let out = buffer.mutableBytes.bindMemory(to: UInt8.self)
                for i in 0..<present { out[i] = UInt8(truncatingIfNeeded: p.int32_data[i]) }
            }
            return .bytes(buffer)
        }
    }

    private func readExternal(_ entries: [StringPair], tensor: String, expectedBytes: Int?) throws -> TensorBuffer {
        let info = try ExternalDataInfo(entries, tensor: tensor)
        guard let baseDirectory else {
            let shown = MessageText.name(info.location)
            throw GraphError.externalData(
                tensor: tensor, detail: "the model was not read from a file, so '\(shown)' cannot be found")
        }
        let path = try Self.resolveInside(baseDirectory, info.location, tensor: tensor)
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw GraphError.externalData(tensor: tensor, detail: "cannot open \(path): \(reason)")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw GraphError.externalData(tensor: tensor, detail: "\(path) is not a regular file")
        }
        let fileSize = Int(st.st_size)
        let length = info.length ?? max(0, fileSize - info.offset)
        let (end, overflow) = info.offset.addingReportingOverflow(length)
        guard !overflow, end <= fileSize else {
            throw GraphError.externalData(
                tensor: tensor,
                detail: "\(path) has \(fileSize) bytes; the tensor needs \(length) bytes from offset \(info.offset) "
                    + "(file too short)")
        }
        if let expectedBytes, expectedBytes != length {
            throw GraphError.externalData(tensor: tensor, detail: "length is \(length) bytes; the tensor's type and dims need \(expectedBytes)")
        }
        let buffer = TensorBuffer(zeroed: length)
        var done = 0
        while done < length {
            let n = pread(fd, buffer.baseAddress! + done, length - done, off_t(info.offset + done))
            guard n > 0 else {
                throw GraphError.externalData(tensor: tensor, detail: "read of \(path) failed at byte \(info.offset + done)")
            }
            done += n
        }
        return buffer
    }

    /// The real path of `location` (every symlink resolved), which must lie inside the real path of `folder`: a
    /// symlink (or a symlinked folder) pointing out of the model's folder is refused, not followed.
    static func resolveInside(_ folder: URL, _ location: String, tensor: String) throws -> String {
        let joined = folder.appendingPathComponent(location).path
        guard let realFolder = realPath(folder.path) else {
            throw GraphError.externalData(tensor: tensor, detail: "cannot resolve the model's folder \(folder.path)")
        }
        guard let real = realPath(joined) else {
            let reason = String(cString: strerror(errno))
            throw GraphError.externalData(tensor: tensor, detail: "cannot open \(joined): \(reason)")
        }
        let prefix = realFolder.hasSuffix("/") ? realFolder : realFolder + "/"
        guard real.hasPrefix(prefix) else {
            throw GraphError.externalData(
                tensor: tensor,
                detail: "location '\(MessageText.name(location))' resolves to \(real), outside the model's folder "
                    + "\(realFolder) (a symlink?); refused")
        }
        return real
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    // MARK: Small pieces

    func preserved<M>(_ message: UnsafeMutablePointer<M>) -> PreservedMessage {
        let base = UnsafeMutableRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
        let size = protobuf_c_message_get_packed_size(base)
        var bytes = [UInt8](repeating: 0, count: size)
        _ = bytes.withUnsafeMutableBufferPointer { protobuf_c_message_pack(base, $0.baseAddress) }
        // Saving unpacks these bytes again: check now that they do (a nested field number past 2^29 does not).
        let descriptor = base.pointee.descriptor
        if let again = bytes.withUnsafeBufferPointer({ protobuf_c_message_unpack(descriptor, nil, size, $0.baseAddress) }) {
            protobuf_c_message_free_unpacked(again, nil)
        } else {
            damage.note("a \(String(cString: descriptor!.pointee.name)) holds a field protobuf cannot write back")
        }
        return PreservedMessage(serialized: bytes)
    }

    func unknownFields<M>(_ message: UnsafeMutablePointer<M>) -> UnknownFields {
        let base = UnsafeMutableRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self).pointee
        guard base.n_unknown_fields > 0, let fields = base.unknown_fields else { return UnknownFields() }
        for i in 0..<Int(base.n_unknown_fields) where fields[i].tag == 0 || fields[i].tag >= 1 << 29 {
            let message = String(cString: base.descriptor.pointee.name)
            damage.note("field number \(fields[i].tag) in a \(message) is outside protobuf's range")
        }
        return UnknownFields(
            (0..<Int(base.n_unknown_fields)).map { i in
                let f = fields[i]
                return UnknownFields.Field(
                    tag: f.tag, wireType: f.wire_type.rawValue, bytes: Array(UnsafeBufferPointer(start: f.data, count: f.len)))
            })
    }

    func list<T>(_ pointer: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?, _ count: Int) -> [UnsafeMutablePointer<T>] {
        guard let pointer else { return [] }
        return (0..<count).compactMap { pointer[$0] }
    }

    func string(_ p: UnsafeMutablePointer<CChar>?) -> String? { p.map { String(cString: $0) } }

    func strings(_ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ count: Int) -> [String] {
        guard let p else { return [] }
        return (0..<count).map { p[$0].map { String(cString: $0) } ?? "" }
    }

    func bytes(_ b: ProtobufCBinaryData) -> [UInt8] { Array(UnsafeBufferPointer(start: b.data, count: b.len)) }

    func pairs(_ p: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__StringStringEntryProto>?>?, _ count: Int) -> [StringPair] {
        list(p, count).map {
            StringPair(key: string($0.pointee.key), value: string($0.pointee.value), unknownFields: unknownFields($0))
        }
    }
}

/// The `external_data` entries of a tensor, checked: a relative location inside the model's folder.
struct ExternalDataInfo {
    var location: String
    var offset: Int
    var length: Int?

    init(_ entries: [StringPair], tensor: String) throws {
        var location: String?
        var offset = 0
        var length: Int?
        for entry in entries {
            switch entry.key {
            case "location": location = entry.value
            case "offset":
                guard let v = entry.value.flatMap({ Int($0) }), v >= 0 else {
                    throw GraphError.externalData(
                        tensor: tensor, detail: "offset '\(MessageText.name(entry.value ?? ""))' is not a byte count")
                }
                offset = v
            case "length":
                guard let v = entry.value.flatMap({ Int($0) }), v >= 0 else {
                    throw GraphError.externalData(
                        tensor: tensor, detail: "length '\(MessageText.name(entry.value ?? ""))' is not a byte count")
                }
                length = v
            default: continue
            }
        }
        guard let location, !location.isEmpty else {
            throw GraphError.externalData(tensor: tensor, detail: "no location entry")
        }
        if location.hasPrefix("/") {
            throw GraphError.externalData(tensor: tensor, detail: "location '\(MessageText.name(location))' is an absolute path; only paths inside the model's folder are read")
        }
        if location.split(separator: "/").contains("..") {
            throw GraphError.externalData(tensor: tensor, detail: "location '\(MessageText.name(location))' leaves the model's folder ('..'); refused")
        }
        self.location = location
        self.offset = offset
        self.length = length
    }
}
