import Graph

/// A JSON value built by hand (the plan's layout), encoded by `jsonData` like every other `--json`.
public indirect enum JSONValue: Sendable {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    case float(Float)
    case int(Int)
    case bool(Bool)
    case null
}

private func optional(_ f: Float?) -> JSONValue { f.map(JSONValue.float) ?? .null }

extension Plan {
    /// `{layers: [{name, op, quant: {enabled, source, act, wts}, prune: {...}}], warnings, fakequant_precision_mode}`.
    public func json(warnings: [Diagnostic]) -> JSONValue {
        .object([
            ("layers", .array(layers.map { $0.json })),
            ("warnings", .array(warnings.map { .string($0.description) })),
            ("fakequant_precision_mode", forceFP16Quant ? .string("FORCE_FP16_QUANT") : .null),
            ("batch_num", .int(batchNum)),
        ])
    }
}

extension LayerPlan {
    var json: JSONValue {
        let act: JSONValue = quant.map { q in
            let a = q.act
            return .object([
                ("type", .string(a.type.rawValue)), ("clip_min", optional(a.clips?.min)),
                ("clip_max", optional(a.clips?.max)), ("fixed_min", .bool(a.fixedMin)),
                ("init", .string(a.initialization.rawValue)),
            ])
        } ?? .null
        let wts: JSONValue = quant.map { q in
            .object([("algo", .string(q.wts.algorithm.rawValue)), ("type", .string(q.wts.type.rawValue)),
                     ("channel_wise", .bool(q.wts.channelWise))])
        } ?? .null
        var kind: JSONValue = .null, ratio: JSONValue = .null, ascend: JSONValue = .null, freq: JSONValue = .null
        switch prune?.kind ?? askedPruneKind {
        case .filter(let r, let a)?:
            kind = .string("filter")
            ratio = .float(r)
            ascend = .bool(a)
        case .twoOfFour(let f)?:
            kind = .string("2:4")
            freq = .int(Int(f))
        case nil:
            break
        }
        return .object([
            ("name", .string(layer.name)),
            ("op", .string(layer.op.rawValue)),
            ("quant", .object([("enabled", .bool(quant != nil)), ("source", .string(quantSource.key)), ("act", act),
                               ("wts", wts)])),
            ("prune", .object([
                ("enabled", .bool(prune != nil)), ("source", .string(pruneSource.key)), ("kind", kind),
                ("ratio", ratio), ("ascend_optimized", ascend), ("update_freq", freq),
            ])),
        ])
    }

    /// The prune kind the config asked for on a layer that cannot take it.
    private var askedPruneKind: PruneKind? {
        if prune == nil, case .notApplicable(_, let asked) = unprunedReason { return asked }
        return nil
    }
}

/// Plans a model under a config: what each layer will get, and why. Returns the context (plan, diagnostics).
public func plan(_ model: inout Model, config: CompressionConfig) throws -> PassContext {
    var context = PassContext(opsetImports: model.opsetImports)
    context.config = config
    context.diagnostics += config.warnings
    try Pipeline.plan.run(&model.graph, &context)
    return context
}

/// The plan as an aligned table, one line per layer.
public struct PlanSummary: CustomStringConvertible, Encodable {
    public let plan: Plan
    public let warnings: [Diagnostic]
    public init(_ plan: Plan, warnings: [Diagnostic]) {
        self.plan = plan
        self.warnings = warnings
    }

    /// `plan --json`.
    public var json: String { encodeJSON(self) }
    public func encode(to encoder: any Encoder) throws { try plan.json(warnings: warnings).encode(to: encoder) }

    static func format(_ f: Float) -> String {
        f == f.rounded() && abs(f) < 1e6 ? String(Int(f)) : "\(f)"
    }

    public var description: String {
        var rows: [[String]] = [["LAYER", "OP", "ACTIVATIONS", "WEIGHTS", "QUANT FROM", "PRUNE", "PRUNE FROM"]]
        for p in plan.layers {
            var act = "-", wts = "-"
            if let q = p.quant {
                let a = q.act, w = q.wts
                let clips = a.clips.map { "[\(Self.format($0.min)), \(Self.format($0.max))]" } ?? "IFMR"
                act = "\(a.type.rawValue) \(clips)\(a.fixedMin ? " min=0" : "")"
                let granularity = w.channelWise ? "per-channel" : "per-tensor"
                wts = "\(w.algorithm.rawValue) \(w.type.rawValue) \(granularity)\(w.notes.isEmpty ? "" : " *")"
            }
            var prune = "-"
            if let (r, a) = p.filterPruning { prune = "filter \(Self.format(r))\(a ? " ×16" : "")" }
            if let f = p.twoOfFourFrequency { prune = "2:4" + (f > 0 ? " freq \(f)" : "") }
            let op = p.layer.op.rawValue + (p.layer.kernelRank > 0 ? "\(p.layer.kernelRank)d" : "") + (p.layer.group > 1 ? " g\(p.layer.group)" : "")
            rows.append([p.layer.name, op, act, wts, p.quantSource.description, prune, p.pruneSource.description])
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        var lines = rows.map { row in
            zip(row, widths).enumerated().map { i, pair in i == row.count - 1 ? pair.0 : pair.0.padding(toLength: pair.1, withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        lines.insert(String(repeating: "-", count: min(160, widths.reduce(0, +) + 2 * (widths.count - 1))), at: 1)
        let quantized = plan.layers.filter { $0.quant != nil }.count
        let pruned = plan.layers.filter { $0.prune != nil }.count
        lines.append("")
        lines.append("\(plan.layers.count) layers: \(quantized) quantized, \(pruned) pruned; batch_num \(plan.batchNum)"
            + (plan.forceFP16Quant ? "; scale_d rounded to float16 (FORCE_FP16_QUANT)" : ""))
        let notes = plan.layers.flatMap { p in (p.quant?.wts.notes ?? []).map { "* \(p.layer.name): \($0)" } }
        lines += notes
        lines += warnings.map { $0.description }
        return lines.joined(separator: "\n")
    }
}

extension JSONValue: Encodable {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .object(let pairs):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in pairs { try c.encode(v, forKey: Key(stringValue: k)) }
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for v in items { try c.encode(v) }
        default:
            var c = encoder.singleValueContainer()
            switch self {
            case .string(let s): try c.encode(s)
            case .float(let f): try c.encode(f)
            case .int(let i): try c.encode(i)
            case .bool(let b): try c.encode(b)
            default: try c.encodeNil()
            }
        }
    }
}
