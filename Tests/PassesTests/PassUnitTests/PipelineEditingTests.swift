import XCTest

@testable import Passes

/// Editing pipelines by pass name: where a pass lands in the main list and in the AMCT branches, and the error for a
/// name the pipeline does not have.
final class PipelineEditingUnitTests: XCTestCase {
    struct Marker: Pass {
        let name: String
        func run(_ graph: inout Graph, _ context: inout PassContext) throws {}
    }

    func testInsertAfterAPassOfEveryBranch() throws {
        var p = Pipeline.compress(format: .amct)
        try p.insert(Marker(name: "m"), after: "upgrade-opset")
        XCTAssertEqual(p.branches.map { $0.passes.map(\.name) }, [
            ["amct-fake-quant", "upgrade-opset", "m", "dead-code-cleanup"],
            ["ascend-deploy", "upgrade-opset", "m", "dead-code-cleanup"],
        ])
        XCTAssertFalse(p.passes.contains { $0.name == "m" })
    }

    func testInsertBeforeReplaceAndRemove() throws {
        var p = Pipeline.compress(format: .qdq)
        try p.insert(Marker(name: "first"), before: "validate-graph")
        try p.replace("insert-fake-quant", with: Marker(name: "own-quant"))
        try p.remove("fuse-pruning")
        XCTAssertEqual(p.passNames, [
            "first", "validate-graph", "match-layers", "mark-skips", "resolve-overrides", "prune-filters", "prune-2of4",
            "calibrate-ifmr", "own-quant", "upgrade-opset", "dead-code-cleanup",
        ])
        XCTAssertEqual(p.description.split(separator: "\n").first, "pipeline compress (qdq):")
        XCTAssertTrue(p.description.contains("  1. first\n  2. validate-graph"))
    }

    func testAnUnknownNameIsAnErrorListingTheNames() {
        var p = Pipeline.plan
        XCTAssertThrowsError(try p.insert(Marker(name: "m"), after: "calibrate")) { error in
            XCTAssertEqual(String(describing: error),
                           "the pipeline has no pass named 'calibrate' (it has: validate-graph, match-layers, "
                           + "mark-skips, resolve-overrides)")
        }
        XCTAssertEqual(p.passNames.count, 4)
    }
}
