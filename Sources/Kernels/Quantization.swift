// Quantization kernels (SEMANTICS §4): pure functions on buffers, float32 arithmetic exactly as the formulas are
// written, round-half-to-even everywhere (as ONNX Round and QuantizeLinear), so a numpy reference reproduces them bit
// for bit.

/// How a weight's elements map to quantization channels: the tensor seen as [groups, outer, channelsPerGroup, inner]
/// with channel = group × channelsPerGroup + c. Conv [Cout, Cin/g, k…]: (1, 1, Cout, k…); Gemm(transB=0)/MatMul
/// [K, N]: (1, K, N, 1); ConvTranspose [Cin, Cout/g, k…]: (g, Cin/g, Cout/g, k…), regrouped so Cout leads.
public struct ChannelLayout: Sendable, Equatable {
    public var groups: Int
    public var outer: Int
    public var channelsPerGroup: Int
    public var inner: Int

    public init(groups: Int = 1, outer: Int, channelsPerGroup: Int, inner: Int) {
        self.groups = groups
        self.outer = outer
        self.channelsPerGroup = channelsPerGroup
        self.inner = inner
    }

    /// One channel over `count` elements (per-tensor).
    public static func perTensor(_ count: Int) -> ChannelLayout { ChannelLayout(outer: 1, channelsPerGroup: 1, inner: count) }

    public var channels: Int { groups * channelsPerGroup }
    public var elementCount: Int { groups * outer * channelsPerGroup * inner }

    /// Calls `body(channel, range of flat indices)` for each contiguous run of one channel, in memory order.
    @inline(__always)
    public func forEachRun(_ body: (Int, Range<Int>) -> Void) {
        var index = 0
        for g in 0..<groups {
            for _ in 0..<outer {
                for c in 0..<channelsPerGroup {
                    body(g * channelsPerGroup + c, index..<(index + inner))
                    index += inner
                }
            }
        }
    }
}

public enum Quantization {
    /// Round half to even for |v| < 2^22 without a libm call (vectorizes): adding and removing 1.5·2^23 leaves v
    /// rounded by the FPU's default round-to-nearest-even. Callers clamp to the quantization range first.
    @inlinable @inline(__always)
    public static func roundHalfEven(_ v: Float) -> Float { (v + 12_582_912) - 12_582_912 }

    /// Largest and smallest value of each channel, in one pass.
    public static func channelMinMax(_ values: UnsafeBufferPointer<Float>, _ layout: ChannelLayout) -> (min: [Float], max: [Float]) {
        precondition(values.count == layout.elementCount, "layout \(layout) does not cover \(values.count) elements")
        var lo = [Float](repeating: .infinity, count: layout.channels)
        var hi = [Float](repeating: -.infinity, count: layout.channels)
        layout.forEachRun { c, run in
            var a = lo[c], b = hi[c]
            for i in run {
                let v = values[i]
                a = Swift.min(a, v)
                b = Swift.max(b, v)
            }
            lo[c] = a
            hi[c] = b
        }
        return (lo, hi)
    }

    /// ARQ symmetric scale: max(|max|, |min|) / (2^(b−1) − 1), or / 2^(b−1) when |min| > |max|. A channel of zeros
    /// (nothing to scale) gets 1, so every scale is positive and its values still quantize to 0.
    public static func symmetricScale(min: Float, max: Float, bits: Int) -> Float {
        let a = Swift.abs(max), b = Swift.abs(min)
        let m = Swift.max(a, b)
        guard m > 0, m.isFinite else { return 1 }
        let levels = Float(1 << (bits - 1))
        return b > a ? m / levels : m / (levels - 1)
    }

