import Graph

/// A JSON value that keeps its keys in the order given (stable output for `plan --json` and run summaries).
public indirect enum JSONValue: Sendable, Equatable {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(Double)
    case float(Float)
    case int(Int)
    case bool(Bool)
    case null

    public static func == (a: JSONValue, b: JSONValue) -> Bool { a.serialized() == b.serialized() }

    public func serialized(indent: Int = 0, pretty: Bool = true) -> String {
        let pad = pretty ? String(repeating: "  ", count: indent + 1) : ""
        let end = pretty ? String(repeating: "  ", count: indent) : ""
        let newline = pretty ? "\n" : ""
        switch self {
        case .object(let pairs):
            if pairs.isEmpty { return "{}" }
            let body = pairs.map { "\(pad)\(JSONValue.quote($0.0)): \($0.1.serialized(indent: indent + 1, pretty: pretty))" }
            return "{" + newline + body.joined(separator: "," + newline) + newline + end + "}"
        case .array(let items):
            if items.isEmpty { return "[]" }
            let body = items.map { pad + $0.serialized(indent: indent + 1, pretty: pretty) }
            return "[" + newline + body.joined(separator: "," + newline) + newline + end + "]"
        case .string(let s): return JSONValue.quote(s)
        case .number(let d): return d.isFinite ? "\(d)" : JSONValue.quote("\(d)")
        case .float(let f): return f.isFinite ? "\(f)" : JSONValue.quote("\(f)")
        case .int(let i): return "\(i)"
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
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
        let act: JSONValue = quant.act.map { a in
            .object([
                ("type", .string(a.type.rawValue)), ("clip_min", optional(a.clipMin)), ("clip_max", optional(a.clipMax)),
                ("fixed_min", .bool(a.fixedMin)), ("init", .string(a.initialization)),
            ])
        } ?? .null
        let wts: JSONValue = quant.wts.map { w in
            .object([("algo", .string(w.algorithm.rawValue)), ("type", .string(w.type.rawValue)), ("channel_wise", .bool(w.channelWise))])
        } ?? .null
        var kind: JSONValue = .null, ratio: JSONValue = .null, ascend: JSONValue = .null, freq: JSONValue = .null
        switch prune.kind {
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
            ("quant", .object([("enabled", .bool(quant.enabled)), ("source", .string(quant.source.key)), ("act", act), ("wts", wts)])),
            ("prune", .object([
                ("enabled", .bool(prune.enabled)), ("source", .string(prune.source.key)), ("kind", kind), ("ratio", ratio),
                ("ascend_optimized", ascend), ("update_freq", freq),
            ])),
        ])
    }
}

/// The planning passes, in the order of the default pipeline (steps 2–5).
public func planningPipeline() -> Pipeline {
    Pipeline([ValidateGraphPass(), LayerMatchingPass(), SkipMarkingPass(), OverrideResolutionPass()])
}

/// Plans a model under a config: what each layer will get, and why. Returns the context (plan, diagnostics).
public func plan(_ model: inout Model, config: CompressionConfig) throws -> PassContext {
    var context = PassContext(opsetImports: model.opsetImports)
    context.config = config
    context.diagnostics += config.warnings
    try planningPipeline().run(&model.graph, &context)
    return context
}
