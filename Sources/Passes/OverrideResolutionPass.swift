import Graph

// Override resolution: the per-layer plan (SEMANTICS §3).
//
//   before: context.layers, skips, config (global parts, overrides by name and by type)
//   after:  context.plan.layers[i] = { quant: nil (float: floatReason) | {source, act {type, clips | IFMR, fixed_min},
//                                       wts {algo, type, channel_wise}}; prune: nil (unprunedReason) | {source, kind} }
//
// Quantization, first match wins: override by name → override by type → skipped → global → not quantized. An
// override quantizes a skipped layer, and does not inherit the global config: a missing data part is ULQ INT8 with
// IFMR clips, a missing weight part ARQ INT8 (a warning says so when the global differs). An override that says
// nothing about quantization (only prune_config) takes no part in this.
// Pruning: skipped → override by name → override by type → global; skips win over overrides.
// Per layer: fixed_min unset → true when the input comes straight from a Relu; channel_wise unset → true on
// convolutions, false on Gemm/MatMul; INT4 weights on a grouped conv or with an odd input-channel count → INT8.

public struct OverrideResolutionPass: ConfigPass {
    public let name = "resolve-overrides"
    public var requirements: [PassRequirement] { [.config, .layers, .skips] }
    public var provides: [PassRequirement] { [.plan] }
    public init() {}

    public func run(_ graph: inout Graph, config: CompressionConfig, _ context: inout PassContext) throws {
        var errors: [ConfigError] = []
        var warnedOverrides = Set<String>()
        var layerPlans: [LayerPlan] = []
        // The first override by name of each layer, found once (not per layer).
        var overrideOfLayer: [Int: LayerOverride] = [:]
        for o in config.overridesByName {
            if let i = context.layerForName[o.key.value], overrideOfLayer[i] == nil { overrideOfLayer[i] = o }
        }
        for (i, layer) in context.layers.enumerated() {
            let byName = overrideOfLayer[i]
            let byType = config.overridesByType.first { LayerTypeVocabulary.matches($0.key.value, layer) }

            // Quantization.
            var plan = LayerPlan(layer: layer, quant: nil, prune: nil)
            var asked: (PlanSource, ActivationQuantConfig, WeightQuantConfig)?
            if let o = byName, o.hasQuant {
                let (data, weight) = overrideParts(o, config, &warnedOverrides, &context)
                asked = (.overrideByName(o.key.location), data, weight)
            } else if let o = byType, o.hasQuant {
                let (data, weight) = overrideParts(o, config, &warnedOverrides, &context)
                asked = (.overrideByType(o.key.value, o.key.location), data, weight)
            } else if let skip = context.quantSkips[i] {
                plan.floatReason = skip.source
            } else if config.hasGlobalQuant {
                asked = (.global, config.data ?? .builtInDefault, config.weight ?? .builtInDefault)
            }
            if let (source, data, weight) = asked {
                do {
                    let wts = try weightPlan(weight, layer, fromOverride: source != .global, &context)
                    plan.quant = QuantDecision(source: source, act: activationPlan(data, layer), wts: wts)
                } catch let e as ConfigError {
                    errors.append(e)
                }
            }

            // Pruning.
            if let skip = context.pruneSkips[i] {
                plan.unprunedReason = skip.source
            } else if let o = byName, let spec = o.prune {
                plan.prune = PruneDecision(source: .overrideByName(o.key.location), kind: spec.kind)
            } else if let o = byType, let spec = o.prune {
                plan.prune = PruneDecision(source: .overrideByType(o.key.value, o.key.location), kind: spec.kind)
            } else if let spec = config.prune {
                plan.prune = PruneDecision(source: .global, kind: spec.kind)
            }
            if let kind = plan.prune?.kind, let why = Self.cannotPrune(layer, kind) {
                plan.prune = nil
                plan.unprunedReason = .notApplicable(why, asked: kind)
            }
            layerPlans.append(plan)
        }
        if !errors.isEmpty { throw ConfigErrors(errors: errors) }
        context.plan = Plan(layers: layerPlans, forceFP16Quant: config.forceFP16Quant, batchNum: config.batchNum)
        let quantized = layerPlans.filter { $0.quant != nil }.count
        let pruned = layerPlans.filter { $0.prune != nil }.count
        context.log.append((name, "\(quantized) of \(layerPlans.count) layers quantized, \(pruned) pruned"))
    }

