// TwoOfFourPruningPass: masks computed by hand along the input-channel axis (SEMANTICS §4: in each group of 4 along
// Cin the 2 smallest |w| become 0, ties taking the lower index; Cin padded with zeros to a multiple of 4).

import XCTest

@testable import Graph
@testable import Passes

final class TwoOfFourPruningPassUnitTests: XCTestCase {
    /// Conv w[3,4,1,1]: Cin is axis 1, so each filter's 4 weights are one group.
    func testConvMaskAlongCin() throws {
        var t = TestGraph()
        t.input("x", [1, 4, 1, 1])
        t.floats("w", [3, 4, 1, 1], [
            0.9, -0.1, 0.4, -0.7,  // |w| smallest: −0.1 (1), 0.4 (2)
            0.1, 0.2, -0.3, 0.05,  // 0.05 (3), 0.1 (0)
            0.5, -0.5, 0.5, 0.5,  // all equal: the lower indices 0 and 1 go
        ])
        t.node("Conv", "conv", ["x", "w"], ["y"])
        t.output("y")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.twoOfFour)
        try Pipeline([TwoOfFourPruningPass()]).run(&g, &context)
        let conv = try nodeNamed(g, "conv")
        XCTAssertEqual(conv.inputs[1], "w_2of4")
        XCTAssertEqual(try floatsOf(g, "w_2of4"), [0.9, 0, 0, -0.7, 0, 0.2, -0.3, 0, 0, 0, 0.5, 0.5])
        XCTAssertEqual(try floatsOf(g, "w"), [0.9, -0.1, 0.4, -0.7, 0.1, 0.2, -0.3, 0.05, 0.5, -0.5, 0.5, 0.5],
                       "the original stays until PruneFusionPass")
        XCTAssertEqual(context.replacedTensors, ["w"])
        XCTAssertEqual(context.record.prune["conv"], PruneRecord(twoOfFour: (zeroed: 6, updateFreq: 3)))
        XCTAssertEqual(context.layers[0].weight, "w_2of4", "layers are refreshed after the pass")
    }

    /// Cin = 6: the second group is [w4, w5, 0, 0]; the two padding zeros are its smallest, so w4 and w5 stay.
    func testConvCinPaddedToAMultipleOfFour() throws {
        var t = TestGraph()
        t.input("x", [1, 6, 1, 1])
        t.floats("w", [1, 6, 1, 1], [1, 2, 3, 4, 5, 6])
        t.node("Conv", "conv", ["x", "w"], ["y"])
        t.output("y")
        var g = t.graph
        var context = try planned(&g, UnitConfigs.twoOfFour)
        try TwoOfFourPruningPass().run(&g, &context)
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "conv").inputs[1]), [0, 0, 3, 4, 5, 6])
    }

    /// Gemm transB=1, w[N=2, K=4]: groups run along each row (axis 1).
    func testGemmTransB1MasksRows() throws {
        var g = gemm(transB: 1, dims: [2, 4], [0.9, -0.1, 0.4, -0.7, 1, 2, 3, 4])
        var context = try planned(&g, UnitConfigs.twoOfFour)
        try TwoOfFourPruningPass().run(&g, &context)
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "gemm").inputs[1]), [0.9, 0, 0, -0.7, 0, 0, 3, 4])
    }

    /// Gemm transB=0, w[K=4, N=2]: groups run down each column (axis 0). Column 0 is [0.9, −0.1, 0.4, −0.7], column 1
    /// [1, 2, 3, 4].
    func testGemmTransB0MasksColumns() throws {
        var g = gemm(transB: 0, dims: [4, 2], [0.9, 1, -0.1, 2, 0.4, 3, -0.7, 4])
        var context = try planned(&g, UnitConfigs.twoOfFour)
        try TwoOfFourPruningPass().run(&g, &context)
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "gemm").inputs[1]), [0.9, 0, 0, 0, 0, 3, -0.7, 4])
    }

    /// Cin ≤ 2: nothing is zeroed (the report says so).
    func testCinOfTwoIsLeftAlone() throws {
        var g = gemm(transB: 1, dims: [2, 2], [0.1, 5, 7, 0.2])
        var context = try planned(&g, UnitConfigs.twoOfFour)
        try TwoOfFourPruningPass().run(&g, &context)
        XCTAssertEqual(try floatsOf(g, try nodeNamed(g, "gemm").inputs[1]), [0.1, 5, 7, 0.2])
        XCTAssertEqual(context.pruneEvents.map(\.description), ["2:4: gemm: 0 of 4 weights are 0 (0 zeroed now); Cin ≤ 2, left alone"])
    }

    func gemm(transB: Int64, dims: [Int64], _ values: [Float]) -> Graph {
        var t = TestGraph()
        let k = transB == 1 ? dims[1] : dims[0]
        t.input("x", [1, k])
        t.floats("w", dims, values)
        t.node("Gemm", "gemm", ["x", "w"], ["y"], [.int("transB", transB)])
        t.output("y")
        return t.graph
    }
}
