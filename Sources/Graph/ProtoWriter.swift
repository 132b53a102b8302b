import CProtoSchemas
import CProtobufC
import Foundation

// The IR → protobuf-c structs, for packing. Every struct, array and string is allocated in an `Arena` that frees
// them together; tensor bytes are *borrowed* (raw_data and same-typed repeated fields point into the IR's buffers),
// so packing a model never holds a second copy of its weights. The model must outlive the arena's use.

/// Zeroed memory handed out from large chunks (a bump allocator): a model of a million messages costs a few hundred
/// `calloc`s instead of millions of `malloc`/`free` pairs, and it is freed chunk by chunk.
final class Arena {
    private static let chunkSize = 4 << 20
    private var chunks: [UnsafeMutableRawPointer] = []
    private var next: UnsafeMutableRawPointer?
    private var remaining = 0
    private var unpacked: [() -> Void] = []

    deinit {
        for p in chunks { free(p) }
        for release in unpacked { release() }
    }

    /// `byteCount` zeroed bytes aligned to `alignment` (a power of two of at most 16).
    private func allocateBytes(_ byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        if let next {
            let padding = (alignment - Int(bitPattern: next) & (alignment - 1)) & (alignment - 1)
            if padding + byteCount <= remaining {
                remaining -= padding + byteCount
                self.next = next + padding + byteCount
                return next + padding
            }
        }
        // A new chunk (calloc: fresh pages come zeroed); one larger than a chunk gets its own allocation.
        let size = max(byteCount, Arena.chunkSize)
        let chunk = calloc(size, 1)!
        chunks.append(chunk)
        if size > Arena.chunkSize { return chunk }
        next = chunk + byteCount
        remaining = size - byteCount
        return chunk
    }

    func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let n = max(count, 1)
        let raw = allocateBytes(n * MemoryLayout<T>.stride, alignment: max(MemoryLayout<T>.alignment, 8))
        return raw.bindMemory(to: T.self, capacity: n)
    }

    func cString(_ s: String?) -> UnsafeMutablePointer<CChar>? {
        guard var s else { return nil }
        return s.withUTF8 { utf8 in
            let p = allocate(CChar.self, count: utf8.count + 1)  // zeroed, so the terminator is there
            if let source = utf8.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: source, byteCount: utf8.count) }
            return p
        }
    }

    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let p = allocate(T.self, count: values.count)
        p.initialize(from: values, count: values.count)
        return p
    }

    func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        ProtobufCBinaryData(len: bytes.count, data: array(bytes))
    }

    /// Keeps a message that protobuf-c unpacked (a preserved message) until the arena goes.
    func adopt(_ release: @escaping () -> Void) { unpacked.append(release) }
}

struct ProtoWriter {
    let arena = Arena()

    func model(_ model: Model) -> UnsafeMutablePointer<Onnx__ModelProto> {
        let m = arena.allocate(Onnx__ModelProto.self)
        onnx__model_proto__init(m)
        if let v = model.irVersion { m.pointee.has_ir_version = 1; m.pointee.ir_version = v }
        (m.pointee.n_opset_import, m.pointee.opset_import) = messages(model.opsetImports) { o in
            let p = arena.allocate(Onnx__OperatorSetIdProto.self)
            onnx__operator_set_id_proto__init(p)
            p.pointee.domain = arena.cString(o.domain)
            if let v = o.version { p.pointee.has_version = 1; p.pointee.version = v }
            setUnknown(p, o.unknownFields)
            return p
        }
        m.pointee.producer_name = arena.cString(model.producerName)
        m.pointee.producer_version = arena.cString(model.producerVersion)
        m.pointee.domain = arena.cString(model.domain)
        if let v = model.modelVersion { m.pointee.has_model_version = 1; m.pointee.model_version = v }
        m.pointee.doc_string = arena.cString(model.docString)
        m.pointee.graph = graph(model.graph)
        (m.pointee.n_metadata_props, m.pointee.metadata_props) = pairs(model.metadataProps)
        (m.pointee.n_training_info, m.pointee.training_info) = messages(model.trainingInfo) {
            unpack($0, onnx__training_info_proto__unpack, onnx__training_info_proto__free_unpacked)
        }
        (m.pointee.n_functions, m.pointee.functions) = messages(model.functions) {
            unpack($0, onnx__function_proto__unpack, onnx__function_proto__free_unpacked)
        }
        (m.pointee.n_configuration, m.pointee.configuration) = messages(model.configuration) {
            unpack($0, onnx__device_configuration_proto__unpack, onnx__device_configuration_proto__free_unpacked)
        }
        setUnknown(m, model.unknownFields)
        return m
    }

