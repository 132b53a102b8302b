import Graph
import Kernels

// Shape and data movement. Views (no copy, output shares its input's storage): Identity, Dropout (inference),
// Flatten, Reshape, Squeeze, Unsqueeze. Copies: Transpose, Concat, Split, Slice, Expand, Pad (constant mode), Cast.
// Shape is known before data runs and is folded into a constant; so is anything computed from it alone.
//
//   Reshape   0 copies the input dim (unless allowzero), −1 is inferred;  Flatten [Π d<axis, Π d≥axis]
//   Squeeze/Unsqueeze/Split  axes (split sizes) as attributes before opset 13, as input 1 from 13 on
//
// Gradients (Backward.transpose, concat, slice, pad, reduceToShape; g = ∂y), float data only (int64 and bool values
// are shapes and masks: no gradient; neither for the shape, axes, pads, starts… inputs):
//   views        ∂x = g under x's shape                Transpose  ∂x = transpose(g, perm⁻¹)
//   Concat       ∂x_k = g's slab at x_k's offset        Split/Slice  ∂x[window_k] += g_k, 0 elsewhere
//   Expand       ∂x = g summed over the expanded axes   Pad (constant)  ∂x = g cropped to x (reflect/edge: none)
//   Cast         float → float: ∂x = g (float16 rounding passes the gradient straight through)

enum ShapeOpsRegistry {
    static let identity = view("Identity") { ctx, x in x.shape }
    static let dropout = view("Dropout") { ctx, x in
        if ctx.node.outputs.count > 1, !ctx.node.outputs[1].isEmpty { throw KernelError("the mask output is not computed") }
        return x.shape
    }
    static let flatten = view("Flatten") { ctx, x in
        let raw = try ctx.int("axis", default: 1)
        let axis = raw < 0 ? raw + x.rank : raw
        guard axis >= 0, axis <= x.rank else { throw KernelError("axis \(raw) is outside [-\(x.rank), \(x.rank)]") }
        return [x.shape[..<axis].reduce(1, *), x.shape[axis...].reduce(1, *)]
    }
    static let reshape = view("Reshape", since: 5, prepareReshape)
    static let squeeze1 = view("Squeeze", until: 12) { ctx, x in try squeezed(x, try ctx.ints("axes"), ctx) }
    static let squeeze13 = view("Squeeze", since: 13) { ctx, x in try squeezed(x, try ctx.constantInts(1, what: "axes"), ctx) }
    static let unsqueeze1 = view("Unsqueeze", until: 12) { ctx, x in try unsqueezed(x, try ctx.ints("axes"), ctx) }
    static let unsqueeze13 = view("Unsqueeze", since: 13) { ctx, x in try unsqueezed(x, try ctx.constantInts(1, what: "axes"), ctx) }
    static let transpose = Operator("Transpose", versions: 1...Operator.newestOpset, hasGradient: true,
                                    prepare: prepareTranspose)
    static let concat = Operator("Concat", versions: 4...Operator.newestOpset, hasGradient: true,
                                 prepare: prepareConcat)
    static let split2 = Operator("Split", versions: 2...12, hasGradient: true) {
        try prepareSplit($0, sizes: try $0.ints("split"))
    }
    static let split13 = Operator("Split", versions: 13...Operator.newestOpset, hasGradient: true) {
        try prepareSplit($0, sizes: try $0.constantInts(1, what: "split"))
    }
    static let slice10 = Operator("Slice", versions: 10...Operator.newestOpset, hasGradient: true,
                                  prepare: prepareSlice)
    static let shape = Operator("Shape", versions: 1...Operator.newestOpset, prepare: prepareShape)
    static let expand = Operator("Expand", versions: 8...Operator.newestOpset, hasGradient: true,
                                 prepare: prepareExpand)
    static let pad2 = Operator("Pad", versions: 2...10, hasGradient: true, prepare: preparePad2)
    static let pad11 = Operator("Pad", versions: 11...Operator.newestOpset, hasGradient: true, prepare: preparePad11)
    static let cast = Operator("Cast", versions: 6...Operator.newestOpset, hasGradient: true, prepare: prepareCast)

