import Foundation
import XCTest

@testable import Kernels

/// The training ops of SEMANTICS §7 against the numpy implementation in scripts/make-training-goldens.py
/// (tests/training/training_goldens.json): forward bit-exact, gradients within 1e-6 relative. 2:4 masks against a naive
/// reference of the M4N2 rule.
final class TrainingQuantTests: XCTestCase {
    struct Layout: Decodable {
        var groups, outer, channels_per_group, inner: Int
        var value: ChannelLayout {
            ChannelLayout(groups: groups, outer: outer, channelsPerGroup: channels_per_group, inner: inner)
        }
    }
    struct ULQCase: Decodable {
        var name: String, bits: Int, fixed_min: Bool, clamp_max: Double, clamp_min: Double
        var x, g, y, dx: [Double]
        var d_clamp_max, d_clamp_min: Double
    }
    struct ARQCase: Decodable {
        var name: String, bits: Int, layout: Layout
        var w, y, scales: [Double]
    }
    struct WtsULQCase: Decodable {
        var name: String, bits: Int, layout: Layout
        var w, g, clips, y, dw, d_clips, initial_clips: [Double]
    }
    struct Goldens: Decodable {
        var epsilon: Double
        var acts_ulq: [ULQCase]
        var arq: [ARQCase]
        var wts_ulq: [WtsULQCase]
    }

