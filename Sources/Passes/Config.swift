import Graph

// The AMCT config as Swift values (SEMANTICS §1, §3): read from the text-format tree, validated, every value with
// the place it came from so errors and the plan can point at it.

/// A value and where the config wrote it.
public struct Located<Value: Sendable & Equatable>: Sendable, Equatable {
    public var value: Value
    public var location: SourceLocation
    public init(_ value: Value, _ location: SourceLocation) {
        self.value = value
        self.location = location
    }
}

public enum BitWidth: String, Sendable, Equatable, CaseIterable {
    case int4 = "INT4", int8 = "INT8", int16 = "INT16"
    public var bits: Int {
        switch self {
        case .int4: return 4
        case .int8: return 8
        case .int16: return 16
        }
    }
}

/// `ulq_quantize` of activations.
public struct ActivationQuantConfig: Sendable, Equatable {
    public var dstType: BitWidth = .int8
    /// nil: clips come from IFMR over calibration data.
    public var clipMin: Float?
    public var clipMax: Float?
    /// nil: decided per layer (true when the input comes straight from a Relu).
    public var fixedMin: Bool?
    public var location: SourceLocation?

    public init(dstType: BitWidth = .int8, clipMin: Float? = nil, clipMax: Float? = nil, fixedMin: Bool? = nil, location: SourceLocation? = nil) {
        self.dstType = dstType
        self.clipMin = clipMin
        self.clipMax = clipMax
        self.fixedMin = fixedMin
        self.location = location
    }

    /// The built-in default an override gets when it has no data config: ULQ INT8, clips from IFMR.
    public static let builtInDefault = ActivationQuantConfig()

    /// Equal ignoring where it was written.
    public func sameSettings(as other: ActivationQuantConfig) -> Bool {
        dstType == other.dstType && clipMin == other.clipMin && clipMax == other.clipMax && fixedMin == other.fixedMin
    }
}

public enum WeightAlgorithm: String, Sendable, Equatable {
    case arq = "ARQ", ulq = "ULQ"
}

/// `arq_retrain` / `ulq_retrain` of weights.
public struct WeightQuantConfig: Sendable, Equatable {
    public var algorithm: WeightAlgorithm = .arq
    public var dstType: BitWidth = .int8
    /// nil: true on convolutions, false on Gemm/MatMul.
    public var channelWise: Bool?
    public var channelWiseLocation: SourceLocation?
    public var location: SourceLocation?

    public init(algorithm: WeightAlgorithm = .arq, dstType: BitWidth = .int8, channelWise: Bool? = nil,
                channelWiseLocation: SourceLocation? = nil, location: SourceLocation? = nil) {
        self.algorithm = algorithm
        self.dstType = dstType
        self.channelWise = channelWise
        self.channelWiseLocation = channelWiseLocation
        self.location = location
    }

    /// The built-in default an override gets when it has no weight config: ARQ INT8, default channel_wise.
    public static let builtInDefault = WeightQuantConfig()

    public func sameSettings(as other: WeightQuantConfig) -> Bool {
        algorithm == other.algorithm && dstType == other.dstType && channelWise == other.channelWise
    }
}

public enum PruneKind: Sendable, Equatable {
    /// BalancedL2NormFilterPruner.
    case filter(ratio: Float, ascendOptimized: Bool)
    /// L1SelectivePruner, M4N2.
    case twoOfFour(updateFreq: UInt32)
}

public struct PruneSpec: Sendable, Equatable {
    public var kind: PruneKind
    public var location: SourceLocation
}

/// One entry of `override_layer_configs` (key = layer name) or `override_layer_types` (key = layer type).
public struct LayerOverride: Sendable, Equatable {
    public var key: Located<String>
    public var data: ActivationQuantConfig?
    public var weight: WeightQuantConfig?
    public var prune: PruneSpec?
    /// True when the override says anything about quantization.
    public var hasQuant: Bool { data != nil || weight != nil }
}

