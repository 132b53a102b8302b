import ArgumentParser
import Passes

// The preprocessing flags of image data sources, shared by every command that reads data (Passes/Data).

struct DataOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Images: resize to H,W (PIL bilinear, antialiased when shrinking), or S: the shorter side to S.",
            valueName: "H,W|S"))
    var resize: String?

    @Option(help: ArgumentHelp("Images: center crop after --resize.", valueName: "H,W"))
    var crop: String?

    @Option(
        name: .customLong("keep-ratio-pad"),
        help: ArgumentHelp(
            "Images (PaddleOCR rec): resize to height H, width min(ceil(H·w/h), W), zero padding on the right to W.",
            valueName: "H,W"))
    var keepRatioPad: String?

    @Option(help: "Images: pixel values (0…255) are multiplied by this first (default 1/255).")
    var scale: Float?

    @Option(
        help: ArgumentHelp(
            "Images: subtracted per channel after --scale (in the model's channel order).",
            valueName: "a,b,c"))
    var mean: String?

    @Option(help: ArgumentHelp("Images: divided by per channel after --mean.", valueName: "a,b,c"))
    var std: String?

    @Flag(help: "Images: channels in BGR order (models trained on OpenCV-read images).")
    var bgr = false

    @Option(help: ArgumentHelp("Images: the model input's layout, nchw (default) or nhwc (channels last).",
                               valueName: "nchw|nhwc"))
    var layout: String?

    /// The flags as a value, with `augment` (retrain's training data); a malformed list is a usage error naming the
    /// flag.
    func preprocessing(augment: Set<Preprocessing.Augmentation> = []) throws -> Preprocessing {
        var p = Preprocessing()
        p.augment = augment
        if let resize {
            let v = try Self.integers(resize, flag: "--resize")
            guard v.count <= 2 else { throw ValidationError("--resize takes H,W or S (it is '\(resize)')") }
            p.resize = v.count == 2 ? .size(v[0], v[1]) : .shorter(v[0])
        }
        if let crop { p.crop = try Self.pair(crop, flag: "--crop") }
        if let keepRatioPad { p.keepRatioPad = try Self.pair(keepRatioPad, flag: "--keep-ratio-pad") }
        if let scale { p.scale = scale }
        if let mean { p.mean = try Self.floats(mean, flag: "--mean") }
        if let std { p.std = try Self.floats(std, flag: "--std") }
        if mean != nil && std == nil { p.std = Array(repeating: 1, count: p.mean.count) }
        if std != nil && mean == nil { p.mean = Array(repeating: 0, count: p.std.count) }
        p.bgr = bgr
        switch layout?.lowercased() {
        case nil, "nchw": break
        case "nhwc": p.channelsLast = true
        case let other?: throw ValidationError("--layout takes nchw or nhwc (it is '\(other)')")
        }
        try p.validate()
        return p
    }

    static func integers(_ text: String, flag: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let values = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == parts.count, values.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("\(flag) takes positive integers separated by commas (it is '\(text)')")
        }
        return values
    }

    static func pair(_ text: String, flag: String) throws -> (height: Int, width: Int) {
        let v = try integers(text, flag: flag)
        guard v.count == 2 else { throw ValidationError("\(flag) takes H,W (it is '\(text)')") }
        return (v[0], v[1])
    }

    static func floats(_ text: String, flag: String) throws -> [Float] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let values = parts.compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == parts.count, values.count == 1 || values.count == 3, values.allSatisfy(\.isFinite) else {
            throw ValidationError("\(flag) takes one number or three separated by commas (it is '\(text)')")
        }
        return values
    }
}
