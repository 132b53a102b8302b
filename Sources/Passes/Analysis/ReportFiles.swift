import Foundation

// `--report DIR`: report.json (the SensitivityReport), sensitivity.svg (one bar per layer in graph order, height =
// output SQNR with that layer alone quantized, colour = bit widths, the worst labelled) and index.html (the SVG and a
// table: layer, op, shapes, bit widths, SQNRs, the config place that decided the settings). Static files, no script.

extension SensitivityReport {
    /// The files `writeFiles` writes into its folder.
    public static let files = ["report.json", "sensitivity.svg", "index.html"]

    public func writeFiles(to directory: String) throws {
        let url = URL(fileURLWithPath: directory)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, data) in zip(Self.files, [try jsonData(), Data(svg.utf8), Data(html.utf8)]) {
            try data.write(to: url.appendingPathComponent(name), options: .atomic)
        }
    }

    static let colours = [("INT4", "#d62728"), ("INT8", "#1f77b4"), ("INT16", "#2ca02c")]

    /// A bar's colour: by weight width (the activation width is in the bar's tooltip and the table).
    func colour(_ l: Layer) -> String { Self.colours.first { $0.0 == l.weightType }?.1 ?? "#7f7f7f" }

    /// How many of the worst layers get a label.
    var labelled: Set<Int> { Set(ranked.prefix(min(5, max(3, layers.count / 4))).map(\.index)) }

    public var svg: String {
        let bar = max(6, min(40, 540 / Double(max(layers.count, 1)) - 4))
        let gap = 4.0, left = 60.0, top = 30.0, height = 240.0
        let width = max(620, left + Double(layers.count) * (bar + gap) + 20)
        let finite = layers.map(\.outputSQNR).filter(\.isFinite) + [allLayersSQNR].filter(\.isFinite)
        let top_dB = max(1, (finite.max() ?? 1) * 1.1)
        func y(_ v: Double) -> Double { top + height - height * min(max(v.isFinite ? v : top_dB, 0), top_dB) / top_dB }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(top + height + 40))" \
            font-family="sans-serif" font-size="10">
            <title>Output SQNR with one layer quantized</title>
            <line x1="\(left)" y1="\(top + height)" x2="\(width - 10)" y2="\(top + height)" stroke="#000"/>
            <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(top + height)" stroke="#000"/>
            <text x="4" y="\(top - 10)">SQNR dB (higher is better)</text>

            """
        for t in 0...4 {
            let v = top_dB * Double(t) / 4
            out += "<text x=\"\(left - 6)\" y=\"\(y(v) + 3)\" text-anchor=\"end\">\(String(format: "%.0f", v))</text>\n"
        }
        let worst = labelled
        for (k, l) in layers.enumerated() {
            let x = left + gap + Double(k) * (bar + gap), yTop = y(l.outputSQNR)
            out += "<rect x=\"\(x)\" y=\"\(yTop)\" width=\"\(bar)\" height=\"\(top + height - yTop)\" "
                + "fill=\"\(colour(l))\">"
                + "<title>\(escape(l.name)) \(l.actType)/\(l.weightType): \(format(l.outputSQNR)) dB</title></rect>\n"
            if worst.contains(l.index) {
                out += "<text x=\"\(x + bar / 2)\" y=\"\(yTop - 4)\" text-anchor=\"middle\">"
                    + "\(escape(short(l.name)))</text>\n"
            }
        }
        if allLayersSQNR.isFinite {
            out += "<line x1=\"\(left)\" y1=\"\(y(allLayersSQNR))\" x2=\"\(width - 10)\" y2=\"\(y(allLayersSQNR))\" "
                + "stroke=\"#555\" stroke-dasharray=\"4 3\"/>\n"
        }
        var lx = left
        for (name, c) in Self.colours {
            out += "<rect x=\"\(lx)\" y=\"\(top + height + 16)\" width=\"10\" height=\"10\" fill=\"\(c)\"/>"
                + "<text x=\"\(lx + 14)\" y=\"\(top + height + 25)\">weights \(name)</text>\n"
            lx += 90
        }
        out += "<text x=\"\(lx)\" y=\"\(top + height + 25)\">"
            + "dashed: all layers quantized (\(format(allLayersSQNR)) dB)</text>\n"
        return out + "</svg>\n"
    }

    public var html: String {
        var rows = ""
        for l in layers {
            let place = l.sourceLine.map { "\(l.source) at \($0):\(l.sourceColumn ?? 0)" } ?? l.source
            rows += "<tr><td>\(l.index)</td><td>\(escape(l.name))</td><td>\(escape(l.op))</td><td>\(l.inputShape) → "
                + "\(l.outputShape)</td><td>\(l.weightShape)</td><td>\(l.actType)</td><td>\(l.weightType)</td>"
                + "<td>\(format(l.outputSQNR))</td><td>\(format(l.layerSQNR))</td><td>\(escape(place))</td></tr>\n"
        }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>amct-pipe analyze</title>
            <style>body{font-family:sans-serif}table{border-collapse:collapse}
            td,th{border:1px solid #ccc;padding:2px 6px}
            td:nth-child(8),td:nth-child(9){text-align:right}</style></head>
            <body><h1>Quantization sensitivity</h1>
            <p>Output SQNR with every layer quantized: \(format(allLayersSQNR)) dB on \(samples) sample(s).
            Analysis time \(String(format: "%.2f", seconds.total)) s.</p>
            <p><img src="sensitivity.svg" alt="output SQNR per layer"></p>
            <table><thead><tr><th>#</th><th>layer</th><th>op</th><th>shapes</th><th>weight</th><th>act</th><th>wts</th>
            <th>output SQNR dB</th><th>layer SQNR dB</th><th>decided by (config line:column)</th></tr></thead>
            <tbody>
            \(rows)</tbody></table></body></html>

            """
    }

    func format(_ v: Double) -> String { formatDecibels(v) }
    func short(_ s: String) -> String { s.count <= 24 ? s : "…" + s.suffix(23) }
    func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
