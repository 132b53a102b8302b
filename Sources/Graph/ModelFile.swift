import CProtoSchemas
import CProtobufC
import Foundation

/// How `ModelFile.save` places tensor bytes.
public enum ExternalDataPolicy: Sendable, Equatable {
    /// Tensors that were external when loaded stay external; the rest go inline. A model that would pass protobuf's
    /// 2 GiB limit moves its large initializers out anyway.
    case asLoaded
    /// Every initializer of at least `threshold` bytes goes to `<output name>.data` beside the model.
    case moveLarge(threshold: Int)
    /// Every tensor inline (a model that would pass 2 GiB is refused).
    case inline
}

/// Loading and saving ONNX files. The input is only ever opened read-only; every output is written to a temporary
/// file in the output's folder and renamed into place, so a failed or interrupted run leaves nothing half-written.
public enum ModelFile {
    /// Protobuf cannot read a message of 2 GiB or more.
    public static let protobufLimit = Int(Int32.max)

    public static func load(_ path: String) throws -> Model {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else { throw GraphError.cannotRead(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GraphError.cannotRead(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw GraphError.cannotRead(path: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        guard size > 0 else { throw GraphError.emptyFile(path: path) }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw GraphError.cannotRead(path: path, reason: String(cString: strerror(errno)))
        }
        defer { munmap(mapped, size) }
        _ = madvise(mapped, size, MADV_SEQUENTIAL)
        let releaser = MappedPageReleaser(mapping: mapped, size: size)
        var model = try releaser.withAllocator { allocator in
            try decode(
                UnsafeRawBufferPointer(start: mapped, count: size), path: path,
                baseDirectory: url.deletingLastPathComponent(), allocator: allocator)
        }
        model.sourcePath = url.path
        return model
    }

    /// Reads a model from bytes. External data is read relative to `baseDirectory` (nil: refused).
    public static func decode(_ bytes: UnsafeRawBufferPointer, path: String = "<memory>", baseDirectory: URL? = nil) throws -> Model {
        try decode(bytes, path: path, baseDirectory: baseDirectory, allocator: nil)
    }

    static func decode(
        _ bytes: UnsafeRawBufferPointer, path: String, baseDirectory: URL?, allocator: UnsafeMutablePointer<ProtobufCAllocator>?
    ) throws -> Model {
        guard bytes.count > 0 else { throw GraphError.emptyFile(path: path) }
        guard let message = onnx__model_proto__unpack(allocator, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            throw GraphError.notAModel(path: path)
        }
        defer { onnx__model_proto__free_unpacked(message, allocator) }
        var model = try ProtoReader(baseDirectory: baseDirectory).model(message, path: path)
        try model.graph.checkReferences()
        model.canonicalize()
        return model
    }

    /// The serialized model in memory (tensors with external encoding keep their references only).
    public static func encode(_ model: Model) -> [UInt8] {
        let writer = ProtoWriter()
        let message = writer.model(model)
        let size = onnx__model_proto__get_packed_size(message)
        var bytes = [UInt8](repeating: 0, count: size)
        _ = bytes.withUnsafeMutableBufferPointer { onnx__model_proto__pack(message, $0.baseAddress) }
        return bytes
    }

    /// Writes the model to `path` (and its external data beside it). Returns the files written.
    @discardableResult
    public static func save(_ model: Model, to path: String, externalData: ExternalDataPolicy = .asLoaded) throws -> [String] {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let directory = url.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw GraphError.cannotWrite(path: path, reason: "folder \(directory.path) does not exist")
        }
        let protectedFiles = inputFiles(of: model)
        if protectedFiles.contains(where: { sameFile($0, url.path) }) { throw GraphError.outputIsInput(path: path) }

        var out = model
        var policy = externalData
        var plan = try ExternalLayout(model: out, outputURL: url, policy: policy, protectedFiles: protectedFiles)
        plan.apply(to: &out)
        var writer = ProtoWriter()
        var message = writer.model(out)
        var size = onnx__model_proto__get_packed_size(message)
        if size > protobufLimit, policy != .inline {
            policy = .moveLarge(threshold: 1024)
            out = model
            plan = try ExternalLayout(model: out, outputURL: url, policy: policy, protectedFiles: protectedFiles)
            plan.apply(to: &out)
            writer = ProtoWriter()
            message = writer.model(out)
            size = onnx__model_proto__get_packed_size(message)
        }
        guard size <= protobufLimit else { throw GraphError.tooLarge(bytes: size) }

        var temporaries: [(temporary: String, final: String)] = []
        var committed = false
        defer {
            if !committed { for t in temporaries { unlink(t.temporary) } }
        }
        for file in plan.files {
            let temporary = temporaryPath(for: file.path)
            temporaries.append((temporary, file.path))
            try writeFile(temporary, finalPath: file.path) { fd in
                for piece in file.pieces {
                    var done = 0
                    let bytes = piece.bytes
                    while done < bytes.count {
                        let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(piece.offset + done))
                        if n < 0 { if errno == EINTR { continue }; return errno }
                        done += n
                    }
                }
                return 0
            }
        }
        let temporary = temporaryPath(for: url.path)
        temporaries.append((temporary, url.path))
        try writeFile(temporary, finalPath: url.path) { fd in
            let sink = FileSink(fd: fd)
            _ = onnx__model_proto__pack_to_buffer(message, sink.protobufBuffer)
            sink.flush()
            return sink.failure
        }
        withExtendedLifetime(writer) {}
        withExtendedLifetime(out) {}
        for t in temporaries {
            guard rename(t.temporary, t.final) == 0 else {
                throw GraphError.cannotWrite(path: t.final, reason: String(cString: strerror(errno)))
            }
        }
        committed = true
        return temporaries.map(\.final)
    }

    // MARK: Helpers

    private static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
    }