    // MARK: Views

    /// An op whose output is its input under another shape.
    struct ViewKernel: OpKernel {
        let shape: [Int]
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            var y = try inputs.required(0)
            y.shape = shape
            return [y]
        }
    }

    static func view(_ op: String, since: Int = 1, until: Int = Operator.newestOpset,
                     _ shape: @escaping @Sendable (OpContext, TensorSpec) throws -> [Int]) -> Operator {
        Operator(op, versions: since...until, hasGradient: true) { ctx in
            let x = try ctx.input(0)
            let out = try shape(ctx, x)
            guard out.reduce(1, *) == x.count else { throw KernelError("cannot view \(x.shape) as \(out)") }
            return Prepared([TensorSpec(x.kind, out)], ViewKernel(shape: out), aliasesInput: true)
        }
    }

    static func prepareReshape(_ ctx: OpContext, _ x: TensorSpec) throws -> [Int] {
        guard var target = try ctx.constantInts(1, what: "shape") else { throw KernelError("the shape input is required") }
        let allowZero = try ctx.int("allowzero", default: 0) != 0
        for i in target.indices where target[i] == 0 && !allowZero {
            guard i < x.rank else { throw KernelError("shape \(target) copies dim \(i), which input \(x.shape) lacks") }
            target[i] = x.shape[i]
        }
        let inferred = target.indices.filter { target[$0] == -1 }
        guard inferred.count <= 1, target.allSatisfy({ $0 >= -1 }) else { throw KernelError("shape \(target) is not a valid Reshape target") }
        if let m = inferred.first {
            var known = 1
            for (i, d) in target.enumerated() where i != m {
                let (p, overflow) = known.multipliedReportingOverflow(by: d)
                guard !overflow else { throw KernelError("cannot reshape \(x.shape) to \(target)") }
                known = p
            }
            guard known > 0, x.count % known == 0 else { throw KernelError("cannot reshape \(x.shape) to \(target)") }
            target[m] = x.count / known
        }
        try ExecutionPlan.checkSize(target)
        guard target.reduce(1, *) == x.count else { throw KernelError("cannot reshape \(x.shape) to \(target)") }
        return target
    }

    static func squeezed(_ x: TensorSpec, _ raw: [Int]?, _ ctx: OpContext) throws -> [Int] {
        let axes = try (raw ?? x.shape.indices.filter { x.shape[$0] == 1 }).map { try ctx.axis($0, rank: x.rank) }
        for a in axes where x.shape[a] != 1 { throw KernelError("cannot squeeze axis \(a) of size \(x.shape[a])") }
        return x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    }

    static func unsqueezed(_ x: TensorSpec, _ raw: [Int]?, _ ctx: OpContext) throws -> [Int] {
        guard let raw else { throw KernelError("axes are required") }
        let rank = x.rank + raw.count
        let axes = try raw.map { try ctx.axis($0, rank: rank) }.sorted()
        guard Set(axes).count == axes.count else { throw KernelError("axes \(raw) repeat an axis") }
        var shape = x.shape
        for a in axes { shape.insert(1, at: a) }
        return shape
    }

    // MARK: Copies

    struct TransposeKernel: OpKernel {
        let layout: ShapeOps.TransposeLayout, perm: [Int]
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            switch x.elements {
            case .float, .floatView:
                return [pooledOutput(layout.outShape, buffers) { out in x.withFloatPointer { ShapeOps.transpose(layout, x: $0, out: out) } }]
            case .int64(let i): return [DenseTensor(shape: layout.outShape, ints: ShapeOps.transpose(i, x.shape, perm: perm).0)]
            case .bool(let b): return [DenseTensor(shape: layout.outShape, bools: ShapeOps.transpose(b, x.shape, perm: perm).0)]
            }
        }
    }

    static func prepareTranspose(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.input(0)
        let perm = try ctx.ints("perm") ?? Array(x.shape.indices.reversed())
        let layout = try ShapeOps.TransposeLayout(x.shape, perm: perm)
        return Prepared([TensorSpec(x.kind, layout.outShape)], TransposeKernel(layout: layout, perm: perm))
    }

    struct ConcatKernel: OpKernel {
        let axis: Int, outShape: [Int], kind: TensorSpec.Kind
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let parts = inputs.compactMap { $0 }.filter { $0.count > 0 }
            guard !parts.isEmpty else {  // every input empty: so is the output
                switch kind {
                case .float: return [DenseTensor(shape: outShape, floats: [])]
                case .int64: return [DenseTensor(shape: outShape, ints: [])]
                case .bool: return [DenseTensor(shape: outShape, bools: [])]
                }
            }
            guard kind == .float else {
                let (v, s) = ShapeOps.concat(parts.map { ($0.ints, $0.shape) }, axis: axis)
                return kind == .int64 ? [DenseTensor(shape: s, ints: v)] : [DenseTensor(shape: s, bools: v.map { $0 != 0 })]
            }
            let outer = outShape[..<axis].reduce(1, *), row = outShape[axis...].reduce(1, *)
            let y = pooledOutput(outShape, buffers) { out in
                var offset = 0
                for p in parts {
                    let chunk = p.count / max(outer, 1)
                    p.withFloatPointer { ShapeOps.concatPart($0, outer: outer, chunk: chunk, row: row, offset: offset, out: out) }
                    offset += chunk
                }
            }
            return [y]
        }
    }

    static func prepareConcat(_ ctx: OpContext) throws -> Prepared {
        let parts = ctx.inputs.compactMap { $0 }
        guard let first = parts.first else { throw KernelError("Concat has no inputs") }
        guard first.rank > 0 else { throw KernelError("Concat of scalars (rank 0): there is no axis to join along") }
        let axis = try ctx.axis(try ctx.int("axis", default: 0), rank: first.rank)
        var shape = first.shape
        shape[axis] = 0
        for p in parts {
            guard p.rank == first.rank, p.shape.indices.allSatisfy({ $0 == axis || p.shape[$0] == first.shape[$0] }) else {
                throw KernelError("inputs of shapes \(parts.map(\.shape)) differ off axis \(axis)")
            }
            shape[axis] += p.shape[axis]
        }
        let kind: TensorSpec.Kind = parts.contains { $0.kind == .float } ? .float : (parts.allSatisfy { $0.kind == .bool } ? .bool : .int64)
        return Prepared([TensorSpec(kind, shape)], ConcatKernel(axis: axis, outShape: shape, kind: kind))
    }

    /// Split and Slice share this: each output is a strided window of the input.
    struct WindowCopyKernel: OpKernel {
        let windows: [(starts: [Int], steps: [Int], counts: [Int])]
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            return windows.map { w in
                switch x.elements {
                case .float, .floatView:
                    return pooledOutput(w.counts, buffers) { out in
                        x.withFloatPointer { ShapeOps.slice($0, x.shape, starts: w.starts, steps: w.steps, counts: w.counts, out: out) }
                    }
                case .int64(let i):
                    return DenseTensor(shape: w.counts, ints: ShapeOps.slice(i, x.shape, starts: w.starts, steps: w.steps, counts: w.counts))
                case .bool(let b):
                    return DenseTensor(shape: w.counts, bools: ShapeOps.slice(b, x.shape, starts: w.starts, steps: w.steps, counts: w.counts))
                }
            }
        }
    }

    static func prepareSplit(_ ctx: OpContext, sizes given: [Int]?) throws -> Prepared {
        let x = try ctx.input(0)
        guard x.rank > 0 else { throw KernelError("Split of a scalar (rank 0): there is no axis to split") }
        let axis = try ctx.axis(try ctx.int("axis", default: 0), rank: x.rank)
        let n = ctx.node.outputs.count, dim = x.shape[axis]
        let sizes: [Int]
        if let given {
            let total = given.allSatisfy({ $0 >= 0 }) ? try? Checked.sum(given, what: "split") : nil
            guard given.count == n, total == dim else {
                throw KernelError("split \(given) does not divide axis \(axis) of size \(dim) into \(n) outputs")
            }
            sizes = given
        } else {
            guard n > 0 else { throw KernelError("Split has no outputs") }
            let each = (dim + n - 1) / n
            sizes = (0..<n).map { max(0, min(each, dim - $0 * each)) }
        }
        var start = 0
        let windows = sizes.map { size -> (starts: [Int], steps: [Int], counts: [Int]) in
            var starts = [Int](repeating: 0, count: x.rank), counts = x.shape
            starts[axis] = start
            counts[axis] = size
            start += size
            return (starts, Array(repeating: 1, count: x.rank), counts)
        }
        return Prepared(windows.map { TensorSpec(x.kind, $0.counts) }, WindowCopyKernel(windows: windows))
    }

    static func prepareSlice(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.input(0)
        guard let starts = try ctx.constantInts(1, what: "starts"), let ends = try ctx.constantInts(2, what: "ends") else {
            throw KernelError("starts and ends are required")
        }
        guard let axes = try (try ctx.constantInts(3, what: "axes"))?.map({ try ctx.axis($0, rank: x.rank) })
            ?? (starts.count <= x.rank ? Array(0..<starts.count) : nil) else {
            throw KernelError("\(starts.count) starts for an input of rank \(x.rank)")
        }
        let stepsIn = try ctx.constantInts(4, what: "steps") ?? Array(repeating: 1, count: starts.count)
        guard ends.count == starts.count, axes.count == starts.count, stepsIn.count == starts.count, Set(axes).count == axes.count else {
            throw KernelError("starts \(starts), ends \(ends), axes \(axes) and steps \(stepsIn) must have one value per axis")
        }
        var st = [Int](repeating: 0, count: x.rank), steps = [Int](repeating: 1, count: x.rank), counts = x.shape
        for (i, axis) in axes.enumerated() {
            let dim = x.shape[axis], step = stepsIn[i]
            guard step != 0 else { throw KernelError("a step of 0 on axis \(axis)") }
            func clamp(_ v: Int, _ lo: Int, _ hi: Int) -> Int { min(max(v < 0 ? v + dim : v, lo), hi) }
            let s = step > 0 ? clamp(starts[i], 0, dim) : clamp(starts[i], 0, dim - 1)
            let e = step > 0 ? clamp(ends[i], 0, dim) : clamp(ends[i], -1, dim - 1)
            // The window's length, without `step ± 1` arithmetic (a step may be INT64_MIN or INT64_MAX); a window of
            // one element or none steps by 1, so no stride product with a huge step is ever formed.
            let span = step > 0 ? e - s : s - e
            counts[axis] = span > 0 ? Int((UInt(span - 1) / step.magnitude) + 1) : 0
            st[axis] = s
            steps[axis] = counts[axis] > 1 ? step : 1
        }
        return Prepared([TensorSpec(x.kind, counts)], WindowCopyKernel(windows: [(st, steps, counts)]))
    }

    static func prepareShape(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.input(0)
        var start = try ctx.int("start", default: 0), end = try ctx.int("end", default: x.rank)
        if start < 0 { start += x.rank }
        if end < 0 { end += x.rank }
        start = min(max(start, 0), x.rank)
        end = min(max(end, start), x.rank)
        let value = DenseTensor(shape: [end - start], ints: x.shape[start..<end].map { Int64($0) })
        return Prepared([TensorSpec(constant: value)], ConstantOps.ValueKernel(value: value))
    }

    struct ExpandKernel: OpKernel {
        let layout: BroadcastLayout
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            switch x.elements {
            case .float, .floatView: return [DenseTensor(shape: layout.shape, floats: BroadcastKernels.expand(x.floats, layout))]
            case .int64(let i): return [DenseTensor(shape: layout.shape, ints: BroadcastKernels.expand(i, layout))]
            case .bool(let b): return [DenseTensor(shape: layout.shape, bools: BroadcastKernels.expand(b, layout))]
            }
        }
    }

    static func prepareExpand(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.input(0)
        guard let shape = try ctx.constantInts(1, what: "shape") else { throw KernelError("the shape input is required") }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw KernelError("shape \(shape) has a negative dim") }
        try ExecutionPlan.checkSize(shape)
        let layout = try BroadcastLayout([x.shape, shape])
        try ExecutionPlan.checkSize(layout.shape)
        return Prepared([TensorSpec(x.kind, layout.shape)], ExpandKernel(layout: layout))
    }

    struct PadKernel: OpKernel {
        let pads: [Int], value: Float, mode: ShapeOps.PadMode
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            if x.isFloat {
                let (v, s) = ShapeOps.pad(x.floats, x.shape, pads: pads, value: value, mode: mode)
                return [DenseTensor(shape: s, floats: v)]
            }
            let (v, s) = ShapeOps.pad(x.ints, x.shape, pads: pads, value: Int64(clampingFloat: value), mode: mode)
            return [DenseTensor(shape: s, ints: v)]
        }
    }

    static func preparePad2(_ ctx: OpContext) throws -> Prepared {
        guard let pads = try ctx.ints("pads") else { throw KernelError("pads are required") }
        return try preparePad(ctx, pads: pads, value: ctx.float("value", default: 0), axes: nil)
    }

    static func preparePad11(_ ctx: OpContext) throws -> Prepared {
        guard let pads = try ctx.constantInts(1, what: "pads") else { throw KernelError("pads are required") }
        let value = try ctx.constantFloats(2, what: "constant_value")?.first ?? 0
        return try preparePad(ctx, pads: pads, value: value, axes: try ctx.constantInts(3, what: "axes"))
    }

    static func preparePad(_ ctx: OpContext, pads given: [Int], value: Float, axes: [Int]?) throws -> Prepared {
        let x = try ctx.input(0)
        var pads = given
        let modeName = ctx.string("mode", default: "constant")
        guard let mode = ShapeOps.PadMode(rawValue: modeName) else {
            throw KernelError("mode \(modeName) is not run (constant, reflect, edge are)")
        }
        if let axes {
            let normalized = try axes.map { try ctx.axis($0, rank: x.rank) }
            guard pads.count == 2 * normalized.count else { throw KernelError("pads \(pads) do not give two values per axis of \(axes)") }
            var full = [Int](repeating: 0, count: 2 * x.rank)
            for (i, a) in normalized.enumerated() {
                full[a] = pads[i]
                full[a + x.rank] = pads[i + normalized.count]
            }
            pads = full
        }
        guard pads.count == 2 * x.rank else { throw KernelError("pads has \(pads.count) values; a rank-\(x.rank) input needs \(2 * x.rank)") }
        let out = try (0..<x.rank).map { i -> Int in
            let d = try Checked.sum(x.shape[i], pads[i], pads[i + x.rank], what: "axis \(i) padded by \(pads)")
            guard d >= 0 else { throw KernelError("pads \(pads) cut axis \(i) of size \(x.shape[i]) below 0") }
            return d
        }
        if mode != .constant {
            for i in 0..<x.rank where pads[i] > 0 || pads[i + x.rank] > 0 {
                let limit = mode == .reflect ? x.shape[i] - 1 : (x.shape[i] > 0 ? Int.max : 0)
                guard max(pads[i], pads[i + x.rank]) <= limit else {
                    throw KernelError("\(modeName) padding of \(max(pads[i], pads[i + x.rank])) on axis \(i) of size \(x.shape[i])")
                }
            }
        }
        try ExecutionPlan.checkSize(out)
        return Prepared([TensorSpec(x.kind, out)], PadKernel(pads: pads, value: value, mode: mode))
    }

    struct CastKernel: OpKernel {
        let to: TensorSpec.Kind
        /// The float type cast to is narrower than float32 (values rounded to it, then held as float32).
        var rounding: DataType?
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            switch to {
            case .float where rounding == .float16: return [DenseTensor(shape: x.shape, floats: x.floats.map { Float(Float16($0)) })]
            case .float: return [x.isFloat ? x : DenseTensor(shape: x.shape, floats: x.floats)]
            case .int64: return [DenseTensor(shape: x.shape, ints: x.ints)]
            case .bool: return [DenseTensor(shape: x.shape, bools: x.floats.map { $0 != 0 })]
            }
        }
    }

    static func prepareCast(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.input(0)
        let to = DataType(rawValue: Int32(clamping: try ctx.int("to", default: 1)))
        let kind: TensorSpec.Kind
        switch to {
        case .float, .float16, .double, .bfloat16: kind = .float
        case .bool: kind = .bool
        case .int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .uint64: kind = .int64
        default: throw KernelError("Cast to \(to) is not run")
        }
        return Prepared([TensorSpec(kind, x.shape)], CastKernel(to: kind, rounding: to == .float16 ? .float16 : nil))
    }
}

