import Graph

// The pass that settles every planned layer's quantization numbers (LayerQuantParameters, QuantParameters.swift) once,
// after any Conv+BatchNormalization folding, for the AMCT layout passes and the record.

/// Computes the parameters of every planned layer into the context (after any folding), for the layout passes.
public struct QuantParametersPass: PlanPass {
    public let name = "quant-parameters"
    public var requirements: [PassRequirement] { [.plan, .clips] }
    public var provides: [PassRequirement] { [.quantParameters] }
    public init() {}
    public func run(_ graph: inout Graph, plan: Plan, _ context: inout PassContext) throws {
        context.quantParameters = try LayerQuantParameters.computeAll(graph, plan: plan, context)
        context.record.entries = context.quantParameters.map(\.recordEntry)
        context.requiredOpset = max(context.requiredOpset, context.quantParameters.isEmpty ? 0 : 11)
        context.log.append((name, "\(context.quantParameters.count) layers"))
    }
}
