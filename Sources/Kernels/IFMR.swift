/// IFMR initialisation of activation clips (SEMANTICS §4), on the gathered inputs of one layer.
///
/// p = 0.999999, k = N − ⌊p·N⌋ (1 when that is 0); max0 = max(0, k-th largest), min0 = min(0, k-th smallest) (found by
/// selection, not a full sort); M = max(|max0|, |min0|); for r = 0.70, 0.71, … 1.30 (61 candidates) c = M·r,
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
        var scratch = values
        let kthLargest = select(&scratch, n - k)
        let kthSmallest = select(&scratch, k - 1)
        let max0 = Swift.max(0, kthLargest), min0 = Swift.min(0, kthSmallest)
        let m = Swift.max(Swift.abs(max0), Swift.abs(min0))
        let high = Float((1 << (bits - 1)) - 1), low = Float(1 << (bits - 1))
        let divisor = Swift.abs(max0) < Swift.abs(min0) ? low : high
        guard m > 0 else { return (0, 0) }
        var best = Double.infinity
        var bestScale: Float = m / divisor
        for r in candidates {
            let c = m * r
            let s = c / divisor
            let loss = meanSquaredError(values, clip: c, scale: s)
            if loss < best {
                best = loss
                bestScale = s
            }
        }
        return (-low * bestScale, high * bestScale)
    }

    /// mean((round(clamp(x, −c, c)/s)·s − x)²): float32 elementwise, summed in chunks of 4096 then in double.
    static func meanSquaredError(_ values: [Float], clip c: Float, scale s: Float) -> Double {
        var total = 0.0
        values.withUnsafeBufferPointer { v in
            var start = 0
            while start < v.count {
                let end = Swift.min(start + 4096, v.count)
                var chunk: Float = 0
                for i in start..<end {
                    let x = v[i]
                    let q = (Swift.min(Swift.max(x, -c), c) / s).rounded(.toNearestOrEven) * s
                    let e = q - x
                    chunk += e * e
                }
                total += Double(chunk)
                start = end
            }
        }
        return total / Double(values.count)
    }

    /// The element that would stand at `index` in sorted order (quickselect, expected linear time).
    static func select(_ a: inout [Float], _ index: Int) -> Float {
        var lo = 0, hi = a.count - 1
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        while lo < hi {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let pivot = a[lo + Int(seed >> 33) % (hi - lo + 1)]
            var i = lo, j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j {
                    a.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if index <= j { hi = j } else if index >= i { lo = i } else { return a[index] }
        }
        return a[index]
    }
}