/// The six skip lists of a config: which field, whether it holds layer names or layer types, and which feature it
/// skips (SEMANTICS §2). The one table of them: the reader, layer matching and skip marking all use it.
public enum SkipList: String, CaseIterable, Sendable {
    case quantSkipLayers = "quant_skip_layers", skipLayers = "skip_layers"
    case pruneSkipLayers = "regular_prune_skip_layers"
    case quantSkipTypes = "quant_skip_types", skipLayerTypes = "skip_layer_types"
    case pruneSkipTypes = "regular_prune_skip_types"

    public enum Feature: Sendable { case quantization, pruning }

    /// The field name, as the config spells it.
    public var field: String { rawValue }
    /// Whether the entries are layer types (else layer names).
    public var namesTypes: Bool { [.quantSkipTypes, .skipLayerTypes, .pruneSkipTypes].contains(self) }
    /// The features a layer on this list goes without.
    public var skips: [Feature] {
        switch self {
        case .skipLayers, .skipLayerTypes: return [.quantization, .pruning]
        case .quantSkipLayers, .quantSkipTypes: return [.quantization]
        case .pruneSkipLayers, .pruneSkipTypes: return [.pruning]
        }
    }
    /// The lists that skip `feature`, by name or by type, feature lists before the global ones (the first list naming
    /// a layer is the one reported).
    public static func lists(skipping feature: Feature, byType: Bool) -> [SkipList] {
        allCases.filter { $0.namesTypes == byType && $0.skips.contains(feature) }
    }
}

/// The whole config.
public struct CompressionConfig: Sendable {
    public var file: String
    public var batchNum: Int = 1
    public var data: ActivationQuantConfig?
    public var weight: WeightQuantConfig?
    public var prune: PruneSpec?
    /// The entries of each skip list, in file order.
    public var skipLists: [SkipList: [Located<String>]] = [:]
    public func entries(_ list: SkipList) -> [Located<String>] { skipLists[list] ?? [] }
    public var overridesByName: [LayerOverride] = []
    public var overridesByType: [LayerOverride] = []
    public var forceFP16Quant = false
    /// Things worth saying that are not errors (duplicates inside one skip list).
    public var warnings: [Diagnostic] = []

    /// True when the config has any global quantization part.
    public var hasGlobalQuant: Bool { data != nil || weight != nil }

    /// Reads and validates a config file.
    public static func load(_ path: String) throws -> CompressionConfig {
        try parsing { try TextFormat.parse(contentsOf: path, schema: .amctRetrainConfig) }.config(file: path)
    }

    /// Reads and validates a config given as text (`file` names it in messages).
    public init(text: String, file: String = "<config text>") throws {
        self = try Self.parsing { try TextFormat.parse(text, file: file, schema: .amctRetrainConfig) }.config(file: file)
    }

    private static func parsing(_ body: () throws -> ParsedText) throws -> ParsedText {
        do {
            return try body()
        } catch let e as TextFormatErrors {
            throw ConfigErrors(errors: e.errors.map { ConfigError(.textFormat, $0.location, $0.message) })
        }
    }

