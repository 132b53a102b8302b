// Pass requirements: every pass that reads something from the context refuses to run without it, with a
// PipelineError naming what is missing; a pipeline checks all its passes (and branches) before the first one runs;
// a pass that changes layers leaves them refreshed.

import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class PassRequirementUnitTests: XCTestCase {
    /// Runs `pass` alone on the one-Conv graph with `context`; expects a PipelineError for `missing`.
    func assertRefuses(_ pass: any Pass, _ context: PassContext, missing: PassRequirement, names phrase: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        var g = UnitGraphs.oneConv()
        var c = context
        let error = expectError(PipelineError.self, file: file, line: line) { try Pipeline([pass]).run(&g, &c) }
        XCTAssertEqual(error?.pass, pass.name, file: file, line: line)
        XCTAssertEqual(error?.missing, missing, file: file, line: line)
        let text = error?.description ?? ""
        XCTAssertTrue(text.contains(phrase), "'\(text)' should name \(phrase)", file: file, line: line)
        XCTAssertTrue(text.hasPrefix("pass '\(pass.name)' needs "), text, file: file, line: line)
    }

    func testEachPassNamesWhatIsMissing() throws {
        let empty = PassContext()
        var configured = try unitContext(UnitConfigs.quant(clipMin: -1, clipMax: 1))
        assertRefuses(LayerMatchingPass(), empty, missing: .config, names: "needs a config (PassContext.config)")
        assertRefuses(SkipMarkingPass(), configured, missing: .layers, names: "needs the layers (from match-layers)")
        configured.provided = [.layers]
        assertRefuses(OverrideResolutionPass(), configured, missing: .skips,
                      names: "needs the skip lists resolved to layers (from mark-skips)")
        for pass in [FilterPruningPass(), TwoOfFourPruningPass(), PruneFusionPass(), CalibrationPass(data: nil),
                     FakeQuantInsertionPass(), QuantParametersPass()] as [any Pass] {
            assertRefuses(pass, configured, missing: .plan, names: "needs a plan (from resolve-overrides)")
        }
        for pass in [AMCTFakeQuantPass(), AscendDeployPass()] as [any Pass] {
            assertRefuses(pass, configured, missing: .quantParameters,
                          names: "needs quantization parameters (from quant-parameters)")
        }
        let x = NumpyArray(shape: [1, 2, 2, 2], values: .float(.init(repeating: 0, count: 8)), dtype: "<f4")
        let data = try TrainingData(arrays: ["x": x], labels: [0], source: "unit")
        assertRefuses(RetrainPass(data: data, options: TrainingOptions()), configured, missing: .plan,
                      names: "needs a plan")
    }

    /// A plan whose layer takes its clips from IFMR: the layout passes need calibration first.
    func testClipsAreNeededWhenTheConfigGivesNone() throws {
        var g = UnitGraphs.oneConv()
        let context = try planned(&g, UnitConfigs.quantIFMR)
        assertRefuses(FakeQuantInsertionPass(), context, missing: .clips,
                      names: "needs activation clips (from calibrate-ifmr)")
        assertRefuses(QuantParametersPass(), context, missing: .clips, names: "activation clips")
        // Calibration before them provides the clips: the check passes (without running anything).
        XCTAssertNoThrow(try Pipeline.check([CalibrationPass(data: nil), FakeQuantInsertionPass()], context))
        // Clips in the config meet the requirement with no calibration.
        var h = UnitGraphs.oneConv()
        let withClips = try planned(&h, UnitConfigs.quant(clipMin: -1, clipMax: 1))
        XCTAssertNoThrow(try Pipeline.check([FakeQuantInsertionPass()], withClips))
    }

    /// The last pass needs a plan nothing before it provides: the pipeline fails before validate-graph sorts the
    /// graph or dead-code cleanup removes anything.
    func testAMissingRequirementFailsBeforeTheFirstPassRuns() throws {
        var t = TestGraph()
        t.input("x", [2])
        t.floats("unused", [1], [1])
        t.node("Relu", "relu", ["b"], ["y"])
        t.node("Neg", "neg", ["x"], ["b"])
        t.node("Abs", "dead", ["x"], ["d"])
        t.output("y")
        var g = t.graph
        var context = PassContext()
        let pipeline = Pipeline([ValidateGraphPass(), DeadCodeCleanupPass(), TwoOfFourPruningPass()])
        let error = expectError(PipelineError.self) { try pipeline.run(&g, &context) }
        XCTAssertEqual(error?.pass, "prune-2of4")
        XCTAssertEqual(error?.missing, .plan)
        XCTAssertEqual(g.nodes.map { $0.name ?? "" }, ["relu", "neg", "dead"], "the graph is as it was")
        XCTAssertEqual(Array(g.initializers.keys), ["unused"])
        XCTAssertTrue(context.log.isEmpty)
    }

    /// A branch's requirement counts too: the AMCT deploy branch without quant-parameters before it.
    func testABranchRequirementIsCheckedBeforeTheMainPasses() throws {
        var pipeline = Pipeline(Pipeline.plan.passes, name: "no parameters")
        pipeline.branches = [Pipeline.Branch(suffix: "_deploy_model.onnx", passes: [AscendDeployPass()])]
        var t = TestGraph()
        t.input("x", [2])
        t.node("Relu", "relu", ["b"], ["y"])
        t.node("Neg", "neg", ["x"], ["b"])
        t.output("y")
        let model = Model(graph: t.graph)
        let error = expectError(PipelineError.self) {
            try pipeline.run(model, config: try unitConfig(UnitConfigs.quant(clipMin: -1, clipMax: 1)))
        }
        XCTAssertEqual(error?.pass, "ascend-deploy")
        XCTAssertEqual(error?.missing, .quantParameters)
    }

    /// The default AMCT pipeline runs whole on the one-Conv graph: two models, each with its layer rewritten.
    func testTheAMCTPipelineWritesBothModels() throws {
        let model = Model(graph: UnitGraphs.oneConv())
        let config = try unitConfig(UnitConfigs.quant(clipMin: -2, clipMax: 6))
        let result = try Pipeline.compress(format: .amct).run(model, config: config)
        XCTAssertEqual(result.models.map(\.suffix), ["_fake_quant_model.onnx", "_deploy_model.onnx"])
        XCTAssertEqual(opTypes(result.models[0].model.graph), ["Mul", "Round", "Add", "Clip", "Sub", "Conv", "Mul"])
        XCTAssertEqual(opTypes(result.models[1].model.graph), ["AscendQuant", "Conv", "AscendDequant"])
    }
}
