// Training-time quantizers of SEMANTICS §7 (QAT), forward and backward, float32 exactly as written there so that the
// numpy implementation in scripts/make-training-goldens.py reproduces them bit for bit. b = bit width,
// n = 2^b − 1, m = 2^(b−1) − 1, ε = 1.192092896e−7, round = half to even, g = gradient at the op's output.
// Per-element gradient terms are float32; sums over a tensor or a channel are accumulated in float64.
//
// ActsULQ (activations; learnable clamp_max, clamp_min):
//   cmin = 0 when fixed_min, else min(clamp_min, 0);  cmax = max(clamp_max, n·ε)
//   s = (cmax − cmin)/n;  o = round(cmin/s);  lo = s·o;  hi = s·(o + n)
//   y = s·round(clamp(x, lo, hi)/s)
//   L(x) = (round(x/s) − x/s)/n inside [lo, hi];  (round(cmin/s) − cmin/s)/n elsewhere
//   ∂x = g inside [lo, hi] (inclusive), else 0
//   ∂clamp_max = Σ g·(L(x) + [x > hi]);  ∂clamp_min = Σ g·([x < lo] − L(x)), 0 when fixed_min
//   (taken literally, also when clamp_max < n·ε or clamp_min > 0, where the clamps make the true derivative 0)
//
// ARQ weights: s_c from the current weights by §4 (max(|max|, |min|)/m, or /2^(b−1) when |min| > |max|; a channel
//   of zeros gets 1);  w_q = s·clamp(round(w/s), −2^(b−1), 2^(b−1)−1);  ∂w = g (straight-through: nothing to compute).
//
// WtsULQ weights (learnable clip c per channel or per tensor, initialised to max|w| of the channel):
//   s = max(c, m·ε)/m  (Decision: the same floor as ActsULQ's cmax, so a zero channel or a clip driven to ≤ 0 keeps a
//   positive scale);  v = w/s;  q = clamp(round(v), −2^(b−1), 2^(b−1)−1);  w_q = s·q
//   inside = −2^(b−1) ≤ v ≤ 2^(b−1)−1:  ∂w = g,  ∂c += g·(round(v) − v)/m
//   outside:                            ∂w = 0,  ∂c += g·q/m
//
// 2:4 masks (l1_selective_prune, M4N2): the mask is what Pruning.applyTwoOfFour keeps from |w| (groups of 4 along
//   Cin of a weight seen as [outer, cin, inner]); applying a mask zeroes weights, or gradients, where it is 0.
//
// Every backward function ADDS into its gradient outputs (the caller zeroes them), so gradients accumulate where a
// value has several readers.

public enum TrainingQuant {
    public static let epsilon: Float = 1.192092896e-7

    // MARK: ActsULQ

    /// The quantization grid ActsULQ uses for one set of clamps.
    public struct ULQRange: Sendable, Equatable {
        /// n = 2^b − 1
        public var levels: Float
        public var fixedMin: Bool
        public var cmin: Float
        public var cmax: Float
        public var scale: Float
        /// o = round(cmin/s), an integer-valued float (≤ 0)
        public var offset: Float
        public var lo: Float
        public var hi: Float

        public init(clampMax: Float, clampMin: Float, fixedMin: Bool, bits: Int) {
            let n = Float((1 << bits) - 1)
            levels = n
            self.fixedMin = fixedMin
            cmin = fixedMin ? 0 : Swift.min(clampMin, 0)
            cmax = Swift.max(clampMax, n * TrainingQuant.epsilon)
            scale = (cmax - cmin) / n
            offset = (cmin / scale).rounded(.toNearestOrEven)
            lo = scale * offset
            hi = scale * (offset + n)
        }

        /// L outside [lo, hi]: (round(cmin/s) − cmin/s)/n.
        public var outsideL: Float { (offset - cmin / scale) / levels }

        /// The zero point to export, o_d = −2^(b−1) − o, exactly the grid trained on (nil for non-finite clamps).
        /// §4 from clip_max = clamp_max, clip_min = cmin gives the same s, and the same o_d except where float32
        /// rounding of −2^(b−1) − cmin/s lands on a tie of the rounding (measured: 5 in 5·10^6 random clips at INT8,
        /// 800 at INT16, none at INT4), where it is one step off.
        public var exportOffset: Int? {
            let v = -(levels + 1) / 2 - offset
            return v.isFinite ? Int(v) : nil
        }
    }

