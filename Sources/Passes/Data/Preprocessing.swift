import Foundation

/// What is done to a decoded image before the model sees it, in torchvision's order: resize, crop (or PaddleOCR's
/// keep-ratio resize), then (x·scale − mean)/std per channel, channel order, NCHW float32 (NHWC with `channelsLast`:
/// the same values in another order); keep-ratio padding (zeros) comes after normalisation. Resizing is PIL's bilinear
/// filter (antialiased when shrinking), computed as PIL does.
public struct Preprocessing: Sendable, Equatable {
    public enum Resize: Sendable, Equatable {
        /// To exactly height × width.
        case size(Int, Int)
        /// The shorter side to this, keeping the aspect ratio (the longer side rounded down, as torchvision).
        case shorter(Int)
    }

    public enum Augmentation: String, Sendable, CaseIterable {
        /// A random crop of the `crop` size (instead of the center one).
        case crop
        /// A horizontal flip with probability 1/2.
        case flip
    }

    public var resize: Resize?
    /// Center crop (height, width) after the resize.
    public var crop: (height: Int, width: Int)?
    /// PaddleOCR rec: to height H and width min(ceil(H·w/h), W), then zero padding on the right up to W.
    public var keepRatioPad: (height: Int, width: Int)?
    public var scale: Float = 1 / 255
    public var mean: [Float] = [0, 0, 0]
    public var std: [Float] = [1, 1, 1]
    /// Channels in BGR order (mean and std are given in the order the model sees).
    public var bgr = false
    /// Samples as [H, W, C] (a channels-last model input, `--layout nhwc`) instead of [C, H, W].
    public var channelsLast = false
    /// Random crop and flip while training (retrain only); seeded by (seed, epoch, sample).
    public var augment: Set<Augmentation> = []
    public var seed: UInt64 = 0

    public init() {}

    public static func == (a: Preprocessing, b: Preprocessing) -> Bool {
        a.resize == b.resize && a.crop?.height == b.crop?.height && a.crop?.width == b.crop?.width
            && a.keepRatioPad?.height == b.keepRatioPad?.height && a.keepRatioPad?.width == b.keepRatioPad?.width
            && a.scale == b.scale && a.mean == b.mean && a.std == b.std && a.bgr == b.bgr
            && a.channelsLast == b.channelsLast && a.augment == b.augment
            && a.seed == b.seed
    }

    /// The (height, width) every sample has, when the flags fix it.
    public var fixedSize: (height: Int, width: Int)? {
        if let keepRatioPad { return keepRatioPad }
        if let crop { return crop }
        if case .size(let h, let w) = resize { return (h, w) }
        return nil
    }

    /// Refuses contradictory flags (one message per rule).
    public func validate() throws {
        if keepRatioPad != nil && (resize != nil || crop != nil) {
            throw DataError(path: "--keep-ratio-pad", "resizes by itself: give it without --resize and --crop")
        }
        if augment.contains(.crop) && crop == nil {
            throw DataError(path: "--augment crop", "takes a random crop of the --crop size: give --crop H,W")
        }
        guard mean.count == std.count, std.allSatisfy({ $0 != 0 && $0.isFinite }), scale.isFinite else {
            throw DataError(path: "--mean/--std", "need as many values as each other (one per channel), std non-zero")
        }
    }

    /// The model-ready sample (channels × height × width, float32) of an image (8-bit, height × width × channels).
    /// `random` gives the augmentation draws (nil: none).
    func apply(_ image: DecodedImage, random: inout SplitMix?) throws -> (values: [Float], height: Int, width: Int) {
        var img = image
        if let (h, w) = keepRatioPad {
            let width = min(Int((Double(h) * Double(img.width) / Double(img.height)).rounded(.up)), w)
            img = PILResampling.resize(img, height: h, width: max(width, 1))
            return (normalized(img, padTo: w), h, w)
        }
        if let resize { img = PILResampling.resize(img, to: resize) }
        if let (h, w) = crop {
            guard img.height >= h, img.width >= w else {
                throw DataError(
                    path: image.path, "is \(img.height)×\(img.width) after --resize, smaller than --crop \(h),\(w)")
            }
            var top = Self.centered(img.height - h)
            var left = Self.centered(img.width - w)
            if augment.contains(.crop), var r = random {
                top = Int(r.next() % UInt64(img.height - h + 1))
                left = Int(r.next() % UInt64(img.width - w + 1))
                random = r
            }
            img = img.cropped(top: top, left: left, height: h, width: w)
        }
        if augment.contains(.flip), var r = random {
            if r.next() & 1 == 1 { img = img.flipped() }
            random = r
        }
        return (normalized(img, padTo: img.width), img.height, img.width)
    }

