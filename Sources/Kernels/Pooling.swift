// Pooling on NCHW float32, one plane per task, taps bounded per output so the inner loops carry no bounds checks:
//
//   MaxPool      y = max over the taps inside the image (padding never wins)
//   AveragePool  y = Σ taps inside / (count_include_pad ? taps inside the padded extent : taps inside)
//   Global*      y[n, c] = mean (max) over the plane

extension NeuralOps {
    /// MaxPool / AveragePool into `out` (`n·c·ho·wo` floats, `ho, wo` from `window.outputSize(h, w, ceilMode:)`).
    public static func pool2d(
        _ x: UnsafePointer<Float>, planes: Int, h: Int, w: Int, window: Window, max isMax: Bool, ceilMode: Bool,
        countIncludePad: Bool, out: UnsafeMutablePointer<Float>
    ) {
        let (ho, wo) = window.outputSize(h, w, ceilMode: ceilMode)
        let (kh, kw) = window.kernel, (sh, sw) = window.strides, (dh, dw) = window.dilations
        let (pt, pl, pb, pr) = window.pads
        parallelChunks(planes, work: planes * ho * wo * kh * kw) { range in
            for plane in range {
                let src = x + plane * h * w, dst = out + plane * ho * wo
                for oy in 0..<ho {
                    let iy0 = oy * sh - pt
                    let kyLo = Swift.max(0, ceilDiv(-iy0, dh)), kyHi = Swift.min(kh - 1, floorDiv(h - 1 - iy0, dh))
                    let padRows = countIncludePad ? countTaps(iy0, kh, dh, limit: h + pb) : 0
                    for ox in 0..<wo {
                        let ix0 = ox * sw - pl
                        let kxLo = Swift.max(0, ceilDiv(-ix0, dw)), kxHi = Swift.min(kw - 1, floorDiv(w - 1 - ix0, dw))
                        var acc: Float = isMax ? -.infinity : 0
                        var inside = 0
                        if kyLo <= kyHi && kxLo <= kxHi {
                            for ky in kyLo...kyHi {
                                let row = src + (iy0 + ky * dh) * w + ix0
                                if isMax {
                                    for kx in kxLo...kxHi { acc = Swift.max(acc, row[kx * dw]) }
                                } else {
                                    for kx in kxLo...kxHi { acc += row[kx * dw] }
                                }
                            }
                            inside = (kyHi - kyLo + 1) * (kxHi - kxLo + 1)
                        }
                        if isMax {
                            dst[oy * wo + ox] = inside > 0 ? acc : 0
                        } else {
                            let count = countIncludePad ? padRows * countTaps(ix0, kw, dw, limit: w + pr) : inside
                            dst[oy * wo + ox] = count > 0 ? acc / Float(count) : 0
                        }
                    }
                }
            }
        }
    }

    /// Taps of a window starting at `start` (stride `d`) that fall before `limit` (the padded extent's end).
    @inlinable static func countTaps(_ start: Int, _ k: Int, _ d: Int, limit: Int) -> Int {
        var n = 0
        for t in 0..<k where start + t * d < limit { n += 1 }
        return n
    }

    /// Mean (or max) of each of `planes` contiguous planes of `size` elements.
    public static func globalPool(_ x: UnsafePointer<Float>, planes: Int, size: Int, max isMax: Bool, out: UnsafeMutablePointer<Float>) {
        parallelChunks(planes, work: planes * size) { range in
            for p in range {
                let s = x + p * size
                if isMax {
                    var m = -Float.infinity
                    for i in 0..<size { m = Swift.max(m, s[i]) }
                    out[p] = size > 0 ? m : 0
                } else {
                    var acc: Float = 0
                    for i in 0..<size { acc += s[i] }
                    out[p] = size > 0 ? acc / Float(size) : 0
                }
            }
        }
    }
}
