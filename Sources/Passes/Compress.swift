import Graph

/// Output layouts.
public enum OutputFormat: String, Sendable, CaseIterable {
    /// QuantizeLinear/DequantizeLinear, runs in onnxruntime.
    case qdq
    /// The AMCT fake-quant and deploy models for the Ascend toolchain.
    case amct
}

/// The passes after planning, for the steps this version has (ARCHITECTURE.md steps 10–11): fake-quant insertion →
/// opset upgrade → dead-code cleanup. Pruning (6–8) and calibration (9) come with their issues.
public func quantizationPipeline() -> Pipeline {
    Pipeline([FakeQuantInsertionPass(), OpsetUpgradePass(), DeadCodeCleanupPass()])
}

/// Compresses a model under a config; returns the new model and the context (plan, record, diagnostics, log).
public func compress(_ input: Model, config: CompressionConfig) throws -> (Model, PassContext) {
    var model = input
    var context = PassContext(opsetImports: model.opsetImports)
    context.config = config
    context.diagnostics += config.warnings
    try planningPipeline().run(&model.graph, &context)
    if let plan = context.plan, let pruned = plan.layers.first(where: { $0.prune.enabled }) {
        throw PassError(
            node: pruned.layer.name,
            "the config asks to prune it, and this version of amct-pipe does not prune yet (filter and 2:4 pruning come next); `amct-pipe plan` shows the plan. Remove prune_config to quantize only")
    }
    try quantizationPipeline().run(&model.graph, &context)
    model.opsetImports = context.opsetImports
    // Opset 21 needs IR version 10; opset 13 needs 7.
    let neededIR: Int64 = context.requiredOpset >= 21 ? 10 : (context.requiredOpset >= 13 ? 7 : 0)
    if let ir = model.irVersion, ir < neededIR { model.irVersion = neededIR }
    return (model, context)
}
