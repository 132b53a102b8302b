import Graph

/// A named step that rewrites or analyses the graph. Passes share what they need through the context, and say what
/// they need and what they provide, so a pipeline can refuse, before any work, a pass whose input nothing provides.
public protocol Pass {
    var name: String { get }
    /// What the pass reads from the context; the pipeline checks each before running the pass.
    var requirements: [PassRequirement] { get }
    /// What the pass leaves on the context for later passes.
    var provides: [PassRequirement] { get }
    /// Whether the pass replaces layer weights, changes their shapes or group counts, or moves their outputs; the
    /// pipeline then recomputes the layers (`PassContext.refreshLayers`), so no later pass reads stale geometry.
    var changesLayers: Bool { get }
    func run(_ graph: inout Graph, _ context: inout PassContext) throws
}

extension Pass {
    public var requirements: [PassRequirement] { [] }
    public var provides: [PassRequirement] { [] }
    public var changesLayers: Bool { false }
}

/// A pass that works from the config: it declares `.config` among its requirements and is handed the config.
public protocol ConfigPass: Pass {
    func run(_ graph: inout Graph, config: CompressionConfig, _ context: inout PassContext) throws
}

extension ConfigPass {
    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        // The one place the config is unwrapped: `Pipeline.check` has made sure it is there.
        guard let config = context.config else { throw PipelineError(pass: name, missing: .config) }
        try run(&graph, config: config, &context)
    }
}

/// A pass that works from the plan: it declares `.plan` among its requirements, the pipeline checks that before any
/// pass runs, and hands the plan to `run(_:plan:_:)`, never an optional.
public protocol PlanPass: Pass {
    func run(_ graph: inout Graph, plan: Plan, _ context: inout PassContext) throws
}

extension PlanPass {
    public var requirements: [PassRequirement] { [.plan] }

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        // The one place the plan is unwrapped: `Pipeline.check` has made sure it is there.
        guard let plan = context.plan else { throw PipelineError(pass: name, missing: .plan) }
        try run(&graph, plan: plan, &context)
    }
}

/// Something a pass needs on the context, and the pass that provides it in the default pipelines.
public enum PassRequirement: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The parsed config (`PassContext.config`).
    case config
    /// The quantizable/prunable layers and the config names resolved to them.
    case layers
    /// Which layers each feature skips.
    case skips
    /// The per-layer plan.
    case plan
    /// Activation clips for every quantized layer whose config gives none (IFMR, or retraining).
    case clips
    /// The numbers every output layout uses (scales, offsets, integer weights), per quantized layer.
    case quantParameters

    public var description: String {
        switch self {
        case .config: return "a config (PassContext.config)"
        case .layers: return "the layers (from \(LayerMatchingPass().name))"
        case .skips: return "the skip lists resolved to layers (from \(SkipMarkingPass().name))"
        case .plan: return "a plan (from \(OverrideResolutionPass().name))"
        case .clips: return "activation clips (from \(CalibrationPass(data: nil).name))"
        case .quantParameters: return "quantization parameters (from \(QuantParametersPass().name))"
        }
    }

    /// Whether the context holds it: provided by a pass that ran, or present as data (a context built by hand).
    func isMet(by context: PassContext) -> Bool {
        if context.provided.contains(self) { return true }
        switch self {
        case .config: return context.config != nil
        case .plan: return context.plan != nil
        case .clips: return context.plan.map { p in !p.quantized.contains { $0.decision.act.clips == nil } } ?? false
        case .layers, .skips, .quantParameters: return false
        }
    }
}

/// A warning or note about one node (or the whole model when `node` is nil).
public struct Diagnostic: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable { case warning, note }
    public var severity: Severity
    public var node: String?
    public var message: String
    public init(_ severity: Severity, node: String?, _ message: String) {
        self.severity = severity
        self.node = node
        self.message = message
    }
    public var description: String { "\(severity.rawValue): \(node.map { "\($0): " } ?? "")\(message)" }
}

/// Why a layer is skipped for one feature: the list and the entry that named it.
public struct SkipReason: Sendable, Equatable {
    public var list: String
    /// The type that matched, when the list is of types.
    public var type: String?
    public var location: SourceLocation
    public var source: PlanSource {
        if let type { return .skippedByType(list: list, type: type, location) }
        return .skippedByName(list: list, location)
    }
}

/// What passes share: the model's opsets, options, diagnostics, the config, the layers it names and the plan.
public struct PassContext {
    public var opsetImports: [OpsetImport]
    public var diagnostics: [Diagnostic] = []
    public var config: CompressionConfig?
    /// What passes that ran have provided (see `PassRequirement`).
    public var provided: Set<PassRequirement> = []
    /// The quantizable/prunable layers (set by layer matching, refreshed after a pass that changes them).
    public var layers: [Layer] = []
    /// Which layer each name in the config means (set by layer matching).
    public var layerForName: [String: Int] = [:]
    /// Per layer index: why it is skipped for quantization / for pruning (set by skip marking).
    public var quantSkips: [Int: SkipReason] = [:]
    public var pruneSkips: [Int: SkipReason] = [:]
    /// The per-layer plan (set by override resolution).
    public var plan: Plan?
    /// Activation clips (min, max) found by calibration, by layer index (IFMR).
    public var calibratedClips: [Int: (Float, Float)] = [:]
    /// Activation clips (min, max) and WtsULQ weight clips learned by retraining, by layer index; they win over the
    /// config's and calibration's.
    public var trainedClips: [Int: (Float, Float)] = [:]
    public var trainedWeightClips: [Int: [Float]] = [:]
    /// What retraining did (set by RetrainPass).
    public var trainingReport: TrainingReport?
    /// Per quantized layer, the numbers every output layout uses (set by QuantParametersPass).
    public var quantParameters: [LayerQuantParameters] = []
    /// What pruning did, per group and per layer, for the summary.
    public var pruneEvents: [PruneEvent] = []
    /// What calibration did, when it ran.
    public var calibration: CalibrationReport?
    /// The output channels filter pruning kept, by layer name (feature distillation compares those channels only).
    public var keptChannels: [String: [Int]] = [:]
    /// Initializers a pruning pass replaced by a pruned or masked copy (PruneFusionPass releases them).
    public var replacedTensors: [String] = []
    /// The record being built (quantization parameters, prune record).
    public var record = QuantRecord()
    /// The lowest default-domain opset the rewritten graph needs (0: no change).
    public var requiredOpset: Int64 = 0
    /// One line per pass that ran: its name and what it did.
    public var log: [(pass: String, summary: String)] = []

