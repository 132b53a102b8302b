import XCTest

@testable import Kernels

/// IFMR fed piece by piece (calibration batches) gives the same bits as over the whole input at once.
final class IFMRStreamingTests: XCTestCase {
    func values(_ n: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<n).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let u = Float(state >> 40) / Float(1 << 24)
            return (u - 0.3) * (u > 0.999 ? 40 : 3)  // a long positive tail
        }
    }

    func streamed(_ v: [Float], pieces: [Int], bits: Int) -> (min: Float, max: Float) {
        var extremes = IFMR.Extremes(k: IFMR.k(count: v.count))
        var start = 0
        var bounds: [Range<Int>] = []
        for p in pieces + [v.count] where start < v.count {
            let end = min(start + p, v.count)
            bounds.append(start..<end)
            start = end
        }
        for r in bounds { extremes.add(Array(v[r])) }
        guard let search = IFMR.Search(extremes, bits: bits) else { return (0, 0) }
        var errors = IFMR.SquaredErrors(search.clipsAndScales)
        for r in bounds { errors.add(Array(v[r])) }
        return search.clips(errors.means())
    }

    func testPiecesOfAnySizeGiveTheWholeInputsBits() {
        for (n, pieces) in [
            (10_000, [4095, 13, 8]), (20_003, [4096, 4096, 1, 7000]), (77, [5, 5, 5]), (9000, [9000]),
        ] {
            let v = values(n, seed: UInt64(n))
            for bits in [4, 8] {
                let whole = IFMR.clips(v, bits: bits)
                let parts = streamed(v, pieces: pieces, bits: bits)
                XCTAssertEqual(whole.min.bitPattern, parts.min.bitPattern, "\(n) \(pieces) INT\(bits)")
                XCTAssertEqual(whole.max.bitPattern, parts.max.bitPattern, "\(n) \(pieces) INT\(bits)")
            }
        }
    }

    func testKFollowsThePercentile() {
        XCTAssertEqual(IFMR.k(count: 10), 1)  // N − ⌊0.999999·N⌋ = 1
        XCTAssertEqual(IFMR.k(count: 3_000_000), 3)
        XCTAssertEqual(IFMR.k(count: 1), 1)
    }
}