    /// Builds the config from a parsed `AMCTRetrainConfig`, checking every rule of SEMANTICS §3 that needs no model.
    public init(_ m: ProtoMessage, file: String) throws {
        self.file = file
        var errors: [ConfigError] = []
        if case .uint(let n)? = m.value("batch_num") {
            if n == 0 { errors.append(ConfigError(.batchNum, m.location("batch_num"), "batch_num must be greater than 0")) }
            batchNum = Int(n)
        }
        data = m.message("retrain_data_quant_config").flatMap { Self.activation($0, &errors) }
        weight = m.message("retrain_weight_quant_config").flatMap { Self.weight($0, &errors) }
        prune = m.message("prune_config").flatMap { Self.prune($0, &errors) }
        func strings(_ name: String) -> [Located<String>] {
            guard let f = m.field(name) else { return [] }
            return zip(f.values, f.locations).compactMap { v, l in
                if case .string(let s) = v { return Located(s, l) }
                return nil
            }
        }
        for list in SkipList.allCases {
            skipLists[list] = strings(list.field)
            var seen: [String: SourceLocation] = [:]
            for item in entries(list) {
                if let first = seen[item.value] {
                    warnings.append(Diagnostic(.warning, node: nil, "\(item.location): '\(item.value)' is listed twice in \(list.field) (first at \(first.line):\(first.column))"))
                } else {
                    seen[item.value] = item.location
                }
            }
        }
        overridesByName = Self.overrides(m.field("override_layer_configs"), key: "layer_name", &errors)
        overridesByType = Self.overrides(m.field("override_layer_types"), key: "layer_type", &errors)
        for o in overridesByType {
            if !LayerTypeVocabulary.isKnown(o.key.value) {
                errors.append(LayerTypeVocabulary.unknownTypeError(o.key))
            } else if LayerTypeVocabulary.isLinearOrPooling(o.key.value), o.weight?.channelWise == true {
                errors.append(ConfigError(
                    .channelWiseOnLinear, o.weight?.channelWiseLocation ?? o.key.location,
                    "channel_wise: true on layer type '\(o.key.value)': Gemm/MatMul/Linear/InnerProduct and pooling layers have one weight scale; set channel_wise: false or leave it out"))
            }
        }
        let types = SkipList.allCases.filter(\.namesTypes).flatMap(entries)
        for t in types where !LayerTypeVocabulary.isKnown(t.value) {
            errors.append(LayerTypeVocabulary.unknownTypeError(t))
        }
        if case .enumValue(let name, _)? = m.value("fakequant_precision_mode") { forceFP16Quant = name == "FORCE_FP16_QUANT" }
        let asksSomething = hasGlobalQuant || prune != nil || (overridesByName + overridesByType).contains { $0.hasQuant || $0.prune != nil }
        if !asksSomething && errors.isEmpty {
            errors.append(ConfigError(
                .asksForNothing, SourceLocation(file: file, line: 1, column: 1),
                "the config asks for nothing: give retrain_data_quant_config / retrain_weight_quant_config, prune_config, or an override with one of them"))
        }
        if !errors.isEmpty { throw ConfigErrors(errors: errors.sorted { ($0.location.line, $0.location.column) < ($1.location.line, $1.location.column) }) }
    }

    static func activation(_ m: ProtoMessage, _ errors: inout [ConfigError]) -> ActivationQuantConfig? {
        guard let u = m.message("ulq_quantize") else { return ActivationQuantConfig(location: m.location) }
        var c = ActivationQuantConfig(location: m.location)
        if case .enumValue(let name, _)? = u.value("dst_type") { c.dstType = BitWidth(rawValue: name) ?? .int8 }
        if case .bool(let b)? = u.value("fixed_min") { c.fixedMin = b }
        if let clips = u.message("clip_max_min") {
            if case .float(let v)? = clips.value("clip_max") {
                c.clipMax = v
                if !v.isFinite {
                    errors.append(ConfigError(.clipRange, clips.location("clip_max"), nonFinite("clip_max", v)))
                } else if !(v > 0) {
                    errors.append(ConfigError(.clipRange, clips.location("clip_max"), "clip_max must be greater than 0 (it is \(v))"))
                }
            }
            if case .float(let v)? = clips.value("clip_min") {
                c.clipMin = v
                if !v.isFinite {
                    errors.append(ConfigError(.clipRange, clips.location("clip_min"), nonFinite("clip_min", v)))
                } else if !(v < 0) {
                    errors.append(ConfigError(.clipRange, clips.location("clip_min"), "clip_min must be less than 0 (it is \(v))"))
                }
            }
            if let hi = c.clipMax, let lo = c.clipMin, hi.isFinite, lo.isFinite, !(hi - lo).isFinite {
                errors.append(ConfigError(
                    .clipRange, clips.location("clip_max"),
                    "clip_max − clip_min (\(hi) − \(lo)) overflows float32, so the scale would be infinite; give a smaller range"))
            }
        }
        return c
    }

