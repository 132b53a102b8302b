import Foundation
import Graph

// The text of a suggested config: the user's file unchanged, then one commented entry per raised layer
// (`override_layer_configs` repeating the layer's activation and weight settings with the raised types, since an
// override does not inherit the global config; `quant_skip_layers` for a skip).

extension SensitivitySession {
    func suggestedText(_ original: String, _ changes: [Int: LayerSetting], bySQNR: [Int: Double], target: Double,
                       after: Double) -> String {
        var text = original
        if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        guard !changes.isEmpty else { return text }
        text += "\n# amct-pipe analyze --suggest: \(changes.count) layer(s) raised for an output SQNR of at least "
            + String(format: "%.2f dB (measured %.2f dB on the calibration data)\n", target, after)
        for i in changes.keys.sorted() {
            guard let s = changes[i], let p = plan.layers[i].quant else { continue }
            let layer = plan.layers[i].layer
            let name = TextFormatWriter.quoted(layer.name)
            let was = "\(p.act.type.rawValue)/\(p.wts.type.rawValue)"
            text += String(format: "# %@: output SQNR %.2f dB with this layer alone quantized as %@\n",
                           layer.name.replacingOccurrences(of: "\n", with: " "), bySQNR[i] ?? .nan, was)
            if s.skipped {
                text += "quant_skip_layers: \(name)\n"
                continue
            }
            let act = p.act, wts = p.wts
            var ulq: [String] = []
            if let c = act.clips { ulq.append("clip_max_min: { clip_max: \(c.max) clip_min: \(c.min) }") }
            if act.fixedMinOrigin == .config { ulq.append("fixed_min: \(act.fixedMin)") }
            ulq.append("dst_type: \(s.act.rawValue)")
            let algo = wts.algorithm == .ulq ? "ulq_retrain" : "arq_retrain"
            let weight = "\(algo): { channel_wise: \(wts.channelWise) dst_type: \(s.wts.rawValue) }"
            text += """
                override_layer_configs: {
                    layer_name: \(name)
                    retrain_data_quant_config: { ulq_quantize: { \(ulq.joined(separator: " ")) } }
                    retrain_weight_quant_config: { \(weight) }
                }

                """
        }
        return text
    }
}

extension SensitivitySession {
    /// Plans the model under the written suggestion and checks that every layer gets what the suggestion measured:
    /// the raised layers their new widths (or no quantization), every other layer its settings as before.
    public func verify(_ suggestion: ConfigSuggestion, config: CompressionConfig, model: consuming Model) throws {
        var m = model
        let planned = try Passes.plan(&m, config: config).plan?.layers ?? []
        let changes = Dictionary(suggestion.changes.map { ($0.layer, $0) }, uniquingKeysWith: { a, _ in a })
        guard planned.count == plan.layers.count else {
            throw PassError(node: config.file,
                            "the suggested config plans \(planned.count) layers, not \(plan.layers.count)")
        }
        for (was, now) in zip(plan.layers, planned) {
            let name = was.layer.name
            let want: (Bool, BitWidth?, BitWidth?)
            if let c = changes[name] {
                want = (c.action != "skip", c.actType.flatMap(BitWidth.init(rawValue:)),
                        c.weightType.flatMap(BitWidth.init(rawValue:)))
            } else {
                want = (was.quant != nil, was.quant?.act.type, was.quant?.wts.type)
            }
            let got = (now.quant != nil, now.quant?.act.type, now.quant?.wts.type)
            let expected = (want.0, want.0 ? want.1 : nil, want.0 ? want.2 : nil)
            guard got.0 == expected.0, got.1 == expected.1, got.2 == expected.2 else {
                throw PassError(node: name, "the suggested config (\(config.file)) plans it as \(describe(got)), "
                    + "not \(describe(expected)) as measured (\(now.quantSource))")
            }
        }
    }

    private func describe(_ s: (Bool, BitWidth?, BitWidth?)) -> String {
        s.0 ? "\(s.1?.rawValue ?? "?")/\(s.2?.rawValue ?? "?")" : "not quantized"
    }
}