    func graph(_ graph: Graph) -> UnsafeMutablePointer<Onnx__GraphProto> {
        let g = arena.allocate(Onnx__GraphProto.self)
        onnx__graph_proto__init(g)
        let order = graph.order
        (g.pointee.n_node, g.pointee.node) = messages(count: order.count) { node(graph[order[$0]]) }
        g.pointee.name = arena.cString(graph.name)
        let initializers = graph.initializers.values
        (g.pointee.n_initializer, g.pointee.initializer) = messages(count: initializers.count) {
            tensor(initializers[initializers.startIndex + $0])
        }
        (g.pointee.n_sparse_initializer, g.pointee.sparse_initializer) = messages(graph.sparseInitializers) {
            unpack($0, onnx__sparse_tensor_proto__unpack, onnx__sparse_tensor_proto__free_unpacked)
        }
        g.pointee.doc_string = arena.cString(graph.docString)
        (g.pointee.n_input, g.pointee.input) = messages(graph.inputs, valueInfo)
        (g.pointee.n_output, g.pointee.output) = messages(graph.outputs, valueInfo)
        (g.pointee.n_value_info, g.pointee.value_info) = messages(graph.valueInfo, valueInfo)
        (g.pointee.n_quantization_annotation, g.pointee.quantization_annotation) = messages(graph.quantizationAnnotations) {
            unpack($0, onnx__tensor_annotation__unpack, onnx__tensor_annotation__free_unpacked)
        }
        (g.pointee.n_metadata_props, g.pointee.metadata_props) = pairs(graph.metadataProps)
        setUnknown(g, graph.unknownFields)
        return g
    }

    func node(_ node: Node) -> UnsafeMutablePointer<Onnx__NodeProto> {
        let n = arena.allocate(Onnx__NodeProto.self)
        onnx__node_proto__init(n)
        (n.pointee.n_input, n.pointee.input) = strings(node.inputs)
        (n.pointee.n_output, n.pointee.output) = strings(node.outputs)
        n.pointee.name = arena.cString(node.name)
        n.pointee.op_type = arena.cString(node.opType)
        n.pointee.domain = arena.cString(node.domain)
        n.pointee.overload = arena.cString(node.overload)
        (n.pointee.n_attribute, n.pointee.attribute) = messages(node.attributes, attribute)
        n.pointee.doc_string = arena.cString(node.docString)
        (n.pointee.n_metadata_props, n.pointee.metadata_props) = pairs(node.metadataProps)
        (n.pointee.n_device_configurations, n.pointee.device_configurations) = messages(node.deviceConfigurations) {
            unpack($0, onnx__node_device_configuration_proto__unpack, onnx__node_device_configuration_proto__free_unpacked)
        }
        setUnknown(n, node.unknownFields)
        return n
    }

