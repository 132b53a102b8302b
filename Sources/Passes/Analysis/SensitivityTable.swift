import Foundation

// The terminal table of `analyze`: layers worst first, with the all-layers SQNR and the cost of the analysis.

extension SensitivityReport {
    /// Two decimals; "inf" (an exact run), "-inf", "nan" (a float output that is not finite).
    func formatDecibels(_ v: Double) -> String {
        v.isNaN ? "nan" : v.isFinite ? String(format: "%.2f", v) : (v > 0 ? "inf" : "-inf")
    }

    public var table: String {
        let nameWidth = min(48, max(5, layers.map(\.name.count).max() ?? 5))
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        func db(_ v: Double) -> String {
            let t = formatDecibels(v)
            return String(repeating: " ", count: max(0, 7 - t.count)) + t
        }
        var lines = [
            "\(pad("RANK", 5)) \(pad("LAYER", nameWidth)) \(pad("OP", 14)) \(pad("ACT/WTS", 11)) "
                + "OUT SQNR  LAYER SQNR  (dB)",
        ]
        for (rank, l) in ranked.enumerated() {
            lines.append("\(pad(String(rank + 1), 5)) \(pad(l.name, nameWidth)) \(pad(l.op, 14)) "
                + "\(pad(l.actType + "/" + l.weightType, 11)) \(db(l.outputSQNR))   \(db(l.layerSQNR))")
        }
        let all = db(allLayersSQNR).trimmingCharacters(in: .whitespaces)
        lines.append("all \(layers.count) layers quantized: output SQNR \(all) dB "
            + "on \(samples) sample\(samples == 1 ? "" : "s")")
        lines.append(String(
            format: "time %.2f s: prepare and calibrate %.2f, float pass %.2f, single-layer runs %.2f "
                + "(%.0f%% of the nodes each on average), all layers %.2f",
            seconds.total, seconds.prepare, seconds.floatForward, seconds.layers,
            100 * rerunShare, seconds.allLayers))
        return lines.joined(separator: "\n")
    }
}
