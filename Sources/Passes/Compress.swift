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

/// Filter pruning first (shapes change), then 2:4 masks, so quantization scales see the pruned, masked weights.
public func pruningPipeline() -> Pipeline {
    Pipeline([ChannelCouplingPass(), FilterPruningPass(), TwoOfFourPruningPass()])
}

/// The models a run writes: one for QDQ; the fake-quant and the deploy model for the AMCT layout.
public struct CompressionResult {
    /// Each model with the suffix its file takes after the output prefix ("" for QDQ: the -o path itself).
    public var models: [(suffix: String, model: Model)]
    public var context: PassContext

    /// The file each model goes to: QDQ at `output`; AMCT at `<output without .onnx>_fake_quant_model.onnx` and
    /// `..._deploy_model.onnx`.
    public func paths(for output: String) -> [String] {
        let prefix = output.hasSuffix(".onnx") ? String(output.dropLast(5)) : output
        return models.map { $0.suffix.isEmpty ? output : prefix + $0.suffix }
    }
}

/// Compresses a model under a config. Planning first (and a refusal, before any work, of what this version cannot do
/// yet), then the passes of the chosen layout.
public func compress(_ input: consuming Model, config: CompressionConfig, format: OutputFormat = .qdq, calibration: CalibrationPass = CalibrationPass(data: nil)) throws -> CompressionResult {
    let (model, context) = try prepareCompression(input, config: config, calibration: calibration)
    return try exportCompressed(model, context, format: format)
}

/// Steps 1–9 of the pipeline, shared by compress and retrain: plan, prune (filter, then 2:4), calibrate.
public func prepareCompression(_ input: consuming Model, config: CompressionConfig, calibration: CalibrationPass) throws -> (Model, PassContext) {
    var model = input
    var context = PassContext(opsetImports: model.opsetImports)
    context.config = config
    context.diagnostics += config.warnings
    try planningPipeline().run(&model.graph, &context)
    try pruningPipeline().run(&model.graph, &context)
    try calibration.run(&model.graph, &context)
    return (model, context)
}

/// Steps 10–12: the chosen layout (QDQ, or the AMCT fake-quant and deploy models) from a prepared model.
public func exportCompressed(_ prepared: consuming Model, _ context: PassContext, format: OutputFormat) throws -> CompressionResult {
    var model = prepared
    var context = context
    func finish(_ m: inout Model, _ c: inout PassContext) throws {
        try Pipeline([OpsetUpgradePass(), DeadCodeCleanupPass()]).run(&m.graph, &c)
        m.opsetImports = c.opsetImports
        // Opset 21 needs IR version 10; opset 13 needs 7.
        let neededIR: Int64 = c.requiredOpset >= 21 ? 10 : (c.requiredOpset >= 13 ? 7 : 0)
        if let ir = m.irVersion, ir < neededIR { m.irVersion = neededIR }
    }
    switch format {
    case .qdq:
        try FakeQuantInsertionPass().run(&model.graph, &context)
        try finish(&model, &context)
        return CompressionResult(models: [("", model)], context: context)
    case .amct:
        try Pipeline([BatchNormFoldingPass(), QuantParametersPass()]).run(&model.graph, &context)
        var fake = model, deploy = model
        var fakeContext = context, deployContext = context
        try AMCTFakeQuantPass().run(&fake.graph, &fakeContext)
        try finish(&fake, &fakeContext)
        try AscendDeployPass().run(&deploy.graph, &deployContext)
        try finish(&deploy, &deployContext)
        fakeContext.log += deployContext.log.suffix(from: context.log.count)
        fakeContext.diagnostics += deployContext.diagnostics.suffix(from: context.diagnostics.count)
        return CompressionResult(models: [("_fake_quant_model.onnx", fake), ("_deploy_model.onnx", deploy)], context: fakeContext)
    }
}
