import CPNG
import Foundation
import Kernels

/// What a data source yields (`amct-pipe data`): count, per-input sample shapes, labels, value range over every
/// sample (read a batch at a time).
public struct DataSummary: Sendable {
    public var description: String
    public var count: Int
    public var samples: [String: SampleSpec]
    public var classNames: [String]?
    public var labelCounts: [Int64: Int]?
    public var range: [String: (min: Double, max: Double)]

    public init(_ source: any DataSource, batchSize: Int, progress: ((Int, Int) -> Void)? = nil) throws {
        description = source.description
        count = source.count
        samples = source.samples
        classNames = source.classNames
        var counts: [Int64: Int]?
        if let labels = source.labels {
            counts = [:]
            for l in labels { counts![l, default: 0] += 1 }
        }
        labelCounts = counts
        var range: [String: (min: Double, max: Double)] = [:]
        let n = count
        let batches = stride(from: 0, to: n, by: batchSize).map { Array($0..<Swift.min($0 + batchSize, n)) }
        let reader = BatchReader(source, batches: batches)
        var done = 0
        for indices in batches {
            for (name, t) in try reader.next() {
                let values = t.isFloat ? t.floats.map(Double.init) : t.ints.map(Double.init)
                var (lo, hi) = range[name] ?? (.infinity, -.infinity)
                for v in values {
                    lo = Swift.min(lo, v)
                    hi = Swift.max(hi, v)
                }
                range[name] = (lo, hi)
            }
            done += indices.count
            progress?(done, count)
        }
        self.range = range
    }

    public var text: String {
        var lines = ["\(description): \(count) samples"]
        for name in samples.keys.sorted() {
            let s = samples[name]!
            let r = range[name]
            lines.append(
                "  \(name): \(s.isInteger ? "int64" : "float32") [N, \(s.shape.map(String.init).joined(separator: ", "))]"
                    + (r.map { String(format: ", values %.4g … %.4g", $0.min, $0.max) } ?? ""))
        }
        if let labelCounts {
            lines.append("  labels: \(labelCounts.count) classes (retrain trains on them; --labels none distills)")
            for (label, n) in labelCounts.sorted(by: { $0.key < $1.key }) {
                let name = classNames.flatMap { Int(label) < $0.count ? " \($0[Int(label)])" : nil } ?? ""
                lines.append("    \(label)\(name): \(n) samples")
            }
        } else {
            lines.append("  labels: none (retrain distills from the float model)")
        }
        return lines.joined(separator: "\n")
    }

    public var json: String {
        var object: [String: Any] = ["source": description, "count": count]
        object["inputs"] = Dictionary(
            uniqueKeysWithValues: samples.map { name, s in
                (
                    name,
                    [
                        "shape": s.shape, "dtype": s.isInteger ? "int64" : "float32",
                        "min": range[name]?.min ?? 0, "max": range[name]?.max ?? 0,
                    ] as [String: Any]
                )
            })
        if let classNames { object["classes"] = classNames }
        if let labelCounts {
            object["label_counts"] = Dictionary(uniqueKeysWithValues: labelCounts.map { ("\($0)", $1) })
        }
        let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// The first batch of an image source as one PNG (samples side by side), un-normalised: x·std + mean, divided by the
/// scale, channels back to RGB.
public enum DataPreview {
    public static func write(_ source: any DataSource, batchSize: Int, to path: String) throws {
        guard let images = source as? ImageSource else {
            throw DataError(path: source.description, "--preview draws images: this source holds arrays")
        }
        let n = min(batchSize, images.count)
        let values = try images.readPlanar(Array(0..<n), epoch: nil)
        let c = images.planes[0]
        let h = images.planes[1]
        let w = images.planes[2]
        let p = images.preprocessing
        var rgb = [UInt8](repeating: 0, count: n * w * h * 3)
        for s in 0..<n {
            for k in 0..<3 {
                let plane = c == 1 ? 0 : p.bgr ? 2 - k : k
                let m = p.mean.count == c ? p.mean[plane] : p.mean[0]
                let d = p.std.count == c ? p.std[plane] : p.std[0]
                for y in 0..<h {
                    for x in 0..<w {
                        let v = (values[((s * c + plane) * h + y) * w + x] * d + m) / p.scale
                        rgb[(y * n * w + s * w + x) * 3 + k] = UInt8(Swift.max(0, Swift.min(255, v.rounded())))
                    }
                }
            }
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(n * w)
        image.height = UInt32(h)
        image.format = 2  // PNG_FORMAT_RGB
        let ok = rgb.withUnsafeBytes { png_image_write_to_file(&image, path, 0, $0.baseAddress, 0, nil) }
        guard ok != 0 else { throw DataError(path: path, "cannot write the preview PNG") }
    }
}
