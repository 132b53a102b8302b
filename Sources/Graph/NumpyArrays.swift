import CZlib
import Foundation

/// A NumPy array read from `.npy` or one member of `.npz`: little-endian data converted to float32 or int64.
public struct NumpyArray: Sendable {
    public enum Values: Sendable {
        case float([Float])
        case int64([Int64])
    }
    public var shape: [Int]
    public var values: Values
    /// The dtype the file held (`<f4`, `<f2`, `<i8`, ...).
    public var dtype: String

    public var count: Int { shape.reduce(1, *) }

    /// The element bytes (little-endian, as in memory here).
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch values {
        case .float(let f): return try f.withUnsafeBytes(body)
        case .int64(let i): return try i.withUnsafeBytes(body)
        }
    }

    /// Bytes the values take in memory.
    public var byteCount: Int {
        switch values {
        case .float(let f): return f.count * 4
        case .int64(let i): return i.count * 8
        }
    }

    public init(shape: [Int], values: Values, dtype: String) {
        self.shape = shape
        self.values = values
        self.dtype = dtype
    }
}

/// Reading `.npy` and `.npz` (zip, stored or deflate-compressed members) calibration data.
public enum NumpyArchive {
    /// The arrays of a `.npz` by name (the `.npy` suffix dropped), or of a `.npy` under the name "".
    public static func load(_ path: String) throws -> [String: NumpyArray] {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw NumpyError(path: path, message: "cannot read the file: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw NumpyError(path: path, message: "not a regular file") }
        guard Int(st.st_size) <= InputLimit.bytes else {
            throw NumpyError(path: path, message: InputLimit.exceeded(Int(st.st_size), what: "the file"))
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NumpyError(path: path, message: "cannot read the file")
        }
        return try data.withUnsafeBytes { try parse($0, path: path) }
    }

    /// The arrays in the bytes of a `.npz` or `.npy` file (what `load` reads; the fuzz target calls this).
    public static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> [String: NumpyArray] {
        if bytes.starts(with: [0x93] + Array("NUMPY".utf8)) { return ["": try parseNpy(bytes, path: path)] }
        if bytes.starts(with: [0x50, 0x4B]) { return try parseZip(bytes, path: path) }
        throw NumpyError(path: path, message: "neither a .npy array nor a .npz archive")
    }

    /// Writes arrays as an uncompressed `.npz` (what `np.savez` writes), streamed to a temporary file and renamed: no
    /// copy of the arrays is made. Zip64 is not written, so an archive over 4 GiB is refused before any byte is.
    public static func save(_ arrays: [(String, NumpyArray)], to path: String) throws {
        var total = 22  // end of central directory
        for (name, array) in arrays {  // headers of 30 (local) and 46 (central) bytes, each with the name
            total += 76 + 2 * (name.utf8.count + 4) + npyHeader(array).count + array.byteCount
        }
        guard total <= Int(UInt32.max) else {
            throw NumpyError(path: path, message: "the arrays take \(total) bytes; an .npz over 4 GiB (zip64) is not "
                + "written")
        }
        let temporary = path + ".tmp-\(getpid())"
        guard let file = fopen(temporary, "wb") else {
            throw NumpyError(path: path, message: "cannot write: \(String(cString: strerror(errno)))")
        }
        var committed = false
        defer { if !committed { unlink(temporary) } }
        var failed = false, written = 0
        func put(_ bytes: UnsafeRawBufferPointer) {
            guard !failed, let base = bytes.baseAddress else { return }
            failed = fwrite(base, 1, bytes.count, file) != bytes.count
            written += bytes.count
        }
        var central: [UInt8] = []
        for (name, array) in arrays {
            let header = npyHeader(array), fileName = Array((name + ".npy").utf8)
            let size = header.count + array.byteCount, offset = written
            let crc = header.withUnsafeBytes { h in array.withBytes { d in crc32(of: [h, d]) } }
            var local: [UInt8] = []
            zipHeader(&local, signature: 0x0403_4B50, crc: crc, size: size, name: fileName, offset: nil)
            (local + fileName + header).withUnsafeBytes(put)
            array.withBytes(put)
            zipHeader(&central, signature: 0x0201_4B50, crc: crc, size: size, name: fileName, offset: offset)
            central += fileName
        }
        let centralOffset = written
        var end = central
        le(0x0605_4B50, 4, &end); le(0, 2, &end); le(0, 2, &end); le(arrays.count, 2, &end); le(arrays.count, 2, &end)
        le(central.count, 4, &end); le(centralOffset, 4, &end); le(0, 2, &end)
        end.withUnsafeBytes(put)
        let closed = fclose(file) == 0
        guard !failed, closed, rename(temporary, path) == 0 else {
            throw NumpyError(path: path, message: "cannot write: \(String(cString: strerror(errno)))")
        }
        committed = true
    }

    /// A stored (not compressed) member's local header (offset nil) or central directory entry, without its name.
    static func zipHeader(_ a: inout [UInt8], signature: Int, crc: Int, size: Int, name: [UInt8], offset: Int?) {
        le(signature, 4, &a)
        if offset != nil { le(20, 2, &a) }  // version made by
        le(20, 2, &a); le(0, 2, &a); le(0, 2, &a); le(0, 2, &a); le(0, 2, &a)  // needed, flags, method, time, date
        le(crc, 4, &a); le(size, 4, &a); le(size, 4, &a); le(name.count, 2, &a); le(0, 2, &a)
        if let offset { le(0, 2, &a); le(0, 2, &a); le(0, 2, &a); le(0, 4, &a); le(offset, 4, &a) }
    }

    /// `v` as `bytes` little-endian bytes.
    static func le(_ v: Int, _ bytes: Int, _ a: inout [UInt8]) {
        for i in 0..<bytes { a.append(UInt8((v >> (8 * i)) & 0xFF)) }
    }

    /// zlib's CRC-32 of buffers in turn, fed in pieces of at most 1 GiB (its length is 32-bit).
    static func crc32(of buffers: [UnsafeRawBufferPointer], from start: Int = 0) -> Int {
        var crc = UInt(start)
        for buffer in buffers {
            var rest = buffer
            while let base = rest.baseAddress, !rest.isEmpty {
                let n = min(rest.count, 1 << 30)
                crc = CZlib.crc32(crc, base.assumingMemoryBound(to: UInt8.self), UInt32(n))
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            }
        }
        return Int(crc)
    }

    /// CRC-32 (zlib's) of arrays, in name order: each name, shape and element bytes. What a file that carries a
    /// checksum of its own arrays (a retraining checkpoint) stores and checks.
    public static func checksum(_ arrays: [String: NumpyArray]) -> UInt32 {
        var crc = 0
        for name in arrays.keys.sorted() {
            let a = arrays[name]!
            let label = Array("\(name)\u{0}\(a.shape)\u{0}".utf8)
            let next = label.withUnsafeBytes { l in a.withBytes { d in crc32(of: [l, d], from: crc) } }
            crc = next
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    /// The .npy header of an array (magic, version 1.0, the dict padded to 64 bytes); its data follows.
    static func npyHeader(_ array: NumpyArray) -> [UInt8] {
        let isFloat = if case .float = array.values { true } else { false }
        return npyHeader(shape: array.shape, isFloat: isFloat)
    }

    /// The .npy header of a float32 (`<f4`) or int64 (`<i8`) array of `shape`.
    static func npyHeader(shape dims: [Int], isFloat: Bool) -> [UInt8] {
        let descr = isFloat ? "<f4" : "<i8"
        let shape = dims.count == 1 ? "(\(dims[0]),)" : "(" + dims.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        bytes += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8)
        return bytes
    }

    static func le16(_ b: UnsafeRawBufferPointer, _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
    static func le32(_ b: UnsafeRawBufferPointer, _ i: Int) -> Int { le16(b, i) | le16(b, i + 2) << 16 }

    /// The longest .npy header read (numpy writes under 100 bytes; its own reader refuses over 10,000).
    static let maxHeaderBytes = 1 << 20

    /// Every size the zip declares is checked against the file before use; a deflated member is inflated in
    /// steps, into a buffer sized by its own .npy header (never by the zip header), and refused past that size.
    static func parseZip(_ b: UnsafeRawBufferPointer, path: String) throws -> [String: NumpyArray] {
        try parseZipEntries(b, path: path, lazy: false).mapValues { entry in
            guard case .array(let a) = entry else { preconditionFailure("a stored member read lazily") }
            return a
        }
    }

    /// A member as `parseZipEntries` finds it: inflated (or read) whole, or stored at an offset of the file.
    enum Entry {
        case array(NumpyArray)
        case stored(NpyHeader, dataOffset: Int)
    }

    /// The members of a zip; with `lazy`, a stored member's header is read and its data left in the file.
    static func parseZipEntries(_ b: UnsafeRawBufferPointer, path: String, lazy: Bool) throws -> [String: Entry] {
        func fail(_ message: String) -> NumpyError { NumpyError(path: path, message: message) }
        // End of central directory: the last 0x06054b50 within the final 64 KiB + 22 bytes.
        var eocd = -1
        var i = b.count - 22
        while i >= max(0, b.count - 65_557) {
            if le32(b, i) == 0x0605_4B50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw fail("a zip without its central directory (truncated?)") }
        let entries = le16(b, eocd + 10)
        var offset = le32(b, eocd + 16)
        var result: [String: Entry] = [:]
        var total = 0
        for index in 0..<entries {
            guard offset <= b.count - 46, le32(b, offset) == 0x0201_4B50 else {
                throw fail("damaged zip central directory (entry \(index + 1) of \(entries))")
            }
            let method = le16(b, offset + 10)
            let compressed = le32(b, offset + 20), size = le32(b, offset + 24)
            let nameLength = le16(b, offset + 28), extraLength = le16(b, offset + 30), commentLength = le16(b, offset + 32)
            let local = le32(b, offset + 42)
            guard nameLength <= b.count - offset - 46 else {
                throw fail("damaged zip central directory: entry \(index + 1)'s name runs past the end of the file")
            }
            let nameBytes = UnsafeRawBufferPointer(rebasing: b[(offset + 46)..<(offset + 46 + nameLength)])
            let rawName = String(decoding: nameBytes, as: UTF8.self)
            let name = MessageText.name(rawName)
            offset += 46 + nameLength + extraLength + commentLength
            guard compressed != 0xFFFF_FFFF, size != 0xFFFF_FFFF else {
                throw fail("member \(name) needs ZIP64 (over 4 GiB): not supported")
            }
            guard local <= b.count - 30, le32(b, local) == 0x0403_4B50 else { throw fail("damaged zip entry \(name)") }
            let start = local + 30 + le16(b, local + 26) + le16(b, local + 28)
            guard start <= b.count, compressed <= b.count - start else {
                throw fail("member \(name) is truncated: its \(compressed) bytes run past the end of the file")
            }
            let raw = UnsafeRawBufferPointer(rebasing: b[start..<(start + compressed)])
            let memberPath = "\(path):\(name)"
            let array: NumpyArray
            let key = rawName.hasSuffix(".npy") ? String(rawName.dropLast(4)) : rawName
            switch method {
            case 0:
                guard size == compressed else {
                    throw fail("member \(name) is stored with \(compressed) bytes but declares \(size)")
                }
                if lazy {
                    guard let h = try NpyHeader(raw, path: memberPath), h.dataBytes <= raw.count - h.dataStart else {
                        throw fail("member \(name) is truncated: its .npy data runs past the end of the member")
                    }
                    result[key] = .stored(h, dataOffset: start + h.dataStart)
                    continue
                }
                array = try parseNpy(raw, path: memberPath)
            case 8:
                let member = try inflateNpy(raw, declaredSize: size, path: memberPath)
                array = try member.withUnsafeBytes { try parseNpy($0, path: memberPath) }
            default: throw fail("member \(name) uses zip method \(method); only stored and deflate are read")
            }
            total += array.byteCount
            guard total <= InputLimit.bytes else {
                throw fail(InputLimit.exceeded(total, what: "the arrays up to member \(name)"))
            }
            result[key] = .array(array)
        }
        return result
    }

    /// Inflates a deflated .npy member: the header first, then exactly the bytes it implies.
    static func inflateNpy(_ input: UnsafeRawBufferPointer, declaredSize: Int, path: String) throws -> [UInt8] {
        func fail(_ message: String) -> NumpyError { NumpyError(path: path, message: message) }
        let inflater = try Inflater(input, path: path)
        var out = [UInt8](repeating: 0, count: min(4096, maxHeaderBytes))
        var filled = 0
        var header: NpyHeader?
        while header == nil {
            if filled == out.count {
                guard out.count < maxHeaderBytes else { throw fail("the .npy header is over 1 MiB") }
                out += [UInt8](repeating: 0, count: out.count)
            }
            let ended = try out.withUnsafeMutableBytes { try inflater.fill($0, from: filled, produced: &filled) }
            header = try out.withUnsafeBytes { try NpyHeader(UnsafeRawBufferPointer(rebasing: $0[..<filled]), path: path) }
            if header == nil && ended { throw fail("the entry is truncated: it ends inside the .npy header") }
        }
        let total = header!.dataStart + header!.dataBytes
        // Three claims must agree before anything is allocated: the zip's size, the .npy header's, and what the
        // compressed bytes can hold at deflate's best ratio (1032:1).
        if declaredSize != total {
            throw fail("the zip says \(declaredSize) bytes; its .npy header describes \(total)")
        }
        guard total / 1032 <= input.count else {
            throw fail("the entry is truncated: \(input.count) compressed bytes cannot hold the \(total) its .npy header describes")
        }
        guard total <= InputLimit.bytes else { throw fail(InputLimit.exceeded(total, what: "the array")) }
        if filled > total { throw fail("inflates to more than the \(total) bytes its .npy header describes") }
        out.removeSubrange(filled...)
        out.reserveCapacity(total + 1)  // one spare byte shows data past the end
        out.append(contentsOf: repeatElement(0, count: total - filled + 1))
        var ended = false
        while !ended && filled < out.count {
            ended = try out.withUnsafeMutableBytes { try inflater.fill($0, from: filled, produced: &filled) }
        }
        guard filled <= total else { throw fail("inflates to more than the \(total) bytes its .npy header describes") }
        guard ended else { throw fail("the entry is truncated: the deflate stream ends early") }
        guard filled == total else {
            throw fail("the entry is truncated: it holds \(filled) bytes; its .npy header describes \(total)")
        }
        out.removeLast()
        return out
    }

    /// A raw deflate stream over `input`, inflated piece by piece into caller buffers. The z_stream lives at one
    /// address for its whole life (zlib keeps a pointer back to it).
    final class Inflater {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        let path: String
        private var started = false

        init(_ input: UnsafeRawBufferPointer, path: String) throws {
            self.path = path
            stream.initialize(to: z_stream())
            guard inflateInit2_(stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw NumpyError(path: path, message: "zlib could not start")
            }
            started = true
            let start = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
            stream.pointee.next_in = UnsafeMutablePointer(mutating: start)
            stream.pointee.avail_in = UInt32(input.count)
        }

        deinit {
            if started { inflateEnd(stream) }
            stream.deallocate()
        }

        /// Inflates into `buffer[offset...]`; returns true when the stream has ended. `produced` moves on.
        func fill(_ buffer: UnsafeMutableRawBufferPointer, from offset: Int, produced: inout Int) throws -> Bool {
            let room = min(buffer.count - offset, Int(UInt32.max))
            guard room > 0 else { return false }
            stream.pointee.next_out = buffer.baseAddress!.advanced(by: offset).assumingMemoryBound(to: UInt8.self)
            stream.pointee.avail_out = UInt32(room)
            let status = CZlib.inflate(stream, Z_NO_FLUSH)
            produced = offset + room - Int(stream.pointee.avail_out)
            switch status {
            case Z_STREAM_END: return true
            case Z_OK: return false
            case Z_BUF_ERROR where stream.pointee.avail_in == 0:
                throw NumpyError(path: path, message: "the entry is truncated: the deflate stream ends early")
            case Z_BUF_ERROR: return false
            default:
                let reason = stream.pointee.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                throw NumpyError(path: path, message: "deflate data is damaged (\(MessageText.name(reason)))")
            }
        }
    }

    /// What a .npy header says: dtype, shape, where the data starts and how many bytes it takes.
    struct NpyHeader {
        var dtype: String
        var shape: [Int]
        var count: Int
        var width: Int
        var dataStart: Int
        var dataBytes: Int

        static let widths = [
            "<f4": 4, "=f4": 4, "<f2": 2, "=f2": 2, "<f8": 8, "=f8": 8, "<i8": 8, "=i8": 8, "<i4": 4, "=i4": 4,
        ]

        /// Nil when `b` ends before the header does (more bytes are needed).
        init?(_ b: UnsafeRawBufferPointer, path: String) throws {
            func fail(_ message: String) -> NumpyError { NumpyError(path: path, message: message) }
            let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
            guard b.count >= 8 else {
                if !b.elementsEqual(magic.prefix(b.count)) { throw fail("not a .npy array") }
                return nil
            }
            guard b.prefix(6).elementsEqual(magic) else { throw fail("not a .npy array") }
            let major = b[6]
            guard (1...3).contains(major) else { throw fail(".npy format version \(major) is not read (1 to 3 are)") }
            let headerStart = major == 1 ? 10 : 12
            guard b.count >= headerStart else { return nil }
            let headerLength = major == 1 ? NumpyArchive.le16(b, 8) : NumpyArchive.le32(b, 8)
            guard headerLength <= NumpyArchive.maxHeaderBytes else { throw fail("the .npy header is over 1 MiB") }
            guard b.count >= headerStart + headerLength else { return nil }
            let headerBytes = UnsafeRawBufferPointer(rebasing: b[headerStart..<(headerStart + headerLength)])
            let header = String(decoding: headerBytes, as: UTF8.self)
            (dtype, shape) = try Self.fields(header, fail: fail)
            guard let width = Self.widths[dtype] else {
                throw fail("dtype \(MessageText.name(dtype)) is not read (float32, float16, float64, int64, int32 are)")
            }
            var count = 1
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail("shape \(shape) holds more elements than fit in memory") }
                count = product
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: 8)
            guard !overflow, bytes <= Int.max - headerStart - headerLength else {
                throw fail("shape \(shape) holds more elements than fit in memory")
            }
            self.count = count
            self.width = width
            self.dataStart = headerStart + headerLength
            self.dataBytes = count * width
        }

        static func fields(_ header: String, fail: (String) -> NumpyError) throws -> (String, [Int]) {
            func field(_ key: String) -> Substring? {
                guard let r = header.range(of: "'\(key)':") else { return nil }
                return header[r.upperBound...].drop { $0 == " " }
            }
            guard let descrField = field("descr"), let q1 = descrField.firstIndex(where: { $0 == "'" || $0 == "\"" })
            else { throw fail("no dtype in the .npy header") }
            let dtype = String(descrField[descrField.index(after: q1)...].prefix { $0 != "'" && $0 != "\"" })
            if field("fortran_order")?.hasPrefix("True") == true {
                throw fail("Fortran-ordered arrays are not read; save with np.ascontiguousarray")
            }
            guard let shapeField = field("shape"), shapeField.first == "(",
                let close = shapeField.firstIndex(of: ")")
            else { throw fail("no shape in the .npy header") }
            var shape: [Int] = []
            for part in shapeField[shapeField.index(after: shapeField.startIndex)..<close].split(separator: ",") {
                let text = part.trimmingCharacters(in: .whitespaces)
                if text.isEmpty { continue }
                guard let d = Int(text), d >= 0 else {
                    throw fail("the .npy shape has '\(MessageText.name(text))', not a dimension (a count >= 0)")
                }
                shape.append(d)
            }
            return (dtype, shape)
        }
    }

    static func parseNpy(_ b: UnsafeRawBufferPointer, path: String) throws -> NumpyArray {
        func fail(_ message: String) -> NumpyError { NumpyError(path: path, message: message) }
        guard let h = try NpyHeader(b, path: path) else { throw fail("truncated .npy header") }
        let present = b.count - h.dataStart
        guard present >= h.dataBytes else {
            throw fail("holds \(present) bytes of data; shape \(h.shape) of \(h.dtype) needs \(h.dataBytes)")
        }
        let outBytes = h.count * (h.dtype.hasSuffix("i8") || h.dtype.hasSuffix("i4") ? 8 : 4)
        guard outBytes <= InputLimit.bytes else { throw fail(InputLimit.exceeded(outBytes, what: "the array")) }
        let data = UnsafeRawBufferPointer(rebasing: b[h.dataStart..<(h.dataStart + h.dataBytes)])
        let values: NumpyArray.Values
        switch h.dtype.dropFirst() {
        case "f4": values = .float(converted(data, count: h.count, as: Float.self) { $0 })
        case "f2": values = .float(converted(data, count: h.count, as: Float16.self) { Float($0) })
        case "f8": values = .float(converted(data, count: h.count, as: Double.self) { Float($0) })
        case "i8": values = .int64(converted(data, count: h.count, as: Int64.self) { $0 })
        default: values = .int64(converted(data, count: h.count, as: Int32.self) { Int64($0) })
        }
        return NumpyArray(shape: h.shape, values: values, dtype: h.dtype)
    }

    /// `count` elements of `T` from possibly unaligned bytes, converted.
    @inline(__always)
    static func converted<T, R>(_ data: UnsafeRawBufferPointer, count: Int, as: T.Type, _ convert: (T) -> R) -> [R] {
        [R](unsafeUninitializedCapacity: count) { out, initialized in
            let size = MemoryLayout<T>.size
            for i in 0..<count { out[i] = convert(data.loadUnaligned(fromByteOffset: i * size, as: T.self)) }
            initialized = count
        }
    }
}