    public init(opsetImports: [OpsetImport] = []) { self.opsetImports = opsetImports }

    public mutating func warn(_ message: String, node: String? = nil) {
        diagnostics.append(Diagnostic(.warning, node: node, message))
    }

    /// Recomputes every layer (and the plan's copy of it) from the graph as it is now: weight names and shapes, group
    /// counts, input channels. A layer whose node is no longer a layer (its weight now comes from a DequantizeLinear)
    /// keeps what was last known of it.
    public mutating func refreshLayers(in graph: Graph) throws {
        for i in layers.indices {
            // A pass that changes a weight writes a new initializer (and a new group count with it), so a layer whose
            // weight input and group are as they were is unchanged: one lookup, not a new Layer, per layer.
            let layer = layers[i]
            guard graph.contains(layer.node) else { continue }
            let node = graph[layer.node]
            if node.inputs.count > 1, node.inputs[1] == layer.weight, (node.int("group") ?? 1) == Int64(layer.group) {
                continue
            }
            guard let now = try layer.refreshed(in: graph) else { continue }
            layers[i] = now
            if let p = plan, i < p.layers.count, p.layers[i].layer.node == now.node { plan?.layers[i].layer = now }
        }
    }
}

/// Passes run in order over one graph. A pipeline checks, before any pass runs, that every pass's requirements are
/// met by the context or by a pass before it; after a pass that changes layers it recomputes them.
///
/// `branches` are models written besides the main one (the AMCT layout's fake-quant and deploy models): each runs its
/// own passes on a copy of the graph after `passes`; see `Pipeline.run(model:)`.
public struct Pipeline: CustomStringConvertible {
    public var name: String
    public var passes: [any Pass]
    public var branches: [Branch] = []
    /// The layout the pipeline writes (the summary's onnxruntime advice depends on it).
    public var format: OutputFormat = .qdq

    /// A model the pipeline writes: the suffix its file takes after the output prefix, and the passes that make it.
    public struct Branch {
        public var suffix: String
        public var passes: [any Pass]
        public init(suffix: String, passes: [any Pass]) {
            self.suffix = suffix
            self.passes = passes
        }
    }

    public init(_ passes: [any Pass], name: String = "custom") {
        self.passes = passes
        self.name = name
    }

    /// Runs the passes over `graph` (not the branches: see `run(model:context:)`).
    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        try Self.check(passes, context)
        try Self.runPasses(passes, &graph, &context)
    }

    static func check(_ passes: [any Pass], _ context: PassContext, provided: Set<PassRequirement> = []) throws {
        var available = provided
        for pass in passes {
            for r in pass.requirements where !available.contains(r) && !r.isMet(by: context) {
                throw PipelineError(pass: pass.name, missing: r)
            }
            available.formUnion(pass.provides)
        }
    }

    static func runPasses(_ passes: [any Pass], _ graph: inout Graph, _ context: inout PassContext) throws {
        for pass in passes {  // requirements were checked by `check` before the first pass
            try pass.run(&graph, &context)
            context.provided.formUnion(pass.provides)
            if pass.changesLayers { try context.refreshLayers(in: graph) }
        }
    }

    /// Every pass name, in order, with the branches.
    public var description: String {
        var lines = ["pipeline \(name):"]
        for (i, pass) in passes.enumerated() { lines.append("  \(i + 1). \(pass.name)") }
        for branch in branches {
            lines.append("  → *\(branch.suffix): " + branch.passes.map(\.name).joined(separator: " → "))
        }
        return lines.joined(separator: "\n")
    }

    /// The names of the passes, the branches' after the main ones.
    public var passNames: [String] { passes.map(\.name) + branches.flatMap { $0.passes.map(\.name) } }
}

/// Checks the graph before anything rewrites it: every value produced, nodes in topological order (a graph that
/// is merely out of order is sorted, and the log says so).
public struct ValidateGraphPass: Pass {
    public let name = "validate-graph"
    public init() {}
    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        do {  // validate checks references first (undefined values, two producers), then the order
            try graph.validate()
            context.log.append((name, "\(graph.nodeCount) nodes in topological order"))
        } catch GraphError.notTopologicallySorted {
            try graph.sortTopologically()
            context.log.append((name, "nodes were out of order; sorted topologically"))
        }
    }
}

/// Removes nodes and initializers nothing reads.
public struct DeadCodeCleanupPass: Pass {
    public let name = "dead-code-cleanup"
    public init() {}
    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        let removed = graph.removeDeadCode()
        context.log.append((name, "removed \(removed.nodes) nodes, \(removed.initializers) initializers"))
    }
}
