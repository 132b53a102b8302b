import Graph
import Kernels

// Constant (a tensor attribute, or value_float(s)/value_int(s)) and ConstantOfShape (a constant shape input, filled
// with the value attribute's one element, 0.0 by default). Both are computed once, when the plan is built.

enum ConstantOps {
    static let constant = Operator("Constant", versions: 1...Operator.newestOpset) { ctx in
        guard let t = Graph.constantNodeValue(ctx.node) else { throw KernelError("Constant has no value attribute this executor reads") }
        let value = try ExecutionPlan.dense(t).get()
        return Prepared([TensorSpec(constant: value)], ValueKernel(value: value))
    }

    static let constantOfShape = Operator("ConstantOfShape", versions: 9...Operator.newestOpset) { ctx in
        guard let shape = try ctx.constantInts(0, what: "shape") else { throw KernelError("the shape input is required") }
        try ExecutionPlan.checkSize(shape)
        let count = shape.reduce(1, *)
        try ExecutionPlan.checkConstant(bytes: 8 * count)  // made here, before the plan measures its memory
        var fill = DenseTensor(shape: [], floats: [0])
        if let t = ctx.node.attribute("value")?.t {
            let v = try ExecutionPlan.dense(t).get()
            guard v.count == 1 else { throw KernelError("value must hold one element, holds \(v.count)") }
            fill = v
        }
        let value: DenseTensor
        switch fill.elements {
        case .float, .floatView: value = DenseTensor(shape: shape, floats: Array(repeating: fill.floats[0], count: count))
        case .int64(let i): value = DenseTensor(shape: shape, ints: Array(repeating: i[0], count: count))
        case .bool(let b): value = DenseTensor(shape: shape, bools: Array(repeating: b[0], count: count))
        }
        return Prepared([TensorSpec(constant: value)], ValueKernel(value: value))
    }

    /// A value known when the plan is built.
    struct ValueKernel: OpKernel {
        let value: DenseTensor
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] { [value] }
    }
}
