// The training plan's fused steps (Fusion.swift: Conv + residual Add + Relu/Clip as one step with one backward) and
// its tape (only what each backward step reads, PlanRun.swift), on a small residual CNN built in code:
// - the plan fuses: no Relu, Clip or Add step is left;
// - float: every parameter's gradient matches central finite differences of the trainer's own loss;
// - float and INT8 (the training ops around each layer): the fused plan's gradients equal the unfused plan's;
// - the same for elementwise chains (HardSwish written out: x·Clip(x + 3, 0, 6)/6, a Sigmoid, a Sub), whose backward
//   recomputes the inner values instead of keeping them.

import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

final class FusedTrainingTests: XCTestCase {
    var random = GradientCheckRandom(state: 7)

    func values(_ count: Int, _ scale: Float) -> [Float] { (0..<count).map { _ in random.uniform(-scale, scale) } }

    /// x[N,2,5,5] → Conv(3×3, pad 1) → Relu → r;  Conv(r) + r → Relu → Conv(stride 2) → Clip(0, 6)
    /// → GlobalAveragePool → Flatten → Gemm → logits [N, 3]
    func residualNet() -> Graph {
        var t = TestGraph()
        t.input("x", [-1, 2, 5, 5])
        t.floats("w1", [2, 2, 3, 3], values(36, 0.5))
        t.floats("b1", [2], values(2, 0.2))
        t.floats("w2", [2, 2, 3, 3], values(36, 0.5))
        t.floats("b2", [2], values(2, 0.2))
        t.floats("w3", [4, 2, 3, 3], values(72, 0.5))
        t.floats("b3", [4], values(4, 0.2))
        t.floats("fc", [3, 4], values(12, 0.8))
        t.floats("fcb", [3], values(3, 0.1))
        t.floats("lo", [], [0])
        t.floats("hi", [], [1.5])
        let pads: [Attribute] = [.ints("pads", [1, 1, 1, 1])]
        _ = t.node("Conv", "c1", ["x", "w1", "b1"], ["h1"], pads)
        _ = t.node("Relu", "r1", ["h1"], ["r"])
        _ = t.node("Conv", "c2", ["r", "w2", "b2"], ["h2"], pads)
        _ = t.node("Add", "add", ["h2", "r"], ["s"])
        _ = t.node("Relu", "r2", ["s"], ["a"])
        _ = t.node("Conv", "c3", ["a", "w3", "b3"], ["h3"], pads + [.ints("strides", [2, 2])])
        _ = t.node("Clip", "clip", ["h3", "lo", "hi"], ["c"])
        _ = t.node("GlobalAveragePool", "gap", ["c"], ["g"])
        _ = t.node("Flatten", "flat", ["g"], ["f"])
        _ = t.node("Gemm", "fc", ["f", "fc", "fcb"], ["logits"], [.int("transB", 1)])
        t.output("logits")
        return t.graph
    }