    /// Symmetric integers: q = clamp(round(w / s_c), −2^(b−1), 2^(b−1)−1), one pass over the weight.
    public static func quantizeSymmetric(
        _ values: UnsafeBufferPointer<Float>, _ layout: ChannelLayout, scales: [Float], bits: Int,
        into out: UnsafeMutableBufferPointer<Int8>
    ) {
        precondition(bits <= 8 && scales.count == layout.channels && out.count == values.count)
        let lo = Float(-(1 << (bits - 1))), hi = Float((1 << (bits - 1)) - 1)
        layout.forEachRun { c, run in
            let s = scales[c]
            for i in run {
                // clamp(round(v)) = round(clamp(v)) for integer bounds; clamping first keeps the fast rounding exact.
                out[i] = Int8(roundHalfEven(Swift.min(Swift.max(values[i] / s, lo), hi)))
            }
        }
    }

    /// ULQ asymmetric parameters from clips: max' = max(clip_max, 0), min' = min(clip_min, 0),
    /// s = (max' − min') / (2^b − 1), o = round(−2^(b−1) − min'/s); if s < 1.1920929e−7 then s = 1, o = −2^(b−1).
    public static func asymmetricParameters(clipMin: Float, clipMax: Float, bits: Int) -> (scale: Float, offset: Int) {
        let maxPrime = Swift.max(clipMax, 0), minPrime = Swift.min(clipMin, 0)
        let half = Float(1 << (bits - 1))
        var s = (maxPrime - minPrime) / Float((1 << bits) - 1)
        if s < 1.1920929e-7 {
            s = 1
            return (s, -(1 << (bits - 1)))
        }
        let o = (-half - minPrime / s).rounded(.toNearestOrEven)
        return (s, Int(o))
    }

    /// Fake quantization with (s, o): x̂ = (clamp(round(x/s) + o, −2^(b−1), 2^(b−1)−1) − o) · s.
    public static func fakeQuantizeAsymmetric(
        _ values: UnsafeBufferPointer<Float>, scale s: Float, offset o: Int, bits: Int, into out: UnsafeMutableBufferPointer<Float>
    ) {
        let lo = Float(-(1 << (bits - 1))), hi = Float((1 << (bits - 1)) - 1), off = Float(o)
        for i in values.indices {
            let q = Swift.min(Swift.max((values[i] / s).rounded(.toNearestOrEven) + off, lo), hi)
            out[i] = (q - off) * s
        }
    }

    /// FORCE_FP16_QUANT: the scale rounded to float16 precision (round to nearest even), kept as float32; outside the
    /// float16 normal range [2^−14, 65504] it is rounded as fp16(√s)².
    public static func roundScaleToFloat16(_ s: Float) -> Float {
        if s >= 0x1p-14 && s <= 65504 { return Float(Float16(s)) }
        let r = Float(Float16(s.squareRoot()))
        return r * r
    }

    /// The deploy dequant scale truncated to 19 significant bits (`bits & 0xFFFFE000`).
    public static func truncateToS19(_ s: Float) -> Float { Float(bitPattern: s.bitPattern & 0xFFFF_E000) }

    /// INT4 values (−8…7, one per byte) packed two per byte: element 2k in the low nibble, 2k+1 in the high nibble
    /// (ONNX INT4 raw layout); an odd count pads the last high nibble with 0.
    public static func packInt4(_ values: UnsafeBufferPointer<Int8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (values.count + 1) / 2)
        for i in values.indices {
            let nibble = UInt8(bitPattern: values[i]) & 0x0F
            out[i / 2] |= i % 2 == 0 ? nibble : nibble << 4
        }
        return out
    }

    /// INT4 values packed two per byte along one axis of an [outer, axis, inner] array (AMCT deploy weights: along
    /// Cin, low nibble = even index): the result is [outer, ⌈axis/2⌉, inner] bytes.
    public static func packInt4(_ values: UnsafeBufferPointer<Int8>, outer: Int, axis: Int, inner: Int) -> [UInt8] {
        precondition(values.count == outer * axis * inner)
        let half = (axis + 1) / 2
        var out = [UInt8](repeating: 0, count: outer * half * inner)
        for o in 0..<outer {
            for a in 0..<axis {
                for i in 0..<inner {
                    let nibble = UInt8(bitPattern: values[(o * axis + a) * inner + i]) & 0x0F
                    out[(o * half + a / 2) * inner + i] |= a % 2 == 0 ? nibble : nibble << 4
                }
            }
        }
        return out
    }
}