    func attribute(_ attr: Attribute) -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let a = arena.allocate(Onnx__AttributeProto.self)
        onnx__attribute_proto__init(a)
        a.pointee.name = arena.cString(attr.name)
        a.pointee.ref_attr_name = arena.cString(attr.refAttrName)
        a.pointee.doc_string = arena.cString(attr.docString)
        if let t = attr.type {
            a.pointee.has_type = 1
            a.pointee.type = Onnx__AttributeProto__AttributeType(rawValue: UInt32(bitPattern: t))
        }
        if let f = attr.f { a.pointee.has_f = 1; a.pointee.f = f }
        if let i = attr.i { a.pointee.has_i = 1; a.pointee.i = i }
        if let s = attr.s { a.pointee.has_s = 1; a.pointee.s = arena.binary(s) }
        a.pointee.t = attr.t.map(tensor)
        a.pointee.g = attr.g.map(graph)
        a.pointee.sparse_tensor = attr.sparseTensor.map {
            unpack($0, onnx__sparse_tensor_proto__unpack, onnx__sparse_tensor_proto__free_unpacked)
        }
        a.pointee.tp = attr.tp.map(valueType)
        a.pointee.n_floats = attr.floats.count
        a.pointee.floats = arena.array(attr.floats)
        a.pointee.n_ints = attr.ints.count
        a.pointee.ints = arena.array(attr.ints)
        a.pointee.n_strings = attr.strings.count
        a.pointee.strings = arena.array(attr.strings.map(arena.binary))
        (a.pointee.n_tensors, a.pointee.tensors) = messages(attr.tensors, tensor)
        (a.pointee.n_graphs, a.pointee.graphs) = messages(attr.graphs, graph)
        (a.pointee.n_sparse_tensors, a.pointee.sparse_tensors) = messages(attr.sparseTensors) {
            unpack($0, onnx__sparse_tensor_proto__unpack, onnx__sparse_tensor_proto__free_unpacked)
        }
        (a.pointee.n_type_protos, a.pointee.type_protos) = messages(attr.typeProtos, valueType)
        setUnknown(a, attr.unknownFields)
        return a
    }

    func valueInfo(_ info: ValueInfo) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let v = arena.allocate(Onnx__ValueInfoProto.self)
        onnx__value_info_proto__init(v)
        v.pointee.name = arena.cString(info.name)
        v.pointee.type = info.type.map(valueType)
        v.pointee.doc_string = arena.cString(info.docString)
        (v.pointee.n_metadata_props, v.pointee.metadata_props) = pairs(info.metadataProps)
        setUnknown(v, info.unknownFields)
        return v
    }

    func valueType(_ type: ValueType) -> UnsafeMutablePointer<Onnx__TypeProto> {
        let t = arena.allocate(Onnx__TypeProto.self)
        onnx__type_proto__init(t)
        t.pointee.denotation = arena.cString(type.denotation)
        switch type.kind {
        case .tensor(let elem, let shape, let unknown):
            let x = arena.allocate(Onnx__TypeProto__Tensor.self)
            onnx__type_proto__tensor__init(x)
            if let elem { x.pointee.has_elem_type = 1; x.pointee.elem_type = elem }
            x.pointee.shape = shape.map(self.shape)
            setUnknown(x, unknown)
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
            t.pointee.tensor_type = x
        case .sparseTensor(let elem, let shape, let unknown):
            let x = arena.allocate(Onnx__TypeProto__SparseTensor.self)
            onnx__type_proto__sparse_tensor__init(x)
            if let elem { x.pointee.has_elem_type = 1; x.pointee.elem_type = elem }
            x.pointee.shape = shape.map(self.shape)
            setUnknown(x, unknown)
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE
            t.pointee.sparse_tensor_type = x
        case .sequence(let elem, let unknown):
            let x = arena.allocate(Onnx__TypeProto__Sequence.self)
            onnx__type_proto__sequence__init(x)
            x.pointee.elem_type = elem.map(valueType)
            setUnknown(x, unknown)
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE
            t.pointee.sequence_type = x
        case .map(let key, let value, let unknown):
            let x = arena.allocate(Onnx__TypeProto__Map.self)
            onnx__type_proto__map__init(x)
            if let key { x.pointee.has_key_type = 1; x.pointee.key_type = key }
            x.pointee.value_type = value.map(valueType)
            setUnknown(x, unknown)
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_MAP_TYPE
            t.pointee.map_type = x
        case .optional(let elem, let unknown):
            let x = arena.allocate(Onnx__TypeProto__Optional.self)
            onnx__type_proto__optional__init(x)
            x.pointee.elem_type = elem.map(valueType)
            setUnknown(x, unknown)
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE
            t.pointee.optional_type = x
        case .opaque(let domain, let name, let unknown):
            let x = arena.allocate(Onnx__TypeProto__Opaque.self)
            onnx__type_proto__opaque__init(x)
            x.pointee.domain = arena.cString(domain)
            x.pointee.name = arena.cString(name)
            setUnknown(x, unknown)
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_OPAQUE_TYPE
            t.pointee.opaque_type = x
        case .notSet:
            break
        }
        setUnknown(t, type.unknownFields)
        return t
    }

    func shape(_ shape: Shape) -> UnsafeMutablePointer<Onnx__TensorShapeProto> {
        let s = arena.allocate(Onnx__TensorShapeProto.self)
        onnx__tensor_shape_proto__init(s)
        (s.pointee.n_dim, s.pointee.dim) = messages(shape.dims) { dim in
            let d = arena.allocate(Onnx__TensorShapeProto__Dimension.self)
            onnx__tensor_shape_proto__dimension__init(d)
            switch dim.value {
            case .known(let v):
                d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                d.pointee.dim_value = v
            case .symbolic(let name):
                d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                d.pointee.dim_param = arena.cString(name)
            case .unknown:
                break
            }
            d.pointee.denotation = arena.cString(dim.denotation)
            setUnknown(d, dim.unknownFields)
            return d
        }
        setUnknown(s, shape.unknownFields)
        return s
    }

    func tensor(_ tensor: Tensor) -> UnsafeMutablePointer<Onnx__TensorProto> {
        let t = arena.allocate(Onnx__TensorProto.self)
        onnx__tensor_proto__init(t)
        t.pointee.n_dims = tensor.dims.count
        t.pointee.dims = arena.array(tensor.dims)
        if tensor.dataType != .undefined {
            t.pointee.has_data_type = 1
            t.pointee.data_type = tensor.dataType.rawValue
        }
        if let segment = tensor.segment {
            let x = arena.allocate(Onnx__TensorProto__Segment.self)
            onnx__tensor_proto__segment__init(x)
            if let b = segment.begin { x.pointee.has_begin = 1; x.pointee.begin = b }
            if let e = segment.end { x.pointee.has_end = 1; x.pointee.end = e }
            setUnknown(x, segment.unknownFields)
            t.pointee.segment = x
        }
        t.pointee.name = arena.cString(tensor.name)
        t.pointee.doc_string = arena.cString(tensor.docString)
        if let location = tensor.dataLocation {
            t.pointee.has_data_location = 1
            t.pointee.data_location = Onnx__TensorProto__DataLocation(rawValue: UInt32(bitPattern: location))
        }
        (t.pointee.n_metadata_props, t.pointee.metadata_props) = pairs(tensor.metadataProps)
        switch (tensor.encoding, tensor.data) {
        case (.external(let entries), _):
            // The saver has written the bytes and set the entries; only the reference goes into the model.
            (t.pointee.n_external_data, t.pointee.external_data) = pairs(entries)
            t.pointee.has_data_location = 1
            t.pointee.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL
        case (_, .strings(let strings)):
            t.pointee.n_string_data = strings.count
            t.pointee.string_data = arena.array(strings.map(arena.binary))
        case (.raw, .bytes(let buffer)):
            t.pointee.has_raw_data = 1
            t.pointee.raw_data = ProtobufCBinaryData(len: buffer.byteCount, data: buffer.baseAddress?.assumingMemoryBound(to: UInt8.self))
        case (.typedFields, .bytes(let buffer)):
            setTypedFields(t, tensor.dataType, buffer)
        }
        setUnknown(t, tensor.unknownFields)
        return t
    }

    /// Raw layout → the typed repeated field of the type; same-width fields borrow the buffer.
    private func setTypedFields(_ t: UnsafeMutablePointer<Onnx__TensorProto>, _ type: DataType, _ buffer: TensorBuffer) {
        guard buffer.byteCount > 0, let base = buffer.baseAddress else { return }
        switch type {
        case .float, .complex64:
            t.pointee.n_float_data = buffer.byteCount / 4
            t.pointee.float_data = base.assumingMemoryBound(to: Float.self)
        case .double, .complex128:
            t.pointee.n_double_data = buffer.byteCount / 8
            t.pointee.double_data = base.assumingMemoryBound(to: Double.self)
        case .int64:
            t.pointee.n_int64_data = buffer.byteCount / 8
            t.pointee.int64_data = base.assumingMemoryBound(to: Int64.self)
        case .uint64:
            t.pointee.n_uint64_data = buffer.byteCount / 8
            t.pointee.uint64_data = base.assumingMemoryBound(to: UInt64.self)
        case .uint32:
            let n = buffer.byteCount / 4
            let out = arena.allocate(UInt64.self, count: n)
            let src = base.assumingMemoryBound(to: UInt32.self)
            for i in 0..<n { out[i] = UInt64(src[i]) }
            t.pointee.n_uint64_data = n
            t.pointee.uint64_data = out
        case .int32:
            t.pointee.n_int32_data = buffer.byteCount / 4
            t.pointee.int32_data = base.assumingMemoryBound(to: Int32.self)
        default:
            let wide = (type.bitsPerElement ?? 8) >= 16
            let n = wide ? buffer.byteCount / 2 : buffer.byteCount
            let out = arena.allocate(Int32.self, count: n)
            if wide {
                let src = base.assumingMemoryBound(to: UInt16.self)
                for i in 0..<n { out[i] = type == .int16 ? Int32(Int16(bitPattern: src[i])) : Int32(src[i]) }
            } else {
                let src = base.assumingMemoryBound(to: UInt8.self)
                for i in 0..<n { out[i] = type == .int8 ? Int32(Int8(bitPattern: src[i])) : Int32(src[i]) }
            }
            t.pointee.n_int32_data = n
            t.pointee.int32_data = out
        }
    }

    // MARK: Small pieces

    private func messages<T, M>(_ values: [T], _ make: (T) -> UnsafeMutablePointer<M>) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<M>?>?) {
        guard !values.isEmpty else { return (0, nil) }
        let p = arena.allocate(UnsafeMutablePointer<M>?.self, count: values.count)
        for (i, v) in values.enumerated() { p[i] = make(v) }
        return (values.count, p)
    }

    /// `count` messages made by `make(i)`, without gathering the values into an array first.
    private func messages<M>(count: Int, _ make: (Int) -> UnsafeMutablePointer<M>) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<M>?>?) {
        guard count > 0 else { return (0, nil) }
        let p = arena.allocate(UnsafeMutablePointer<M>?.self, count: count)
        for i in 0..<count { p[i] = make(i) }
        return (count, p)
    }

    private func strings(_ values: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        guard !values.isEmpty else { return (0, nil) }
        let p = arena.allocate(UnsafeMutablePointer<CChar>?.self, count: values.count)
        for (i, v) in values.enumerated() { p[i] = arena.cString(v) }
        return (values.count, p)
    }

    private func pairs(_ values: [StringPair]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Onnx__StringStringEntryProto>?>?) {
        messages(values) { pair in
            let p = arena.allocate(Onnx__StringStringEntryProto.self)
            onnx__string_string_entry_proto__init(p)
            p.pointee.key = arena.cString(pair.key)
            p.pointee.value = arena.cString(pair.value)
            setUnknown(p, pair.unknownFields)
            return p
        }
    }

    /// A preserved message back into a protobuf-c struct (protobuf-c unpacks it; the arena frees it).
    private func unpack<M>(
        _ message: PreservedMessage,
        _ unpackFunction: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<M>?,
        _ freeFunction: @escaping (UnsafeMutablePointer<M>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void
    ) -> UnsafeMutablePointer<M> {
        let unpacked = message.serialized.withUnsafeBufferPointer { unpackFunction(nil, $0.count, $0.baseAddress) }
        // These bytes were packed by protobuf-c from the same schema at load, so they unpack.
        guard let unpacked else { preconditionFailure("a preserved message no longer unpacks") }
        arena.adopt { freeFunction(unpacked, nil) }
        return unpacked
    }

    private func setUnknown<M>(_ message: UnsafeMutablePointer<M>, _ unknown: UnknownFields) {
        guard !unknown.isEmpty else { return }
        let base = UnsafeMutableRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
        let fields = arena.allocate(ProtobufCMessageUnknownField.self, count: unknown.fields.count)
        for (i, f) in unknown.fields.enumerated() {
            fields[i] = ProtobufCMessageUnknownField(
                tag: f.tag, wire_type: ProtobufCWireType(rawValue: f.wireType), len: f.bytes.count, data: arena.array(f.bytes))
        }
        base.pointee.n_unknown_fields = UInt32(unknown.fields.count)
        base.pointee.unknown_fields = fields
    }
}