    /// x → Conv → affine by scalar constants (Mul s, Sub from c, Div 4; scalars are not trained) → HardSwish
    /// (Add 3, Clip 0…6, Mul by its input, Div 6) → Conv → Sigmoid → Sub 0.5 → Mul 2 → GlobalAveragePool → Flatten
    /// → Gemm → logits
    func hardSwishNet() -> Graph {
        var t = TestGraph()
        t.input("x", [-1, 2, 5, 5])
        t.floats("w1", [3, 2, 3, 3], values(54, 0.5))
        t.floats("b1", [3], values(3, 0.2))
        t.floats("w2", [2, 3, 1, 1], values(6, 0.8))
        t.floats("fc", [3, 2], values(6, 0.8))
        for (name, v) in [("three", Float(3)), ("zero", 0), ("six", 6), ("half", 0.5), ("two", 2), ("four", 4)] {
            t.floats(name, [], [v])
        }
        t.floats("s", [], [1.5])
        t.floats("c", [], [0.1])
        _ = t.node("Conv", "c1", ["x", "w1", "b1"], ["h0"], [.ints("pads", [1, 1, 1, 1])])
        _ = t.node("Mul", "bn_mul", ["h0", "s"], ["h1"])
        _ = t.node("Sub", "bn_sub", ["c", "h1"], ["h2"])
        _ = t.node("Div", "bn_div", ["h2", "four"], ["h"])
        _ = t.node("Add", "hs_add", ["h", "three"], ["h3"])
        _ = t.node("Clip", "hs_clip", ["h3", "zero", "six"], ["hc"])
        _ = t.node("Mul", "hs_mul", ["h", "hc"], ["hm"])
        _ = t.node("Div", "hs_div", ["hm", "six"], ["hs"])
        _ = t.node("Conv", "c2", ["hs", "w2"], ["z"])
        _ = t.node("Sigmoid", "sig", ["z"], ["sz"])
        _ = t.node("Sub", "sub", ["sz", "half"], ["zs"])
        _ = t.node("Mul", "scale", ["two", "zs"], ["z2"])
        _ = t.node("GlobalAveragePool", "gap", ["z2"], ["g"])
        _ = t.node("Flatten", "flat", ["g"], ["f"])
        _ = t.node("Gemm", "fc", ["f", "fc"], ["logits"], [.int("transB", 1)])
        t.output("logits")
        return t.graph
    }

    static let floatOnly = UnitConfigs.quant(clipMin: -1, clipMax: 1) + "\nskip_layer_types: \"Conv\"\nskip_layer_types: \"Gemm\""

    lazy var net = residualNet()
    lazy var chainNet = hardSwishNet()

    func trainer(_ config: String, fusion: Fusion.Mode, chains: Bool = false) throws -> Trainer {
        var g = chains ? chainNet : net
        let context = try planned(&g, config)
        let tr = try Trainer(graph: g, opset: 13, plan: try XCTUnwrap(context.plan), clips: [:], teacher: nil,
                             options: TrainingOptions())
        tr.fusion = fusion
        return tr
    }

    lazy var feeds = ["x": DenseTensor(shape: [3, 2, 5, 5], floats: values(150, 1))]
    let labels: [Int64] = [0, 2, 1]

    func lossAndGradients(_ tr: Trainer) throws -> (Float, [[Float]?]) {
        let tp = try tr.trainingPlan(feeds, labels: true)
        var tape = try tr.forward(tp, feeds)
        var clock: UInt64?
        let (loss, _, seeds) = try tr.loss(tp, tape, labels: labels, feeds: feeds, gradient: true, clock: &clock)
        let g = try tr.backward(tp, &tape, seeds: seeds)
        return (loss, (0..<tr.store.count).map { g.gradient($0, in: tr.store) })
    }

    func testTheTrainingPlanFusesConvResidualAndClamps() throws {
        let tr = try trainer(Self.floatOnly, fusion: .training)
        let steps = try tr.trainingPlan(feeds, labels: true).plan.steps.map(\.opType)
        XCTAssertEqual(steps, ["Conv", "Conv", "Conv", "GlobalAveragePool", "Flatten", "Gemm"])
        let tape = try tr.forward(try tr.trainingPlan(feeds, labels: true), feeds)
        let plan = try tr.trainingPlan(feeds, labels: true).plan
        // The Conv steps keep their input (∂W) and, with a clamp, their output (its mask); Flatten's input (only its
        // shape is read) is not kept, Gemm's is.
        for kept in ["r", "a", "c", "f"] { XCTAssertNotNil(tape.values[plan.slotByName[kept]!], kept) }
        XCTAssertNil(tape.values[plan.slotByName["g"]!], "Flatten's backward reads only the shape")
        for absorbed in ["h1", "h2", "s", "h3"] { XCTAssertNil(plan.slotByName[absorbed], absorbed) }
    }

    func testFusedGradientsMatchFiniteDifferences() throws {
        try assertGradientsMatchDifferences(try trainer(Self.floatOnly, fusion: .training), ["w1", "b1", "w2", "b2", "w3", "b3", "fc"])
    }

