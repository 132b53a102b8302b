/// IFMR initialisation of activation clips (SEMANTICS §4), on the gathered inputs of one layer.
///
/// p = 0.999999, k = N − ⌊p·N⌋ (1 when that is 0); max0 = max(0, k-th largest), min0 = min(0, k-th smallest) (found in
/// one pass keeping the k most extreme values, not a full sort); M = max(|max0|, |min0|); for r = 0.70, 0.71, … 1.30 (61 candidates) c = M·r,
/// s = c/(2^(b−1)−1) (or c/2^(b−1) when |max0| < |min0|), loss = mean((round(clamp(x, −c, c)/s)·s − x)²); the first
/// minimum wins; clip_max = (2^(b−1)−1)·s, clip_min = −2^(b−1)·s.
public enum IFMR {
    public static let percentile = 0.999999
    public static let candidates = (0...60).map { Float(70 + $0) / 100 }

    public static func clips(_ values: [Float], bits: Int) -> (min: Float, max: Float) {
        let n = values.count
        guard n > 0 else { return (0, 0) }
        var k = n - Int((percentile * Double(n)).rounded(.down))
        if k == 0 { k = 1 }
        let (kthLargest, kthSmallest) = extremes(values, k)
        let max0 = Swift.max(0, kthLargest), min0 = Swift.min(0, kthSmallest)
        let m = Swift.max(Swift.abs(max0), Swift.abs(min0))
        let high = Float((1 << (bits - 1)) - 1), low = Float(1 << (bits - 1))
        let divisor = Swift.abs(max0) < Swift.abs(min0) ? low : high
        guard m > 0 else { return (0, 0) }
        let clipsAndScales = candidates.map { r -> (Float, Float) in
            let c = m * r
            return (c, c / divisor)
        }
        let losses = meanSquaredErrors(values, clipsAndScales)
        var best = 0
        for i in 1..<losses.count where losses[i] < losses[best] { best = i }  // the first minimum wins
        let s = clipsAndScales[best].1
        return (-low * s, high * s)
    }

    /// The k-th largest and k-th smallest value in one pass, keeping only the k most extreme of each side (k is about
    /// N·10⁻⁶, so almost every element is turned away by one comparison).
    static func extremes(_ values: [Float], _ k: Int) -> (largest: Float, smallest: Float) {
        var top: [Float] = []  // ascending; top[0] is the k-th largest so far
        var bottom: [Float] = []  // descending; bottom[0] is the k-th smallest so far
        top.reserveCapacity(k + 1)
        bottom.reserveCapacity(k + 1)
        for x in values {
            if top.count < k || x > top[0] {
                let at = top.firstIndex { $0 >= x } ?? top.count
                top.insert(x, at: at)
                if top.count > k { top.removeFirst() }
            }
            if bottom.count < k || x < bottom[0] {
                let at = bottom.firstIndex { $0 <= x } ?? bottom.count
                bottom.insert(x, at: at)
                if bottom.count > k { bottom.removeFirst() }
            }
        }
        return (top[0], bottom[0])
    }

    /// mean((round(clamp(x, −c, c)/s)·s − x)²) for every (c, s), in one pass over the values: each 4096-element chunk
    /// is evaluated for all candidates while it is in cache. Float32 elementwise in SIMD8 lanes (rounding by the
    /// 1.5·2^23 trick, exact round-half-to-even since |clamp(x)/s| ≤ 2^(b−1)); lane sums per chunk added in double.
    static func meanSquaredErrors(_ values: [Float], _ candidates: [(Float, Float)]) -> [Double] {
        var totals = [Double](repeating: 0, count: candidates.count)
        values.withUnsafeBufferPointer { v in
            let base = UnsafeRawPointer(v.baseAddress!)
            let magic = SIMD8<Float>(repeating: 12_582_912)
            let n8 = v.count / 8 * 8
            var start = 0
            while start < n8 {
                let end = Swift.min(start + 4096, n8)
                for (j, (c, s)) in candidates.enumerated() {
                    let cv = SIMD8<Float>(repeating: c), ncv = SIMD8<Float>(repeating: -c), sv = SIMD8<Float>(repeating: s)
                    var acc = SIMD8<Float>()
                    var i = start
                    while i < end {
                        let x = base.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                        // clamp as compare-and-blend (SIMD `clamped` is a generic call per vector here)
                        var y = x
                        y.replace(with: cv, where: x .> cv)
                        y.replace(with: ncv, where: x .< ncv)
                        let e = ((y / sv + magic) - magic) * sv - x
                        acc += e * e
                        i += 8
                    }
                    totals[j] += Double(acc.sum())
                }
                start = end
            }
            for (j, (c, s)) in candidates.enumerated() {
                var tail: Float = 0
                for i in n8..<v.count {
                    let e = Quantization.roundHalfEven(Swift.min(Swift.max(v[i], -c), c) / s) * s - v[i]
                    tail += e * e
                }
                totals[j] += Double(tail)
            }
        }
        return totals.map { $0 / Double(values.count) }
    }
}
