import CZlib
import Foundation

// An uncompressed .npz (what `np.savez` writes) filled as its arrays arrive in blocks of rows: `amct-pipe run` writes
// each batch's outputs as soon as they are computed, so memory follows the batch, not the number of samples. The
// shapes are declared first, so every member's place in the file is known; rows are written in place (pwrite), each
// member's CRC-32 carried along, and the zip headers and central directory are written by `finish`, which then renames
// the temporary file onto the path. Until then the path is untouched; a writer dropped unfinished removes its file.

public final class NumpyStreamWriter {
    struct Member {
        var fileName: [UInt8]
        var localOffset: Int
        var dataOffset: Int
        /// The .npy header and the element bytes.
        var size: Int
        var expected: Int
        var written = 0
        var crc: Int
        var name: String { String(decoding: fileName.dropLast(4), as: UTF8.self) }
    }

    public let path: String
    let temporary: String
    let fd: Int32
    var members: [Member] = []
    var finished = false

    /// Creates the temporary file for arrays of these names, shapes and element types (float32, else int64), in
    /// order. Refused before any byte is written when the archive would pass 4 GiB (zip64 is not written).
    public init(path: String, arrays: [(name: String, shape: [Int], isFloat: Bool)]) throws {
        self.path = path
        var offset = 0
        var headers: [[UInt8]] = []
        for (name, shape, isFloat) in arrays {
            let header = NumpyArchive.npyHeader(shape: shape, isFloat: isFloat)
            let fileName = Array((name + ".npy").utf8)
            guard let bytes = Self.byteCount(shape, elementSize: isFloat ? 4 : 8) else {
                throw NumpyError(path: path, message: "array '\(name)' of shape \(shape) is too large to write")
            }
            let start = offset + 30 + fileName.count
            members.append(Member(fileName: fileName, localOffset: offset, dataOffset: start + header.count,
                                  size: header.count + bytes, expected: bytes, crc: 0))
            headers.append(header)
            offset = start + header.count + bytes
        }
        let total = offset + members.reduce(22) { $0 + 46 + $1.fileName.count }
        guard offset >= 0, total <= Int(UInt32.max) else {
            throw NumpyError(path: path, message: "the arrays take \(total) bytes; an .npz over 4 GiB (zip64) is not "
                + "written: run fewer samples per file")
        }
        temporary = path + ".tmp-\(getpid())"
        fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw NumpyError(path: path, message: "cannot write: \(String(cString: strerror(errno)))")
        }
        for (i, header) in headers.enumerated() {
            try header.withUnsafeBytes { try write($0, at: members[i].dataOffset - header.count) }
            members[i].crc = header.withUnsafeBytes { NumpyArchive.crc32(of: [$0]) }
        }
    }

    deinit {
        guard !finished else { return }
        close(fd)
        unlink(temporary)
    }

    /// The next rows of array `index` (its element bytes, little-endian), after those already written.
    public func append(_ index: Int, _ bytes: UnsafeRawBufferPointer) throws {
        let m = members[index]
        guard m.written + bytes.count <= m.expected else {
            throw NumpyError(path: path, message: "array '\(m.name)' got more values than its declared shape holds")
        }
        try write(bytes, at: m.dataOffset + m.written)
        members[index].written += bytes.count
        members[index].crc = NumpyArchive.crc32(of: [bytes], from: m.crc)
    }

    /// Writes the zip headers and the central directory, then renames the file onto the path. Every array must be
    /// complete.
    public func finish() throws {
        var central: [UInt8] = []
        for m in members {
            guard m.written == m.expected else {
                throw NumpyError(path: path, message: "array '\(m.name)' got \(m.written) of its \(m.expected) bytes")
            }
            var local: [UInt8] = []
            NumpyArchive.zipHeader(
                &local, signature: 0x0403_4B50, crc: m.crc, size: m.size, name: m.fileName, offset: nil)
            try (local + m.fileName).withUnsafeBytes { try write($0, at: m.localOffset) }
            NumpyArchive.zipHeader(&central, signature: 0x0201_4B50, crc: m.crc, size: m.size, name: m.fileName,
                                   offset: m.localOffset)
            central += m.fileName
        }
        let centralOffset = members.last.map { $0.dataOffset + $0.expected } ?? 0
        var end = central
        NumpyArchive.le(0x0605_4B50, 4, &end); NumpyArchive.le(0, 2, &end); NumpyArchive.le(0, 2, &end)
        NumpyArchive.le(members.count, 2, &end); NumpyArchive.le(members.count, 2, &end)
        NumpyArchive.le(central.count, 4, &end); NumpyArchive.le(centralOffset, 4, &end); NumpyArchive.le(0, 2, &end)
        try end.withUnsafeBytes { try write($0, at: centralOffset) }
        guard close(fd) == 0 else {
            unlink(temporary)
            finished = true
            throw NumpyError(path: path, message: "cannot write: \(String(cString: strerror(errno)))")
        }
        finished = true
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw NumpyError(path: path, message: "cannot write: \(reason)")
        }
    }

    /// Elements × `elementSize`, nil on overflow or a negative dimension.
    static func byteCount(_ shape: [Int], elementSize: Int) -> Int? {
        var n = elementSize
        for d in shape {
            guard d >= 0, case (let p, false) = n.multipliedReportingOverflow(by: d) else { return nil }
            n = p
        }
        return n
    }

    /// All of `bytes` at `offset` (pwrite until done).
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw NumpyError(path: path, message: "cannot write: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}