    func testChainGradientsMatchFiniteDifferences() throws {
        let tr = try trainer(Self.floatOnly, fusion: .training, chains: true)
        let steps = try tr.trainingPlan(feeds, labels: true).plan.steps.map(\.opType)
        XCTAssertEqual(steps, ["Conv", "Mul+Sub+Div", "Add+Clip+Mul+Div", "Conv", "Sigmoid+Sub+Mul", "GlobalAveragePool",
                               "Flatten", "Gemm"])
        // HardSwish written out runs as one stage (HardSwishStage.swift), whose gradient this checks.
        let hardSwish = try XCTUnwrap(tr.trainingPlan(feeds, labels: true).plan.steps
            .first { $0.opType == "Add+Clip+Mul+Div" }?.kernel as? ElementwiseChainKernel)
        XCTAssertEqual(hardSwish.stages.count, 1)
        XCTAssertTrue(hardSwish.stages.first is HardSwishStage)
        try assertGradientsMatchDifferences(tr, ["w1", "b1", "w2", "fc"], step: 1e-2)
    }

    func testAnAffineChainKeepsNothingOfItsEntry() throws {
        let tr = try trainer(Self.floatOnly, fusion: .training, chains: true)
        let tp = try tr.trainingPlan(feeds, labels: true)
        let tape = try tr.forward(tp, feeds)
        // The Conv's output only feeds the affine chain, whose gradient does not read it; HardSwish's input (read by
        // its Mul) is kept.
        XCTAssertNil(tape.values[tp.plan.slotByName["h0"]!], "the affine chain's entry")
        XCTAssertNotNil(tape.values[tp.plan.slotByName["h"]!], "HardSwish's entry")
    }

    func assertGradientsMatchDifferences(_ tr: Trainer, _ names: [String], step h: Float = 1e-3) throws {
        let (_, grads) = try lossAndGradients(tr)
        for name in names {
            let p = try XCTUnwrap(tr.store.index(of: name))
            let g = try XCTUnwrap(grads[p], name)
            let base = tr.store[p]
            let scale = max(g.map(abs).max()!, 1e-3)
            for i in base.indices {
                tr.store[p] = base
                tr.store[p, i] += h
                let up = try lossAndGradients(tr).0
                tr.store[p, i] -= 2 * h
                let down = try lossAndGradients(tr).0
                XCTAssertEqual(g[i], (up - down) / (2 * h), accuracy: 3e-3 * scale + 1e-5, "∂\(name)[\(i)]")
            }
            tr.store[p] = base
        }
    }

    func assertFusedEqualsUnfused(_ config: String, chains: Bool = false, file: StaticString = #filePath,
                                  line: UInt = #line) throws {
        let fused = try lossAndGradients(try trainer(config, fusion: .training, chains: chains))
        let plain = try lossAndGradients(try trainer(config, fusion: .none, chains: chains))
        XCTAssertEqual(fused.0, plain.0, accuracy: 1e-5 * max(abs(plain.0), 1), file: file, line: line)
        XCTAssertEqual(fused.1.count, plain.1.count, file: file, line: line)
        for (a, b) in zip(fused.1, plain.1) {
            guard let a, let b else { XCTAssertEqual(a == nil, b == nil, file: file, line: line); continue }
            let scale = max(b.map(abs).max() ?? 0, 1e-6)
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 * scale, file: file, line: line) }
        }
    }

    func testFusedGradientsEqualTheUnfusedPlansInFloat() throws {
        try assertFusedEqualsUnfused(Self.floatOnly)
    }

    func testFusedGradientsEqualTheUnfusedPlansWithTheTrainingOps() throws {
        try assertFusedEqualsUnfused(UnitConfigs.quant(clipMin: -1, clipMax: 2))
    }

    func testChainGradientsEqualTheUnfusedPlansWithTheTrainingOps() throws {
        try assertFusedEqualsUnfused(UnitConfigs.quant(clipMin: -1, clipMax: 2), chains: true)
        try assertFusedEqualsUnfused(Self.floatOnly, chains: true)
    }
}
