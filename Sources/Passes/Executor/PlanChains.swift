import Graph
import Kernels

// The plan's elementwise chains (ElementwiseChain.swift runs them): from a node whose output has the chain's shape,
// the nodes after it while each is the sole reader of the value before, joins as a stage, and nothing outside needs
// the value in between (BatchNormalization joins as its per-channel Mul and Add). Training joins only stages with a
// gradient and constant operands (ElementwiseChainBackward.swift).

extension ExecutionPlan {
    /// An elementwise chain starting at `id` (ElementwiseChain.swift): the step and the nodes it absorbs.
    mutating func elementwiseChain(from id: NodeID, _ first: Prepared, _ firstSpecs: [TensorSpec?], _ firstSlots: [Int],
                                   _ state: inout BuildState) throws -> (step: Step, absorbed: [NodeID], shape: [Int])? {
        let graph = state.graph, fusion = state.fusion
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
                for (s, v) in [(ks, k), (ss, shift)] { addConstant(s, DenseTensor(shape: pshape, floats: v), &state) }
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
        while !state.observed.contains(value), !graph.isGraphOutput(value), graph.consumers(of: value).count == 1 {
            let nextID = graph.consumers(of: value)[0]
            let next = graph[nextID]
            guard next.isDefaultDomain, next.outputs.count == 1, next.inputs.filter({ $0 == value }).count == 1,
                  let at = next.inputs.firstIndex(of: value),
                  let op = try? Self.lookup(next, opset: state.opset, registry: state.registry) else { break }
            var specsNext: [TensorSpec?] = [], slotsNext: [Int] = []
            var available = true
            for (i, name) in next.inputs.enumerated() {
                if i == at { specsNext.append(TensorSpec(.float, shape)); slotsNext.append(-2); continue }
                guard let a = try? argument(name, of: next, &state), name.isEmpty || a.spec != nil else { available = false; break }
                specsNext.append(a.spec)
                slotsNext.append(a.slot)
            }
            guard available, let prepared = try? op.prepare(OpContext(node: next, opset: state.opset, inputs: specsNext)),
                  let more = stagesOf(next, prepared, specsNext, slotsNext, at: at) else { break }
            stages += more
            absorbed.append(nextID)
            value = next.outputs[0]
        }
        guard stages.count >= 2, let layout = try? BroadcastLayout(operandShapes + [shape]), layout.shape == shape,
              layout.dims.isEmpty || operandShapes.indices.allSatisfy({ (0...1).contains(layout.strides[$0].last!) })
        else { return nil }
        let ops = ([firstNode.op] + absorbed.map { graph[$0].op }).joined(separator: "+")
        let kernel = ElementwiseChainKernel(layout: layout, stages: HardSwishStage.merging(stages))
        let step = Step(node: id, opType: ops, kernel: kernel,
                        inputs: operandSlots, outputs: [slot(value)])
        return (step, absorbed, shape)
    }
}
