import Foundation
import Graph

// `--suggest out.cfg --min-sqnr DB`: the user's config text as written plus entries raising the most sensitive
// layers until the all-layers-quantized output SQNR on the calibration data reaches the target.
//
// Steps, each layer worst first (lowest single-layer output SQNR): INT4 → INT8 (weights and activations), then
// INT8 → INT16 activations, then quant_skip_layers. A prefix of this list is a candidate config; the shortest prefix
// that reaches the target is found by bisection (the SQNR grows with the prefix, up to noise), each candidate measured
// with a full fake-quantized run; then each raised layer, least sensitive first, is lowered again (to its configured
// setting, or a smaller raise) when the target still holds without it. IFMR clips for a raised bit width come from a
// calibration run at that width, as
// compress will compute them from the written config. A layer with an override by name of its own is left as is
// (a second override of one name is an error); one set by an override by type cannot be skipped (the override wins).

public struct ConfigSuggestion: Codable, Sendable {
    public struct Change: Codable, Sendable {
        public var layer: String
        /// "int8", "act_int16" or "skip".
        public var action: String
        public var actType: String?
        public var weightType: String?
        /// The layer's output SQNR alone quantized as configured.
        public var outputSQNR: Double
    }
    public var changes: [Change]
    public var target: Double
    public var sqnrBefore: Double
    public var sqnrAfter: Double
    public var reached: Bool
    public var evaluations: Int
    public var text: String

    public func jsonData() throws -> Data { try analysisJSON(self) }

    public func summary(path: String) -> String {
        let verdict = reached ? "reaches" : "does NOT reach"
        var lines = [String(format: "suggested config %@: %d change%@, output SQNR %.2f → %.2f dB, %@ %.2f dB",
                            path, changes.count, changes.count == 1 ? "" : "s", sqnrBefore, sqnrAfter, verdict, target)]
        for c in changes { lines.append("  \(c.action.padding(toLength: 9, withPad: " ", startingAt: 0)) \(c.layer)") }
        return lines.joined(separator: "\n")
    }
}

/// One layer's settings in a candidate.
struct LayerSetting: Equatable {
    var act: BitWidth
    var wts: BitWidth
    var skipped = false
}

extension SensitivitySession {
    public func suggest(_ report: SensitivityReport, minSQNR: Double, configText: String) throws -> ConfigSuggestion {
        let steps = suggestionSteps(report)
        var evaluations = 0
        var cache: [Int: Double] = [0: report.allLayersSQNR]
        func sqnr(_ k: Int) throws -> Double {
            if let v = cache[k] { return v }
            evaluations += 1
            progress?("suggest candidate", evaluations, evaluations)
            let v = try outputSQNR(candidateParameters(settings(steps.prefix(k))))
            cache[k] = v
            return v
        }
        var chosen = 0
        if try sqnr(0) < minSQNR {
            chosen = steps.count
            if try sqnr(steps.count) >= minSQNR {
                var lo = 0, hi = steps.count  // sqnr(lo) < target ≤ sqnr(hi)
                while hi - lo > 1 {
                    let mid = (lo + hi) / 2
                    if try sqnr(mid) >= minSQNR { hi = mid } else { lo = mid }
                }
                chosen = hi
            }
        }
        var final = settings(steps.prefix(chosen))
        if try sqnr(chosen) >= minSQNR && chosen > 0 {
            let order = Array(report.ranked.map(\.index).reversed())
            final = try minimized(final, steps: Array(steps.prefix(chosen)), order: order,
                                  target: minSQNR, evaluations: &evaluations, known: &cache[chosen])
        }
        let bySQNR = Dictionary(report.layers.map { ($0.index, $0.outputSQNR) }, uniquingKeysWith: { a, _ in a })
        let changes = final.keys.sorted().map { i -> ConfigSuggestion.Change in
            let s = final[i]!
            let action = s.skipped ? "skip" : (s.act == .int16 ? "act_int16" : "int8")
            return .init(layer: plan.layers[i].layer.name, action: action, actType: s.skipped ? nil : s.act.rawValue,
                         weightType: s.skipped ? nil : s.wts.rawValue, outputSQNR: bySQNR[i] ?? .nan)
        }
        let after = cache[chosen]!
        return ConfigSuggestion(
            changes: changes, target: minSQNR, sqnrBefore: report.allLayersSQNR, sqnrAfter: after,
            reached: after >= minSQNR, evaluations: evaluations,
            text: suggestedText(configText, final, bySQNR: bySQNR, target: minSQNR, after: after))
    }