/// A `ProtobufCBuffer` whose `append` writes to a file descriptor through a 1 MiB buffer; large appends (tensor
/// bytes) go straight to `write`. Used with `pack_to_buffer`, so a model is never packed whole in memory.
/// protobuf-c calls `append` for every field, so its state is a plain struct behind the buffer (no object is
/// retained or released per call).
final class FileSink {
    private struct State {
        var fd: Int32
        var failure: Int32 = 0
        var buffer: UnsafeMutableRawPointer
        var capacity: Int
        var used = 0
        var written = 0
    }

    /// Memory laid out as a `ProtobufCBuffer` followed by a pointer to the state.
    let protobufBuffer: UnsafeMutablePointer<ProtobufCBuffer>
    private let state: UnsafeMutablePointer<State>
    var failure: Int32 { state.pointee.failure }
    var written: Int { state.pointee.written }

    init(fd: Int32) {
        let capacity = 1 << 20
        state = UnsafeMutablePointer<State>.allocate(capacity: 1)
        state.initialize(to: State(fd: fd, buffer: malloc(capacity)!, capacity: capacity))
        let raw = malloc(MemoryLayout<ProtobufCBuffer>.stride + MemoryLayout<UnsafeRawPointer>.stride)!
        protobufBuffer = raw.bindMemory(to: ProtobufCBuffer.self, capacity: 1)
        protobufBuffer.pointee.append = { buf, len, data in
            guard let buf, let data else { return }
            let state = UnsafeRawPointer(buf).load(fromByteOffset: MemoryLayout<ProtobufCBuffer>.stride, as: UnsafeMutableRawPointer.self)
            FileSink.append(state.assumingMemoryBound(to: State.self), UnsafeRawPointer(data), len)
        }
        raw.storeBytes(
            of: UnsafeMutableRawPointer(state), toByteOffset: MemoryLayout<ProtobufCBuffer>.stride,
            as: UnsafeMutableRawPointer.self)
    }

