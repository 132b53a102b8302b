// NumpyStreamWriter: an .npz filled in blocks of rows reads back (through the lazy reader) as the arrays written; a
// writer dropped unfinished, or given more or fewer values than declared, leaves no file at the path.

import Foundation
import XCTest

@testable import Graph

final class NumpyStreamWriterTests: XCTestCase {
    func path(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "npz-stream-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/out.npz"
    }

    func testRowsWrittenInBlocksReadBack() throws {
        let out = path("blocks")
        let writer = try NumpyStreamWriter(path: out, arrays: [("y", [3, 2], true), ("k", [3], false)])
        let y: [Float] = [1, 2, 3, 4, 5, 6], k: [Int64] = [7, -8, 9]
        try y[0..<4].withUnsafeBytes { try writer.append(0, $0) }
        try k[0..<2].withUnsafeBytes { try writer.append(1, $0) }
        try y[4...].withUnsafeBytes { try writer.append(0, $0) }
        try k[2...].withUnsafeBytes { try writer.append(1, $0) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        try writer.finish()
        let arrays = try NumpyArchive.load(out)
        XCTAssertEqual(arrays["y"]?.shape, [3, 2])
        guard case .float(let f)? = arrays["y"]?.values, case .int64(let i)? = arrays["k"]?.values else {
            return XCTFail("types")
        }
        XCTAssertEqual(f, y)
        XCTAssertEqual(i, k)
    }

    func testTooManyOrTooFewValuesOrNoFinishLeaveNoFile() throws {
        let out = path("short")
        let dir = (out as NSString).deletingLastPathComponent
        do {
            let writer = try NumpyStreamWriter(path: out, arrays: [("y", [2], true)])
            let three: [Float] = [1, 2, 3]
            XCTAssertThrowsError(try three.withUnsafeBytes { try writer.append(0, $0) })
            let one: [Float] = [1]
            try one.withUnsafeBytes { try writer.append(0, $0) }
            XCTAssertThrowsError(try writer.finish())
        }
        do { _ = try NumpyStreamWriter(path: out, arrays: [("y", [2], true)]) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }
}
