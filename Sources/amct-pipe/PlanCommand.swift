import ArgumentParser
import Graph
import Passes

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what each layer will get under a config, and why (changes nothing).")

    @Argument(help: "The ONNX model.")
    var input: String

    @Option(help: "The AMCT config (text format: quant.cfg, prune.cfg, compressed1.cfg, ...).")
    var cfg: String

    @Flag(help: "Print JSON with stable keys instead of the table.")
    var json = false

    @Option(name: .customLong("input-shape"), help: ArgumentHelp(inputShapeHelp, valueName: "name:d0,d1,..."))
    var inputShapes: [String] = []

    func run() throws {
        try reportingErrors {
            var model = try ModelFile.load(input)
            try InputShape.apply(parsing: inputShapes, to: &model)
            let config = try CompressionConfig.load(cfg)
            let context = try plan(&model, config: config)
            guard let plan = context.plan else { return }
            if json {
                print(plan.json(warnings: context.diagnostics).serialized())
            } else {
                print(PlanTable(plan, warnings: context.diagnostics).text)
            }
        }
    }
}

/// The plan as an aligned table, one line per layer.
struct PlanTable {
    let plan: Plan
    let warnings: [Diagnostic]
    init(_ plan: Plan, warnings: [Diagnostic]) {
        self.plan = plan
        self.warnings = warnings
    }

    static func format(_ f: Float) -> String {
        f == f.rounded() && abs(f) < 1e6 ? String(Int(f)) : "\(f)"
    }

    var text: String {
        var rows: [[String]] = [["LAYER", "OP", "ACTIVATIONS", "WEIGHTS", "QUANT FROM", "PRUNE", "PRUNE FROM"]]
        for p in plan.layers {
            var act = "-", wts = "-"
            if let a = p.quant.act {
                let clips = a.clipMin.map { "[\(Self.format($0)), \(Self.format(a.clipMax ?? 0))]" } ?? "IFMR"
                act = "\(a.type.rawValue) \(clips)\(a.fixedMin ? " min=0" : "")"
            }
            if let w = p.quant.wts {
                wts = "\(w.algorithm.rawValue) \(w.type.rawValue) \(w.channelWise ? "per-channel" : "per-tensor")\(w.notes.isEmpty ? "" : " *")"
            }
            var prune = "-"
            switch p.prune.kind {
            case .filter(let r, let a)? where p.prune.enabled: prune = "filter \(Self.format(r))\(a ? " ×16" : "")"
            case .twoOfFour(let f)? where p.prune.enabled: prune = "2:4" + (f > 0 ? " freq \(f)" : "")
            default: break
            }
            let op = p.layer.op.rawValue + (p.layer.kernelRank > 0 ? "\(p.layer.kernelRank)d" : "") + (p.layer.group > 1 ? " g\(p.layer.group)" : "")
            rows.append([p.layer.name, op, act, wts, p.quant.source.description, prune, p.prune.source.description])
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        var lines = rows.map { row in
            zip(row, widths).enumerated().map { i, pair in i == row.count - 1 ? pair.0 : pair.0.padding(toLength: pair.1, withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        lines.insert(String(repeating: "-", count: min(160, widths.reduce(0, +) + 2 * (widths.count - 1))), at: 1)
        let quantized = plan.layers.filter(\.quant.enabled).count
        let pruned = plan.layers.filter(\.prune.enabled).count
        lines.append("")
        lines.append("\(plan.layers.count) layers: \(quantized) quantized, \(pruned) pruned; batch_num \(plan.batchNum)"
            + (plan.forceFP16Quant ? "; scale_d rounded to float16 (FORCE_FP16_QUANT)" : ""))
        let notes = plan.layers.flatMap { p in (p.quant.wts?.notes ?? []).map { "* \(p.layer.name): \($0)" } }
        lines += notes
        lines += warnings.map { $0.description }
        return lines.joined(separator: "\n")
    }
}
