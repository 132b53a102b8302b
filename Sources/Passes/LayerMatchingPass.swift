import Graph

// Layer matching: find the quantizable/prunable layers and resolve every layer name the config uses.
//
//   before: graph, config with names ("layer1.0.conv1", "/fc/Gemm", "conv2.weight"'s module)
//   after:  context.layers = [Layer] in graph order; context.layerForName["layer1.0.conv1"] = index
//
// A name matches a layer when it equals the node's name, the PyTorch module name recovered from the node's scopes
// (`/layer1/layer1.0/conv1/Conv` → `layer1.0.conv1`), or the weight's name without `.weight`. A name that matches
// no layer, or several, is an error at its place in the config; a type that matches no layer here is a warning.

public struct LayerMatchingPass: ConfigPass {
    public let name = "match-layers"
    public var requirements: [PassRequirement] { [.config] }
    public var provides: [PassRequirement] { [.layers] }
    public init() {}

    public func run(_ graph: inout Graph, config: CompressionConfig, _ context: inout PassContext) throws {
        let layers = try Layer.find(in: graph)
        let index = LayerNameIndex(layers)
        var errors: [ConfigError] = []
        var resolved: [String: Int] = [:]
        let named: [(String, [Located<String>])] = SkipList.allCases.filter { !$0.namesTypes }.map { ($0.field, config.entries($0)) }
            + [("override_layer_configs.layer_name", config.overridesByName.map(\.key))]
        for (field, names) in named {
            for name in names {
                do {
                    resolved[name.value] = try index.resolve(name, field: field)
                } catch let e as ConfigError {
                    errors.append(e)
                }
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors: errors) }
        let types = SkipList.allCases.filter(\.namesTypes).flatMap(config.entries) + config.overridesByType.map(\.key)
        for type in types where !layers.contains(where: { LayerTypeVocabulary.matches(type.value, $0) }) {
            context.warn("\(type.location): layer type '\(type.value)' matches no layer of this model")
        }
        context.layers = layers
        context.layerForName = resolved
        context.log.append((name, "\(layers.count) layers; \(resolved.count) config names resolved"))
    }
}