    /// Why `layer` cannot take pruning of `kind`, or nil when it can.
    static func cannotPrune(_ layer: Layer, _ kind: PruneKind) -> String? {
        switch kind {
        case .filter where !layer.isFilterPrunable: return "filter pruning needs a 2-D Conv with group 1, a Gemm or a MatMul"
        case .twoOfFour where !layer.isTwoOfFourPrunable: return "2:4 pruning needs a 2-D Conv/ConvTranspose, a Gemm or a MatMul"
        default: return nil
        }
    }

    /// The activation part: the config's clips (or IFMR), fixed_min from the config or from the input's producer.
    private func activationPlan(_ data: ActivationQuantConfig, _ layer: Layer) -> ActivationPlan {
        let fromRelu = layer.inputProducerOp == "Relu"
        var clips: Clips?
        if let lo = data.clipMin, let hi = data.clipMax { clips = Clips(min: lo, max: hi) }
        let origin: FixedMinOrigin = data.fixedMin != nil ? .config : (fromRelu ? .inputFromRelu : .inputNotFromRelu)
        return ActivationPlan(type: data.dstType, clips: clips, fixedMin: data.fixedMin ?? fromRelu, fixedMinOrigin: origin)
    }

    /// An override's data and weight parts; a missing one is the built-in default, with a warning (once per
    /// override) when the global config says otherwise.
    private func overrideParts(
        _ o: LayerOverride, _ config: CompressionConfig, _ warned: inout Set<String>, _ context: inout PassContext
    ) -> (ActivationQuantConfig, WeightQuantConfig) {
        let key = "\(o.key.location)"
        if !warned.contains(key) {
            warned.insert(key)
            if o.data == nil, let global = config.data, !global.sameSettings(as: .builtInDefault) {
                context.warn("\(o.key.location): override '\(o.key.value)' has no retrain_data_quant_config, so it uses the built-in default (ULQ INT8, clips from IFMR), not the global config (an override does not inherit)")
            }
            if o.weight == nil, let global = config.weight, !global.sameSettings(as: .builtInDefault) {
                context.warn("\(o.key.location): override '\(o.key.value)' has no retrain_weight_quant_config, so it uses the built-in default (ARQ INT8), not the global config (an override does not inherit)")
            }
        }
        return (o.data ?? .builtInDefault, o.weight ?? .builtInDefault)
    }

    private func weightPlan(_ w: WeightQuantConfig, _ layer: Layer, fromOverride: Bool, _ context: inout PassContext) throws -> WeightPlan {
        var plan = WeightPlan(algorithm: w.algorithm, type: w.dstType, channelWise: w.channelWise ?? layer.isConvolution, notes: [])
        if !layer.isConvolution && w.channelWise == true {
            if fromOverride {
                throw ConfigError(
                    .channelWiseOnLinear, w.channelWiseLocation ?? w.location ?? SourceLocation(file: "", line: 0, column: 0),
                    "channel_wise: true on \(layer.op.rawValue) layer '\(layer.name)': it has one weight scale; set channel_wise: false or leave it out")
            }
            plan.channelWise = false
            plan.notes.append("global channel_wise ignored: \(layer.op.rawValue) has one weight scale")
        }
        if plan.type == .int4 {
            var reason: String?
            if layer.group > 1 { reason = "grouped/depthwise conv (group \(layer.group))" }
            else if layer.inputChannels % 2 != 0 { reason = "odd input-channel count (\(layer.inputChannels))" }
            if let reason {
                plan.type = .int8
                plan.notes.append("INT4 weights fall back to INT8: \(reason)")
                context.warn("INT4 weights fall back to INT8: \(reason)", node: layer.name)
            }
        }
        return plan
    }
}
