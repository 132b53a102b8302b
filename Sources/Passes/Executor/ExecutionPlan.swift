import Foundation
import Graph
import Kernels

// The execution plan: built once per model and input shapes, before any data runs.
//
//   graph + input shapes ──▶ for each node in order: registry lookup → Operator.prepare (attributes checked, output
//                            shapes inferred) → a step, or, when every input is known, the value computed now (folded)
//                        ──▶ steps with input/output slots, the slots dropped after each step, the storage recycled
//
// Initializers are converted once and shared by every batch; shape arithmetic (Shape → Gather → Concat → Reshape)
// and anything else computed from constants alone is folded here, so a batch runs only the data path. A value's
// storage goes back to the buffer pool after its last reader (Reshape-like outputs share their input's storage and
// keep it alive until their own last reader).

struct ExecutionPlan {
    struct Step {
        let node: NodeID
        let opType: String
        let kernel: any OpKernel
        let inputs: [Int]
        let outputs: [Int]
        /// Slots whose value is dropped after this step.
        var release: [Int] = []
        /// Slots whose storage goes back to the pool after this step (a later step of the batch reuses it).
        var recycle: [Int] = []
        /// The training profile's name of the step: the op, or a fused Conv's chain ("Conv+Add+Relu") and kind.
        var label: String { detail ?? opType }
        var detail: String?
    }

    var slotCount = 0
    /// Memory of a batch (PlanMemory.swift): its peak and the step reaching it, every value at once, folded values.
    var peakBytes = 0, peakStep: Int?, valueBytes = 0, foldedBytes = 0
    var constants: [(slot: Int, value: DenseTensor)] = []
    var steps: [Step] = []
    var inputSlots: [(name: String, slot: Int)] = []
    var outputSlots: [(name: String, slot: Int)] = []
    var slotByName: [String: Int] = [:]

    /// Elements a single value may hold before the plan refuses the model (a guard against shapes that would exhaust
    /// memory): a quarter of physical memory in float32.
    static let elementLimit = kernelElementLimit

    /// The node of each step (for messages): the model's, or the folded copy's; not the whole graph, so a folded copy's
    /// weights are not kept once they are converted.
    private(set) var nodes: [NodeID: Node] = [:]

    /// What building a plan tracks besides the plan: the graph and its settings, every slot's spec, where each value
    /// is made, and the nodes a fused step absorbed.
    struct BuildState {
        let graph: Graph
        let opset: Int
        let registry: OperatorRegistry
        let observed: Set<String>
        let fusion: Fusion.Mode
        var specs: [Int: TensorSpec] = [:]
        var producedAt: [Int: Int] = [:]
        var absorbed = Set<NodeID>()
    }

    /// - Parameters:
    ///   - observed: values a caller wants to see; fusion never hides them.
    ///   - fusion: which chains run as one step (Fusion.swift).
    init(graph: Graph, opset: Int, registry: OperatorRegistry, inputs: [String: TensorSpec],
         observed: Set<String> = [], fusion: Fusion.Mode = .inference) throws {
        var state = BuildState(graph: graph, opset: opset, registry: registry, observed: observed, fusion: fusion)
        try addInputs(inputs, &state)
        for id in graph.order where !state.absorbed.contains(id) { try addNode(id, &state) }
        try addOutputs(&state)
        for step in steps { nodes[step.node] = graph[step.node] }
        names = [String](repeating: "", count: slotCount)
        for (name, s) in slotByName { names[s] = name }
        shapes = state.specs.mapValues(\.shape)
        var floatCounts: [Int: Int] = [:]
        for (s, spec) in state.specs where spec.kind == .float && spec.constant == nil { floatCounts[s] = spec.count }
        scheduleReleases(producedAt: state.producedAt, floatCounts: floatCounts)
        measureMemory(state.specs)
        if let at = peakStep {
            try Self.checkMemory(peakBytes, nodes[steps[at].node] ?? graph[steps[at].node], opset, "a batch")
        }
    }

    // MARK: Building stages

    /// The slot of a value name (a new one the first time).
    mutating func slot(_ name: String) -> Int {
        if let s = slotByName[name] { return s }
        slotByName[name] = slotCount
        slotCount += 1
        return slotCount - 1
    }

    /// A value the plan holds from the start.
    mutating func addConstant(_ slot: Int, _ value: DenseTensor, _ state: inout BuildState) {
        state.specs[slot] = TensorSpec(constant: value)
        constants.append((slot, value))
    }

