import Foundation
import XCTest

@testable import Graph

/// Inputs whose declared sizes lie, each built here in a few bytes: the loaders must refuse them with a typed
/// error before allocating or trapping.
final class HostileTensorTests: XCTestCase {
    /// A model holding one initializer, serialized by our writer and read back.
    func load(_ tensor: Tensor) throws -> Model {
        var graph = Graph(name: "g")
        graph.setInitializer(tensor)
        let bytes = ModelFile.encode(Model(graph: graph))
        return try bytes.withUnsafeBytes { try ModelFile.decode($0) }
    }

    func assertTensorError(_ tensor: Tensor, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(tensor), file: file, line: line) { error in
            guard case .tensorSize(let name, let detail)? = error as? GraphError else {
                return XCTFail("not a tensor size error: \(error)", file: file, line: line)
            }
            XCTAssertEqual(name, tensor.name, file: file, line: line)
            XCTAssertTrue(detail.contains(fragment), detail, file: file, line: line)
        }
    }

    func floats(_ name: String, dims: [Int64], count: Int, encoding: TensorEncoding) -> Tensor {
        let values = (0..<count).map(Float.init)
        let buffer = values.withUnsafeBytes { TensorBuffer(copying: $0) }
        return Tensor(name: name, dataType: .float, dims: dims, data: .bytes(buffer), encoding: encoding)
    }

    func testCheckedElementCount() {
        XCTAssertEqual(Tensor.checkedElementCount([2, 3, 4]), 24)
        XCTAssertEqual(Tensor.checkedElementCount([]), 1)
        XCTAssertEqual(Tensor.checkedElementCount([0, 1 << 62, 1 << 62]), 0)
        XCTAssertNil(Tensor.checkedElementCount([1 << 32, 1 << 32, 4]))
        XCTAssertNil(Tensor.checkedElementCount([1 << 62]))
        XCTAssertNil(Tensor.checkedElementCount([4, -1]))
        // Bytes of the widest type (128 bits) must fit too.
        XCTAssertEqual(Tensor.checkedElementCount([Int64(Int.max / 128)]), Int.max / 128)
        XCTAssertNil(Tensor.checkedElementCount([Int64(Int.max / 128) + 1]))
        XCTAssertNil(DataType.float.byteCount(elements: Int.max / 2))
        XCTAssertEqual(DataType.int4.byteCount(elements: 3), 2)
    }

    func testDimsWhoseProductOverflows() {
        for dims: [Int64] in [[1 << 32, 1 << 32, 4], [1 << 62], [3, 1 << 61]] {
            assertTensorError(floats("w", dims: dims, count: 4, encoding: .raw), "overflows")
            assertTensorError(floats("w", dims: dims, count: 4, encoding: .typedFields), "overflows")
        }
    }

    func testNegativeDims() {
        assertTensorError(floats("w", dims: [4, -1], count: 4, encoding: .raw), "negative dimension")
    }

    func testTypedFieldCountMustMatchDims() {
        assertTensorError(floats("bias", dims: [4], count: 3, encoding: .typedFields), "float_data holds 3 values")
        assertTensorError(floats("bias", dims: [2, 2], count: 5, encoding: .typedFields), "float_data holds 5 values")
        XCTAssertEqual(try load(floats("ok", dims: [2, 2], count: 4, encoding: .typedFields)).graph
            .initializers["ok"]?.floatArray, [0, 1, 2, 3])
    }

    func testRawDataMustMatchDims() {
        assertTensorError(floats("w", dims: [4], count: 3, encoding: .raw), "raw_data holds 12 bytes")
    }

    func testUnknownElementTypeNeedsABitPerElement() throws {
        let bytes: [UInt8] = [1, 2, 3, 4]
        let unknown = DataType(rawValue: 99)
        let huge = bytes.withUnsafeBytes { Tensor(name: "u", dataType: unknown, dims: [1 << 40], rawBytes: $0) }
        assertTensorError(huge, "its 4 bytes are too few")
        let fits = bytes.withUnsafeBytes { Tensor(name: "u", dataType: unknown, dims: [8, 4], rawBytes: $0) }
        XCTAssertEqual(try load(fits).graph.initializers["u"]?.byteCount, 4)
    }

    func testNonEmptyTensorWithoutData() {
        assertTensorError(floats("huge", dims: [1_000_000, 1_000_000], count: 0, encoding: .typedFields), "holds no data")
        XCTAssertEqual(try load(floats("empty", dims: [0, 5], count: 0, encoding: .typedFields)).graph
            .initializers["empty"]?.elementCount, 0)
    }

    /// protobuf-c reads field number 0 (in a non-canonical two-byte key) and numbers past 2^29 - 1, which protobuf
    /// forbids; field 0 it writes back as a byte it then refuses to read. Refused at load, in a message we keep
    /// as ours and in one we keep as bytes (a FunctionProto, which saving unpacks again).
    func testFieldNumberOutOfRange() {
        let fieldZero: [UInt8] = [0x80, 0x00, 0x00]  // key: field 0, varint (two bytes), value 0
        let fieldPast: [UInt8] = [0x88, 0x80, 0x80, 0x80, 0x10, 0x00]  // field 2^29 + 1
        let emptyGraph: [UInt8] = [0x3A, 0x00]
        let inputs = [
            emptyGraph + fieldZero, emptyGraph + fieldPast, emptyGraph + [0xCA, 0x01, UInt8(fieldZero.count)] + fieldZero,
        ]
        for (i, bytes) in inputs.enumerated() {
            XCTAssertThrowsError(try bytes.withUnsafeBytes { try ModelFile.decode($0) }, "input \(i)") { error in
                guard case .malformed? = error as? GraphError else { return XCTFail("\(error)") }
            }
        }
        let fine = emptyGraph + [0xCA, 0x01, UInt8(fieldPast.count)] + fieldPast
        XCTAssertNoThrow(try fine.withUnsafeBytes { try ModelFile.decode($0) })
    }
}

