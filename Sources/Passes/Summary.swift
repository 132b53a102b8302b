import Foundation
import Graph

// The run summary: what a compress or retrain run did, built from the context the pipeline leaves. `description` is
// the table the CLI prints; `Codable` gives `--json` (snake_case keys, every key present: `@NullEncoded` writes null).

/// What a compress (or retrain) run did, for people and for scripts.
public struct CompressionSummary: Codable, Sendable, CustomStringConvertible {
    public struct QuantizedLayer: Codable, Sendable, Equatable {
        public var layer: String, op: String, actType: String, wtsType: String, channelWise: Bool
        public var scaleD: Float, offsetD: Int, clipsFrom: ClipOrigin
        enum CodingKeys: String, CodingKey {
            case layer, op, actType = "act_type", wtsType = "wts_type", channelWise = "channel_wise"
            case scaleD = "scale_d", offsetD = "offset_d", clipsFrom = "clips_from"
        }
    }
    public struct FloatLayer: Codable, Sendable, Equatable {
        public var layer: String
        public var reason: String
    }

    /// The input model's path ("model" for one passed in memory).
    public var input = "model"
    /// The files written (empty until `CompressionResult.save`).
    public var outputs: [String] = []
    public var format: OutputFormat
    public var quantized: [QuantizedLayer]
    /// Layers that stay float, and why.
    public var float: [FloatLayer]
    /// What pruning did, one line per group or layer.
    public var prune: [String]
    /// What calibration did, when it ran.
    @NullEncoded public var calibration: String?
    /// The default-domain opset of the (first) output.
    public var opset: Int64
    @NullEncoded public var sizeBefore: Int?
    public var sizeAfter: [Int] = []
    /// Elements in float/int8/int4 initializers (weights, biases, scales) before and after.
    public var elementsBefore: Int
    public var elementsAfter: Int
    /// What onnxruntime needs to run the output.
    public var runtime: String
    public var warnings: [String]
    /// One line per pass that ran.
    public var passes: [String]
    /// What retraining did (retrain only).
    @NullEncoded public var retrain: TrainingReport?

    enum CodingKeys: String, CodingKey {
        case input, outputs, format, quantized, float, prune, calibration, opset
        case sizeBefore = "size_before", sizeAfter = "size_after", elementsBefore = "elements_before"
        case elementsAfter = "elements_after", runtime, warnings, passes, retrain
    }

    init(context: PassContext, format: OutputFormat, elementsBefore: Int, elementsAfter: Int) {
        self.format = format
        quantized = context.record.entries.map { e in
            QuantizedLayer(layer: e.layer, op: e.op, actType: e.actType.rawValue, wtsType: e.weightType.rawValue,
                           channelWise: e.channelWise, scaleD: e.scaleD, offsetD: Int(e.offsetD), clipsFrom: e.clipsFrom)
        }
        let quantizes = context.config?.hasGlobalQuant ?? false || !context.record.entries.isEmpty
        float = (context.plan?.layers ?? []).filter { $0.quant == nil && quantizes }
            .map { FloatLayer(layer: $0.layer.name, reason: $0.floatReason.description) }
        prune = context.pruneEvents.map(\.description)
        calibration = context.calibration?.description
        opset = context.opsetImports.version() ?? 0
        self.elementsBefore = elementsBefore
        self.elementsAfter = elementsAfter
        runtime = Self.runtimeNote(context, format)
        warnings = context.diagnostics.map(\.description)
        passes = context.log.map { "\($0.pass): \($0.summary)" }
        retrain = context.trainingReport
    }

    /// What onnxruntime needs to run the output.
    static func runtimeNote(_ context: PassContext, _ format: OutputFormat) -> String {
        if format == .amct {
            return "the fake-quant model runs in any onnxruntime (standard ops); the deploy model is for the Ascend toolchain (AscendQuant/AscendDequant, domain amct)"
        }
        if context.record.entries.contains(where: { $0.actType == .int4 }) {
            return "INT4 activations, opset 21: onnxruntime 1.18 or later; if a session fails with INVALID_GRAPH (versions whose default level fuses QDQ into QLinearConv, which rejects 4-bit), use GraphOptimizationLevel ORT_ENABLE_BASIC"
        }
        if context.requiredOpset >= 21 { return "opset 21 (INT4/INT16): onnxruntime 1.18 or later" }
        return "any onnxruntime with opset \(max(context.requiredOpset, 13)); default settings"
    }

    /// Quantized layers counted by op, bit widths and granularity.
    public var groups: [(key: String, count: Int)] {
        var counts: [String: Int] = [:]
        for q in quantized {
            let granularity = q.channelWise ? "per-channel" : "per-tensor"
            counts["\(q.op) act \(q.actType) / wts \(q.wtsType) \(granularity)", default: 0] += 1
        }
        return counts.map { ($0.key, $0.value) }.sorted { $0.key < $1.key }
    }

    /// The table the CLI prints.
    public var description: String {
        var lines = ["amct-pipe: \(input) → \(outputs.isEmpty ? "(not saved)" : outputs.joined(separator: ", "))"]
        for (key, count) in groups { lines.append("  quantized  \(count) × \(key)") }
        for f in float { lines.append("  float      \(f.layer): \(f.reason)") }
        for line in prune { lines.append("  prune      \(line)") }
        if let calibration { lines.append("  calibrated \(calibration)") }
        lines.append("  opset      \(opset)")
        if let sizeBefore, !sizeAfter.isEmpty {
            let after = sizeAfter.map(formatBytes).joined(separator: ", ")
            lines.append("  size       \(formatBytes(sizeBefore)) → \(after)")
        }
        lines.append("  elements   \(elementsBefore) → \(elementsAfter) in initializers (weights, biases, scales)")
        lines.append("  runtime    \(runtime)")
        for w in warnings { lines.append("  \(w)") }
        if let retrain { lines.append(retrain.description) }
        return lines.joined(separator: "\n")
    }

    /// The summary as JSON (sorted keys, indented).
    public var json: String { encodeJSON(self) }
}

/// Elements in the float, int8 and int4 initializers of a model (weights, biases, scales).
func parameterElements(_ model: Model) -> Int {
    var count = 0
    for t in model.graph.initializers.values where t.dataType == .float || t.dataType == .int8 || t.dataType == .int4 {
        count += t.elementCount
    }
    return count
}

/// A file's size in bytes (0 when it cannot be read).
func fileSize(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }

/// Writes text to `path` whole or not at all.
func writeTextAtomically(_ text: String, to path: String) throws {
    do {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw GraphError.cannotWrite(path: path, reason: error.localizedDescription)
    }
}
