import Foundation

/// One array of a `.npy`/`.npz` as a lazy source of rows (slices along axis 0): a stored member (what `np.savez`
/// writes) stays in the file and each read takes only its rows; a deflated member (`np.savez_compressed`) is inflated
/// once and held.
public struct NumpyMember: Sendable {
    public let shape: [Int]
    /// The dtype the file holds (`<f4`, `<i8`, ...).
    public let dtype: String
    let storage: Storage

    enum Storage: Sendable {
        case file(path: String, offset: Int)
        case memory(NumpyArray)
    }

    public var isInteger: Bool { dtype.hasSuffix("i8") || dtype.hasSuffix("i4") }
    /// Elements of one row (one sample).
    public var rowCount: Int { shape.dropFirst().reduce(1, *) }

    public init(_ array: NumpyArray) {
        shape = array.shape
        dtype = array.dtype
        storage = .memory(array)
    }

    init(header: NumpyArchive.NpyHeader, path: String, offset: Int) {
        shape = header.shape
        dtype = header.dtype
        storage = .file(path: path, offset: offset)
    }

    /// Rows `rows` (ascending indices along axis 0, each < shape[0]) appended in that order.
    public func read(rows: [Int], floats: inout [Float], ints: inout [Int64]) throws {
        let inner = rowCount
        switch storage {
        case .memory(let a):
            switch a.values {
            case .float(let f): for r in rows { floats.append(contentsOf: f[(r * inner)..<((r + 1) * inner)]) }
            case .int64(let v): for r in rows { ints.append(contentsOf: v[(r * inner)..<((r + 1) * inner)]) }
            }
        case .file(let path, let offset):
            try readFromFile(path, offset: offset, rows: rows, floats: &floats, ints: &ints)
        }
    }

    /// Runs of consecutive rows are read with one `pread` each and converted.
    func readFromFile(_ path: String, offset: Int, rows: [Int], floats: inout [Float], ints: inout [Int64]) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw NumpyError(path: path, message: "cannot read the file: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let width = NumpyArchive.NpyHeader.widths[dtype]!
        let rowBytes = rowCount * width
        var buffer = [UInt8]()
        var i = 0
        while i < rows.count {
            var j = i + 1
            while j < rows.count && rows[j] == rows[j - 1] + 1 { j += 1 }
            let bytes = (j - i) * rowBytes
            if buffer.count < bytes { buffer = [UInt8](repeating: 0, count: bytes) }
            let got = buffer.withUnsafeMutableBytes { b -> Int in
                var done = 0
                while done < bytes {
                    let n = pread(fd, b.baseAddress! + done, bytes - done, off_t(offset + rows[i] * rowBytes + done))
                    if n <= 0 { break }
                    done += n
                }
                return done
            }
            guard got == bytes else {
                throw NumpyError(path: path, message: "the file ended early (changed while read?)")
            }
            try buffer.withUnsafeBytes { b in
                try NumpyArchive.append(
                    UnsafeRawBufferPointer(rebasing: b[..<bytes]), dtype: dtype, path: path,
                    floats: &floats, ints: &ints)
            }
            i = j
        }
    }
}

extension NumpyArchive {
    /// The arrays of a `.npz` by name (the `.npy` suffix dropped), or of a `.npy` under the name "", without reading
    /// stored data: only the zip directory and the `.npy` headers are read (deflated members are inflated whole).
    public static func open(_ path: String) throws -> [String: NumpyMember] {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw NumpyError(path: path, message: "cannot read the file: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw NumpyError(path: path, message: "not a regular file") }
        let size = Int(st.st_size)
        guard size > 0 else { throw NumpyError(path: path, message: "neither a .npy array nor a .npz archive (empty)") }
        let fd = Foundation.open(path, O_RDONLY)
        guard fd >= 0 else {
            throw NumpyError(path: path, message: "cannot read the file: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        // Mapped for the directory walk only: the pages touched are the directory and the headers.
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw NumpyError(path: path, message: "cannot map the file: \(String(cString: strerror(errno)))")
        }
        defer { munmap(base, size) }
        let b = UnsafeRawBufferPointer(start: base, count: size)
        if b.starts(with: [0x93] + Array("NUMPY".utf8)) {
            guard let h = try NpyHeader(b, path: path) else {
                throw NumpyError(path: path, message: "truncated .npy header")
            }
            guard h.dataBytes <= size - h.dataStart else {
                throw NumpyError(
                    path: path,
                    message: "holds \(size - h.dataStart) bytes of data; shape \(h.shape) of "
                        + "\(h.dtype) needs \(h.dataBytes)")
            }
            return ["": NumpyMember(header: h, path: path, offset: h.dataStart)]
        }
        guard b.starts(with: [0x50, 0x4B]) else {
            throw NumpyError(path: path, message: "neither a .npy array nor a .npz archive")
        }
        return try parseZipEntries(b, path: path, lazy: true).mapValues { entry in
            switch entry {
            case .array(let a): return NumpyMember(a)
            case .stored(let h, let offset): return NumpyMember(header: h, path: path, offset: offset)
            }
        }
    }

    /// Little-endian elements of `dtype` converted and appended (floats to float32, integers to int64).
    static func append(
        _ data: UnsafeRawBufferPointer, dtype: String, path: String,
        floats: inout [Float], ints: inout [Int64]
    ) throws {
        switch dtype.dropFirst() {
        case "f4": floats += converted(data, count: data.count / 4, as: Float.self) { $0 }
        case "f2": floats += converted(data, count: data.count / 2, as: Float16.self) { Float($0) }
        case "f8": floats += converted(data, count: data.count / 8, as: Double.self) { Float($0) }
        case "i8": ints += converted(data, count: data.count / 8, as: Int64.self) { $0 }
        case "i4": ints += converted(data, count: data.count / 4, as: Int32.self) { Int64($0) }
        default: throw NumpyError(path: path, message: "dtype \(MessageText.name(dtype)) is not read")
        }
    }
}