final class MessageTextTests: XCTestCase {
    func testControlCharactersAreEscaped() {
        XCTAssertEqual(MessageText.name("a\u{1B}[2Jb\nc\td\u{7F}\u{85}é"), "a\\x1b[2Jb\\nc\\td\\x7f\\u{0085}é")
        XCTAssertEqual(MessageText.message("line\u{07}\nnext"), "line\\x07\nnext")
    }

    func testLongNamesAreCut() {
        let long = String(repeating: "x", count: 4 << 20)
        let shown = MessageText.name(long)
        XCTAssertEqual(shown, String(repeating: "x", count: 200) + "…(4194304 characters)")
        XCTAssertEqual(MessageText.name(String(repeating: "y", count: 200)), String(repeating: "y", count: 200))
    }

    func testGraphErrorsEscapeNames() {
        let error = GraphError.undefinedValue(node: "n\u{1B}]0;x\u{07}", value: String(repeating: "v", count: 5000))
        XCTAssertFalse(error.description.contains("\u{1B}"))
        XCTAssertTrue(error.description.hasPrefix("node 'n\\x1b]0;x\\x07' reads 'vvv"))
        XCTAssertLessThan(error.description.count, 400)
    }

    func testHugeUnknownConfigFieldIsCutAndQuick() throws {
        let text = "batch_num: 1\n" + String(repeating: "q", count: 4 << 20) + ": 3\n"
        let start = Date()
        XCTAssertThrowsError(try TextFormat.parse(text, file: "big.cfg", schema: .amctRetrainConfig)) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.hasPrefix("big.cfg:2:1: unknown field 'qqq"), message)
            XCTAssertLessThan(message.count, 400)
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
    }
}

/// .npy and .npz whose headers lie, built byte by byte (deflate members as stored deflate blocks, which any
/// inflater reads).
final class HostileNumpyTests: XCTestCase {
    func npy(shape: String, dtype: String = "<f4", data: [UInt8] = Array(repeating: 0, count: 24)) -> [UInt8] {
        var header = "{'descr': '\(dtype)', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let n = header.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(header.utf8) + data
    }

    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
    func le32(_ v: Int) -> [UInt8] { le16(v & 0xFFFF) + le16((v >> 16) & 0xFFFF) }

    /// A raw deflate stream of stored blocks holding `bytes` (final flag on the last block unless `final` is false).
    func storedDeflate(_ bytes: [UInt8], final: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        repeat {
            let n = min(65_535, bytes.count - i)
            let last = i + n == bytes.count && final
            out += [last ? 1 : 0] + le16(n) + le16(n ^ 0xFFFF) + bytes[i..<(i + n)]
            i += n
        } while i < bytes.count
        return out
    }

