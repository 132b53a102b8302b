import Foundation
import XCTest

@testable import Graph
@testable import Passes

let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let fixtures = repository.appendingPathComponent("fixtures")
let textformat = repository.appendingPathComponent("tests/textformat")

func files(in folder: URL, ext: String) -> [URL] {
    ((try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [])
        .filter { $0.pathExtension == ext }.sorted { $0.path < $1.path }
}

final class TextFormatGoldenTests: XCTestCase {
    /// Our reader's bytes equal Python text_format's (goldens from scripts/make-textformat-goldens.py).
    func testEveryGoodConfigMatchesPythonByteForByte() throws {
        let sources = files(in: fixtures.appendingPathComponent("configs"), ext: "cfg") + files(in: textformat.appendingPathComponent("good"), ext: "cfg")
        XCTAssertGreaterThanOrEqual(sources.count, 14)
        for source in sources {
            let golden = textformat.appendingPathComponent("golden").appendingPathComponent(source.deletingPathExtension().lastPathComponent + ".bin")
            let expected = [UInt8](try Data(contentsOf: golden))
            let parsed = try TextFormat.parse(contentsOf: source.path, schema: .amctRetrainConfig)
            XCTAssertEqual(parsed.serialized, expected, source.lastPathComponent)
        }
    }

    func testTreeKeepsValuesAndPlaces() throws {
        let parsed = try TextFormat.parse(contentsOf: textformat.appendingPathComponent("good/syntax_strings.cfg").path, schema: .amctRetrainConfig)
        let skips = try XCTUnwrap(parsed.message.field("skip_layers"))
        XCTAssertEqual(skips.values.count, 5)
        XCTAssertEqual(skips.values[0], .string("tab\there" + "single \"quoted\""))
        XCTAssertEqual(skips.values[1], .string("hex A octal A unicode é 😀"))
        XCTAssertEqual(skips.values[2], .string("joined from three"))
        XCTAssertEqual(skips.locations[0], SourceLocation(file: parsed.message.location.file, line: 2, column: 14))
    }
}

/// Each file in tests/textformat/bad says what it expects: `# expect: <kind> <line>:<column>` (one per error, in
/// order) and, for errors that need a model, `# model: <fixture>`.
final class BadConfigCorpusTests: XCTestCase {
    func testEveryBadConfigFailsWithTheExpectedErrorAndPlace() throws {
        let corpus = files(in: textformat.appendingPathComponent("bad"), ext: "cfg")
        XCTAssertGreaterThanOrEqual(corpus.count, 30)
        for file in corpus {
            let text = try String(contentsOf: file, encoding: .utf8)
            var expected: [String] = []
            var modelName: String?
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("# expect: ") { expected.append(String(line.dropFirst("# expect: ".count))) }
                if line.hasPrefix("# model: ") { modelName = String(line.dropFirst("# model: ".count)) }
            }
            XCTAssertFalse(expected.isEmpty, "\(file.lastPathComponent) has no expectation")
            var got: [String] = []
            do {
                let parsed = try TextFormat.parse(text, file: file.path, schema: .amctRetrainConfig)
                let config = try CompressionConfig(parsed.message, file: file.path)
                if let modelName {
                    var model = try ModelFile.load(fixtures.appendingPathComponent(modelName).path)
                    _ = try plan(&model, config: config)
                }
                XCTFail("\(file.lastPathComponent) was accepted")
                continue
            } catch let e as TextFormatErrors {
                got = e.errors.map { "\($0.kind.rawValue) \($0.location.line):\($0.location.column)" }
            } catch let e as ConfigErrors {
                got = e.errors.map { "\($0.kind.rawValue) \($0.location.line):\($0.location.column)" }
            } catch let e as ConfigError {
                got = ["\(e.kind.rawValue) \(e.location.line):\(e.location.column)"]
            }
            XCTAssertEqual(got, expected, file.lastPathComponent)
        }
    }

    func testErrorsNameTheFileAndSayWhatToDo() {
        XCTAssertThrowsError(try CompressionConfig.load(textformat.appendingPathComponent("bad/unknown_field.cfg").path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unknown_field.cfg:2:1"), text)
            XCTAssertTrue(text.contains("did you mean 'batch_num'"), text)
        }
        XCTAssertThrowsError(try CompressionConfig.load(textformat.appendingPathComponent("bad/unknown_layer_type.cfg").path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("Did you mean 'Conv2d'"), text)
            XCTAssertTrue(text.contains("InnerProduct"), text)
        }
    }

    /// The reader never crashes on damaged input: every prefix and a set of byte mutations of every good config.
    func testDamagedConfigsNeverCrash() throws {
        let sources = files(in: fixtures.appendingPathComponent("configs"), ext: "cfg") + files(in: textformat.appendingPathComponent("good"), ext: "cfg")
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("{}<>[]:;,#\"'\\-.0123456789abcdefxyz_ \n\t".utf8)
        for source in sources {
            let bytes = [UInt8](try Data(contentsOf: source))
            var variants: [[UInt8]] = stride(from: 0, to: bytes.count, by: 7).map { Array(bytes.prefix($0)) }
            for _ in 0..<200 where !bytes.isEmpty {
                var v = bytes
                v[Int.random(in: 0..<v.count, using: &generator)] = alphabet.randomElement(using: &generator)!
                variants.append(v)
            }
            for v in variants {
                _ = try? TextFormat.parse(String(decoding: v, as: UTF8.self), file: "fuzz", schema: .amctRetrainConfig)
            }
        }
    }
}