    /// Stage 1: the graph inputs' slots, their sizes checked.
    private mutating func addInputs(_ inputs: [String: TensorSpec], _ state: inout BuildState) throws {
        for (name, spec) in inputs {
            do { try Self.checkSize(spec.shape) } catch let e as KernelError {
                throw PassError(node: name, "graph input '\(name)': \(e.message)")
            }
            let s = slot(name)
            state.specs[s] = spec
            inputSlots.append((name, s))
        }
    }

    /// A node's input: its spec and slot (an initializer is converted on first use); nil spec for an absent one.
    mutating func argument(_ name: String, of node: Node, _ state: inout BuildState) throws
        -> (spec: TensorSpec?, slot: Int) {
        if name.isEmpty { return (nil, -1) }
        let s = slot(name)
        if state.specs[s] == nil, let t = state.graph.initializers[name] {
            addConstant(s, try Self.dense(t).mapError(node: node, opset: state.opset), &state)
        }
        guard let spec = state.specs[s] else {
            throw PassError(node: node.displayName, "reads '\(name)', which no graph input, initializer or earlier node gives")
        }
        return (spec, s)
    }

    /// Stage 2, per node in order: prepared (attributes checked, shapes inferred), then fused into one step with the
    /// nodes after it, folded (every input known: computed now), or a step of its own.
    private mutating func addNode(_ id: NodeID, _ state: inout BuildState) throws {
        var node = state.graph[id]
        let op = try Self.lookup(node, opset: state.opset, registry: state.registry)
        let arguments = try node.inputs.map { try argument($0, of: node, &state) }
        var args = (specs: arguments.map(\.spec), slots: arguments.map(\.slot))
        var prepared: Prepared
        do {
            prepared = try op.prepare(OpContext(node: node, opset: state.opset, inputs: args.specs))
            for out in prepared.outputs { try Self.checkSize(out.shape) }
        } catch let e as KernelError {
            throw Self.error(node, state.opset, e.message)
        }
        var fused: [String] = []
        if state.fusion != .none, prepared.kernel is ConvOps.ConvKernel {
            fused = try fuseConvChain(id, &node, &prepared, &args, &state)
        }
        let isConstant = args.specs.allSatisfy { $0 == nil || $0?.constant != nil }
        if state.fusion != .none, !isConstant,
           let chain = try elementwiseChain(from: id, prepared, args.specs, args.slots, &state) {
            for s in chain.step.outputs { state.specs[s] = TensorSpec(.float, chain.shape); state.producedAt[s] = steps.count }
            steps.append(chain.step)
            state.absorbed.formUnion(chain.absorbed)
            return
        }
        let named = node.outputs.enumerated().filter { !$0.element.isEmpty }
        if let extra = named.first(where: { $0.offset >= prepared.outputs.count }) {
            throw Self.error(node, state.opset, "has \(node.outputs.count) outputs; output \(extra.offset) is not one the executor computes")
        }
        let outSlots = node.outputs.map { $0.isEmpty ? -1 : slot($0) }
        if isConstant { return try fold(node, prepared, args.specs, outSlots, &state) }
        for (i, s) in outSlots.enumerated() where s >= 0 {
            state.specs[s] = prepared.outputs[i]
            state.producedAt[s] = steps.count
        }
        var step = Step(node: id, opType: node.op, kernel: prepared.kernel, inputs: args.slots, outputs: outSlots)
        if let conv = prepared.kernel as? ConvOps.ConvKernel {
            step.detail = ([node.op + (conv.geometry.isDepthwise ? " depthwise" : "")] + fused).joined(separator: "+")
        }
        steps.append(step)
        if prepared.aliasesInput, args.slots.first ?? -1 >= 0, outSlots.first ?? -1 >= 0 {
            aliasOf[outSlots[0]] = args.slots[0]
        }
    }

    /// A node whose inputs are all known: its values computed now, held as constants.
    private mutating func fold(_ node: Node, _ prepared: Prepared, _ specs: [TensorSpec?], _ outSlots: [Int],
                               _ state: inout BuildState) throws {
        foldedBytes += prepared.outputs.reduce(0) { $0 + $1.byteCount }
        try Self.checkMemory(foldedBytes, node, state.opset, "its values, computed before the data runs,")
        let values: [DenseTensor]
        do {
            values = try prepared.kernel.forward(specs.map { $0?.constant }, BufferPool(limit: 0))
        } catch let e as KernelError {
            throw Self.error(node, state.opset, e.message)
        }
        for (i, s) in outSlots.enumerated() where s >= 0 { addConstant(s, values[i], &state) }
    }

