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
        var extremes = Extremes(k: k(count: n))
        values.withUnsafeBufferPointer { extremes.add($0) }
        guard let search = Search(extremes, bits: bits) else { return (0, 0) }
        var errors = SquaredErrors(search.clipsAndScales)
        values.withUnsafeBufferPointer { errors.add($0) }
        return search.clips(errors.means())
    }

    /// k = N − ⌊p·N⌋, 1 when that is 0: how many extreme values the percentile needs.
    public static func k(count n: Int) -> Int {
        let k = n - Int((percentile * Double(n)).rounded(.down))
        return k == 0 ? 1 : k
    }

    /// The candidates of one layer from its k-th largest and smallest values, and the choice among them.
    public struct Search: Sendable {
        public let clipsAndScales: [(Float, Float)]
        let low: Float, high: Float

        /// Nil when M = 0 (the clips are (0, 0)).
        public init?(_ extremes: Extremes, bits: Int) {
            let max0 = Swift.max(0, extremes.kthLargest), min0 = Swift.min(0, extremes.kthSmallest)
            let m = Swift.max(Swift.abs(max0), Swift.abs(min0))
            high = Float((1 << (bits - 1)) - 1)
            low = Float(1 << (bits - 1))
            let divisor = Swift.abs(max0) < Swift.abs(min0) ? low : high
            guard m > 0 else { return nil }
            clipsAndScales = IFMR.candidates.map { r -> (Float, Float) in
                let c = m * r
                return (c, c / divisor)
            }
        }

        /// The clips of the first candidate with the least loss.
        public func clips(_ losses: [Double]) -> (min: Float, max: Float) {
            var best = 0
            for i in 1..<losses.count where losses[i] < losses[best] { best = i }  // the first minimum wins
            let s = clipsAndScales[best].1
            return (-low * s, high * s)
        }
    }

    /// The k-th largest and k-th smallest value of data seen piece by piece, keeping only the k most extreme of each
    /// side (k is about N·10⁻⁶, so almost every element is turned away by one comparison).
    public struct Extremes: Sendable {
        public let k: Int
        var top: [Float] = []  // ascending; top[0] is the k-th largest so far
        var bottom: [Float] = []  // descending; bottom[0] is the k-th smallest so far
        public private(set) var count = 0

        public init(k: Int) {
            self.k = k
            top.reserveCapacity(k + 1)
            bottom.reserveCapacity(k + 1)
        }

        public var kthLargest: Float { top.first ?? 0 }
        public var kthSmallest: Float { bottom.first ?? 0 }

        public mutating func add(_ values: [Float]) { values.withUnsafeBufferPointer { add($0) } }

        public mutating func add(_ values: UnsafeBufferPointer<Float>) {
            count += values.count
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
        }
    }

    /// mean((round(clamp(x, −c, c)/s)·s − x)²) for every (c, s) of data seen piece by piece: each 4096-element
    /// chunk (counted from the first value, whatever the pieces) is evaluated for all candidates while it is in cache,
    /// so the sums are the same bits as over the whole. At most one chunk is held.
    public struct SquaredErrors: Sendable {
        let candidates: [(Float, Float)]
        var totals: [Double]
        var pending: [Float] = []
        var count = 0

        public init(_ candidates: [(Float, Float)]) {
            self.candidates = candidates
            totals = [Double](repeating: 0, count: candidates.count)
            pending.reserveCapacity(4096)
        }

        public mutating func add(_ values: [Float]) { values.withUnsafeBufferPointer { add($0) } }

        public mutating func add(_ v: UnsafeBufferPointer<Float>) {
            count += v.count
            var i = 0
            if !pending.isEmpty {
                i = Swift.min(4096 - pending.count, v.count)
                pending += v[0..<i]
                if pending.count == 4096 { flushPending() }
            }
            while v.count - i >= 4096 {
                IFMR.accumulate(UnsafeBufferPointer(rebasing: v[i..<(i + 4096)]), candidates, &totals)
                i += 4096
            }
            pending += v[i...]
        }

        mutating func flushPending() {
            pending.withUnsafeBufferPointer { IFMR.accumulate($0, candidates, &totals) }
            pending.removeAll(keepingCapacity: true)
        }

        /// The means over everything added: the last chunk's multiple-of-8 part in SIMD, the rest one by one.
        public mutating func means() -> [Double] {
            let n8 = pending.count / 8 * 8
            pending.withUnsafeBufferPointer { p in
                if n8 > 0 { IFMR.accumulate(UnsafeBufferPointer(rebasing: p[0..<n8]), candidates, &totals) }
                for (j, (c, s)) in candidates.enumerated() {
                    var tail: Float = 0
                    for i in n8..<p.count {
                        let e = Quantization.roundHalfEven(Swift.min(Swift.max(p[i], -c), c) / s) * s - p[i]
                        tail += e * e
                    }
                    totals[j] += Double(tail)
                }
            }
            pending.removeAll()
            return totals.map { $0 / Double(count) }
        }
    }

    /// Adds one chunk (a multiple of 8 values, at most 4096) to every candidate's total: float32 in SIMD8 lanes
    /// (rounding by the 1.5·2^23 trick, exact round-half-to-even since |clamp(x)/s| ≤ 2^(b−1)); the lane sums added
    /// in double.
    static func accumulate(_ v: UnsafeBufferPointer<Float>, _ candidates: [(Float, Float)], _ totals: inout [Double]) {
        let base = UnsafeRawPointer(v.baseAddress!)
        let magic = SIMD8<Float>(repeating: 12_582_912)
        for (j, (c, s)) in candidates.enumerated() {
            let cv = SIMD8<Float>(repeating: c), ncv = SIMD8<Float>(repeating: -c), sv = SIMD8<Float>(repeating: s)
            var acc = SIMD8<Float>()
            var i = 0
            while i < v.count {
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
    }
}
