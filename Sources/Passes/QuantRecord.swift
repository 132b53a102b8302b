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
    /// Where the clips came from: the config, IFMR or retraining.
    public var clipsFrom: ClipOrigin
}

/// The record file: one `record { key value { ... } }` entry per quantized layer, then one per layer that was pruned
/// but not quantized (by name), protobuf text format written by `TextFormatWriter` (names escaped).
public struct QuantRecord: Sendable {
    public var entries: [QuantRecordEntry] = []
    /// What pruning recorded, by layer name.
    public var prune: [String: PruneRecord] = [:]

    public init() {}

    public var text: String {
        var records: [TextFormatWriter.Field] = entries.map { e in
            record(e.layer, Self.quantFields(e) + (prune[e.layer]?.fields ?? []))
        }
        let quantized = Set(entries.map(\.layer))
        for (layer, p) in prune.sorted(by: { $0.key < $1.key }) where !quantized.contains(layer) {
            records.append(record(layer, p.fields))
        }
        return TextFormatWriter.lines(records).joined(separator: "\n") + "\n"
    }

    private func record(_ layer: String, _ value: [TextFormatWriter.Field]) -> TextFormatWriter.Field {
        .init("record", .message([.init("key", .string(layer)), .init("value", .message(value))]))
    }

    private static func quantFields(_ e: QuantRecordEntry) -> [TextFormatWriter.Field] {
        var fields: [TextFormatWriter.Field] = [.init("scale_d", .float(e.scaleD)), .init("offset_d", .int(Int64(e.offsetD)))]
        fields += e.scaleW.map { .init("scale_w", .float($0)) }
        fields += e.scaleW.map { _ in .init("offset_w", .int(0)) }
        fields += [
            .init("act_type", .identifier(e.actType.rawValue)), .init("wts_type", .identifier(e.weightType.rawValue)),
            .init("clip_min", .float(e.clipMin)), .init("clip_max", .float(e.clipMax)),
        ]
        return fields
    }
}
