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
    /// The layer cannot take it (e.g. filter pruning on a depthwise conv).
    case notApplicable(String)

    public var description: String {
        switch self {
        case .global: return "global"
        case .overrideByName(let l): return "override by name (\(l.line):\(l.column))"
        case .overrideByType(let t, let l): return "override by type \(t) (\(l.line):\(l.column))"
        case .skippedByName(let list, let l): return "skipped by \(list) (\(l.line):\(l.column))"
        case .skippedByType(let list, let t, let l): return "skipped by \(list) \(t) (\(l.line):\(l.column))"
        case .notConfigured: return "not configured"
        case .notApplicable(let why): return "n/a: \(why)"
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

public struct ActivationPlan: Sendable, Equatable {
    public var type: BitWidth
    public var clipMin: Float?
    public var clipMax: Float?
    /// "config" when clips are given, "ifmr" when calibration must find them.
    public var initialization: String { clipMin != nil ? "config" : "ifmr" }
    public var fixedMin: Bool
    /// Where fixed_min came from: "config", or "default: input from Relu" / "default: input not from Relu".
    public var fixedMinReason: String
}

public struct WeightPlan: Sendable, Equatable {
    public var algorithm: WeightAlgorithm
    public var type: BitWidth
    public var channelWise: Bool
    /// Adjustments made for this layer (INT4 fallback, channel_wise on a Gemm).
    public var notes: [String]
}

public struct QuantPlan: Sendable, Equatable {
    public var enabled: Bool
    public var source: PlanSource
    public var act: ActivationPlan?
    public var wts: WeightPlan?
}

public struct PrunePlan: Sendable, Equatable {
    public var enabled: Bool
    public var source: PlanSource
    public var kind: PruneKind?
}

public struct LayerPlan: Sendable, Equatable {
    public var layer: Layer
    public var quant: QuantPlan
    public var prune: PrunePlan
}

/// What the pipeline will do to each layer, and why.
public struct Plan: Sendable {
    public var layers: [LayerPlan]
    public var forceFP16Quant: Bool
    public var batchNum: Int

    public func layer(named name: String) -> LayerPlan? { layers.first { $0.layer.names.contains(name) } }
}
