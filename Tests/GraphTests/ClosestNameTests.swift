import XCTest
@testable import Graph

/// The "Closest:" hint of an unknown name: the nearest by edit distance, ties broken by name, whatever the order.
final class ClosestNameTests: XCTestCase {
    func testTiesGoToTheFirstNameInSortedOrder() {
        XCTAssertEqual(closest("fc", in: ["fc3", "fc1", "fc2"]), "fc1")
        XCTAssertEqual(closest("fc", in: ["fc2", "fc3", "fc1"]), "fc1")
    }

    func testNearestWinsAndFarNamesGiveNoHint() {
        XCTAssertEqual(closest("conv1", in: ["layer1.conv1", "conv2", "conv10"]), "conv10")
        XCTAssertNil(closest("x", in: ["completely_different"]))
    }
}
