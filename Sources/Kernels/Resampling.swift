import Foundation

// Resize of the two trailing axes of NCHW (nearest or bilinear), through per-axis tables computed once per shape:
//
//   x_in = transform(x_out)   half_pixel: (x+0.5)/scale − 0.5, asymmetric: x/scale, align_corners: x·(in−1)/(out−1),
//                              pytorch_half_pixel: half_pixel, or 0 when out = 1; tf_half_pixel_for_nn: (x+0.5)/scale
//   nearest: index = round(x_in) by nearest_mode, clamped;  linear: x_in clamped to [0, in−1], lerp of its two neighbours

public struct ResampleAxis: Sendable {
    public let index0: [Int]
    public let index1: [Int]
    public let weight1: [Float]

    public enum Coordinates: String, Sendable {
        case halfPixel = "half_pixel", asymmetric, alignCorners = "align_corners"
        case pytorchHalfPixel = "pytorch_half_pixel", tfHalfPixelForNN = "tf_half_pixel_for_nn"
    }
    public enum NearestMode: String, Sendable {
        case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil
    }

    public init(inSize: Int, outSize: Int, scale: Float, coordinates: Coordinates, nearest: NearestMode?) {
        var i0 = [Int](), i1 = [Int](), w1 = [Float]()
        i0.reserveCapacity(outSize)
        for o in 0..<outSize {
            let x: Float
            switch coordinates {
            case .halfPixel: x = (Float(o) + 0.5) / scale - 0.5
            case .pytorchHalfPixel: x = outSize > 1 ? (Float(o) + 0.5) / scale - 0.5 : 0
            case .asymmetric: x = Float(o) / scale
            case .alignCorners: x = outSize == 1 ? 0 : Float(o) * Float(inSize - 1) / Float(outSize - 1)
            case .tfHalfPixelForNN: x = (Float(o) + 0.5) / scale
            }
            if let mode = nearest {
                var r: Float
                switch mode {
                case .roundPreferFloor: r = x == x.rounded(.down) + 0.5 ? x.rounded(.down) : x.rounded(.toNearestOrAwayFromZero)
                case .roundPreferCeil: r = x == x.rounded(.down) + 0.5 ? x.rounded(.up) : x.rounded(.toNearestOrAwayFromZero)
                case .floor: r = x.rounded(.down)
                case .ceil: r = x.rounded(.up)
                }
                if !r.isFinite { r = 0 }
                let idx = Int(Swift.min(Swift.max(r, 0), Float(inSize - 1)))
                i0.append(idx)
                i1.append(idx)
                w1.append(0)
            } else {
                var c = Swift.min(Swift.max(x, 0), Float(inSize - 1))
                if !c.isFinite { c = 0 }
                let lo = Int(c)
                i0.append(lo)
                i1.append(Swift.min(lo + 1, inSize - 1))
                w1.append(c - Float(lo))
            }
        }
        index0 = i0
        index1 = i1
        weight1 = w1
    }
}

public enum Resampling {
    /// Resize of `planes` planes of h×w to ys.count × xs.count.
    public static func resize2d(
        _ x: UnsafePointer<Float>, planes: Int, h: Int, w: Int, ys: ResampleAxis, xs: ResampleAxis, linear: Bool,
        out: UnsafeMutablePointer<Float>
    ) {
        let ho = ys.index0.count, wo = xs.index0.count
        parallelChunks(planes, work: planes * ho * wo * (linear ? 4 : 1)) { range in
            xs.index0.withUnsafeBufferPointer { x0 in
                xs.index1.withUnsafeBufferPointer { x1 in
                    xs.weight1.withUnsafeBufferPointer { wx in
                        for p in range {
                            let src = x + p * h * w, dst = out + p * ho * wo
                            for oy in 0..<ho {
                                let o = dst + oy * wo
                                let r0 = src + ys.index0[oy] * w
                                if !linear {
                                    for ox in 0..<wo { o[ox] = r0[x0[ox]] }
                                    continue
                                }
                                let r1 = src + ys.index1[oy] * w, dy = ys.weight1[oy]
                                for ox in 0..<wo {
                                    let a = x0[ox], b = x1[ox], dx = wx[ox]
                                    let top = r0[a] + (r0[b] - r0[a]) * dx
                                    let bottom = r1[a] + (r1[b] - r1[a]) * dx
                                    o[ox] = top + (bottom - top) * dy
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
