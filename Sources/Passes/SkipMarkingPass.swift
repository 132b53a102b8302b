import Graph

// Skip marking: which layers each feature leaves alone, and which list said so.
//
//   before: context.layers, config skip lists
//   after:  context.quantSkips[i] / context.pruneSkips[i] = (list, entry, place)
//
// Quantization skips = quant_skip_layers ∪ skip_layers, by type quant_skip_types ∪ skip_layer_types;
// pruning skips = regular_prune_skip_layers ∪ skip_layers, by type regular_prune_skip_types ∪ skip_layer_types.
// The first list that names a layer is the one reported (feature lists before the global ones).

public struct SkipMarkingPass: Pass {
    public let name = "mark-skips"
    public init() {}

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        guard let config = context.config else { return }
        func mark(byName: [(String, [Located<String>])], byType: [(String, [Located<String>])]) -> [Int: SkipReason] {
            var result: [Int: SkipReason] = [:]
            for (list, names) in byName {
                for n in names {
                    if let i = context.layerForName[n.value], result[i] == nil {
                        result[i] = SkipReason(list: list, type: nil, location: n.location)
                    }
                }
            }
            for (list, types) in byType {
                for t in types {
                    for (i, layer) in context.layers.enumerated() where result[i] == nil && LayerTypeVocabulary.matches(t.value, layer) {
                        result[i] = SkipReason(list: list, type: t.value, location: t.location)
                    }
                }
            }
            return result
        }
        context.quantSkips = mark(
            byName: [("quant_skip_layers", config.quantSkipLayers), ("skip_layers", config.skipLayers)],
            byType: [("quant_skip_types", config.quantSkipTypes), ("skip_layer_types", config.skipLayerTypes)])
        context.pruneSkips = mark(
            byName: [("regular_prune_skip_layers", config.pruneSkipLayers), ("skip_layers", config.skipLayers)],
            byType: [("regular_prune_skip_types", config.pruneSkipTypes), ("skip_layer_types", config.skipLayerTypes)])
        context.log.append((name, "\(context.quantSkips.count) layers skip quantization, \(context.pruneSkips.count) skip pruning"))
    }
}
