import ArgumentParser
import Foundation
import Graph
import Passes

struct CompressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Compress a model as the config says (the default command: `amct-pipe in.onnx --cfg c.cfg -o out.onnx`).")

    @Argument(help: "The ONNX model to compress (never modified).")
    var input: String

    @Option(help: "The AMCT config (text format).")
    var cfg: String

    @Option(name: .shortAndLong, help: "Where to write the compressed model (written whole or not at all).")
    var output: String

    @Option(help: "Output layout: qdq (QuantizeLinear/DequantizeLinear, runs in onnxruntime) or amct.")
    var format: OutputFormat = .qdq

    @Option(help: "Calibration data for layers whose clips come from IFMR: .npz (arrays by input name) or .npy (one input), batch along axis 0; or 'random' (seeded standard normal) for a quick trial.")
    var calib: String?

    @Option(parsing: .unconditional, help: "Samples per calibration batch when the model's batch dimension is symbolic (a fixed one wins).")
    var batchSize = 1

    @Option(name: .customLong("input-shape"), help: ArgumentHelp(inputShapeHelp, valueName: "name:d0,d1,..."))
    var inputShapes: [String] = []

    @Flag(help: "No progress output.")
    var quiet = false

    @Option(help: "Also write the record file (text format): per layer scale_d, offset_d, scale_w, offset_w, types.")
    var record: String?

    @Flag(help: "Print the run summary as JSON.")
    var json = false

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1 (it is \(batchSize))") }
    }

    /// The calibration data `--calib` names, for the model with its `--input-shape` shapes; nil without `--calib`.
    func calibrationData(for model: Model, batches: Int) throws -> CalibrationData? {
        guard let calib else { return nil }
        if calib == "random" { return try CalibrationData.random(for: model, batches: batches, batchSize: batchSize) }
        return try CalibrationData.load(calib, for: model)
    }

    func run() throws {
        try reportingErrors {
            let model = try ModelFile.load(input)
            let config = try CompressionConfig.load(cfg)
            let data = try calibrationData(for: InputShape.applied(parsing: inputShapes, to: model), batches: config.batchNum)
            let showProgress = !quiet && isatty(2) != 0
            let report: @Sendable (String, Int, Int) -> Void = { phase, i, n in
                FileHandle.standardError.write(Data("\rcalibration: \(phase) \(i) of \(n)   \(i == n ? "\n" : "")".utf8))
            }
            let calibration = CalibrationPass(data: data, batchSize: batchSize, progress: showProgress ? report : nil)
            // The summary counts the input's parameters now, so the model can move into compress (no copy of it).
            let parametersBefore = RunSummary.parameters(model)
            let result = try compress(consume model, config: config, format: format, calibration: calibration)
            let paths = result.paths(for: output)
            for ((_, compressed), path) in zip(result.models, paths) { try ModelFile.save(compressed, to: path) }
            if let record {
                try Data(result.context.record.text.utf8).write(to: URL(fileURLWithPath: record), options: .atomic)
            }
            let summary = RunSummary(input: input, outputs: paths, context: result.context, format: format, parametersBefore: parametersBefore, after: result.models.first?.model)
            print(json ? summary.json.serialized() : summary.text)
            // Done: end here rather than free the models one object at a time (a tenth of a large model's run).
            fflush(nil)
            Foundation.exit(0)
        }
    }
}

extension OutputFormat: ExpressibleByArgument {}

let inputShapeHelp = "Fixes the symbolic or -1 dimensions of a graph input, e.g. x:1,3,48,320 (repeatable; the rank must match and fixed dimensions agree)."

/// What a run did, for people (`text`) and for scripts (`json`).
struct RunSummary {
    let input: String
    let outputs: [String]
    let context: PassContext
    let format: OutputFormat
    var output: String { outputs[0] }
    var parametersBefore = "?"
    var after: Model? = nil

    static func parameters(_ model: Model?) -> String {
        guard let model else { return "?" }
        return String(model.graph.initializers.values.filter { $0.dataType == .float || $0.dataType == .int8 || $0.dataType == .int4 }
            .reduce(0) { $0 + $1.elementCount })
    }