// MARK: Gradients

extension ShapeOpsRegistry.ViewKernel: DifferentiableKernel {
    var saved: SavedValues { .none }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0)
        var result: [DenseTensor?] = inputs.map { _ in nil }
        guard gradientMask(inputs, needs, limit: 1)[0] else { return result }
        var g = try outputGradient(outputGradients, 0, shape: shape, buffers)
        g.shape = x.shape
        result[0] = g
        return result
    }
}

extension ShapeOpsRegistry.TransposeKernel: DifferentiableKernel {
    var saved: SavedValues { .none }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let g = try outputGradient(outputGradients, 0, shape: layout.outShape, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 1), buffers) { d in
            guard let dx = d[0] else { return }
            try g.withFloatBuffer {
                try Backward.transpose(gradient: $0, outShape: layout.outShape, perm: perm, dx: dx)
            }
        }
    }
}

extension ShapeOpsRegistry.ConcatKernel: DifferentiableKernel {
    var saved: SavedValues { .none }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        guard kind == .float else { return inputs.map { _ in nil } }
        let present = inputs.indices.filter { inputs[$0] != nil }
        let g = try outputGradient(outputGradients, 0, shape: outShape, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs), buffers) { d in
            try g.withFloatBuffer { gp in
                try Backward.concat(gradient: gp, shapes: present.map { inputs[$0]!.shape }, axis: axis,
                                    dx: present.map { d[$0] })
            }
        }
    }
}