    deinit {
        free(state.pointee.buffer)
        state.deinitialize(count: 1)
        state.deallocate()
        free(UnsafeMutableRawPointer(protobufBuffer))
    }

    private static func append(_ state: UnsafeMutablePointer<State>, _ data: UnsafeRawPointer, _ count: Int) {
        guard state.pointee.failure == 0 else { return }
        if state.pointee.used + count > state.pointee.capacity { flush(state) }
        if count >= state.pointee.capacity {
            writeAll(state, data, count)
        } else {
            (state.pointee.buffer + state.pointee.used).copyMemory(from: data, byteCount: count)
            state.pointee.used += count
        }
    }

    func flush() { FileSink.flush(state) }

    private static func flush(_ state: UnsafeMutablePointer<State>) {
        guard state.pointee.used > 0 else { return }
        writeAll(state, UnsafeRawPointer(state.pointee.buffer), state.pointee.used)
        state.pointee.used = 0
    }

    private static func writeAll(_ state: UnsafeMutablePointer<State>, _ data: UnsafeRawPointer, _ count: Int) {
        var done = 0
        while done < count && state.pointee.failure == 0 {
            let n = write(state.pointee.fd, data + done, count - done)
            if n < 0 {
                if errno == EINTR { continue }
                state.pointee.failure = errno
            } else {
                done += n
            }
        }
        state.pointee.written += done
    }
}