    func fileSize(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }

    var groups: [(key: String, count: Int)] {
        struct Kind: Hashable { var op: String, act: BitWidth, wts: BitWidth, channelWise: Bool }
        var counts: [Kind: Int] = [:]
        for e in context.record.entries { counts[Kind(op: e.op, act: e.actType, wts: e.weightType, channelWise: e.channelWise), default: 0] += 1 }
        return counts.map { k, n in
            ("\(k.op) act \(k.act.rawValue) / wts \(k.wts.rawValue)\(k.channelWise ? " per-channel" : " per-tensor")", n)
        }.sorted { $0.0 < $1.0 }
    }

    var skipped: [(layer: String, reason: String)] {
        (context.plan?.layers ?? []).filter { !$0.quant.enabled && (context.config?.hasGlobalQuant ?? false || !context.record.entries.isEmpty) }
            .map { ($0.layer.name, $0.quant.source.description) }
    }

    /// What onnxruntime needs to run the output.
    var runtimeNote: String {
        if format == .amct {
            return "the fake-quant model runs in any onnxruntime (standard ops); the deploy model is for the Ascend toolchain (AscendQuant/AscendDequant, domain amct)"
        }
        if context.record.entries.contains(where: { $0.actType == .int4 }) {
            return "INT4 activations, opset 21: onnxruntime 1.18 or later; if a session fails with INVALID_GRAPH (versions whose default level fuses QDQ into QLinearConv, which rejects 4-bit), use GraphOptimizationLevel ORT_ENABLE_BASIC"
        }
        if context.requiredOpset >= 21 { return "opset 21 (INT4/INT16): onnxruntime 1.18 or later" }
        return "any onnxruntime with opset \(max(context.requiredOpset, 13)); default settings"
    }

    var text: String {
        var lines = ["amct-pipe: \(input) → \(outputs.joined(separator: ", "))"]
        for (key, count) in groups { lines.append("  quantized  \(count) × \(key)") }
        for s in skipped { lines.append("  float      \(s.layer): \(s.reason)") }
        for line in context.pruneReport { lines.append("  prune      \(line)") }
        for entry in context.log where entry.pass == "calibrate-ifmr" { lines.append("  calibrated \(entry.summary)") }
        let ops = context.opsetImports.first { ($0.domain ?? "").isEmpty }?.version ?? 0
        lines.append("  opset      \(ops)")
        lines.append("  size       \(formatBytes(fileSize(input))) → " + outputs.map { formatBytes(fileSize($0)) }.joined(separator: ", "))
        lines.append("  elements   \(parametersBefore) → \(Self.parameters(after)) in initializers (weights, biases, scales)")
        lines.append("  runtime    \(runtimeNote)")
        for d in context.diagnostics { lines.append("  \(d)") }
        return lines.joined(separator: "\n")
    }

    var json: JSONValue {
        .object([
            ("input", .string(input)), ("outputs", .array(outputs.map { .string($0) })), ("format", .string(format.rawValue)),
            ("quantized", .array(context.record.entries.map { e in
                .object([
                    ("layer", .string(e.layer)), ("op", .string(e.op)), ("act_type", .string(e.actType.rawValue)),
                    ("wts_type", .string(e.weightType.rawValue)), ("channel_wise", .bool(e.channelWise)),
                    ("scale_d", .float(e.scaleD)), ("offset_d", .int(e.offsetD)), ("clips_from", .string(e.clipsFrom)),
                ])
            })),
            ("prune", .array(context.pruneReport.map { .string($0) })),
            ("float", .array(skipped.map { .object([("layer", .string($0.layer)), ("reason", .string($0.reason))]) })),
            ("size_before", .int(fileSize(input))), ("size_after", .array(outputs.map { .int(fileSize($0)) })),
            ("runtime", .string(runtimeNote)),
            ("calibration", context.log.first { $0.pass == "calibrate-ifmr" }.map { .string($0.summary) } ?? .null),
            ("warnings", .array(context.diagnostics.map { .string($0.description) })),
        ])
    }
}
