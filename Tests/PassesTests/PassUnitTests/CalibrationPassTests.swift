// CalibrationPass: IFMR clips on a one-Conv graph from data built here, against the IFMR formula of SEMANTICS §4
// computed in the test (a plain sort and loop, not the kernel's one-pass SIMD search).

import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class CalibrationPassUnitTests: XCTestCase {
    /// SEMANTICS §4, literally: k-th extremes, M, the 61 candidates, the first minimum of the mean squared error.
    static func ifmrByFormula(_ x: [Float], bits: Int) -> (min: Float, max: Float) {
        let n = x.count
        var k = n - Int((0.999999 * Double(n)).rounded(.down))
        if k == 0 { k = 1 }
        let sorted = x.sorted()
        let max0 = max(0, sorted[n - k]), min0 = min(0, sorted[k - 1])
        let m = max(abs(max0), abs(min0))
        let high = Float((1 << (bits - 1)) - 1), low = Float(1 << (bits - 1))
        let divisor = abs(max0) < abs(min0) ? low : high
        var best: (loss: Double, s: Float)?
        for i in 0...60 {
            let c = m * (Float(70 + i) / 100), s = c / divisor
            let loss = x.reduce(0.0) { sum, v in
                let e = Double((min(max(v, -c), c) / s).rounded(.toNearestOrEven) * s - v)
                return sum + e * e
            } / Double(n)
            if best == nil || loss < best!.loss { best = (loss, s) }
        }
        return (-low * best!.s, high * best!.s)
    }

    /// 2 batches of x[1,2,2,2]: 16 values with a long positive tail and a small negative side.
    static let samples: [Float] = [-1.0, -0.5, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 2.0, 3.0, 7.3]

    func data(_ values: [Float], graph: Graph) throws -> CalibrationData {
        try CalibrationData(
            arrays: ["x": NumpyArray(shape: [values.count / 8, 2, 2, 2], values: .float(values), dtype: "<f4")],
            isRandom: false, source: "unit", inputs: graph.inputs)
    }

    func testIFMRClipsFollowTheFormulaOverAllBatches() throws {
        var g = UnitGraphs.oneConv()
        var context = try planned(&g, UnitConfigs.quantIFMR)
        XCTAssertEqual(context.plan?.batchNum, 2)
        try Pipeline([CalibrationPass(data: data(Self.samples, graph: g))]).run(&g, &context)
        let (lo, hi) = try XCTUnwrap(context.calibratedClips[0])
        let expected = Self.ifmrByFormula(Self.samples, bits: 8)
        XCTAssertEqual(hi, expected.max, accuracy: 1e-6)
        XCTAssertEqual(lo, expected.min, accuracy: 1e-6)
        // Bounds the formula implies: clip_max within [0.7, 1.3]·max, and clip_min = −128/127 · clip_max.
        XCTAssertGreaterThanOrEqual(hi, 0.7 * 7.3 - 1e-5)
        XCTAssertLessThanOrEqual(hi, 1.3 * 7.3 + 1e-5)
        XCTAssertEqual(lo, -hi * 128 / 127, accuracy: 1e-5)
        XCTAssertTrue(context.provided.contains(.clips))
    }

    /// Only the first batch_num batches count: a third batch holding a huge value changes nothing.
    func testOnlyTheFirstBatchNumBatchesAreRead() throws {
        var g = UnitGraphs.oneConv()
        var context = try planned(&g, UnitConfigs.quantIFMR)
        let third: [Float] = [1000, 0, 0, 0, 0, 0, 0, 0]
        try CalibrationPass(data: data(Self.samples + third, graph: g)).run(&g, &context)
        let expected = Self.ifmrByFormula(Self.samples, bits: 8)
        XCTAssertEqual(context.calibratedClips[0]?.1 ?? .nan, expected.max, accuracy: 1e-6)
    }

    /// A mostly negative input divides by 128: |max0| < |min0|.
    func testNegativeSideUsesTheLowDivisor() throws {
        var g = UnitGraphs.oneConv()
        var context = try planned(&g, UnitConfigs.quantIFMR)
        let values = Self.samples.map { -$0 }
        try CalibrationPass(data: data(values, graph: g)).run(&g, &context)
        let expected = Self.ifmrByFormula(values, bits: 8)
        XCTAssertEqual(context.calibratedClips[0]?.0 ?? .nan, expected.min, accuracy: 1e-6)
        XCTAssertEqual(context.calibratedClips[0]?.1 ?? .nan, expected.max, accuracy: 1e-6)
    }

    func testWithoutDataItNamesTheLayersThatNeedClips() throws {
        var g = UnitGraphs.oneConv()
        var context = try planned(&g, UnitConfigs.quantIFMR)
        let error = expectError(PassError.self) { try CalibrationPass(data: nil).run(&g, &context) }
        XCTAssertEqual(error?.node, "conv")
        XCTAssertTrue(error?.message.contains("need activation clips from IFMR") ?? false, error?.message ?? "")
    }

    /// Clips given in the config: calibration has nothing to do and needs no data.
    func testConfigClipsNeedNoData() throws {
        var g = UnitGraphs.oneConv()
        var context = try planned(&g, UnitConfigs.quant(clipMin: -1, clipMax: 1))
        try Pipeline([CalibrationPass(data: nil)]).run(&g, &context)
        XCTAssertTrue(context.calibratedClips.isEmpty)
    }
}