    func zip(_ member: [UInt8], method: Int = 0, size: Int? = nil, compressed: Int? = nil, nameLength: Int? = nil)
        -> [UInt8]
    {
        let name = Array("x.npy".utf8)
        let csize = compressed ?? member.count
        let usize = size ?? member.count
        let local = le32(0x0403_4B50) + le16(20) + le16(0) + le16(method) + le16(0) + le16(0) + le32(0) + le32(csize)
            + le32(usize) + le16(name.count) + le16(0) + name
        var central = le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(method) + le16(0) + le16(0) + le32(0)
        central += le32(csize) + le32(usize) + le16(nameLength ?? name.count) + le16(0) + le16(0) + le16(0) + le16(0)
        central += le32(0) + le32(0) + name
        let end = le32(0x0605_4B50) + le16(0) + le16(0) + le16(1) + le16(1) + le32(central.count)
            + le32(local.count + member.count) + le16(0)
        return local + member + central + end
    }

    func parse(_ bytes: [UInt8]) throws -> [String: NumpyArray] {
        try bytes.withUnsafeBytes { try NumpyArchive.parse($0, path: "t.npz") }
    }

    func assertRefused(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(bytes), file: file, line: line) { error in
            guard let e = error as? NumpyError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertTrue(e.message.contains(fragment), e.message, file: file, line: line)
        }
    }

    func testGoodMembersRead() throws {
        let values: [Float] = [1, -2, 3.5, 4, 5, 6]
        let member = npy(shape: "(2, 3)", data: values.withUnsafeBytes { Array($0) })
        for bytes in [member, zip(member), zip(storedDeflate(member), method: 8, size: member.count)] {
            let array = try XCTUnwrap(parse(bytes).values.first)
            XCTAssertEqual(array.shape, [2, 3])
            guard case .float(let f) = array.values else { return XCTFail() }
            XCTAssertEqual(f, values)
        }
    }

    func testZipNameLength65535() {
        assertRefused(zip(npy(shape: "(6,)"), nameLength: 65_535), "name runs past the end")
    }

    func testZipSizesPastTheFile() {
        assertRefused(zip(npy(shape: "(6,)"), compressed: 1 << 30), "truncated")
        let member = npy(shape: "(6,)")
        assertRefused(zip(storedDeflate(member), method: 8, size: 0xFFFF_FFFE), "the zip says 4294967294 bytes")
    }

    func testDeflateStreamLongerThanTheHeaderSays() {
        let member = npy(shape: "(6,)") + Array(repeating: 7, count: 100_000)
        assertRefused(zip(storedDeflate(member), method: 8, size: member.count - 100_000), "inflates to more than")
    }

    func testTruncatedDeflateStream() {
        let member = npy(shape: "(6,)")
        let cut = Array(storedDeflate(member).dropLast(10))
        assertRefused(zip(cut, method: 8, size: member.count), "truncated")
        assertRefused(zip(storedDeflate(member, final: false), method: 8, size: member.count), "truncated")
    }

    func testHeaderClaimingMoreThanTheStreamCanHold() {
        let member = npy(shape: "(1, 1000000000)", data: [])
        assertRefused(
            zip(storedDeflate(member), method: 8, size: member.count + 4_000_000_000), "compressed bytes cannot hold")
    }

    func testShapesThatLie() {
        for (shape, fragment) in [
            ("(-1, 3)", "not a dimension"), ("(4294967296, 4294967296, 4)", "more elements than fit"),
            ("(9223372036854775807, 2)", "more elements than fit"), ("(2, x)", "not a dimension"), (")(", "no shape"),
        ] {
            assertRefused(npy(shape: shape), fragment)
            assertRefused(zip(npy(shape: shape)), fragment)
        }
        assertRefused(npy(shape: "(7,)"), "holds 24 bytes of data")
        assertRefused([0x93] + Array("NUMPY".utf8) + [2, 0, 0xFF], "truncated .npy header")
        assertRefused(npy(shape: "(2,)", dtype: "\u{1B}[2J<f4"), "dtype \\x1b[2J<f4 is not read")
    }

    func testInputLimitParsing() {
        XCTAssertEqual(InputLimit.parse("64M"), 64 << 20)
        XCTAssertEqual(InputLimit.parse("1000"), 1000)
        XCTAssertEqual(InputLimit.parse("2g"), 2 << 30)
        XCTAssertNil(InputLimit.parse("-5"))
        XCTAssertNil(InputLimit.parse("99999999999T"))
        XCTAssertGreaterThan(InputLimit.defaultBytes, 0)
    }
}
