import Graph

/// Why a layer gets (or does not get) a feature.
public enum PlanSource: Sendable, Equatable, CustomStringConvertible {
    case global
    case overrideByName(SourceLocation)
    case overrideByType(String, SourceLocation)
    case skippedByName(list: String, SourceLocation)
    case skippedByType(list: String, type: String, SourceLocation)
    /// Neither a global config nor an override asks for it.
    case notConfigured
    /// The layer cannot take it (e.g. filter pruning on a depthwise conv); for pruning, the kind that was asked for.
    case notApplicable(String, asked: PruneKind? = nil)

    public var description: String {
        switch self {
        case .global: return "global"
        case .overrideByName(let l): return "override by name (\(l.line):\(l.column))"
        case .overrideByType(let t, let l): return "override by type \(t) (\(l.line):\(l.column))"
        case .skippedByName(let list, let l): return "skipped by \(list) (\(l.line):\(l.column))"
        case .skippedByType(let list, let t, let l): return "skipped by \(list) \(t) (\(l.line):\(l.column))"
        case .notConfigured: return "not configured"
        case .notApplicable(let why, _): return "n/a: \(why)"
        }
    }

    /// A short stable key for JSON.
    public var key: String {
        switch self {
        case .global: return "global"
        case .overrideByName: return "override_by_name"
        case .overrideByType: return "override_by_type"
        case .skippedByName(let list, _): return "skipped_by_name:\(list)"
        case .skippedByType(let list, _, _): return "skipped_by_type:\(list)"
        case .notConfigured: return "not_configured"
        case .notApplicable: return "not_applicable"
        }
    }
}

/// Where a layer's activation clips come from: the config, IFMR (calibration), or retraining.
public enum ClipOrigin: String, Sendable, Equatable, Codable {
    case config, ifmr, retrained
}

/// Why fixed_min is what it is: the config says so, or the default from the layer's input producer.
public enum FixedMinOrigin: String, Sendable, Equatable {
    case config = "config"
    case inputFromRelu = "default: input from Relu"
    case inputNotFromRelu = "default: input not from Relu"
}

/// Activation clips as a pair that is either given or not.
public struct Clips: Sendable, Equatable {
    public var min: Float
    public var max: Float
    public init(min: Float, max: Float) {
        self.min = min
        self.max = max
    }
}

public struct ActivationPlan: Sendable, Equatable {
    public var type: BitWidth
    /// The config's clips; nil when calibration (IFMR) must find them.
    public var clips: Clips?
    public var fixedMin: Bool
    public var fixedMinOrigin: FixedMinOrigin

    public init(type: BitWidth, clips: Clips?, fixedMin: Bool, fixedMinOrigin: FixedMinOrigin) {
        self.type = type
        self.clips = clips
        self.fixedMin = fixedMin
        self.fixedMinOrigin = fixedMinOrigin
    }

    /// `.config` when the config gives the clips, `.ifmr` when calibration must find them.
    public var initialization: ClipOrigin { clips != nil ? .config : .ifmr }
}

public struct WeightPlan: Sendable, Equatable {
    public var algorithm: WeightAlgorithm
    public var type: BitWidth
    public var channelWise: Bool
    /// Adjustments made for this layer (INT4 fallback, channel_wise on a Gemm).
    public var notes: [String]
}

/// A layer is quantized: why (global config or an override), and how.
public struct QuantDecision: Sendable, Equatable {
    public var source: PlanSource
    public var act: ActivationPlan
    public var wts: WeightPlan
}

/// A layer is pruned: why (global config or an override), and how.
public struct PruneDecision: Sendable, Equatable {
    public var source: PlanSource
    public var kind: PruneKind
}

/// What the plan does to one layer. A nil decision means the feature is not done; `floatReason` /
/// `unprunedReason` say why (skipped, not configured, not applicable) and are read only then.
public struct LayerPlan: Sendable, Equatable {
    public var layer: Layer
    public var quant: QuantDecision?
    public var prune: PruneDecision?
    public var floatReason: PlanSource
    public var unprunedReason: PlanSource

    public init(layer: Layer, quant: QuantDecision?, prune: PruneDecision?,
                floatReason: PlanSource = .notConfigured, unprunedReason: PlanSource = .notConfigured) {
        self.layer = layer
        self.quant = quant
        self.prune = prune
        self.floatReason = floatReason
        self.unprunedReason = unprunedReason
    }

    /// Why the layer is (or is not) quantized.
    public var quantSource: PlanSource { quant?.source ?? floatReason }
    /// Why the layer is (or is not) pruned.
    public var pruneSource: PlanSource { prune?.source ?? unprunedReason }

    /// Leaves the layer float, saying why.
    public mutating func leaveFloat(because reason: PlanSource) {
        quant = nil
        floatReason = reason
    }

    /// The filter-pruning parameters, when the layer is filter-pruned.
    public var filterPruning: (ratio: Float, ascendOptimized: Bool)? {
        if case .filter(let r, let a)? = prune?.kind { return (r, a) }
        return nil
    }

    /// The 2:4 update frequency, when the layer is 2:4-pruned.
    public var twoOfFourFrequency: UInt32? {
        if case .twoOfFour(let f)? = prune?.kind { return f }
        return nil
    }
}

/// What the pipeline will do to each layer, and why.
public struct Plan: Sendable {
    public var layers: [LayerPlan]
    public var forceFP16Quant: Bool
    public var batchNum: Int

    public func layer(named name: String) -> LayerPlan? { layers.first { $0.layer.names.contains(name) } }

    /// The quantized layers with their plan index.
    public var quantized: [(index: Int, plan: LayerPlan, decision: QuantDecision)] {
        layers.enumerated().compactMap { i, p in p.quant.map { (i, p, $0) } }
    }
}
