import XCTest

@testable import Kernels

/// Hand-worked cases of SEMANTICS §4 (values cross-checked with numpy float32 where rounding is delicate).
final class QuantizationTests: XCTestCase {
    func testSymmetricScaleUses127Or128() {
        XCTAssertEqual(Quantization.symmetricScale(min: -1, max: 2, bits: 8), Float(2) / 127)
        XCTAssertEqual(Quantization.symmetricScale(min: -3, max: 2, bits: 8), Float(3) / 128)  // |min| > |max|
        XCTAssertEqual(Quantization.symmetricScale(min: -2, max: 2, bits: 8), Float(2) / 127)  // a tie uses 127
        XCTAssertEqual(Quantization.symmetricScale(min: -8, max: 7, bits: 4), 1)
        XCTAssertEqual(Quantization.symmetricScale(min: -1, max: 7, bits: 4), 1)
        XCTAssertEqual(Quantization.symmetricScale(min: 0, max: 0, bits: 8), 1)  // zeros: a positive scale
    }

    func testQuantizeRoundsHalfToEvenAndClamps() {
        let w: [Float] = [0.5, 1.5, 2.5, -0.5, -1.5, 200, -200, 9, -9]
        var out8 = [Int8](repeating: 0, count: w.count)
        w.withUnsafeBufferPointer { v in
            out8.withUnsafeMutableBufferPointer { Quantization.quantizeSymmetric(v, .perTensor(w.count), scales: [1], bits: 8, into: $0) }
        }
        XCTAssertEqual(out8, [0, 2, 2, 0, -2, 127, -128, 9, -9])
        var out4 = [Int8](repeating: 0, count: w.count)
        w.withUnsafeBufferPointer { v in
            out4.withUnsafeMutableBufferPointer { Quantization.quantizeSymmetric(v, .perTensor(w.count), scales: [1], bits: 4, into: $0) }
        }
        XCTAssertEqual(out4, [0, 2, 2, 0, -2, 7, -8, 7, -8])
    }

    func testPerChannelLayouts() {
        // Conv [Cout=2, 3]: channel = row.
        let conv: [Float] = [1, -2, 0.5, 4, 3, -1]
        let (lo, hi) = conv.withUnsafeBufferPointer { Quantization.channelMinMax($0, ChannelLayout(outer: 1, channelsPerGroup: 2, inner: 3)) }
        XCTAssertEqual(lo, [-2, -1])
        XCTAssertEqual(hi, [1, 4])
        // MatMul [K=3, N=2]: channel = column.
        let mm: [Float] = [1, 10, -5, 2, 3, -20]
        let (lo2, hi2) = mm.withUnsafeBufferPointer { Quantization.channelMinMax($0, ChannelLayout(outer: 3, channelsPerGroup: 2, inner: 1)) }
        XCTAssertEqual(lo2, [-5, -20])
        XCTAssertEqual(hi2, [3, 10])
        // ConvTranspose [Cin=4, Cout/g=1, k=2], g=2: Cout = 2; input channels 0,1 feed output 0, 2,3 feed output 1.
        let ct: [Float] = [1, 2, 3, 4, -5, 6, 7, 8]
        let (lo3, hi3) = ct.withUnsafeBufferPointer { Quantization.channelMinMax($0, ChannelLayout(groups: 2, outer: 2, channelsPerGroup: 1, inner: 2)) }
        XCTAssertEqual(lo3, [1, -5])
        XCTAssertEqual(hi3, [4, 8])
    }