    /// y = s·round(clamp(x, lo, hi)/s); `y` has x's count and may be x's own storage (in place).
    public static func actsULQForward(
        _ x: UnsafeBufferPointer<Float>, _ range: ULQRange, into y: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(y.count == x.count)
        let s = range.scale
        let lo = range.lo
        let hi = range.hi
        guard let xp = x.baseAddress, let yp = y.baseAddress else { return }
        let out = UncheckedSendable(yp)
        parallelChunks(x.count, work: x.count) { r in
            for i in r {
                // |clamp(x)/s| ≤ n + 1 < 2^22, where the fast rounding is exact.
                let c = Swift.min(Swift.max(xp[i], lo), hi)
                out.value[i] = s * Quantization.roundHalfEven(c / s)
            }
        }
    }

    /// Writes ∂x into `dx` (when given: g inside [lo, hi], else 0) and returns (∂clamp_max, ∂clamp_min) for this
    /// tensor (∂clamp_min = 0 under fixed_min). Works in chunks that stay in L1: the float32 terms of a chunk and its
    /// ∂x in one branch-free loop, then the terms' float64 sum in eight lanes.
    @discardableResult
    public static func actsULQBackward(
        _ x: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>, _ range: ULQRange,
        dx: UnsafeMutableBufferPointer<Float>?
    ) -> (dClampMax: Float, dClampMin: Float) {
        precondition(g.count == x.count && (dx?.count ?? x.count) == x.count)
        guard let xp = x.baseAddress, let gp = g.baseAddress else { return (0, 0) }
        let chunk = 512
        let chunks = (x.count + chunk - 1) / chunk
        // Each chunk's two sums on any core; added in chunk order below, so the result is the same bits whatever the
        // threads.
        var partial = [Double](repeating: 0, count: 2 * chunks)
        partial.withUnsafeMutableBufferPointer { sumsBuffer in
            let sums = UncheckedSendable(sumsBuffer.baseAddress!), d = UncheckedSendable(dx?.baseAddress)
            parallelChunks(chunks, work: x.count) { part in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * chunk) { terms in
                    let tMax = terms.baseAddress!, tMin = terms.baseAddress! + chunk
                    for c in part {
                        let start = c * chunk, count = Swift.min(chunk, x.count - start)
                        if let dx = d.value {
                            ulqTerms(xp + start, gp + start, count: count, range, tMax, tMin, dx: dx + start)
                        } else {
                            ulqTerms(xp + start, gp + start, count: count, range, tMax, tMin)
                        }
                        sums.value[2 * c] = sum(tMax, count: count)
                        sums.value[2 * c + 1] = sum(tMin, count: count)
                    }
                }
            }
        }
        var total = (max: 0.0, min: 0.0)
        for c in 0..<chunks {
            total.max += partial[2 * c]
            total.min += partial[2 * c + 1]
        }
        return (Float(total.max), range.fixedMin ? 0 : Float(total.min))
    }

    /// The float32 terms g·(L(x) + [x > hi]) and g·([x < lo] − L(x)) of `count` elements.
    @inline(__always)
    static func ulqTerms(
        _ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, count: Int, _ range: ULQRange,
        _ tMax: UnsafeMutablePointer<Float>, _ tMin: UnsafeMutablePointer<Float>
    ) {
        let k = TermConstants(range)
        for i in 0..<count {
            (tMax[i], tMin[i], _) = ulqTerm(x[i], g[i], k)
        }
    }

    /// The terms, and ∂x = g inside [lo, hi] (else 0) written into `dx`, in the same loop.
    @inline(__always)
    static func ulqTerms(
        _ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, count: Int, _ range: ULQRange,
        _ tMax: UnsafeMutablePointer<Float>, _ tMin: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>
    ) {
        let k = TermConstants(range)
        for i in 0..<count {
            (tMax[i], tMin[i], dx[i]) = ulqTerm(x[i], g[i], k)
        }
    }

    /// A range's values the terms read, taken out of the loop.
    struct TermConstants {
        let scale: Float, lo: Float, hi: Float, levels: Float, outsideL: Float
        init(_ r: ULQRange) { (scale, lo, hi, levels, outsideL) = (r.scale, r.lo, r.hi, r.levels, r.outsideL) }
    }

    /// One element's (∂clamp_max term, ∂clamp_min term, ∂x).
    @inline(__always)
    static func ulqTerm(_ v: Float, _ gi: Float, _ k: TermConstants) -> (Float, Float, Float) {
        let q = v / k.scale
        let inside = v >= k.lo && v <= k.hi
        // Outside the range q may be too large for the fast rounding; that value is not used.
        let l = inside ? (Quantization.roundHalfEven(q) - q) / k.levels : k.outsideL
        let above: Float = v > k.hi ? 1 : 0
        let below: Float = v < k.lo ? 1 : 0
        return (gi * (l + above), gi * (below - l), inside ? gi : 0)
    }

    /// Σ t in float64, eight lanes (independent chains, so the adds need not wait on each other).
    @inline(__always)
    static func sum(_ t: UnsafePointer<Float>, count: Int) -> Double {
        var a = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            a += SIMD8<Double>(UnsafeRawPointer(t + i).loadUnaligned(as: SIMD8<Float>.self))
            i += 8
        }
        var tail = 0.0
        while i < count {
            tail += Double(t[i])
            i += 1
        }
        return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + tail
    }

    // MARK: ARQ

    /// The §4 symmetric scale of each channel of the current weights.
    public static func arqScales(_ w: UnsafeBufferPointer<Float>, _ layout: ChannelLayout, bits: Int) -> [Float] {
        let (lo, hi) = Quantization.channelMinMax(w, layout)
        return (0..<layout.channels).map { Quantization.symmetricScale(min: lo[$0], max: hi[$0], bits: bits) }
    }

    /// w_q = s_c·clamp(round(w/s_c), −2^(b−1), 2^(b−1)−1) with s_c recomputed from `w`; returns the scales.
    /// The backward of ARQ is the identity (∂w = g).
    @discardableResult
    public static func arqForward(
        _ w: UnsafeBufferPointer<Float>, _ layout: ChannelLayout, bits: Int, into out: UnsafeMutableBufferPointer<Float>
    ) -> [Float] {
        let scales = arqScales(w, layout, bits: bits)
        fakeQuantizeSymmetric(w, layout, scales: scales, bits: bits, into: out)
        return scales
    }

    /// s_c·clamp(round(w/s_c), −2^(b−1), 2^(b−1)−1) for given per-channel scales.
    public static func fakeQuantizeSymmetric(
        _ w: UnsafeBufferPointer<Float>, _ layout: ChannelLayout, scales: [Float], bits: Int,
        into out: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(w.count == layout.elementCount && out.count == w.count && scales.count == layout.channels)
        let qmin = Float(-(1 << (bits - 1)))
        let qmax = Float((1 << (bits - 1)) - 1)
        let cpg = layout.channelsPerGroup
        let inner = layout.inner
        var index = 0
        for g in 0..<layout.groups {
            for _ in 0..<layout.outer {
                for c in 0..<cpg {
                    let s = scales[g * cpg + c]
                    for i in index..<(index + inner) {
                        out[i] = s * Quantization.roundHalfEven(Swift.min(Swift.max(w[i] / s, qmin), qmax))
                    }
                    index += inner
                }
            }
        }
    }

    // MARK: WtsULQ

    /// The initial clip of each channel: max|w| (ARQ's max(|max|, |min|)).
    public static func wtsULQInitialClips(_ w: UnsafeBufferPointer<Float>, _ layout: ChannelLayout) -> [Float] {
        let (lo, hi) = Quantization.channelMinMax(w, layout)
        return (0..<layout.channels).map { Swift.max(Swift.abs(lo[$0]), Swift.abs(hi[$0])) }
    }

    /// s = max(c, m·ε)/m with m = 2^(b−1) − 1.
    @inlinable
    public static func wtsULQScale(clip: Float, bits: Int) -> Float {
        let m = Float((1 << (bits - 1)) - 1)
        return Swift.max(clip, m * epsilon) / m
    }

    /// w_q = s·clamp(round(w/s), −2^(b−1), 2^(b−1)−1) with s from each channel's learned clip.
    public static func wtsULQForward(
        _ w: UnsafeBufferPointer<Float>, _ layout: ChannelLayout, clips: [Float], bits: Int,
        into out: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(clips.count == layout.channels)
        fakeQuantizeSymmetric(w, layout, scales: clips.map { wtsULQScale(clip: $0, bits: bits) }, bits: bits, into: out)
    }

    /// Adds ∂w into `dw` (when given) and ∂c of each channel into `dClips`.
    public static func wtsULQBackward(
        _ w: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>, _ layout: ChannelLayout,
        clips: [Float],
        bits: Int, dw: UnsafeMutableBufferPointer<Float>?, dClips: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(w.count == layout.elementCount && g.count == w.count && (dw?.count ?? w.count) == w.count)
        precondition(clips.count == layout.channels && dClips.count == layout.channels)
        let qmin = Float(-(1 << (bits - 1)))
        let qmax = Float((1 << (bits - 1)) - 1)
        let m = qmax
        let cpg = layout.channelsPerGroup
        let inner = layout.inner
        var sums = [Double](repeating: 0, count: layout.channels)
        var index = 0
        for grp in 0..<layout.groups {
            for _ in 0..<layout.outer {
                for c in 0..<cpg {
                    let ch = grp * cpg + c
                    let s = wtsULQScale(clip: clips[ch], bits: bits)
                    var sum = 0.0
                    for i in index..<(index + inner) {
                        let v = w[i] / s
                        let gi = g[i]
                        let inside = v >= qmin && v <= qmax
                        let q = Swift.min(Swift.max(v, qmin), qmax)
                        // Inside: round(v) − v; outside: q is already the clamped integer.
                        let t = inside ? Quantization.roundHalfEven(q) - v : q
                        sum += Double(gi * (t / m))
                        if let dw { dw[i] += inside ? gi : 0 }
                    }
                    sums[ch] += sum
                    index += inner
                }
            }
        }
        for ch in 0..<layout.channels { dClips[ch] += Float(sums[ch]) }
    }

    // MARK: 2:4 masks

    /// The M4N2 mask of a weight seen as [outer, cin, inner] (1 = kept), exactly what `Pruning.applyTwoOfFour` keeps.
    /// It runs that kernel on a probe: |w| moved up one ulp (the order and ties of |w| kept, every value non-zero, so a
    /// kept weight that is 0 still shows as kept), Cin padded to a multiple of 4 with the probe of 0 (the padding ties
    /// with a zero weight and, having the higher index, is kept first, as in the rule).
    public static func twoOfFourMask(_ w: UnsafeBufferPointer<Float>, outer: Int, cin: Int, inner: Int) -> [UInt8] {
        precondition(w.count == outer * cin * inner)
        guard cin > 2 else { return [UInt8](repeating: 1, count: w.count) }
        let cin4 = (cin + 3) / 4 * 4
        let zeroProbe = Float(bitPattern: 1)
        var probe = [Float](repeating: zeroProbe, count: outer * cin4 * inner)
        for o in 0..<outer {
            for c in 0..<cin {
                let src = (o * cin + c) * inner
                let dst = (o * cin4 + c) * inner
                for i in 0..<inner { probe[dst + i] = Float(bitPattern: Swift.abs(w[src + i]).bitPattern &+ 1) }
            }
        }
        _ = probe.withUnsafeMutableBufferPointer { Pruning.applyTwoOfFour($0, outer: outer, cin: cin4, inner: inner) }
        var mask = [UInt8](repeating: 0, count: w.count)
        for o in 0..<outer {
            for c in 0..<cin {
                let src = (o * cin4 + c) * inner
                let dst = (o * cin + c) * inner
                for i in 0..<inner { mask[dst + i] = probe[src + i] != 0 ? 1 : 0 }
            }
        }
        return mask
    }

    /// Zeroes `values` (weights or their gradient) where `mask` is 0.
    public static func applyMask(_ mask: UnsafeBufferPointer<UInt8>, to values: UnsafeMutableBufferPointer<Float>) {
        precondition(mask.count == values.count)
        for i in values.indices { values[i] = mask[i] != 0 ? values[i] : 0 }
    }
}