    /// A Conv chain (Fusion.swift) becomes one step reading [x, W, B, residual] and writing the chain's end; returns
    /// the op types it absorbed (none when it does not fuse).
    private mutating func fuseConvChain(_ id: NodeID, _ node: inout Node, _ prepared: inout Prepared,
                                        _ args: inout (specs: [TensorSpec?], slots: [Int]),
                                        _ state: inout BuildState) throws -> [String] {
        guard var conv = prepared.kernel as? ConvOps.ConvKernel else { return [] }
        let graph = state.graph, specs = state.specs, slotByName = self.slotByName
        guard let chain = try Fusion.convChain(graph, id, mode: state.fusion, observed: state.observed, known: { name in
            slotByName[name].map { specs[$0] != nil } ?? (graph.initializers[name] != nil)
        }) else { return [] }
        let residual = try chain.residual.map { try argument($0, of: node, &state) }
        let channels = conv.geometry.outChannels
        let bias = args.specs.count > 2 ? args.specs[2] : nil
        guard residual == nil || residual?.spec?.shape == prepared.outputs[0].shape,
              let (scale, shift) = Self.epilogueAffine(chain, channels: channels, bias: bias).map({ ($0.scale, $0.shift) })
        else { return [] }
        while args.specs.count < 3 { args.specs.append(nil); args.slots.append(-1) }
        if let shift {
            let s = slot("\(node.displayName)#bn.shift")
            addConstant(s, DenseTensor(shape: [channels], floats: shift), &state)
            args.specs[2] = state.specs[s]
            args.slots[2] = s
        }
        if let residual { args.specs.append(residual.spec); args.slots.append(residual.slot) }
        conv.fusedResidual = residual != nil
        conv.epilogue = NeuralOps.Epilogue(scale: scale, clamp: chain.clamp)
        prepared.kernel = conv
        node.outputs = [chain.output]
        state.absorbed.formUnion(chain.absorbed)
        return chain.absorbed.map { graph[$0].op }
    }

    /// The chain's BatchNormalization and constant Mul/Add as y = acc·k + b' (nil when none, or when a constant or
    /// the Conv's bias is not one value per channel: the chain does not fuse). `shift` is b', the step's new bias.
    private static func epilogueAffine(_ chain: Fusion.ConvChain, channels: Int, bias: TensorSpec?)
        -> (scale: [Float]?, shift: [Float]?)? {
        guard chain.batchNorm != nil || !chain.affine.isEmpty else { return (nil, nil) }
        guard bias == nil || bias?.constant?.count == channels else { return nil }
        var scale: [Float]?, shift = bias?.constant?.floats ?? [Float](repeating: 0, count: channels)
        if let bn = chain.batchNorm {
            let p = bn.parameters
            guard p.allSatisfy({ $0.count == channels }) else { return nil }
            (scale, shift) = NeuralOps.batchNormAffine(scale: p[0], bias: p[1], mean: p[2], variance: p[3],
                                                       epsilon: bn.epsilon, inputBias: shift)
        }
        for affine in chain.affine {
            let v = affine.values(channels)
            guard v.count == channels else { return nil }
            switch affine {
            case .scale:
                scale = (0..<channels).map { (scale?[$0] ?? 1) * v[$0] }
                shift = (0..<channels).map { shift[$0] * v[$0] }
            case .shift:
                shift = (0..<channels).map { shift[$0] + v[$0] }
            }
        }
        return (scale, shift)
    }

    /// Stage 3: the graph outputs' slots (an initializer that is an output becomes a constant).
    private mutating func addOutputs(_ state: inout BuildState) throws {
        for o in state.graph.outputs {
            guard let name = o.name else { continue }
            if slotByName[name] == nil, let t = state.graph.initializers[name], t.dataType != .string {
                addConstant(slot(name), try Self.dense(t).mapError(node: nil, opset: state.opset), &state)
            }
            guard let s = slotByName[name], state.specs[s] != nil else { continue }
            outputSlots.append((name, s))
        }
    }

    /// The node a step runs (a fused step: the first node of its chain).
    func node(_ step: Step) -> Node { nodes[step.node] ?? Node(opType: step.opType, inputs: [], outputs: []) }

    /// The value name of each slot.
    private(set) var names: [String] = []

    /// The shape of each slot's value, as inferred for this plan's inputs.
    private(set) var shapes: [Int: [Int]] = [:]

    /// The value of a slot the plan holds as a constant (an initializer or a folded value).
    func constantValue(_ slot: Int) -> DenseTensor? { constants.first { $0.slot == slot }?.value }

