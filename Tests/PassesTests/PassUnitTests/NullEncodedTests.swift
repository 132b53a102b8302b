// @NullEncoded: a nil optional is written as null (every key present in --json) and read back from null or from a
// missing key; a value round-trips. Checked on the report types that use it, through the project's JSON encoder.

import Foundation
import XCTest

@testable import Passes

final class NullEncodedTests: XCTestCase {
    func object(_ data: Data) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testNilIsWrittenAsNullAndAValueAsItself() throws {
        let none = try object(jsonData(Score(loss: 0.5, accuracy: nil)))
        XCTAssertEqual(Set(none.keys), ["loss", "accuracy"])
        XCTAssertTrue(none["accuracy"] is NSNull)
        let some = try object(jsonData(Score(loss: 0.5, accuracy: 0.25)))
        XCTAssertEqual(some["accuracy"] as? Double, 0.25)
        let epoch = try object(jsonData(EpochReport(epoch: 1, trainLoss: 1, trainAccuracy: nil, validationLoss: nil,
                                                    validationAccuracy: nil, seconds: 2, samplesPerSecond: 3)))
        for key in ["train_accuracy", "val_loss", "val_accuracy"] { XCTAssertTrue(epoch[key] is NSNull, key) }
    }

    func testNullAndAMissingKeyReadBackAsNil() throws {
        let decoder = JSONDecoder()
        XCTAssertNil(try decoder.decode(Score.self, from: Data(#"{"loss": 1, "accuracy": null}"#.utf8)).accuracy)
        XCTAssertNil(try decoder.decode(Score.self, from: Data(#"{"loss": 1}"#.utf8)).accuracy)
        XCTAssertEqual(try decoder.decode(Score.self, from: Data(#"{"loss": 1, "accuracy": 0.75}"#.utf8)).accuracy, 0.75)
        XCTAssertThrowsError(try decoder.decode(Score.self, from: Data(#"{"loss": 1, "accuracy": "x"}"#.utf8)))
    }
}