    /// torchvision's center offset: int(round(extra / 2)) with Python's round-half-to-even.
    static func centered(_ extra: Int) -> Int { Int((Double(extra) / 2).rounded(.toNearestOrEven)) }

    /// (x·scale − mean)/std per channel into CHW, channels reversed for BGR, zero columns right of the image up to
    /// `padTo`.
    func normalized(_ img: DecodedImage, padTo width: Int) -> [Float] {
        let c = img.channels
        let plane = img.height * width
        var out = [Float](repeating: 0, count: c * plane)
        img.pixels.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { o in
                for k in 0..<c {
                    let src = bgr ? c - 1 - k : k
                    let m = mean.count == c ? mean[k] : mean[0]
                    let s = std.count == c ? std[k] : std[0]
                    for y in 0..<img.height {
                        let row = k * plane + y * width
                        let srcRow = y * img.width * c + src
                        for x in 0..<img.width { o[row + x] = (Float(px[srcRow + x * c]) * scale - m) / s }
                    }
                }
            }
        }
        return out
    }
}

/// SplitMix64: the augmentation draws of one sample, from (seed, epoch, index).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64, epoch: Int, index: Int) {
        state =
            seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(epoch) &* 0xBF58_476D_1CE4_E5B9 &+ UInt64(index)
            &* 0x94D0_49BB_1331_11EB
    }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// PIL's `Image.resize(..., BILINEAR)` on 8-bit images (Resample.c): separable, horizontal then vertical, each pass
/// with the triangle filter widened by the shrink factor, weights normalised then fixed-point (22 bits), results
/// rounded and clipped to 8 bits; a dimension that keeps its size is not resampled.
enum PILResampling {
    static let precisionBits = 22

    static func resize(_ img: DecodedImage, to resize: Preprocessing.Resize) -> DecodedImage {
        switch resize {
        case .size(let h, let w): return Self.resize(img, height: h, width: w)
        case .shorter(let s):
            if img.width <= img.height {
                return Self.resize(
                    img, height: max(1, Int(Double(s) * Double(img.height) / Double(img.width))), width: s)
            }
            return Self.resize(img, height: s, width: max(1, Int(Double(s) * Double(img.width) / Double(img.height))))
        }
    }

    static func resize(_ img: DecodedImage, height: Int, width: Int) -> DecodedImage {
        var out = img
        if width != img.width { out = pass(out, size: width, horizontal: true) }
        if height != img.height { out = pass(out, size: height, horizontal: false) }
        return out
    }

    /// For each output position: the first input index and the fixed-point weights (PIL's precompute_coeffs and
    /// normalize_coeffs_8bpc).
    static func coefficients(inSize: Int, outSize: Int) -> [(start: Int, weights: [Int32])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filterScale
        return (0..<outSize).map { xx in
            let center = (Double(xx) + 0.5) * scale
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize)
            var w = [Double](repeating: 0, count: max(xmax - xmin, 0))
            var total = 0.0
            let ss = 1 / filterScale
            for x in 0..<w.count {
                let t = abs((Double(x + xmin) - center + 0.5) * ss)
                w[x] = t < 1 ? 1 - t : 0
                total += w[x]
            }
            let one = Double(1 << precisionBits)
            let fixed = w.map { v -> Int32 in
                let k = total != 0 ? v / total : v
                return Int32(k < 0 ? -0.5 + k * one : 0.5 + k * one)
            }
            return (xmin, fixed)
        }
    }

    static func pass(_ img: DecodedImage, size: Int, horizontal: Bool) -> DecodedImage {
        let c = img.channels
        let inSize = horizontal ? img.width : img.height
        let coeffs = coefficients(inSize: inSize, outSize: size)
        let outW = horizontal ? size : img.width
        let outH = horizontal ? img.height : size
        var out = [UInt8](repeating: 0, count: outW * outH * c)
        // Along the resampled axis: stride between neighbours; across it: the lines.
        let step = horizontal ? c : img.width * c
        let half = Int32(1 << (precisionBits - 1))
        let top = Int32(1) << (precisionBits + 8)
        img.pixels.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { o in
                for y in 0..<outH {
                    for x in 0..<outW {
                        let (start, weights) = coeffs[horizontal ? x : y]
                        let base = horizontal ? (y * img.width + start) * c : (start * img.width + x) * c
                        for k in 0..<c {
                            var acc = half
                            var at = base + k
                            for w in weights {
                                acc &+= Int32(px[at]) &* w
                                at += step
                            }
                            o[(y * outW + x) * c + k] =
                                acc <= 0 ? 0 : acc >= top ? 255 : UInt8(acc >> Int32(precisionBits))
                        }
                    }
                }
            }
        }
        return DecodedImage(path: img.path, pixels: out, height: outH, width: outW, channels: c)
    }
}
