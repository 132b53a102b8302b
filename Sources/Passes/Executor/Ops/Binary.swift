import Graph
import Kernels

// Elementwise binary ops with numpy broadcasting, and comparisons and Where.
//
//   Add Sub Mul Div Pow   float: one broadcast loop specialised per op;  int64 (shape arithmetic): exact, wrapping,
//                         integer division truncates and x/0 = 0
//   Max (two inputs) PRelu  the same loop (PRelu's slope broadcast to x)
//   Equal Less Greater    bool;  Where(c, x, y) = c ? x : y
//
// Gradients (Backward.binary / whereSelect; g = ∂y, each input's gradient summed over the axes it was broadcast on):
//   Add ∂a = g, ∂b = g   Sub ∂a = g, ∂b = −g   Mul ∂a = g·b, ∂b = g·a   Div ∂a = g/b, ∂b = −g·a/b²
//   Pow ∂a = g·b·a^(b−1), ∂b = g·a^b·ln a (0 where a ≤ 0)   Where ∂x = g·[c], ∂y = g·[¬c], none for c
//   Max ∂ to the larger (a on a tie)   PRelu ∂x = g·(x < 0 ? s : 1), ∂s = g·(x < 0 ? x : 0)
// Int64 arithmetic and the comparisons have no gradient; an int64 operand of a float op gets none.

enum BinaryOps {
    static let add = arithmetic("Add", AddOperation.self) { $0 &+ $1 }
    static let sub = arithmetic("Sub", SubOperation.self) { $0 &- $1 }
    static let mul = arithmetic("Mul", MulOperation.self) { $0 &* $1 }
    static let div = arithmetic("Div", DivOperation.self) { $1 == 0 ? 0 : ($0 == .min && $1 == -1 ? .min : $0 / $1) }
    static let pow = arithmetic("Pow", PowOperation.self) { a, b in
        guard b >= 0 else { return a == 1 ? 1 : 0 }
        var result: Int64 = 1, base = a, e = b
        while e > 0 {
            if e & 1 == 1 { result = result &* base }
            base = base &* base
            e >>= 1
        }
        return result
    }
    static let max = twoInputs(arithmetic("Max", MaxOperation.self) { Swift.max($0, $1) })
    static let prelu = arithmetic("PRelu", PReluOperation.self) { $0 < 0 ? $0 &* $1 : $0 }
    static let equal = comparison("Equal", floats: { $0 == $1 }, ints: { $0 == $1 })
    static let less = comparison("Less", floats: { $0 < $1 }, ints: { $0 < $1 })
    static let greater = comparison("Greater", floats: { $0 > $1 }, ints: { $0 > $1 })
    static let where_ = Operator("Where", versions: 9...Operator.newestOpset, hasGradient: true, prepare: prepareWhere)

