import Graph

// Override resolution: the per-layer plan (SEMANTICS §3).
//
//   before: context.layers, skips, config (global parts, overrides by name and by type)
//   after:  context.plan.layers[i] = { quant: enabled, source, act {type, clips | IFMR, fixed_min}, wts {algo, type,
//                                       channel_wise}; prune: enabled, source, kind }
//
// Quantization, first match wins: override by name → override by type → skipped → global → not quantized. An
// override quantizes a skipped layer, and does not inherit the global config: a missing data part is ULQ INT8 with
// IFMR clips, a missing weight part ARQ INT8 (a warning says so when the global differs). An override that says
// nothing about quantization (only prune_config) takes no part in this.
// Pruning: skipped → override by name → override by type → global; skips win over overrides.
// Per layer: fixed_min unset → true when the input comes straight from a Relu; channel_wise unset → true on
// convolutions, false on Gemm/MatMul; INT4 weights on a grouped conv or with an odd input-channel count → INT8.

public struct OverrideResolutionPass: Pass {
    public let name = "resolve-overrides"
    public var requirements: [PassRequirement] { [.config, .layers, .skips] }
    public var provides: [PassRequirement] { [.plan] }
    public init() {}

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        guard let config = context.config else { throw PipelineError(pass: name, missing: .config) }
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
            var quant = QuantPlan(enabled: false, source: .notConfigured, act: nil, wts: nil)
            var parts: (ActivationQuantConfig, WeightQuantConfig)?
            if let o = byName, o.hasQuant {
                quant.source = .overrideByName(o.key.location)
                parts = overrideParts(o, config, &warnedOverrides, &context)
            } else if let o = byType, o.hasQuant {
                quant.source = .overrideByType(o.key.value, o.key.location)
                parts = overrideParts(o, config, &warnedOverrides, &context)
            } else if let skip = context.quantSkips[i] {
                quant.source = skip.source
            } else if config.hasGlobalQuant {
                quant.source = .global
                parts = (config.data ?? .builtInDefault, config.weight ?? .builtInDefault)
            }
            if let (data, weight) = parts {
                quant.enabled = true
                let fromRelu = layer.inputProducerOp == "Relu"
                quant.act = ActivationPlan(
                    type: data.dstType, clipMin: data.clipMin, clipMax: data.clipMax,
                    fixedMin: data.fixedMin ?? fromRelu,
                    fixedMinReason: data.fixedMin != nil ? "config" : (fromRelu ? "default: input from Relu" : "default: input not from Relu"))
                do {
                    quant.wts = try weightPlan(weight, layer, fromOverride: quant.source != .global, &context)
                } catch let e as ConfigError {
                    errors.append(e)
                }
            }

            // Pruning.
            var prune = PrunePlan(enabled: false, source: .notConfigured, kind: nil)
            if let skip = context.pruneSkips[i] {
                prune.source = skip.source
            } else if let o = byName, let spec = o.prune {
                prune = PrunePlan(enabled: true, source: .overrideByName(o.key.location), kind: spec.kind)
            } else if let o = byType, let spec = o.prune {
                prune = PrunePlan(enabled: true, source: .overrideByType(o.key.value, o.key.location), kind: spec.kind)
            } else if let spec = config.prune {
                prune = PrunePlan(enabled: true, source: .global, kind: spec.kind)
            }
            if prune.enabled, let kind = prune.kind {
                switch kind {
                case .filter where !layer.isFilterPrunable:
                    prune = PrunePlan(enabled: false, source: .notApplicable("filter pruning needs a 2-D Conv with group 1, a Gemm or a MatMul"), kind: kind)
                case .twoOfFour where !layer.isTwoOfFourPrunable:
                    prune = PrunePlan(enabled: false, source: .notApplicable("2:4 pruning needs a 2-D Conv/ConvTranspose, a Gemm or a MatMul"), kind: kind)
                default:
                    break
                }
            }
            layerPlans.append(LayerPlan(layer: layer, quant: quant, prune: prune))
        }
        if !errors.isEmpty { throw ConfigErrors(errors: errors) }
        context.plan = Plan(layers: layerPlans, forceFP16Quant: config.forceFP16Quant, batchNum: config.batchNum)
        let quantized = layerPlans.filter(\.quant.enabled).count
        let pruned = layerPlans.filter(\.prune.enabled).count
        context.log.append((name, "\(quantized) of \(layerPlans.count) layers quantized, \(pruned) pruned"))
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
