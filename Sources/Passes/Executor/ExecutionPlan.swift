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

    /// - Parameters:
    ///   - observed: values a caller wants to see; fusion never hides them.
    ///   - fusion: which chains run as one step (Fusion.swift).
    init(graph model: Graph, opset: Int, registry: OperatorRegistry, inputs: [String: TensorSpec],
         observed: Set<String> = [], fusion: Fusion.Mode = .inference) throws {
        let graph = model
        var specs: [Int: TensorSpec] = [:]
        func slot(_ name: String) -> Int {
            if let s = slotByName[name] { return s }
            slotByName[name] = slotCount
            slotCount += 1
            return slotCount - 1
        }
        for (name, spec) in inputs {
            do { try Self.checkSize(spec.shape) } catch let e as KernelError {
                throw PassError(node: name, "graph input '\(name)': \(e.message)")
            }
            let s = slot(name)
            specs[s] = spec
            inputSlots.append((name, s))
        }
        var producedAt: [Int: Int] = [:]
        var absorbed = Set<NodeID>()
        func argument(_ name: String, of node: Node) throws -> (spec: TensorSpec?, slot: Int) {
            if name.isEmpty { return (nil, -1) }
            let s = slot(name)
            if specs[s] == nil, let t = graph.initializers[name] {
                let value = try Self.dense(t).mapError(node: node, opset: opset)
                specs[s] = TensorSpec(constant: value)
                constants.append((s, value))
            }
            guard let spec = specs[s] else {
                throw PassError(node: node.displayName, "reads '\(name)', which no graph input, initializer or earlier node gives")
            }
            return (spec, s)
        }
        /// An elementwise chain starting at `id` (ElementwiseChain.swift): the step and the nodes it absorbs.
        func elementwiseChain(from id: NodeID, _ first: Prepared, _ firstSpecs: [TensorSpec?], _ firstSlots: [Int])
            throws -> (step: Step, absorbed: [NodeID], shape: [Int])? {
            guard first.outputs.count == 1, first.outputs[0].kind == .float else { return nil }
            let shape = first.outputs[0].shape
            var operandSlots: [Int] = [], operandShapes: [[Int]] = [], stages: [any ChainStage] = [], absorbed: [NodeID] = []
            func operand(_ slot: Int, _ shape: [Int]) -> Int {
                if let k = operandSlots.firstIndex(of: slot) { return k }
                operandSlots.append(slot)
                operandShapes.append(shape)
                return operandSlots.count - 1
            }
            /// The stages of one node reading the chain's value at input `at` (nil: it cannot join).
            func stagesOf(_ node: Node, _ prepared: Prepared, _ inputSpecs: [TensorSpec?], _ slots: [Int], at: Int) -> [any ChainStage]? {
                guard prepared.outputs.count == 1, prepared.outputs[0].shape == shape, prepared.outputs[0].kind == .float else { return nil }
                if node.op == "BatchNormalization", at == 0, let bn = prepared.kernel as? NormalizationOps.BatchNormKernel,
                   shape.count >= 2, let params = try? (1...4).map({ i -> [Float] in
                       guard let c = inputSpecs[i]?.constant else { throw KernelError("") }
                       return c.floats }) {
                    guard params.allSatisfy({ $0.count == shape[1] }) else { return nil }
                    let (k, shift) = NeuralOps.batchNormAffine(scale: params[0], bias: params[1], mean: params[2],
                                                               variance: params[3], epsilon: bn.epsilon)
                    let pshape = [1, shape[1]] + Array(repeating: 1, count: shape.count - 2)
                    let ks = slot("\(node.displayName)#bn.k"), ss = slot("\(node.displayName)#bn.shift")
                    for (s, v) in [(ks, k), (ss, shift)] {
                        let value = DenseTensor(shape: pshape, floats: v)
                        specs[s] = TensorSpec(constant: value)
                        constants.append((s, value))
                    }
                    return [BinaryStage<MulOperation>(operand: operand(ks, pshape), chainIsLeft: true),
                            BinaryStage<AddOperation>(operand: operand(ss, pshape), chainIsLeft: true)]
                }
                guard let chainable = prepared.kernel as? any ChainableKernel else { return nil }
                let others = slots.indices.filter { $0 != at && slots[$0] >= 0 }
                guard chainable.chainOperands == 0 || others.count == 1 else { return nil }
                // Training: only constants (not the trainer's parameters) or the chain's entry value as operands.
                if fusion == .training, chainable.chainOperands > 0, let k = others.first,
                   slots[k] != operandSlots.first, inputSpecs[k]?.constant == nil { return nil }
                let other = chainable.chainOperands == 0 ? nil : others.first.map { operand(slots[$0], inputSpecs[$0]?.shape ?? []) }
                guard let stage = chainable.chainStage(chainInput: at, operandIndex: other) else { return nil }
                if fusion == .training, (stage as? any DifferentiableChainStage)?.differentiable != true { return nil }
                return [stage]
            }
            // The first node: its chain value is an input of the output's shape.
            let firstNode = graph[id]
            guard let entryAt = firstSlots.indices.first(where: { firstSlots[$0] >= 0 && firstSpecs[$0]?.shape == shape }) else {
                return nil
            }
            _ = operand(firstSlots[entryAt], shape)
            guard let firstStages = stagesOf(firstNode, first, firstSpecs, firstSlots, at: entryAt) else { return nil }
            stages += firstStages
            var value = firstNode.outputs[0]
            while !observed.contains(value), !graph.isGraphOutput(value), graph.consumers(of: value).count == 1 {
                let nextID = graph.consumers(of: value)[0]
                let next = graph[nextID]
                guard next.isDefaultDomain, next.outputs.count == 1, next.inputs.filter({ $0 == value }).count == 1,
                      let at = next.inputs.firstIndex(of: value),
                      let op = try? Self.lookup(next, opset: opset, registry: registry) else { break }
                var specsNext: [TensorSpec?] = [], slotsNext: [Int] = []
                var available = true
                for (i, name) in next.inputs.enumerated() {
                    if i == at { specsNext.append(TensorSpec(.float, shape)); slotsNext.append(-2); continue }
                    guard let a = try? argument(name, of: next), name.isEmpty || a.spec != nil else { available = false; break }
                    specsNext.append(a.spec)
                    slotsNext.append(a.slot)
                }
                guard available, let prepared = try? op.prepare(OpContext(node: next, opset: opset, inputs: specsNext)),
                      let more = stagesOf(next, prepared, specsNext, slotsNext, at: at) else { break }
                stages += more
                absorbed.append(nextID)
                value = next.outputs[0]
            }
            guard stages.count >= 2, let layout = try? BroadcastLayout(operandShapes + [shape]), layout.shape == shape,
                  layout.dims.isEmpty || operandShapes.indices.allSatisfy({ (0...1).contains(layout.strides[$0].last!) })
            else { return nil }
            let ops = ([firstNode.op] + absorbed.map { graph[$0].op }).joined(separator: "+")
            let step = Step(node: id, opType: ops, kernel: ElementwiseChainKernel(layout: layout, stages: stages),
                            inputs: operandSlots, outputs: [slot(value)])
            return (step, absorbed, shape)
        }
        for id in graph.order where !absorbed.contains(id) {
            var node = graph[id]
            let op = try Self.lookup(node, opset: opset, registry: registry)
            let arguments = try node.inputs.map { try argument($0, of: node) }
            var argSpecs = arguments.map(\.spec), argSlots = arguments.map(\.slot)
            var prepared: Prepared
            do {
                prepared = try op.prepare(OpContext(node: node, opset: opset, inputs: argSpecs))
                for out in prepared.outputs { try Self.checkSize(out.shape) }
            } catch let e as KernelError {
                throw Self.error(node, opset, e.message)
            }
            // A Conv chain (Fusion.swift) becomes one step reading [x, W, B, residual] and writing the chain's end.
            if fusion != .none, var conv = prepared.kernel as? ConvOps.ConvKernel,
               let chain = Fusion.convChain(graph, id, mode: fusion, observed: observed, known: { name in
                   slotByName[name].map { specs[$0] != nil } ?? (graph.initializers[name] != nil)
               }) {
                var residual: (spec: TensorSpec?, slot: Int)?
                if let r = chain.residual { residual = try argument(r, of: node) }
                let channels = conv.geometry.outChannels
                var shift: [Float]?, scale: [Float]?
                if let bn = chain.batchNorm {
                    let bias = argSpecs.count > 2 ? argSpecs[2] : nil
                    if bn.parameters.allSatisfy({ $0.count == channels }), bias == nil || bias?.constant?.count == channels {
                        let b = bias?.constant?.floats ?? [Float](repeating: 0, count: channels)
                        let p = bn.parameters
                        (scale, shift) = NeuralOps.batchNormAffine(scale: p[0], bias: p[1], mean: p[2], variance: p[3],
                                                                   epsilon: bn.epsilon, inputBias: b)
                    }
                }
                if (residual == nil || residual?.spec?.shape == prepared.outputs[0].shape), chain.batchNorm == nil || scale != nil {
                    while argSpecs.count < 3 { argSpecs.append(nil); argSlots.append(-1) }
                    if let shift {
                        let s = slot("\(node.displayName)#bn.shift")
                        let value = DenseTensor(shape: [channels], floats: shift)
                        specs[s] = TensorSpec(constant: value)
                        constants.append((s, value))
                        argSpecs[2] = specs[s]
                        argSlots[2] = s
                    }
                    if let residual { argSpecs.append(residual.spec); argSlots.append(residual.slot) }
                    conv.fusedResidual = residual != nil
                    conv.epilogue = NeuralOps.Epilogue(scale: scale, clamp: chain.clamp)
                    prepared.kernel = conv
                    node.outputs = [chain.output]
                    absorbed.formUnion(chain.absorbed)
                }
            }
            let isConstant = argSpecs.allSatisfy { $0 == nil || $0?.constant != nil }
            if fusion != .none, !isConstant, let chain = try elementwiseChain(from: id, prepared, argSpecs, argSlots) {
                for s in chain.step.outputs { specs[s] = TensorSpec(.float, chain.shape); producedAt[s] = steps.count }
                steps.append(chain.step)
                absorbed.formUnion(chain.absorbed)
                continue
            }
            let named = node.outputs.enumerated().filter { !$0.element.isEmpty }
            if let extra = named.first(where: { $0.offset >= prepared.outputs.count }) {
                throw Self.error(node, opset, "has \(node.outputs.count) outputs; output \(extra.offset) is not one the executor computes")
            }
            let outSlots = node.outputs.enumerated().map { i, name in name.isEmpty ? -1 : slot(name) }
            let foldable = argSpecs.allSatisfy { $0 == nil || $0?.constant != nil }
            if foldable {
                foldedBytes += prepared.outputs.reduce(0) { $0 + $1.byteCount }
                try Self.checkMemory(foldedBytes, node, opset, "its values, computed before the data runs,")
                let values: [DenseTensor]
                do {
                    values = try prepared.kernel.forward(argSpecs.map { $0?.constant }, BufferPool(limit: 0))
                } catch let e as KernelError {
                    throw Self.error(node, opset, e.message)
                }
                for (i, s) in outSlots.enumerated() where s >= 0 {
                    specs[s] = TensorSpec(constant: values[i])
                    constants.append((s, values[i]))
                }
                continue
            }
            for (i, s) in outSlots.enumerated() where s >= 0 {
                specs[s] = prepared.outputs[i]
                producedAt[s] = steps.count
            }
            steps.append(Step(node: id, opType: node.op, kernel: prepared.kernel, inputs: argSlots, outputs: outSlots))
            if prepared.aliasesInput, argSlots.first ?? -1 >= 0, outSlots.first ?? -1 >= 0 {
                aliasOf[outSlots[0]] = argSlots[0]
            }
        }
        for o in graph.outputs {
            guard let name = o.name else { continue }
            if slotByName[name] == nil, let t = graph.initializers[name], t.dataType != .string {
                let s = slot(name)
                constants.append((s, try Self.dense(t).mapError(node: nil, opset: opset)))
                specs[s] = TensorSpec(constant: constants.last!.value)
            }
            guard let s = slotByName[name], specs[s] != nil else { continue }
            outputSlots.append((name, s))
        }
        for step in steps { nodes[step.node] = graph[step.node] }
        names = [String](repeating: "", count: slotCount)
        for (name, s) in slotByName { names[s] = name }
        shapes = specs.mapValues(\.shape)
        var floatCounts: [Int: Int] = [:]
        for (s, spec) in specs where spec.kind == .float && spec.constant == nil { floatCounts[s] = spec.count }
        scheduleReleases(producedAt: producedAt, floatCounts: floatCounts)
        measureMemory(specs)
        if let at = peakStep {
            try Self.checkMemory(peakBytes, nodes[steps[at].node] ?? graph[steps[at].node], opset, "a batch")
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

    /// An initializer as an executor value (converted once per plan).
    static func dense(_ t: Tensor) -> Result<DenseTensor, KernelError> {
        let shape = t.dims.map { Int(clamping: $0) }
        do { try checkSize(shape) } catch {
            return .failure(KernelError("initializer '\(t.name ?? "")' has dims \(t.dims)"))
        }
        let count = shape.reduce(1, *)
        guard let size = t.dataType.byteCount(elements: count), size == t.byteCount || t.dataType == .bool && t.byteCount == count else {
            return .failure(KernelError("initializer '\(t.name ?? "")' holds \(t.byteCount) bytes, not what dims \(t.dims) of \(t.dataType) need"))
        }
        switch t.dataType {
        case .float:
            // A view of the initializer's own bytes when they are aligned for Float (they are malloc'd): no copy.
            if case .bytes(let buffer) = t.data, let base = buffer.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
                let view = FloatView(owner: buffer, base: UnsafePointer(base.assumingMemoryBound(to: Float.self)), count: count)
                return .success(DenseTensor(shape: shape, view: view))
            }
            return .success(DenseTensor(shape: shape, floats: t.withElements(as: Float.self) { Array($0) }))
        case .float16: return .success(DenseTensor(shape: shape, floats: t.withElements(as: Float16.self) { $0.map(Float.init) }))
        case .double: return .success(DenseTensor(shape: shape, floats: t.withElements(as: Double.self) { $0.map(Float.init) }))
        case .int64: return .success(DenseTensor(shape: shape, ints: t.withElements(as: Int64.self) { Array($0) }))
        case .int32: return .success(DenseTensor(shape: shape, ints: t.withElements(as: Int32.self) { $0.map(Int64.init) }))
        case .int8: return .success(DenseTensor(shape: shape, ints: t.withElements(as: Int8.self) { $0.map(Int64.init) }))
        case .uint8: return .success(DenseTensor(shape: shape, ints: t.withElements(as: UInt8.self) { $0.map(Int64.init) }))
        case .bool: return .success(DenseTensor(shape: shape, bools: t.withElements(as: UInt8.self) { $0.map { $0 != 0 } }))
        default: return .failure(KernelError("tensor '\(t.name ?? "")' of type \(t.dataType) is not read by the executor"))
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