extension ShapeOpsRegistry.WindowCopyKernel: DifferentiableKernel {
    var saved: SavedValues { .none }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 1), buffers) { d in
            guard let dx = d[0] else { return }
            for (k, w) in windows.enumerated() {
                guard let g = outputGradients[ifPresent: k] ?? nil else { continue }
                guard g.count == w.counts.reduce(1, *) else {
                    throw KernelError("the gradient of output \(k) has shape \(g.shape); the output has \(w.counts)")
                }
                try g.withFloatBuffer { gp in
                    try Backward.slice(gradient: gp, xShape: x.shape, starts: w.starts, steps: w.steps,
                                       counts: w.counts, dx: dx)
                }
            }
        }
    }
}

extension ShapeOpsRegistry.ExpandKernel: DifferentiableKernel {
    var saved: SavedValues { .none }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0)
        let g = try outputGradient(outputGradients, 0, shape: layout.shape, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 1), buffers) { d in
            guard let dx = d[0] else { return }
            try g.withFloatBuffer { try Backward.reduceToShape($0, layout.shape, into: dx, shape: x.shape) }
        }
    }
}

extension ShapeOpsRegistry.PadKernel: DifferentiableKernel {
    var saved: SavedValues { .none }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0)
        let wanted = gradientMask(inputs, needs, limit: 1)
        guard wanted[0] else { return inputs.map { _ in nil } }
        guard mode == .constant else {
            throw KernelError("\(mode.rawValue) Pad has no gradient; only constant padding is trained through")
        }
        let outShape = (0..<x.shape.count).map { x.shape[$0] + pads[$0] + pads[$0 + x.shape.count] }
        let g = try outputGradient(outputGradients, 0, shape: outShape, buffers)
        return try inputGradients(inputs, wanted, buffers) { d in
            guard let dx = d[0] else { return }
            try g.withFloatBuffer { try Backward.pad(gradient: $0, xShape: x.shape, pads: pads, dx: dx) }
        }
    }
}

extension ShapeOpsRegistry.CastKernel: DifferentiableKernel {
    var saved: SavedValues { .none }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0)
        var result: [DenseTensor?] = inputs.map { _ in nil }
        guard to == .float, gradientMask(inputs, needs, limit: 1)[0] else { return result }
        result[0] = try outputGradient(outputGradients, 0, shape: x.shape, buffers)
        return result
    }
}