    /// The message for a float the text gave as nan, inf, or a number beyond float32 (read as ±inf).
    static func nonFinite(_ field: String, _ v: Float) -> String {
        "\(field) must be a finite number (it reads as \(v)\(v.isNaN ? "" : "; float32 reaches ±3.4028235e38")); give a finite value"
    }

    static func weight(_ m: ProtoMessage, _ errors: inout [ConfigError]) -> WeightQuantConfig? {
        var c = WeightQuantConfig(location: m.location)
        guard let (algo, w) = m.message("arq_retrain").map({ (WeightAlgorithm.arq, $0) }) ?? m.message("ulq_retrain").map({ (WeightAlgorithm.ulq, $0) }) else {
            return c
        }
        c.algorithm = algo
        if case .enumValue(let name, _)? = w.value("dst_type") {
            c.dstType = BitWidth(rawValue: name) ?? .int8
            if c.dstType == .int16 {
                errors.append(ConfigError(.weightBitWidth, w.location("dst_type"), "weights quantize to INT8 or INT4; INT16 is for activations only"))
            }
        }
        if case .bool(let b)? = w.value("channel_wise") {
            c.channelWise = b
            c.channelWiseLocation = w.location("channel_wise")
        }
        return c
    }

    static func prune(_ m: ProtoMessage, _ errors: inout [ConfigError]) -> PruneSpec? {
        if let f = m.message("filter_pruner") {
            guard let b = f.message("balanced_l2_norm_filter_prune") else {
                errors.append(ConfigError(.pruneRatio, f.location, "filter_pruner needs balanced_l2_norm_filter_prune { prune_ratio: ... }"))
                return nil
            }
            var ratio: Float = 0
            if case .float(let r)? = b.value("prune_ratio") { ratio = r }
            if !ratio.isFinite {
                errors.append(ConfigError(.pruneRatio, b.location("prune_ratio"), nonFinite("prune_ratio", ratio)))
            } else if !(ratio > 0 && ratio < 1) {
                errors.append(ConfigError(.pruneRatio, b.location("prune_ratio"), "prune_ratio must be between 0 and 1, exclusive (it is \(ratio))"))
            }
            var ascend = true
            if case .bool(let a)? = b.value("ascend_optimized") { ascend = a }
            return PruneSpec(kind: .filter(ratio: ratio, ascendOptimized: ascend), location: m.location)
        }
        if let n = m.message("n_out_of_m_pruner") {
            var freq: UInt32 = 0
            if let l = n.message("l1_selective_prune"), case .uint(let u)? = l.value("update_freq") { freq = UInt32(u) }
            return PruneSpec(kind: .twoOfFour(updateFreq: freq), location: m.location)
        }
        errors.append(ConfigError(.pruneRatio, m.location, "prune_config needs filter_pruner or n_out_of_m_pruner"))
        return nil
    }

    static func overrides(_ field: ProtoField?, key: String, _ errors: inout [ConfigError]) -> [LayerOverride] {
        guard let field else { return [] }
        var result: [LayerOverride] = []
        var seen: [String: SourceLocation] = [:]
        for value in field.values {
            guard case .message(let m) = value, case .string(let k)? = m.value(key) else { continue }
            let located = Located(k, m.location(key))
            if let first = seen[k] {
                errors.append(ConfigError(
                    .duplicateOverride, located.location,
                    "\(field.name) names '\(k)' twice (first at \(first.line):\(first.column)); merge them into one"))
                continue
            }
            seen[k] = located.location
            result.append(LayerOverride(
                key: located,
                data: m.message("retrain_data_quant_config").flatMap { activation($0, &errors) },
                weight: m.message("retrain_weight_quant_config").flatMap { weight($0, &errors) },
                prune: m.message("prune_config").flatMap { prune($0, &errors) }))
        }
        return result
    }
}

extension ParsedText {
    func config(file: String) throws -> CompressionConfig { try CompressionConfig(message, file: file) }
}
