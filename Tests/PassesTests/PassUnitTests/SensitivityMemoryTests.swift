// Sensitivity analysis keeps the float outputs of at most a budget of bytes: with none kept, every batch's reference
// is run again, and the numbers are the same as with all of them kept.

import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class SensitivityMemoryTests: XCTestCase {
    func testFloatOutputsBeyondTheBudgetAreRunAgainWithTheSameNumbers() throws {
        let graph = UnitGraphs.oneConv()
        let values: [Float] = (0..<16).map { Float($0 % 7) * 0.37 - 0.9 }
        let data = try CalibrationData(
            arrays: ["x": NumpyArray(shape: [2, 2, 2, 2], values: .float(values), dtype: "<f4")],
            isRandom: false, source: "unit", inputs: graph.inputs)
        let config = try unitConfig(UnitConfigs.quantIFMR)
        let kept = try SensitivitySession(Model(graph: graph), config: config, data: data, batchSize: 1)
        let none = try SensitivitySession(Model(graph: graph), config: config, data: data, batchSize: 1)
        none.referenceBudget = 0
        let a = try kept.analyze(), b = try none.analyze()
        XCTAssertEqual(kept.references.count, 2)
        XCTAssertEqual(none.references.count, 0)
        XCTAssertEqual(a.allLayersSQNR, b.allLayersSQNR)
        XCTAssertTrue(a.allLayersSQNR.isFinite)
        XCTAssertEqual(a.layers.map(\.outputSQNR), b.layers.map(\.outputSQNR))
        XCTAssertEqual(try kept.outputSQNR(kept.parameters), try none.outputSQNR(none.parameters))
    }
}