    private static func writeFile(_ temporary: String, finalPath: String, _ body: (Int32) -> Int32) throws {
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw GraphError.cannotWrite(path: finalPath, reason: String(cString: strerror(errno))) }
        let failure = body(fd)
        let closed = close(fd)
        if failure != 0 { throw GraphError.cannotWrite(path: finalPath, reason: String(cString: strerror(failure))) }
        if closed != 0 { throw GraphError.cannotWrite(path: finalPath, reason: String(cString: strerror(errno))) }
    }

    /// The model file and the external data files it was read from.
    static func inputFiles(of model: Model) -> [String] {
        guard let source = model.sourcePath else { return [] }
        let directory = URL(fileURLWithPath: source).deletingLastPathComponent()
        var files = [source] + model.companionPaths
        for tensor in model.graph.initializers.values {
            if case .external(let entries) = tensor.encoding,
                let location = entries.first(where: { $0.key == "location" })?.value
            {
                files.append(directory.appendingPathComponent(location).path)
            }
        }
        return files
    }

    static func sameFile(_ a: String, _ b: String) -> Bool { FileRoles.sameFile(a, b) }
}

/// A protobuf-c allocator (plain malloc/free, so adopted buffers are still freed with `free`) that drops the resident
/// pages of the read-only input mapping behind the point protobuf-c has copied. Tensors are copied out in file order
/// right after their buffer is allocated, so the bytes of large allocations so far are a lower bound on how far the
/// unpack has read; pages below that (less a margin) are released with MADV_DONTNEED every 16 MiB. A page still
/// needed faults back in from the page cache, so the estimate affects speed only, never correctness. Load then holds
/// about one copy of the weights in memory instead of two (the mapping and the unpacked tensors).
final class MappedPageReleaser {
    private let mapping: UnsafeMutableRawPointer
    private let size: Int
    private var copied = 0
    private var released = 0
    private static let releaseEvery = 16 << 20
    private static let margin = 1 << 20

    init(mapping: UnsafeMutableRawPointer, size: Int) {
        self.mapping = mapping
        self.size = size
    }

    func withAllocator<R>(_ body: (UnsafeMutablePointer<ProtobufCAllocator>) throws -> R) rethrows -> R {
        let allocator = UnsafeMutablePointer<ProtobufCAllocator>.allocate(capacity: 1)
        defer { allocator.deallocate() }
        allocator.initialize(to: ProtobufCAllocator(
            alloc: { context, size in
                if let context, size >= 1 << 16 {
                    Unmanaged<MappedPageReleaser>.fromOpaque(context).takeUnretainedValue().noteLargeAllocation(size)
                }
                return largeBufferAllocation(size)
            },
            free: { _, pointer in free(pointer) },
            allocator_data: Unmanaged.passUnretained(self).toOpaque()))
        return try withExtendedLifetime(self) { try body(allocator) }
    }

    private func noteLargeAllocation(_ bytes: Int) {
        // `copied` counts the large buffers already filled (this one is about to be).
        let page = Int(getpagesize())
        let end = min(size, max(0, copied - Self.margin)) / page * page
        if end - released >= Self.releaseEvery {
            _ = madvise(mapping, end, MADV_DONTNEED)
            released = end
        }
        copied += bytes
    }
}

