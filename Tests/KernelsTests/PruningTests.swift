import XCTest

@testable import Kernels

/// Hand-worked cases of the pruning rules (SEMANTICS §4).
final class PruningTests: XCTestCase {
    func testRemainingChannels() {
        // 32 · 0.3 = 9.6 → 10 pruned → 22 remain; ×16 → 32 (never above C).
        XCTAssertEqual(Pruning.remaining(channels: 32, ratio: 0.3, ascendOptimized: false), 22)
        XCTAssertEqual(Pruning.remaining(channels: 32, ratio: 0.3, ascendOptimized: true), 32)
        // 64 · 0.3 = 19.2 → 45 remain → 48.
        XCTAssertEqual(Pruning.remaining(channels: 64, ratio: 0.3, ascendOptimized: true), 48)
        // Banker's rounding: 5 · 0.5 = 2.5 → 2 pruned; 7 · 0.5 = 3.5 → 4 pruned.
        XCTAssertEqual(Pruning.remaining(channels: 5, ratio: 0.5, ascendOptimized: false), 3)
        XCTAssertEqual(Pruning.remaining(channels: 7, ratio: 0.5, ascendOptimized: false), 3)
        // ×16 with a tiny layer: at least 16, never above C.
        XCTAssertEqual(Pruning.remaining(channels: 8, ratio: 0.9, ascendOptimized: true), 8)
        XCTAssertEqual(Pruning.remaining(channels: 100, ratio: 0.99, ascendOptimized: true), 16)
        // A grouped consumer: a multiple of the group.
        XCTAssertEqual(Pruning.remaining(channels: 24, ratio: 0.3, ascendOptimized: false, multiple: 4), 16)
    }

    func testKeepPrunesLowestScoresTiesLowerIndexFirst() {
        XCTAssertEqual(Pruning.keep(scores: [0.5, 0.1, 0.1, 0.9, 0.1], remain: 3), [0, 3, 4])
        XCTAssertEqual(Pruning.keep(scores: [0, 0, 0, 0], remain: 2), [2, 3])
    }

    func testScoresAndNormalisation() {
        // Conv [2, 1, 2]: channel 0 = (3, 4) → ‖·‖ = 5, / 2 elements = 2.5; channel 1 = (0, 1) → 0.5.
        let w: [Float] = [3, 4, 0, 1]
        let s = w.withUnsafeBufferPointer { Pruning.channelScores($0, outer: 1, channels: 2, inner: 2) }
        XCTAssertEqual(s, [2.5, 0.5])
        XCTAssertEqual(Pruning.normalized([2.5, 0.5, 1.5]), [1, 0, 0.5])
        XCTAssertEqual(Pruning.normalized([2, 2]), [0, 0])
    }

    func testTwoOfFourWithPaddingAndTies() {
        // One row, Cin = 6: groups (0.9, −0.1, 0.4, −0.7) and (0.3, −0.3, pad, pad).
        var w: [Float] = [0.9, -0.1, 0.4, -0.7, 0.3, -0.3]
        let zeroed = w.withUnsafeMutableBufferPointer { Pruning.applyTwoOfFour($0, outer: 1, cin: 6, inner: 1) }
        XCTAssertEqual(w, [0.9, 0, 0, -0.7, 0.3, -0.3])  // the pads are the two smallest in the second group
        XCTAssertEqual(zeroed, 2)
        // Ties: |0.5| four times → the lower indices go.
        var t: [Float] = [0.5, -0.5, 0.5, -0.5]
        t.withUnsafeMutableBufferPointer { _ = Pruning.applyTwoOfFour($0, outer: 1, cin: 4, inner: 1) }
        XCTAssertEqual(t, [0, 0, 0.5, -0.5])
        // Cin ≤ 2: nothing.
        var small: [Float] = [1, 2]
        XCTAssertEqual(small.withUnsafeMutableBufferPointer { Pruning.applyTwoOfFour($0, outer: 1, cin: 2, inner: 1) }, 0)
        // Along a middle axis: [outer 1, cin 4, inner 2]; columns are independent groups.
        var m: [Float] = [1, 8, 2, 7, 3, 6, 4, 5]
        m.withUnsafeMutableBufferPointer { _ = Pruning.applyTwoOfFour($0, outer: 1, cin: 4, inner: 2) }
        XCTAssertEqual(m, [0, 8, 0, 7, 3, 0, 4, 0])
    }

    func testGatherAlongAnAxis() {
        // [2, 3, 1] floats, keep 0 and 2 of axis 1.
        let v: [Float] = [1, 2, 3, 4, 5, 6]
        let bytes = v.withUnsafeBytes { Pruning.gather($0, elementSize: 4, outer: 2, n: 3, inner: 1, keep: [0, 2]) }
        XCTAssertEqual(bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, [1, 3, 4, 6])
    }
}
