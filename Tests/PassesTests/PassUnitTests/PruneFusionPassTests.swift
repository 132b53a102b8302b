// PruneFusionPass: after the pruning passes, the replaced originals are released unless another node still reads them.

import XCTest

@testable import Graph
@testable import Passes

final class PruneFusionPassUnitTests: XCTestCase {
    /// x[1,4] ─▶ Gemm g1 (w) ─▶ y1;  x ─▶ Gemm g2 (w when shared, else w2) ─▶ y2.
    func twoGemms(shareWeight: Bool) -> Graph {
        var t = TestGraph()
        t.input("x", [1, 4])
        t.floats("w", [2, 4], [0.9, -0.1, 0.4, -0.7, 1, 2, 3, 4])
        if !shareWeight { t.floats("w2", [2, 4], [4, 3, 2, 1, -1, 0.5, -2, 0.25]) }
        t.node("Gemm", "g1", ["x", "w"], ["y1"], [.int("transB", 1)])
        t.node("Gemm", "g2", ["x", shareWeight ? "w" : "w2"], ["y2"], [.int("transB", 1)])
        t.output("y1")
        t.output("y2")
        return t.graph
    }

    func testReleasesTheReplacedOriginals() throws {
        var g = twoGemms(shareWeight: false)
        var context = try planned(&g, UnitConfigs.twoOfFour)
        try Pipeline(Pipeline.prune.passes).run(&g, &context)
        XCTAssertEqual(Set(g.initializers.keys), ["w_2of4", "w2_2of4"])
        XCTAssertEqual(try floatsOf(g, "w2_2of4"), [4, 3, 0, 0, -1, 0, -2, 0])
        XCTAssertTrue(context.replacedTensors.isEmpty)
        XCTAssertEqual(context.log.last?.pass, "fuse-pruning")
        let summary = context.log.last?.summary ?? ""
        XCTAssertTrue(summary.hasPrefix("2 pruned layers settled; 2 replaced tensors released"), summary)
    }

    /// g2 is skipped and still reads w after g1's copy was masked: w stays, and g2 is unchanged.
    func testKeepsAnOriginalStillReadElsewhere() throws {
        var g = twoGemms(shareWeight: true)
        var context = try planned(&g, UnitConfigs.twoOfFour + "\nregular_prune_skip_layers: \"g2\"")
        try Pipeline([TwoOfFourPruningPass(), PruneFusionPass()]).run(&g, &context)
        XCTAssertEqual(Set(g.initializers.keys), ["w", "w_2of4"])
        XCTAssertEqual(try nodeNamed(g, "g1").inputs[1], "w_2of4")
        XCTAssertEqual(try nodeNamed(g, "g2").inputs[1], "w")
        XCTAssertEqual(try floatsOf(g, "w"), [0.9, -0.1, 0.4, -0.7, 1, 2, 3, 4])
        let summary = context.log.last?.summary ?? ""
        XCTAssertTrue(summary.hasPrefix("1 pruned layers settled; 0 replaced tensors released"), summary)
    }

    /// The same after filter pruning: a Gemm → Gemm chain whose first layer loses half its outputs.
    func testReleasesFilterPrunedOriginals() throws {
        var t = TestGraph()
        t.input("x", [1, 2])
        t.floats("w1", [4, 2], [3, 4, 0.3, 0.4, 6, 8, 0.6, 0.8])  // transB=1: rows are output channels
        t.floats("w2", [1, 4], [1, 2, 3, 4])
        t.node("Gemm", "g1", ["x", "w1"], ["h"], [.int("transB", 1)])
        t.node("Gemm", "g2", ["h", "w2"], ["y"], [.int("transB", 1)])
        t.output("y")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.filter(0.5))
        try Pipeline(Pipeline.prune.passes).run(&g, &context)
        XCTAssertEqual(Set(g.initializers.keys), ["w1_pruned", "w2_pruned"])
        XCTAssertEqual(try floatsOf(g, "w1_pruned"), [3, 4, 6, 8])
        XCTAssertEqual(try floatsOf(g, "w2_pruned"), [1, 3])
    }
}
