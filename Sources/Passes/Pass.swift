import Graph

/// A named step that rewrites or analyses the graph. Passes share what they need through the context.
public protocol Pass {
    var name: String { get }
    func run(_ graph: inout Graph, _ context: inout PassContext) throws
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
    /// The quantizable/prunable layers (set by layer matching).
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
    /// Per quantized layer, the numbers every output layout uses (set by QuantParametersPass).
    public var quantParameters: [LayerQuantParameters] = []
    /// Channel groups for filter pruning (set by ChannelCouplingPass).
    public var coupling: ChannelCoupling?
    /// What pruning did, per group and per layer, for the summary.
    public var pruneReport: [String] = []
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
}

/// Passes run in order over one graph.
public struct Pipeline {
    public var passes: [any Pass]
    public init(_ passes: [any Pass]) { self.passes = passes }

    public func run(_ graph: inout Graph, _ context: inout PassContext) throws {
        for pass in passes { try pass.run(&graph, &context) }
    }
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
