import Graph

// Skip marking: which layers each feature leaves alone, and which list said so.
//
//   before: context.layers, config skip lists
//   after:  context.quantSkips[i] / context.pruneSkips[i] = (list, entry, place)
//
// Quantization skips = quant_skip_layers ∪ skip_layers, by type quant_skip_types ∪ skip_layer_types;
// pruning skips = regular_prune_skip_layers ∪ skip_layers, by type regular_prune_skip_types ∪ skip_layer_types.
// The first list that names a layer is the one reported (feature lists before the global ones).

public struct SkipMarkingPass: ConfigPass {
    public let name = "mark-skips"
    public var requirements: [PassRequirement] { [.config, .layers] }
    public var provides: [PassRequirement] { [.skips] }
    public init() {}

    public func run(_ graph: inout Graph, config: CompressionConfig, _ context: inout PassContext) throws {
        func mark(_ feature: SkipList.Feature) -> [Int: SkipReason] {
            var result: [Int: SkipReason] = [:]
            for list in SkipList.lists(skipping: feature, byType: false) {
                for n in config.entries(list) {
                    if let i = context.layerForName[n.value], result[i] == nil {
                        result[i] = SkipReason(list: list.field, type: nil, location: n.location)
                    }
                }
            }
            for list in SkipList.lists(skipping: feature, byType: true) {
                for t in config.entries(list) {
                    for (i, layer) in context.layers.enumerated() where result[i] == nil && LayerTypeVocabulary.matches(t.value, layer) {
                        result[i] = SkipReason(list: list.field, type: t.value, location: t.location)
                    }
                }
            }
            return result
        }
        context.quantSkips = mark(.quantization)
        context.pruneSkips = mark(.pruning)
        context.log.append((name, "\(context.quantSkips.count) layers skip quantization, \(context.pruneSkips.count) skip pruning"))
    }
}