    static func loadGoldens() throws -> Goldens {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("tests/training/training_goldens.json"))
        return try JSONDecoder().decode(Goldens.self, from: data)
    }

    static func floats(_ d: [Double]) -> [Float] { d.map(Float.init) }

    /// |a − b| ≤ 1e-6·|b| (with a floor far below any value the cases hold).
    func assertClose(_ a: Float, _ b: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(abs(Double(a) - b), 1e-6 * max(abs(b), 1e-12), what, file: file, line: line)
    }

    func testGoldensCoverTheEdgeCases() throws {
        let g = try Self.loadGoldens()
        XCTAssertEqual(Float(g.epsilon), TrainingQuant.epsilon)
        XCTAssertEqual(Set(g.acts_ulq.map(\.bits)), [4, 8, 16])
        XCTAssertTrue(g.acts_ulq.contains { $0.fixed_min })
        XCTAssertEqual(g.arq.count, 7)
        XCTAssertEqual(g.wts_ulq.count, 7)
    }

    func testActsULQMatchesNumpy() throws {
        for c in try Self.loadGoldens().acts_ulq {
            let x = Self.floats(c.x)
            let g = Self.floats(c.g)
            let range = TrainingQuant.ULQRange(
                clampMax: Float(c.clamp_max), clampMin: Float(c.clamp_min), fixedMin: c.fixed_min, bits: c.bits)
            var y = [Float](repeating: .nan, count: x.count)
            x.withUnsafeBufferPointer { xb in
                y.withUnsafeMutableBufferPointer { TrainingQuant.actsULQForward(xb, range, into: $0) }
            }
            XCTAssertEqual(y, Self.floats(c.y), c.name)
            var dx = [Float](repeating: 0, count: x.count)
            let (dMax, dMin) = x.withUnsafeBufferPointer { xb in
                g.withUnsafeBufferPointer { gb in
                    dx.withUnsafeMutableBufferPointer {
                        TrainingQuant.actsULQBackward(xb, gradient: gb, range, dx: $0)
                    }
                }
            }
            XCTAssertEqual(dx, Self.floats(c.dx), c.name)
            assertClose(dMax, c.d_clamp_max, "\(c.name) ∂clamp_max")
            assertClose(dMin, c.d_clamp_min, "\(c.name) ∂clamp_min")
            if c.fixed_min { XCTAssertEqual(dMin, 0, c.name) }
        }
    }

    func testARQMatchesNumpy() throws {
        for c in try Self.loadGoldens().arq {
            let w = Self.floats(c.w)
            var y = [Float](repeating: .nan, count: w.count)
            let scales = w.withUnsafeBufferPointer { wb in
                y.withUnsafeMutableBufferPointer {
                    TrainingQuant.arqForward(wb, c.layout.value, bits: c.bits, into: $0)
                }
            }
            XCTAssertEqual(scales, Self.floats(c.scales), c.name)
            XCTAssertEqual(y, Self.floats(c.y), c.name)
        }
    }

    func testWtsULQMatchesNumpy() throws {
        for c in try Self.loadGoldens().wts_ulq {
            let w = Self.floats(c.w)
            let g = Self.floats(c.g)
            let clips = Self.floats(c.clips)
            let layout = c.layout.value
            XCTAssertEqual(
                w.withUnsafeBufferPointer { TrainingQuant.wtsULQInitialClips($0, layout) },
                Self.floats(c.initial_clips), c.name)
            var y = [Float](repeating: .nan, count: w.count)
            w.withUnsafeBufferPointer { wb in
                y.withUnsafeMutableBufferPointer {
                    TrainingQuant.wtsULQForward(wb, layout, clips: clips, bits: c.bits, into: $0)
                }
            }
            XCTAssertEqual(y, Self.floats(c.y), c.name)
            var dw = [Float](repeating: 0, count: w.count)
            var dc = [Float](repeating: 0, count: clips.count)
            w.withUnsafeBufferPointer { wb in
                g.withUnsafeBufferPointer { gb in
                    dw.withUnsafeMutableBufferPointer { dwb in
                        dc.withUnsafeMutableBufferPointer {
                            TrainingQuant.wtsULQBackward(
                                wb, gradient: gb, layout, clips: clips, bits: c.bits, dw: dwb, dClips: $0)
                        }
                    }
                }
            }
            XCTAssertEqual(dw, Self.floats(c.dw), c.name)
            for (i, d) in c.d_clips.enumerated() { assertClose(dc[i], d, "\(c.name) ∂c[\(i)]") }
        }
    }

    func testULQBackwardWritesDx() {
        let x: [Float] = [-2, 0.3, 5]
        let g: [Float] = [1, 2, 3]
        let range = TrainingQuant.ULQRange(clampMax: 1, clampMin: -1, fixedMin: false, bits: 8)
        var dx: [Float] = [10, 10, 10]
        x.withUnsafeBufferPointer { xb in
            g.withUnsafeBufferPointer { gb in
                _ = dx.withUnsafeMutableBufferPointer {
                    TrainingQuant.actsULQBackward(xb, gradient: gb, range, dx: $0)
                }
            }
        }
        XCTAssertEqual(dx, [0, 2, 0])  // only the in-range 0.3 passes its gradient; what was there is overwritten
    }

    /// A tensor large enough to run on every core: the forward is the per-element formula, ∂x passes g inside the range
    /// (over what was there), and the clamp gradients equal their float64 sums taken element by element.
    func testLargeActsULQOnEveryCoreMatchesTheFormula() {
        var random = SystemRandomNumberGenerator()
        let n = 200_003
        let x = (0..<n).map { _ in Float.random(in: -3...3, using: &random) }
        let g = (0..<n).map { _ in Float.random(in: -1...1, using: &random) }
        let range = TrainingQuant.ULQRange(clampMax: 1.7, clampMin: -1.1, fixedMin: false, bits: 8)
        var y = [Float](repeating: 0, count: n), dx = [Float](repeating: 1, count: n)
        var sums = (dClampMax: Float(0), dClampMin: Float(0))
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { TrainingQuant.actsULQForward(xb, range, into: $0) }
            g.withUnsafeBufferPointer { gb in
                sums = dx.withUnsafeMutableBufferPointer { TrainingQuant.actsULQBackward(xb, gradient: gb, range, dx: $0) }
            }
        }
        var wantMax = 0.0, wantMin = 0.0
        for i in 0..<n {
            let c = min(max(x[i], range.lo), range.hi)
            XCTAssertEqual(y[i], range.scale * (c / range.scale).rounded(.toNearestOrEven), "y[\(i)]")
            let inside = x[i] >= range.lo && x[i] <= range.hi
            XCTAssertEqual(dx[i], inside ? g[i] : 0, "dx[\(i)]")
            let q = x[i] / range.scale
            let l = inside ? ((q.rounded(.toNearestOrEven) - q) / range.levels) : range.outsideL
            wantMax += Double(g[i] * (l + (x[i] > range.hi ? 1 : 0)))
            wantMin += Double(g[i] * ((x[i] < range.lo ? 1 : 0) - l))
        }
        XCTAssertEqual(Double(sums.dClampMax), wantMax, accuracy: 1e-3 * max(1, abs(wantMax)))
        XCTAssertEqual(Double(sums.dClampMin), wantMin, accuracy: 1e-3 * max(1, abs(wantMin)))
    }

    /// After training, §4 applied to the learned clips gives ULQ's scale and (but for rare float32 ties) its zero point.
    func testExportMatchesSection4() {
        var rng = SeededRandom(seed: 7)
        for bits in [4, 8, 16] {
            var differ = 0
            for _ in 0..<20_000 {
                // clamp_max above n·ε (0.0078 at INT16), below which ULQ's scale is floored and §4's is not.
                let cmax = Float.random(in: 0.01..<50, using: &rng)
                let cmin = -Float.random(in: 0.0001..<50, using: &rng)
                let r = TrainingQuant.ULQRange(clampMax: cmax, clampMin: cmin, fixedMin: false, bits: bits)
                let (s, o) = Quantization.asymmetricParameters(clipMin: r.cmin, clipMax: cmax, bits: bits)
                XCTAssertEqual(s, r.scale)
                guard let exported = r.exportOffset else { return XCTFail("finite clamps give a zero point") }
                XCTAssertLessThanOrEqual(abs(exported - o), 1)
                if exported != o { differ += 1 }
            }
            XCTAssertLessThanOrEqual(differ, bits == 16 ? 20 : 1, "INT\(bits)")
        }
        XCTAssertNil(TrainingQuant.ULQRange(clampMax: .nan, clampMin: -1, fixedMin: false, bits: 8).exportOffset)
        XCTAssertEqual(TrainingQuant.ULQRange(clampMax: 6, clampMin: -1, fixedMin: true, bits: 8).exportOffset, -128)
    }

    /// M4N2 by the rule itself: per group of 4 along Cin (padded), keep the 2 largest |w|, ties keeping the higher index.
    func testTwoOfFourMaskFollowsTheRule() {
        var rng = SeededRandom(seed: 24)
        for (outer, cin, inner) in [(3, 8, 2), (2, 5, 3), (1, 7, 1), (2, 2, 2), (4, 3, 1)] {
            var w = (0..<(outer * cin * inner)).map { _ in Float(Int.random(in: -3...3, using: &rng)) }  // many ties and zeros
            let mask = w.withUnsafeBufferPointer {
                TrainingQuant.twoOfFourMask($0, outer: outer, cin: cin, inner: inner)
            }
            var expected = [UInt8](repeating: 1, count: w.count)
            if cin > 2 {
                for o in 0..<outer {
                    for i in 0..<inner {
                        for g in stride(from: 0, to: cin, by: 4) {
                            // Positions (value, index); padding is |0| at indices ≥ cin.
                            let slots = (0..<4).map { j in (g + j < cin ? abs(w[(o * cin + g + j) * inner + i]) : 0, j)
                            }
                            let dropped = slots.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }.prefix(2)
                            for (_, j) in dropped where g + j < cin { expected[(o * cin + g + j) * inner + i] = 0 }
                        }
                    }
                }
            }
            XCTAssertEqual(mask, expected, "\(outer)×\(cin)×\(inner): \(w)")
            // Applying the mask equals the pruning pass's in-place kernel.
            var pruned = w
            _ = pruned.withUnsafeMutableBufferPointer {
                Pruning.applyTwoOfFour($0, outer: outer, cin: cin, inner: inner)
            }
            mask.withUnsafeBufferPointer { m in w.withUnsafeMutableBufferPointer { TrainingQuant.applyMask(m, to: $0) }
            }
            XCTAssertEqual(w, pruned)
        }
    }
}
