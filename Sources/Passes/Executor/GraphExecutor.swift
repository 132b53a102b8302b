import Dispatch
import Foundation
import Graph
import Kernels

// The executor's driver: a float32 CPU run of a graph for calibration, analysis and `amct-pipe run`.
//
//   GraphExecutor(graph, opset)     every node's op looked up in the registry (an unknown op is an error, before work)
//   run(batch)                      the plan for these input shapes (built once, kept), then its steps in order
//
// What each op does lives in the registry (`Executor/Operator.swift`, `Executor/Ops/`), how a batch is scheduled in
// `ExecutionPlan`; this file only feeds values between them.
//
// An executor keeps its plan and its buffer pool between runs, unsynchronised: it is a class, not Sendable, used by
// one thread at a time (calibration, analysis, `run` and the trainer's teacher each make their own).

public final class GraphExecutor {
    public let graph: Graph
    public let opset: Int64
    public let registry: OperatorRegistry
    private var plan: ExecutionPlan?
    private var planShapes: [String: [Int]] = [:]
    private var planObserved: Set<String> = []
    private let pool: BufferPool

    /// Time and calls per op type, gathered while `profiling` is on.
    public struct Profile: Sendable {
        public var seconds: [String: Double] = [:]
        public var calls: [String: Int] = [:]
        public var planSeconds: Double = 0
    }

    /// Runs Conv chains as single steps (Executor/Fusion.swift); training turns this off.
    public let fuse: Bool

    /// `pool`: where freed buffers wait for reuse; a caller that runs other plans beside this one (the trainer's
    /// teacher) shares its own.
    public init(graph: Graph, opset: Int64, registry: OperatorRegistry = .standard, fuse: Bool = true,
                pool: BufferPool = BufferPool()) throws {
        self.graph = graph
        self.pool = pool
        self.opset = opset
        self.registry = registry
        self.fuse = fuse
        for id in graph.order {
            _ = try ExecutionPlan.lookup(graph[id], opset: Int(clamping: opset), registry: registry)
        }
    }

    /// Gathers `profile` while on.
    public var profiling = false
    public private(set) var profile = Profile()
    /// The most memory a batch of the current plan holds at once (PlanMemory.swift); nil before `prepare`.
    public var plannedBytes: Int? { plan?.peakBytes }

    /// Builds (or reuses) the plan for inputs of these specs; every attribute and shape is checked here.
    public func prepare(_ inputs: [String: TensorSpec], observe: Set<String> = []) throws {
        let shapes = inputs.mapValues(\.shape)
        if plan != nil && planShapes == shapes && planObserved == observe { return }
        try checkInputs(inputs)
        let start = DispatchTime.now()
        let build = { [graph, opset, registry, fuse] in
            try ExecutionPlan(graph: graph, opset: Int(clamping: opset), registry: registry, inputs: inputs,
                              observed: observe, fusion: fuse ? .inference : .none)
        }
        plan = try BatchOverride.find(graph, inputs).map { try $0.plan(build, graph: graph) } ?? build()
        planShapes = shapes
        planObserved = observe
        profile.planSeconds += Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }

    /// Runs one batch. `observe` names values to hand to `onValue` when produced; returns the graph outputs.
    public func run(_ inputs: [String: DenseTensor], observe: Set<String> = [],
                    onValue: (String, DenseTensor) -> Void = { _, _ in }) throws -> [String: DenseTensor] {
        try prepare(inputs.mapValues { TensorSpec(kind(of: $0), $0.shape) }, observe: observe)
        guard let plan else { return [:] }
        var run = PlanRun(plan, opset: Int(clamping: opset), inputs: inputs, pool: pool, profiling: profiling)
        for name in observe {
            if let s = plan.slotByName[name], let v = run.values[s] { onValue(name, v) }
        }
        try withoutActuallyEscaping(onValue) { onValue in
            var hooks = Observer(plan: plan, observe: observe, onValue: onValue)
            try run.forward(keep: nil, hooks: &hooks)
        }
        if let p = run.profile { profile.add(p) }
        let values = run.values
        var outputs: [String: DenseTensor] = [:]
        for (name, slot) in plan.outputSlots { outputs[name] = values[slot] }
        return outputs
    }

    /// Hands the observed values to the caller as steps make them.
    private struct Observer: StepHooks {
        let plan: ExecutionPlan
        let observe: Set<String>
        let onValue: (String, DenseTensor) -> Void
        func ran(_ index: Int, _ args: [DenseTensor?], _ results: [DenseTensor]) {
            guard !observe.isEmpty else { return }
            for (k, slot) in plan.steps[index].outputs.enumerated() where slot >= 0 && observe.contains(plan.names[slot]) {
                onValue(plan.names[slot], results[k])
            }
        }
    }

    private func kind(of t: DenseTensor) -> TensorSpec.Kind {
        switch t.elements {
        case .float, .floatView: return .float
        case .int64: return .int64
        case .bool: return .bool
        }
    }

    /// Every graph input the graph reads is given, with the rank and the fixed dims the model declares (but the batch).
    private func checkInputs(_ inputs: [String: TensorSpec]) throws {
        let used = Set(graph.order.flatMap { graph[$0].usedValues })
        for info in graph.inputs {
            guard let name = info.name, graph.initializers[name] == nil, used.contains(name) || graph.isGraphOutput(name) else { continue }
            guard let given = inputs[name] else {
                throw PassError(node: name, "graph input '\(name)' was given no data")
            }
            guard let declared = info.type?.tensorShape?.dims else { continue }
            guard declared.count == given.rank else {
                throw PassError(node: name, "graph input '\(name)' has rank \(declared.count) in the model, the data has shape \(given.shape)")
            }
            for (i, d) in declared.enumerated() where i > 0 {  // dimension 0 follows the data (BatchOverride)
                if let fixed = d.knownValue, fixed > 0, fixed != Int64(given.shape[i]) {
                    throw PassError(node: name, "graph input '\(name)' has dim \(i) = \(fixed) in the model, the data has shape \(given.shape); use data of that shape")
                }
            }
        }
    }
}