    func testAsymmetricParameters() {
        // s = 2/255; in float32 1/s is 127.49999, so o = round(−128 + 127.49999) = round(−0.50001) = −1.
        let (s, o) = Quantization.asymmetricParameters(clipMin: -1, clipMax: 1, bits: 8)
        XCTAssertEqual(s, Float(2) / Float(255))
        XCTAssertEqual(o, -1)
        // fixed_min: clip_min 0 → o = −128.
        let (s2, o2) = Quantization.asymmetricParameters(clipMin: 0, clipMax: 6, bits: 8)
        XCTAssertEqual(s2, 0.023529412)
        XCTAssertEqual(o2, -128)
        // A positive clip_min and a negative clip_max are moved to 0.
        XCTAssertEqual(Quantization.asymmetricParameters(clipMin: 1, clipMax: 3, bits: 8).offset, -128)
        // INT4 and INT16 ranges.
        let (s4, o4) = Quantization.asymmetricParameters(clipMin: -4, clipMax: 4, bits: 4)
        XCTAssertEqual(s4, Float(8) / 15)
        XCTAssertEqual(o4, -1)  // float32: 4/(8/15) = 7.4999996, so round(−0.5000004) = −1
        XCTAssertEqual(Quantization.asymmetricParameters(clipMin: -1, clipMax: 1, bits: 16).scale, Float(2) / 65535)
        // Below epsilon: s = 1, o = −2^(b−1).
        let (s5, o5) = Quantization.asymmetricParameters(clipMin: -1e-8, clipMax: 1e-8, bits: 8)
        XCTAssertEqual(s5, 1)
        XCTAssertEqual(o5, -128)
    }

    func testFakeQuantizeAsymmetric() {
        let x: [Float] = [0, 0.01, 1, 2, -3]
        var y = [Float](repeating: 0, count: x.count)
        let s: Float = 0.02, o = -128
        x.withUnsafeBufferPointer { v in
            y.withUnsafeMutableBufferPointer { Quantization.fakeQuantizeAsymmetric(v, scale: s, offset: o, bits: 8, into: $0) }
        }
        // 0.01/0.02 = 0.5 → 0 (even); 1/0.02 = 50; 2 → q = 100 − 128 = −28; −3 → clamped at −128 → 0.
        XCTAssertEqual(y, [0, 0, 50 * s, 100 * s, 0])
    }

    func testFloat16ScaleRounding() {
        XCTAssertEqual(Quantization.roundScaleToFloat16(0.1), 0.099975586)
        XCTAssertEqual(Quantization.roundScaleToFloat16(0.5), 0.5)
        XCTAssertEqual(Quantization.roundScaleToFloat16(1e-6), 1.0008089e-06)  // below 2^−14: fp16(√s)²
        XCTAssertEqual(Quantization.roundScaleToFloat16(70000), 69960.25)  // above 65504
    }

    func testS19Truncation() {
        XCTAssertEqual(Quantization.truncateToS19(0.1).bitPattern, 0x3DCC_C000)
        XCTAssertEqual(Quantization.truncateToS19(1.0), 1.0)
    }

    func testInt4Packing() {
        // As onnx.helper packs [1, -2, 3]: 0xE1, 0x03.
        XCTAssertEqual([Int8(1), -2, 3].withUnsafeBufferPointer { Quantization.packInt4($0) }, [0xE1, 0x03])
        // Along the last axis, rows start on a byte: [[1, 2, 3], [4, 5, 6]] → [0x21, 0x03, 0x54, 0x06].
        XCTAssertEqual([Int8(1), 2, 3, 4, 5, 6].withUnsafeBufferPointer { Quantization.packInt4($0, outer: 2, axis: 3, inner: 1) }, [0x21, 0x03, 0x54, 0x06])
        // Along a middle axis (Cin of a [Cout=1, Cin=4, k=2] conv weight): pairs of Cin at the same k.
        // W[0, :, 0] = 1, 2, 3, 4 and W[0, :, 1] = −1, −2, −3, −4 → bytes [c0|c1 at k0, c0|c1 at k1, c2|c3 at k0, c2|c3 at k1].
        let w: [Int8] = [1, -1, 2, -2, 3, -3, 4, -4]
        XCTAssertEqual(w.withUnsafeBufferPointer { Quantization.packInt4($0, outer: 1, axis: 4, inner: 2) }, [0x21, 0xEF, 0x43, 0xCD])
    }
}
