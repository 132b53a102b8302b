import Graph

/// What quantization decided for one layer: the record file's entry and the run summary's row.
public struct QuantRecordEntry: Sendable, Equatable {
    public var layer: String
    public var op: String
    public var actType: BitWidth
    public var weightType: BitWidth
    public var channelWise: Bool
    public var clipMin: Float
    public var clipMax: Float
    /// The activation scale as written into the model (float16-rounded under FORCE_FP16_QUANT).
    public var scaleD: Float
    public var offsetD: Int
    public var scaleW: [Float]
    /// Where the clips came from: "config" or "ifmr".
    public var clipsFrom: String
}

/// The record file: one `record { key value { ... } }` entry per quantized layer, protobuf text format.
public struct QuantRecord: Sendable {
    public var entries: [QuantRecordEntry] = []
    public var pruneEntries: [String: [String]] = [:]

    public init() {}

    public var text: String {
        func f(_ x: Float) -> String { x.isFinite ? "\(x)" : (x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf")) }
        var lines: [String] = []
        for e in entries {
            lines.append("record {")
            lines.append("  key: \"\(e.layer)\"")
            lines.append("  value {")
            lines.append("    scale_d: \(f(e.scaleD))")
            lines.append("    offset_d: \(e.offsetD)")
            for s in e.scaleW { lines.append("    scale_w: \(f(s))") }
            for _ in e.scaleW { lines.append("    offset_w: 0") }
            lines.append("    act_type: \(e.actType.rawValue)")
            lines.append("    wts_type: \(e.weightType.rawValue)")
            lines.append("    clip_min: \(f(e.clipMin))")
            lines.append("    clip_max: \(f(e.clipMax))")
            for line in pruneEntries[e.layer] ?? [] { lines.append("    \(line)") }
            lines.append("  }")
            lines.append("}")
        }
        // Layers that were pruned but not quantized.
        for (layer, prune) in pruneEntries.sorted(by: { $0.key < $1.key }) where !entries.contains(where: { $0.layer == layer }) {
            lines.append("record {")
            lines.append("  key: \"\(layer)\"")
            lines.append("  value {")
            for line in prune { lines.append("    \(line)") }
            lines.append("  }")
            lines.append("}")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