    private(set) var aliasOf: [Int: Int] = [:]

    /// Sets each step's `release` and `recycle` lists from the last reader of every slot and of every storage.
    private mutating func scheduleReleases(producedAt: [Int: Int], floatCounts: [Int: Int]) {
        var lastUse = producedAt
        for (i, step) in steps.enumerated() {
            for s in step.inputs where s >= 0 && producedAt[s] != nil { lastUse[s] = i }
        }
        let kept = Set(outputSlots.map(\.slot))
        func root(_ s: Int) -> Int {
            var r = s
            while let a = aliasOf[r] { r = a }
            return r
        }
        // A storage dies with the last of its aliases; one rooted in a graph input or constant is never recycled.
        var storageEnd: [Int: Int] = [:]
        var pinned = Set<Int>()
        for (s, last) in lastUse {
            let r = root(s)
            if producedAt[r] == nil || kept.contains(s) { pinned.insert(r) }
            storageEnd[r] = max(storageEnd[r] ?? -1, last)
        }
        var candidates: [Int: [Int]] = [:]
        for (s, last) in lastUse where !kept.contains(s) {
            steps[last].release.append(s)
            let r = root(s)
            if !pinned.contains(r), storageEnd[r] == last, !(candidates[last] ?? []).contains(where: { root($0) == r }) {
                candidates[last, default: []].append(s)
            }
        }
        keepReusedBuffers(candidates, floatCounts: floatCounts)
    }

    /// Of the storages that die at each step, recycles those a later step of the batch takes (an output of the same
    /// element count), simulating the pool in step order; the others go back to the allocator, so buffers of sizes
    /// that never recur (a DenseNet's growing Concat outputs) are not held to the end of the batch.
    private mutating func keepReusedBuffers(_ candidates: [Int: [Int]], floatCounts: [Int: Int]) {
        var waiting: [Int: [(step: Int, slot: Int)]] = [:]
        for i in steps.indices {
            for s in steps[i].outputs where s >= 0 && aliasOf[s] == nil {
                guard let c = floatCounts[s], var queue = waiting[c], let freed = queue.popLast() else { continue }
                waiting[c] = queue
                steps[freed.step].recycle.append(freed.slot)
            }
            for s in candidates[i] ?? [] {
                if let c = floatCounts[s] { waiting[c, default: []].append((i, s)) }
            }
        }
    }

    static func lookup(_ node: Node, opset: Int, registry: OperatorRegistry) throws -> Operator {
        if node.op == "QuantizeLinear" || node.op == "DequantizeLinear" {
            throw PassError(node: node.displayName, "the model is already quantized (\(node.op)); calibrate the float model")
        }
        let domain = node.isDefaultDomain ? "" : (node.domain ?? "")
        let version = opset  // the model's default-domain opset (no other domain has ops here)
        if let op = registry.lookup(domain: domain, opType: node.op, opset: version) { return op }
        let name = (domain.isEmpty ? "" : domain + ".") + node.op
        let ranges = registry.versions(domain: domain, opType: node.op)
        let known = ranges.isEmpty ? "" : " (it runs \(name) at opsets \(ranges.map { "\($0.lowerBound)–\($0.upperBound)" }.joined(separator: ", ")))"
        throw PassError(node: node.displayName, "op \(name) (opset \(version)) is not one the executor runs\(known); `amct-pipe ops` lists what it runs")
    }

    static func error(_ node: Node, _ opset: Int, _ message: String) -> PassError {
        PassError(node: node.displayName, "\(node.op) (opset \(opset)): \(message)")
    }

    /// A shape a value may take: dims ≥ 0 whose product, zeros left out (so strides never overflow either), is within
    /// `elementLimit`.
    static func checkSize(_ shape: [Int]) throws {
        var count = 1
        for d in shape {
            guard d >= 0 else { throw KernelError("a dimension of \(d) in shape \(shape)") }
            let (p, overflow) = count.multipliedReportingOverflow(by: max(d, 1))
            guard !overflow, p <= elementLimit else {
                throw KernelError("an output of shape \(shape) is larger than this machine's memory allows")
            }
            count = p
        }
    }
}

extension Result where Failure == KernelError {
    func mapError(node: Node?, opset: Int) throws -> Success {
        switch self {
        case .success(let v): return v
        case .failure(let e):
            guard let node else { throw PassError(node: "graph outputs", e.message) }
            throw ExecutionPlan.error(node, opset, e.message)
        }
    }
}
