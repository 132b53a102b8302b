import XCTest
@testable import Graph

/// The writer's strings read back, through the project's own text-format reader, as the same bytes.
final class TextFormatWriterTests: XCTestCase {
    let awkward = ["plain", "quote \" and backslash \\", "new\nline\tand\rreturn", "bell \u{07} del \u{7F}",
                   "utf-8 é 😀", "", "trailing \\"]

    func testQuotedStringsReadBackUnchanged() throws {
        let text = awkward.map { "skip_layers: \(TextFormatWriter.quoted($0))" }.joined(separator: "\n")
        let parsed = try TextFormat.parse(text, file: "written.cfg", schema: .amctRetrainConfig)
        let values = try XCTUnwrap(parsed.message.field("skip_layers")).values
        XCTAssertEqual(values, awkward.map { .string($0) })
    }

    func testEscapesByHand() {
        XCTAssertEqual(TextFormatWriter.quoted("a\"b\\c\nd"), #""a\"b\\c\nd""#)
        XCTAssertEqual(TextFormatWriter.quoted("\u{01}x"), #""\001x""#)
        XCTAssertEqual(TextFormatWriter.quoted("é"), "\"é\"")
    }

    func testNestedMessagesAndNumbers() {
        let lines = TextFormatWriter.lines([
            .init("record", .message([
                .init("key", .string("conv")),
                .init("value", .message([.init("scale_d", .float(.infinity)), .init("act_type", .identifier("INT8")),
                                         .init("offset_d", .int(-3)), .init("clip_min", .float(.nan))])),
            ]))
        ])
        XCTAssertEqual(lines, ["record {", "  key: \"conv\"", "  value {", "    scale_d: inf", "    act_type: INT8",
                               "    offset_d: -3", "    clip_min: nan", "  }", "}"])
    }
}
