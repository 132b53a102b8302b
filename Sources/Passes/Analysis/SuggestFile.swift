import Foundation
import Graph

// Writing a suggested config: `analyze --suggest out.cfg --min-sqnr D`. The text is written to a temporary file, read
// back with the reader compress uses, planned and checked against what was measured, and only then renamed into place:
// nothing is left at the path otherwise.

extension SensitivitySession {
    /// Suggests a config from `configFile` (the one analysed) reaching `minSQNR`, and writes it to `path` once it has
    /// been parsed back and planned as measured on `model`.
    public func writeSuggestion(_ report: SensitivityReport, minSQNR: Double, configFile: String, model: Model,
                                to path: String) throws -> ConfigSuggestion {
        let text = try String(contentsOfFile: configFile, encoding: .utf8)
        let suggestion = try suggest(report, minSQNR: minSQNR, configText: text)
        let temporary = path + ".partial-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        try explainingWrite(path, "the suggested config") {
            try Data(suggestion.text.utf8).write(to: URL(fileURLWithPath: temporary))
        }
        try verify(suggestion, config: CompressionConfig.load(temporary), model: model)
        guard rename(temporary, path) == 0 else {
            throw AnalyzeWriteError(description: "\(path): cannot write the suggested config: "
                + String(cString: strerror(errno)))
        }
        return suggestion
    }
}

extension SensitivityReport {
    /// `analyze --json`: the report, with the suggestion under "suggestion" when there is one.
    public func json(with suggestion: ConfigSuggestion?) throws -> String {
        var object = try JSONSerialization.jsonObject(with: jsonData()) as? [String: Any] ?? [:]
        if let suggestion { object["suggestion"] = try JSONSerialization.jsonObject(with: suggestion.jsonData()) }
        let out = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: out, as: UTF8.self)
    }
}

/// Runs a write; a file-system error becomes one line naming the path and the system's reason.
public func explainingWrite(_ path: String, _ what: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as NSError where error.domain == NSCocoaErrorDomain {
        let reason = (error.userInfo[NSUnderlyingErrorKey] as? NSError)?.localizedDescription ?? error.localizedDescription
        throw AnalyzeWriteError(description: "\(path): cannot write \(what): \(reason)")
    }
}