    /// Fewer raises: each raised layer, least sensitive first, goes back to its configured setting, or else to a
    /// smaller raise it had on the way, when the output SQNR stays at the target without it.
    func minimized(
        _ start: [Int: LayerSetting], steps: [(Int, LayerSetting)], order: [Int], target: Double,
        evaluations: inout Int, known: inout Double?
    ) throws -> [Int: LayerSetting] {
        var current = start
        for i in order {
            guard let final = current[i] else { continue }
            var options: [LayerSetting?] = [nil]
            for (j, s) in steps where j == i && s != final && !options.contains(s) { options.append(s) }
            for option in options {
                var trial = current
                trial[i] = option
                evaluations += 1
                progress?("suggest candidate", evaluations, evaluations)
                let v = try outputSQNR(candidateParameters(trial))
                if v >= target {
                    current = trial
                    known = v
                    break
                }
            }
        }
        return current
    }

    /// (plan index, setting) steps in the order they are tried.
    func suggestionSteps(_ report: SensitivityReport) -> [(Int, LayerSetting)] {
        // The layers the analysis may raise, most sensitive first, with their configured settings.
        var ranked: [(index: Int, source: PlanSource, setting: LayerSetting)] = []
        for i in report.ranked.map(\.index) {
            guard let d = plan.layers[i].quant else { continue }
            if case .overrideByName = d.source { continue }
            ranked.append((i, d.source, LayerSetting(act: d.act.type, wts: d.wts.type)))
        }
        var steps: [(Int, LayerSetting)] = []
        for k in ranked.indices where ranked[k].setting.act == .int4 || ranked[k].setting.wts == .int4 {
            let was = ranked[k].setting
            ranked[k].setting = LayerSetting(act: was.act == .int4 ? .int8 : was.act, wts: .int8)
            steps.append((ranked[k].index, ranked[k].setting))
        }
        for k in ranked.indices where ranked[k].setting.act != .int16 {
            ranked[k].setting.act = .int16
            steps.append((ranked[k].index, ranked[k].setting))
        }
        for k in ranked.indices {
            if case .overrideByType = ranked[k].source { continue }
            ranked[k].setting.skipped = true
            steps.append((ranked[k].index, ranked[k].setting))
        }
        return steps
    }

    /// The settings a prefix of steps leaves (the last step of a layer wins).
    func settings(_ steps: ArraySlice<(Int, LayerSetting)>) -> [Int: LayerSetting] {
        var out: [Int: LayerSetting] = [:]
        for (i, s) in steps { out[i] = s }
        return out
    }

    /// The quantization parameters of every layer under these changes (others as configured).
    func candidateParameters(_ changes: [Int: LayerSetting]) throws -> [(index: Int, q: LayerQuantParameters)] {
        var out: [(index: Int, q: LayerQuantParameters)] = []
        for (i, q) in parameters {
            guard let s = changes[i] else { out.append((i, q)); continue }
            if s.skipped { continue }
            var p = plan.layers[i]
            p.quant?.act.type = s.act
            p.quant?.wts.type = s.wts
            let clips = q.decision.act.clips == nil ? try ifmrClips(bits: s.act.bits)[i] : nil
            let q = try LayerQuantParameters.compute(p, graph: graph, calibrated: clips, forceFP16: plan.forceFP16Quant)
            out.append((i, q))
        }
        return out
    }

    /// IFMR clips of every IFMR layer at one activation width (one calibration run per width, kept).
    func ifmrClips(bits: Int) throws -> [Int: (Float, Float)] {
        let ifmr = parameters.filter { $0.q.clipsFrom == .ifmr }.map(\.index)
        if let known = clipsByBits[bits], ifmr.allSatisfy({ known[$0] != nil }) {
            return known
        }
        var context = self.context, plan = self.plan
        let type: BitWidth = bits == 4 ? .int4 : (bits == 16 ? .int16 : .int8)
        for (i, q) in parameters where q.decision.act.clips == nil { plan.layers[i].quant?.act.type = type }
        context.plan = plan
        context.calibratedClips = [:]
        var g = graph
        try CalibrationPass(data: data, batchSize: batchSize).run(&g, &context)
        clipsByBits[bits] = context.calibratedClips
        return context.calibratedClips
    }
}