    struct FloatBinaryKernel<Op: FloatBinaryOperation>: OpKernel {
        let layout: BroadcastLayout
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let a = try inputs.required(0), b = try inputs.required(1)
            let y = pooledOutput(layout.shape, buffers) { out in
                a.withFloatPointer { ap in
                    b.withFloatPointer { bp in
                        BroadcastKernels.binary(Op.gradient, UnsafeBufferPointer(start: ap, count: a.count),
                                                UnsafeBufferPointer(start: bp, count: b.count), layout,
                                                into: UnsafeMutableBufferPointer(start: out, count: layout.count))
                    }
                }
            }
            return [y]
        }
    }

    struct IntBinaryKernel: OpKernel {
        let layout: BroadcastLayout
        let function: @Sendable (Int64, Int64) -> Int64
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let a = try inputs.required(0), b = try inputs.required(1)
            return [DenseTensor(shape: layout.shape, ints: BroadcastKernels.generic(a.ints, b.ints, layout, function))]
        }
    }

    static func arithmetic<Op: FloatBinaryOperation & SendableMetatype>(
        _ name: String, _ op: Op.Type, ints: @escaping @Sendable (Int64, Int64) -> Int64
    ) -> Operator {
        Operator(name, versions: 1...Operator.newestOpset, hasGradient: true) { ctx in
            let a = try ctx.input(0), b = try ctx.input(1)
            let layout = try BroadcastLayout([a.shape, b.shape])
            if a.kind != .float && b.kind != .float {
                return Prepared([TensorSpec(.int64, layout.shape)], IntBinaryKernel(layout: layout, function: ints))
            }
            return Prepared([TensorSpec(.float, layout.shape)], FloatBinaryKernel<Op>(layout: layout))
        }
    }

    /// `op` refusing any number of inputs but two (ONNX Max is variadic; the executor runs the binary form, which is
    /// what amct-pipe's own importers write).
    static func twoInputs(_ op: Operator) -> Operator {
        Operator(op.opType, versions: op.versions, hasGradient: true) { ctx in
            guard ctx.inputCount == 2 else { throw KernelError("takes 2 inputs here, not \(ctx.inputCount)") }
            return try op.prepare(ctx)
        }
    }

    struct CompareKernel: OpKernel {
        let layout: BroadcastLayout
        let asFloats: Bool
        let floats: @Sendable (Float, Float) -> Bool
        let ints: @Sendable (Int64, Int64) -> Bool
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let a = try inputs.required(0), b = try inputs.required(1)
            let values = asFloats ? BroadcastKernels.generic(a.floats, b.floats, layout, floats)
                : BroadcastKernels.generic(a.ints, b.ints, layout, ints)
            return [DenseTensor(shape: layout.shape, bools: values)]
        }
    }

    static func comparison(
        _ name: String, floats: @escaping @Sendable (Float, Float) -> Bool, ints: @escaping @Sendable (Int64, Int64) -> Bool
    ) -> Operator {
        Operator(name, versions: 1...Operator.newestOpset) { ctx in
            let a = try ctx.input(0), b = try ctx.input(1)
            let layout = try BroadcastLayout([a.shape, b.shape])
            let kernel = CompareKernel(layout: layout, asFloats: a.kind == .float || b.kind == .float, floats: floats, ints: ints)
            return Prepared([TensorSpec(.bool, layout.shape)], kernel)
        }
    }

    struct WhereKernel: OpKernel {
        let layout: BroadcastLayout
        let kind: TensorSpec.Kind
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let c = try inputs.required(0), x = try inputs.required(1), y = try inputs.required(2)
            let condition: [Bool]
            if case .bool(let b) = c.elements { condition = b } else { condition = c.ints.map { $0 != 0 } }
            switch kind {
            case .float: return [DenseTensor(shape: layout.shape, floats: BroadcastKernels.select(condition, x.floats, y.floats, layout))]
            case .int64: return [DenseTensor(shape: layout.shape, ints: BroadcastKernels.select(condition, x.ints, y.ints, layout))]
            case .bool:
                let xb = x.ints.map { $0 != 0 }, yb = y.ints.map { $0 != 0 }
                return [DenseTensor(shape: layout.shape, bools: BroadcastKernels.select(condition, xb, yb, layout))]
            }
        }
    }

    static func prepareWhere(_ ctx: OpContext) throws -> Prepared {
        let c = try ctx.input(0), x = try ctx.input(1), y = try ctx.input(2)
        let layout = try BroadcastLayout([c.shape, x.shape, y.shape])
        let kind: TensorSpec.Kind = x.kind == .float || y.kind == .float ? .float : (x.kind == .bool && y.kind == .bool ? .bool : .int64)
        return Prepared([TensorSpec(kind, layout.shape)], WhereKernel(layout: layout, kind: kind))
    }
}

extension BinaryOps.FloatBinaryKernel: DifferentiableKernel {
    var saved: SavedValues { Op.gradient.readsOperands ? .inputs([0, 1]) : .none }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let a = try inputs.required(0), b = try inputs.required(1)
        let g = try outputGradient(outputGradients, 0, shape: layout.shape, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 2), buffers) { d in
            try a.withFloatBuffer { ap in
                try b.withFloatBuffer { bp in
                    try g.withFloatBuffer { gp in
                        try Backward.binary(Op.gradient, a: ap, aShape: a.shape, b: bp, bShape: b.shape, gradient: gp,
                                            da: d[0], db: d[1])
                    }
                }
            }
        }
    }
}

extension BinaryOps.WhereKernel: DifferentiableKernel {
    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        guard kind == .float else { return inputs.map { _ in nil } }
        let c = try inputs.required(0), x = try inputs.required(1), y = try inputs.required(2)
        let condition: [Bool]
        if case .bool(let v) = c.elements { condition = v } else { condition = c.ints.map { $0 != 0 } }
        let g = try outputGradient(outputGradients, 0, shape: layout.shape, buffers)
        var wanted = gradientMask(inputs, needs, limit: 3)
        wanted[0] = false
        return try inputGradients(inputs, wanted, buffers) { d in
            try condition.withUnsafeBufferPointer { cp in
                try g.withFloatBuffer { gp in
                    try Backward.whereSelect(condition: cp, conditionShape: c.shape, aShape: x.shape, bShape: y.shape,
                                             gradient: gp, da: d[1], db: d[2])
                }
            }
        }
    }
}
