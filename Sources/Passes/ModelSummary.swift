import Foundation
import Graph

/// The facts `inspect` prints.
public struct ModelSummary: CustomStringConvertible {
    public let model: Model
    public init(_ model: Model) { self.model = model }

    public var description: String {
        let g = model.graph
        var lines: [String] = []
        let opsets = model.opsetImports.map { "\(($0.domain ?? "").isEmpty ? "ai.onnx" : $0.domain!) \($0.version ?? 0)" }
        lines.append("model     \(model.sourcePath ?? "")")
        lines.append("producer  \(model.producerName ?? "?") \(model.producerVersion ?? "")  ir_version \(model.irVersion ?? 0)")
        lines.append("opsets    \(opsets.joined(separator: ", "))")
        let initializerNames = Set(g.initializers.keys)
        for input in g.inputs where !initializerNames.contains(input.name ?? "") {
            lines.append("input     \(input.name ?? "")  \(describe(input.type))")
        }
        for output in g.outputs { lines.append("output    \(output.name ?? "")  \(describe(output.type))") }
        var counts: [String: Int] = [:]
        for node in g.nodes { counts[node.op, default: 0] += 1 }
        let ops = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        lines.append("nodes     \(g.nodeCount): " + ops.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        let parameters = g.initializers.values.reduce(0) { $0 + $1.elementCount }
        let bytes = g.initializers.values.reduce(0) { $0 + $1.byteCount }
        lines.append("params    \(parameters) in \(g.initializers.count) initializers (\(formatBytes(bytes)))")
        for path in [model.sourcePath].compactMap({ $0 }) + model.companionPaths {
            if let size = try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int {
                let name = model.companionPaths.isEmpty ? "" : "  \(URL(fileURLWithPath: path).lastPathComponent)"
                lines.append("file      \(formatBytes(size))\(name)")
            }
        }
        if !model.functions.isEmpty { lines.append("functions \(model.functions.count)") }
        return lines.joined(separator: "\n")
    }

    func describe(_ type: ValueType?) -> String {
        guard let type else { return "?" }
        switch type.kind {
        case .tensor(let elem, let shape, _):
            let dims = shape.map { s in
                s.dims.map { d -> String in
                    switch d.value {
                    case .known(let v): return String(v)
                    case .symbolic(let p): return p
                    case .unknown: return "?"
                    }
                }.joined(separator: "×")
            } ?? "unranked"
            return "\(DataType(rawValue: elem ?? 0)) [\(dims)]"
        case .sequence(let e, _): return "sequence<\(describe(e))>"
        case .map(let k, let v, _): return "map<\(DataType(rawValue: k ?? 0)), \(describe(v))>"
        case .optional(let e, _): return "optional<\(describe(e))>"
        case .sparseTensor(let elem, _, _): return "sparse \(DataType(rawValue: elem ?? 0))"
        case .opaque(let d, let n, _): return "opaque \(d ?? "").\(n ?? "")"
        case .notSet: return "?"
        }
    }
}

/// A byte count for people: B, KiB or MiB.
public func formatBytes(_ n: Int) -> String {
    if n >= 1 << 20 { return String(format: "%.1f MiB", Double(n) / Double(1 << 20)) }
    if n >= 1 << 10 { return String(format: "%.1f KiB", Double(n) / Double(1 << 10)) }
    return "\(n) B"
}
