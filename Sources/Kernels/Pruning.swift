// Pruning kernels (SEMANTICS §4): 2:4 masks, balanced-L2 filter scores and selection, and the gather that removes
// channels physically. Pure functions on buffers.

public enum Pruning {
    /// M4N2 along the input-channel axis of a weight seen as [outer, cin, inner]: in each group of 4 consecutive cin
    /// (cin padded with zeros to a multiple of 4) the 2 smallest |w| become 0, ties taking the lower index first.
    /// Cin ≤ 2: nothing. Returns how many weights were zeroed.
    @discardableResult
    public static func applyTwoOfFour(_ w: UnsafeMutableBufferPointer<Float>, outer: Int, cin: Int, inner: Int) -> Int {
        guard cin > 2 else { return 0 }
        var zeroed = 0
        for o in 0..<outer {
            for i in 0..<inner {
                var g = 0
                while g < cin {
                    // |w| of the group (padding past cin is 0); a position goes when fewer than 2 others come before it
                    // in (|w|, position) order. No allocation per group.
                    var mag = SIMD4<Float>(repeating: 0)
                    for j in 0..<4 where g + j < cin { mag[j] = abs(w[(o * cin + g + j) * inner + i]) }
                    for j in 0..<4 where g + j < cin {
                        var rank = 0
                        for k in 0..<4 where k != j && (mag[k] < mag[j] || (mag[k] == mag[j] && k < j)) { rank += 1 }
                        guard rank < 2 else { continue }
                        let index = (o * cin + g + j) * inner + i
                        if w[index] != 0 { zeroed += 1 }
                        w[index] = 0
                    }
                    g += 4
                }
            }
        }
        return zeroed
    }

    /// ‖W_c‖₂ / (elements per channel) for each output channel of a weight seen as [outer, channels, inner].
    public static func channelScores(_ w: UnsafeBufferPointer<Float>, outer: Int, channels: Int, inner: Int) -> [Double] {
        var sums = [Double](repeating: 0, count: channels)
        for o in 0..<outer {
            for c in 0..<channels {
                let base = (o * channels + c) * inner
                var s = 0.0
                for i in 0..<inner {
                    let v = Double(w[base + i])
                    s += v * v
                }
                sums[c] += s
            }
        }
        let perChannel = Double(outer * inner)
        return sums.map { $0.squareRoot() / perChannel }
    }

    /// Min-max normalised to [0, 1] (all 0 when every score is equal).
    public static func normalized(_ scores: [Double]) -> [Double] {
        guard let lo = scores.min(), let hi = scores.max(), hi > lo else { return scores.map { _ in 0 } }
        return scores.map { ($0 - lo) / (hi - lo) }
    }

    /// Channels kept out of `channels`: remain = C − round_half_even(C·ratio); with `ascendOptimized`
    /// remain = ⌈remain/16⌉·16 (16 if 0), never above C; then rounded down to a multiple of `multiple`.
    public static func remaining(channels: Int, ratio: Float, ascendOptimized: Bool, multiple: Int = 1) -> Int {
        var remain = channels - Int((Double(channels) * Double(ratio)).rounded(.toNearestOrEven))
        if ascendOptimized { remain = remain == 0 ? 16 : (remain + 15) / 16 * 16 }
        remain = min(remain, channels)
        if multiple > 1 { remain = max(multiple, remain / multiple * multiple) }
        return max(remain, 1)
    }

    /// The indices kept (ascending): the lowest scores are pruned, ties pruning the lower index first.
    public static func keep(scores: [Double], remain: Int) -> [Int] {
        let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] < scores[$1] : $0 < $1 }
        return order.dropFirst(scores.count - remain).sorted()
    }

    /// Elements of a tensor seen as [outer, n, inner] (elements of `elementSize` bytes) with only `keep` of axis n.
    public static func gather(_ bytes: UnsafeRawBufferPointer, elementSize: Int, outer: Int, n: Int, inner: Int, keep: [Int]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: outer * keep.count * inner * elementSize)
        let run = inner * elementSize
        out.withUnsafeMutableBytes { o in
            var dst = 0
            for x in 0..<outer {
                for k in keep {
                    let src = (x * n + k) * run
                    o.baseAddress!.advanced(by: dst).copyMemory(from: bytes.baseAddress!.advanced(by: src), byteCount: run)
                    dst += run
                }
            }
        }
        return out
    }
}
