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

    public init(shape: [Int], values: Values, dtype: String) {
        self.shape = shape
        self.values = values
        self.dtype = dtype
    }
}

public struct NumpyError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
}

/// Reading `.npy` and `.npz` (zip, stored or deflate-compressed members) calibration data.
public enum NumpyArchive {
    /// The arrays of a `.npz` by name (the `.npy` suffix dropped), or of a `.npy` under the name "".
    public static func load(_ path: String) throws -> [String: NumpyArray] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NumpyError(path: path, message: "cannot read the file")
        }
        let bytes = [UInt8](data)
        if bytes.starts(with: [0x93] + Array("NUMPY".utf8)) { return ["": try parseNpy(bytes, path: path)] }
        if bytes.starts(with: [0x50, 0x4B]) { return try parseZip(bytes, path: path) }
        throw NumpyError(path: path, message: "neither a .npy array nor a .npz archive")
    }

    /// Writes arrays as an uncompressed `.npz` (what `np.savez` writes), through a temporary file and a rename.
    public static func save(_ arrays: [(String, NumpyArray)], to path: String) throws {
        var out: [UInt8] = []
        var central: [UInt8] = []
        func u16(_ v: Int, _ a: inout [UInt8]) { a += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
        func u32(_ v: Int, _ a: inout [UInt8]) { u16(v & 0xFFFF, &a); u16((v >> 16) & 0xFFFF, &a) }
        for (name, array) in arrays {
            let member = npyBytes(array)
            let crc = member.withUnsafeBufferPointer { Int(crc32(0, $0.baseAddress, UInt32($0.count))) }
            let fileName = Array((name + ".npy").utf8)
            let offset = out.count
            u32(0x0403_4B50, &out); u16(20, &out); u16(0, &out); u16(0, &out); u16(0, &out); u16(0, &out)
            u32(crc, &out); u32(member.count, &out); u32(member.count, &out); u16(fileName.count, &out); u16(0, &out)
            out += fileName + member
            u32(0x0201_4B50, &central); u16(20, &central); u16(20, &central); u16(0, &central); u16(0, &central); u16(0, &central); u16(0, &central)
            u32(crc, &central); u32(member.count, &central); u32(member.count, &central); u16(fileName.count, &central)
            u16(0, &central); u16(0, &central); u16(0, &central); u16(0, &central); u32(0, &central); u32(offset, &central)
            central += fileName
        }
        let centralOffset = out.count
        out += central
        u32(0x0605_4B50, &out); u16(0, &out); u16(0, &out); u16(arrays.count, &out); u16(arrays.count, &out)
        u32(central.count, &out); u32(centralOffset, &out); u16(0, &out)
        let temporary = path + ".tmp-\(getpid())"
        do {
            try Data(out).write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path) == 0 else { throw NumpyError(path: path, message: String(cString: strerror(errno))) }
        } catch {
            unlink(temporary)
            throw NumpyError(path: path, message: "cannot write: \(error)")
        }
    }

    static func npyBytes(_ array: NumpyArray) -> [UInt8] {
        let descr: String
        var data: [UInt8]
        switch array.values {
        case .float(let f): descr = "<f4"; data = f.withUnsafeBytes { Array($0) }
        case .int64(let i): descr = "<i8"; data = i.withUnsafeBytes { Array($0) }
        }
        let shape = array.shape.count == 1 ? "(\(array.shape[0]),)" : "(" + array.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        bytes += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8)
        data.insert(contentsOf: bytes, at: 0)
        return data
    }

    static func le16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
    static func le32(_ b: [UInt8], _ i: Int) -> Int { le16(b, i) | le16(b, i + 2) << 16 }

    static func parseZip(_ b: [UInt8], path: String) throws -> [String: NumpyArray] {
        // End of central directory: the last 0x06054b50 within the final 64 KiB + 22 bytes.
        var eocd = -1
        var i = b.count - 22
        while i >= max(0, b.count - 65_557) {
            if le32(b, i) == 0x0605_4B50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw NumpyError(path: path, message: "a zip without its central directory (truncated?)") }
        let entries = le16(b, eocd + 10)
        var offset = le32(b, eocd + 16)
        var result: [String: NumpyArray] = [:]
        for _ in 0..<entries {
            guard offset + 46 <= b.count, le32(b, offset) == 0x0201_4B50 else {
                throw NumpyError(path: path, message: "damaged zip central directory")
            }
            let method = le16(b, offset + 10)
            let compressed = le32(b, offset + 20), size = le32(b, offset + 24)
            let nameLength = le16(b, offset + 28), extraLength = le16(b, offset + 30), commentLength = le16(b, offset + 32)
            let local = le32(b, offset + 42)
            let name = String(decoding: b[(offset + 46)..<(offset + 46 + nameLength)], as: UTF8.self)
            offset += 46 + nameLength + extraLength + commentLength
            guard compressed != 0xFFFF_FFFF, size != 0xFFFF_FFFF else {
                throw NumpyError(path: path, message: "member \(name) needs ZIP64 (over 4 GiB): not supported")
            }
            guard local + 30 <= b.count, le32(b, local) == 0x0403_4B50 else {
                throw NumpyError(path: path, message: "damaged zip entry \(name)")
            }
            let start = local + 30 + le16(b, local + 26) + le16(b, local + 28)
            guard start + compressed <= b.count else { throw NumpyError(path: path, message: "member \(name) is truncated") }
            let raw = Array(b[start..<(start + compressed)])
            let member: [UInt8]
            switch method {
            case 0: member = raw
            case 8: member = try inflate(raw, size: size, path: "\(path):\(name)")
            default: throw NumpyError(path: path, message: "member \(name) uses zip method \(method); only stored and deflate are read")
            }
            let key = name.hasSuffix(".npy") ? String(name.dropLast(4)) : name
            result[key] = try parseNpy(member, path: "\(path):\(name)")
        }
        return result
    }

    static func inflate(_ input: [UInt8], size: Int, path: String) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: size)
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw NumpyError(path: path, message: "zlib could not start")
        }
        defer { inflateEnd(&stream) }
        var input = input
        let status: Int32 = input.withUnsafeMutableBufferPointer { inBuf in
            output.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = UInt32(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = UInt32(outBuf.count)
                return CZlib.inflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END, Int(stream.total_out) == size else {
            throw NumpyError(path: path, message: "deflate data is damaged (zlib status \(status))")
        }
        return output
    }

    static func parseNpy(_ b: [UInt8], path: String) throws -> NumpyArray {
        guard b.count >= 10, b.starts(with: [0x93] + Array("NUMPY".utf8)) else { throw NumpyError(path: path, message: "not a .npy array") }
        let major = b[6]
        let headerLength = major == 1 ? le16(b, 8) : le32(b, 8)
        let headerStart = major == 1 ? 10 : 12
        guard headerStart + headerLength <= b.count else { throw NumpyError(path: path, message: "truncated .npy header") }
        let header = String(decoding: b[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descrField = field("descr"), let q1 = descrField.firstIndex(where: { $0 == "'" || $0 == "\"" }) else {
            throw NumpyError(path: path, message: "no dtype in the .npy header")
        }
        let afterQuote = descrField[descrField.index(after: q1)...]
        let dtype = String(afterQuote.prefix { $0 != "'" && $0 != "\"" })
        if field("fortran_order")?.hasPrefix("True") == true {
            throw NumpyError(path: path, message: "Fortran-ordered arrays are not read; save with np.ascontiguousarray")
        }
        guard let shapeField = field("shape"), let open = shapeField.firstIndex(of: "("), let close = shapeField.firstIndex(of: ")") else {
            throw NumpyError(path: path, message: "no shape in the .npy header")
        }
        let shape = shapeField[shapeField.index(after: open)..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let count = shape.reduce(1, *)
        let data = Array(b[(headerStart + headerLength)...])
        func need(_ width: Int) throws {
            guard data.count >= count * width else {
                throw NumpyError(path: path, message: "holds \(data.count) bytes of data; shape \(shape) of \(dtype) needs \(count * width)")
            }
        }
        let values: NumpyArray.Values
        switch dtype {
        case "<f4", "=f4":
            try need(4)
            values = .float(data.withUnsafeBytes { Array($0.bindMemory(to: Float.self).prefix(count)) })
        case "<f2", "=f2":
            try need(2)
            values = .float(data.withUnsafeBytes { $0.bindMemory(to: Float16.self).prefix(count).map(Float.init) })
        case "<f8", "=f8":
            try need(8)
            values = .float(data.withUnsafeBytes { $0.bindMemory(to: Double.self).prefix(count).map(Float.init) })
        case "<i8", "=i8":
            try need(8)
            values = .int64(data.withUnsafeBytes { Array($0.bindMemory(to: Int64.self).prefix(count)) })
        case "<i4", "=i4":
            try need(4)
            values = .int64(data.withUnsafeBytes { $0.bindMemory(to: Int32.self).prefix(count).map(Int64.init) })
        default:
            throw NumpyError(path: path, message: "dtype \(dtype) is not read (float32, float16, float64, int64, int32 are)")
        }
        return NumpyArray(shape: shape, values: values, dtype: dtype)
    }
}