/// `malloc` for small sizes; from 2 MiB up, 2 MiB-aligned memory marked for transparent huge pages, so filling a
/// large tensor takes a few faults instead of one per 4 KiB page. Either is released with `free`.
func largeBufferAllocation(_ size: Int) -> UnsafeMutableRawPointer? {
    let huge = 2 << 20
    guard size >= huge else { return malloc(size) }
    var pointer: UnsafeMutableRawPointer?
    guard posix_memalign(&pointer, huge, size) == 0, let pointer else { return malloc(size) }
    _ = madvise(pointer, size / huge * huge, MADV_HUGEPAGE)
    return pointer
}

/// Where each external tensor goes: its file (relative location), offset and length, and the entries to write.
struct ExternalLayout {
    struct Piece {
        var offset: Int
        var bytes: UnsafeRawBufferPointer
    }
    struct File {
        var path: String
        var pieces: [Piece]
    }
    private(set) var files: [File] = []
    private var entries: [String: [StringPair]] = [:]
    /// The initializers whose encoding `apply` may change: the planned ones and those that were external.
    private var touched: [String] = []

    init(model: Model, outputURL: URL, policy: ExternalDataPolicy, protectedFiles: [String]) throws {
        let directory = outputURL.deletingLastPathComponent()
        let defaultLocation = outputURL.lastPathComponent + ".data"
        var groups: [(location: String, tensors: [(name: String, tensor: Tensor, original: ExternalDataInfo?, entries: [StringPair])])] = []
        func add(_ location: String, _ item: (name: String, tensor: Tensor, original: ExternalDataInfo?, entries: [StringPair])) {
            if let i = groups.firstIndex(where: { $0.location == location }) {
                groups[i].tensors.append(item)
            } else {
                groups.append((location, [item]))
            }
        }
        // Tensors are read in place; only the few that go to external files are copied (a copy retains its parts).
        let names = model.graph.initializers.keys
        try model.graph.initializers.values.withUnsafeBufferPointer { tensors in
            for (i, name) in names.enumerated() {
                if case .external = tensors[i].encoding { touched.append(name) }
                guard case .bytes = tensors[i].data, policy != .inline else { continue }
                if case .external(let original) = tensors[i].encoding {
                    let info = try ExternalDataInfo(original, tensor: name)
                    var location = info.location
                    let target = directory.appendingPathComponent(location).path
                    if protectedFiles.contains(where: { ModelFile.sameFile($0, target) }) { location = defaultLocation }
                    add(location, (name, tensors[i], location == info.location ? info : nil, original))
                } else if case .moveLarge(let threshold) = policy, tensors[i].byteCount >= threshold {
                    add(defaultLocation, (name, tensors[i], nil, []))
                    touched.append(name)
                }
            }
        }
        for group in groups {
            // Keep the original offsets when every tensor still fits them without overlap; else lay out anew.
            var keep = group.tensors.allSatisfy { $0.original != nil && ($0.original!.length ?? $0.tensor.byteCount) == $0.tensor.byteCount }
            if keep {
                let spans = group.tensors.map { ($0.original!.offset, $0.original!.offset + $0.tensor.byteCount) }.sorted { $0.0 < $1.0 }
                keep = zip(spans, spans.dropFirst()).allSatisfy { $0.1 <= $1.0 }
            }
            var pieces: [Piece] = []
            var next = 0
            for item in group.tensors {
                let offset = keep ? item.original!.offset : next
                next = offset + item.tensor.byteCount
                pieces.append(Piece(offset: offset, bytes: item.tensor.rawBytes))
                if keep {
                    entries[item.name] = item.entries
                } else {
                    var newEntries = [
                        StringPair(key: "location", value: group.location),
                        StringPair(key: "offset", value: String(offset)),
                        StringPair(key: "length", value: String(item.tensor.byteCount)),
                    ]
                    newEntries += item.entries.filter { !["location", "offset", "length"].contains($0.key ?? "") }
                    entries[item.name] = newEntries
                }
            }
            let path = directory.appendingPathComponent(group.location)
            try FileManager.default.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
            files.append(File(path: path.path, pieces: pieces))
        }
    }

    /// Sets each tensor's encoding: the planned entries for external ones, raw bytes for formerly external ones.
    func apply(to model: inout Model) {
        for name in touched {
            guard var tensor = model.graph.initializers[name] else { continue }
            if let e = entries[name] {
                tensor.encoding = .external(e)
                tensor.dataLocation = 1
            } else if case .external = tensor.encoding {
                tensor.encoding = .raw
                tensor.dataLocation = nil
            } else {
                continue
            }
            model.graph.setInitializer(tensor)
        }
    }
}
