import Graph
import Kernels

// Gather (rows of the data along `axis`, picked by int64 indices; negative indices count from the end) and Range
// (start, limit, delta: ⌈(limit − start)/delta⌉ values, known before the data runs).
//
// Gradient of Gather (Backward.gather): ∂x[…, idx[j], …] += g[…, j, …] (repeated indices add up); none for the
// indices, none when the data is int64 or bool.

enum GatherOps {
    static let gather = Operator("Gather", versions: 1...Operator.newestOpset, hasGradient: true,
                                 prepare: prepareGather)
    static let range = Operator("Range", versions: 11...Operator.newestOpset, prepare: prepareRange)

    struct GatherKernel: OpKernel {
        let axis: Int
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0), idx = try inputs.required(1)
            switch x.elements {
            case .float, .floatView:
                let (v, s) = try ShapeOps.gather(x.floats, x.shape, indices: idx.ints, indicesShape: idx.shape, axis: axis)
                return [DenseTensor(shape: s, floats: v)]
            case .int64(let i):
                let (v, s) = try ShapeOps.gather(i, x.shape, indices: idx.ints, indicesShape: idx.shape, axis: axis)
                return [DenseTensor(shape: s, ints: v)]
            case .bool(let b):
                let (v, s) = try ShapeOps.gather(b, x.shape, indices: idx.ints, indicesShape: idx.shape, axis: axis)
                return [DenseTensor(shape: s, bools: v)]
            }
        }
    }

    static func prepareGather(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.input(0), idx = try ctx.input(1)
        guard x.rank > 0 else { throw KernelError("Gather from a scalar") }
        guard idx.kind == .int64 else { throw KernelError("indices must be integers") }
        let axis = try ctx.axis(try ctx.int("axis", default: 0), rank: x.rank)
        let out = Array(x.shape[..<axis]) + idx.shape + Array(x.shape[(axis + 1)...])
        try ExecutionPlan.checkSize(out)
        return Prepared([TensorSpec(x.kind, out)], GatherKernel(axis: axis))
    }

    static func prepareRange(_ ctx: OpContext) throws -> Prepared {
        let s = try ctx.input(0), l = try ctx.input(1), d = try ctx.input(2)
        guard let sc = s.constant, let lc = l.constant, let dc = d.constant, sc.count == 1, lc.count == 1, dc.count == 1 else {
            throw KernelError("start, limit and delta must be scalars known before the data runs")
        }
        let value: DenseTensor
        if s.kind == .float {
            let (a, b, c) = (Double(sc.floats[0]), Double(lc.floats[0]), Double(dc.floats[0]))
            let n = try count((b - a) / c)
            value = DenseTensor(shape: [n], floats: (0..<n).map { Float(a + Double($0) * c) })
        } else {
            let (a, b, c) = (sc.ints[0], lc.ints[0], dc.ints[0])
            guard c != 0 else { throw KernelError("delta is 0") }
            let n = try count((Double(b) - Double(a)) / Double(c))
            value = DenseTensor(shape: [n], ints: (0..<n).map { a &+ Int64($0) &* c })
        }
        return Prepared([TensorSpec(constant: value)], ConstantOps.ValueKernel(value: value))
    }

    static func count(_ steps: Double) throws -> Int {
        guard steps.isFinite else { throw KernelError("the range has no finite length") }
        let n = max(0, steps.rounded(.up))
        try ExecutionPlan.checkSize([Int(min(n, 1e15))])
        try ExecutionPlan.checkConstant(bytes: 8 * Int(n))  // made in prepare, before the plan measures its memory
        return Int(n)
    }
}

extension GatherOps.GatherKernel: DifferentiableKernel {
    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0), idx = try inputs.required(1)
        guard let y = outputs.first else { throw KernelError("the forward's output is missing") }
        let g = try outputGradient(outputGradients, 0, shape: y.shape, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 1), buffers) { d in
            guard let dx = d[0] else { return }
            try g.withFloatBuffer {
                try Backward.gather(gradient: $0, xShape: x.shape, indices: idx.ints, axis: axis, dx: dx)
            }
        }
    }
}
