import Graph
import Kernels

// Conv and ConvTranspose, 1-D and 2-D (1-D runs as H = 1).
//
//   Conv           y[n,m,·] = b[m] + Σ_c w[m,c,·] ⋆ x[n,c,·]        x [N,C,(H,)W], w [M, C/group, (kh,) kw], b [M]
//   ConvTranspose  y = col2im(Wᵀ · x) + b                             w [C, M/group, kh, kw]
//
// Checked before any data runs: the weight's rank against the input's, kernel_shape against the weight, the length
// and range of strides/dilations/pads, group against both channel counts, the bias length.
//
// Gradients (Backward.conv2d / convTranspose2d, 1-D through the as4D view), per image and group g with G = ∂y:
//   Conv           ∂x_g = col2im(W_gᵀ·G_g)      ∂W_g = G_g·col(x_g)ᵀ      ∂b[m] = Σ_{n,·} G[n, m, ·]
//   ConvTranspose  ∂x_g = W_g·im2col(G_g)       ∂W_g = x_g·im2col(G_g)ᵀ   ∂b[m] = Σ_{n,·} G[n, m, ·]
// A Conv the plan fused with a residual Add and/or a clamp (Fusion.swift) first masks G by the clamp, read off the
// output (G' = G·[lo < y < hi]); ∂r = G'. One fused with BatchNormalization has no gradient (training folds BN first).

enum ConvOps {
    static let conv = Operator("Conv", versions: 1...Operator.newestOpset, hasGradient: true, prepare: prepareConv)
    static let convTranspose = Operator("ConvTranspose", versions: 1...Operator.newestOpset, hasGradient: true,
                                        prepare: prepareConvTranspose)

    struct ConvKernel: OpKernel {
        let geometry: ConvGeometry
        let outShape: [Int]
        /// Set by the plan's fusion: input 3 is a residual added to the output, then the clamp.
        var fusedResidual = false
        var epilogue = NeuralOps.Epilogue()
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0), w = try inputs.required(1)
            let bias = inputs.count > 2 ? inputs[2] : nil
            let residual = fusedResidual ? try inputs.required(3) : nil
            var scratch = geometry.scratchCount > 0 ? buffers.floats(geometry.scratchCount) : []
            defer { if !scratch.isEmpty { buffers.recycle(DenseTensor(shape: [scratch.count], floats: scratch)) } }
            let y = pooledOutput(outShape, buffers) { out in
                x.withFloatPointer { xp in
                    w.withFloatPointer { wp in
                        scratch.withUnsafeMutableBufferPointer { col in
                            withOptionalFloatPointer(bias) { bp in
                                withOptionalFloatPointer(residual) { rp in
                                    NeuralOps.conv2d(geometry, x: xp, w: wp, bias: bp, residual: rp, epilogue: epilogue,
                                                     out: out, scratch: col.baseAddress)
                                }
                            }
                        }
                    }
                }
            }
            return [y]
        }
    }

    static func prepareConv(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.floatInput(0), w = try ctx.floatInput(1)
        guard x.rank == 3 || x.rank == 4 else {
            throw KernelError("input of shape \(x.shape): only 1-D and 2-D convolutions (rank-3 and rank-4 inputs) are run")
        }
        guard w.rank == x.rank else {
            throw KernelError("weight of shape \(w.shape) (rank \(w.rank)) for an input of rank \(x.rank); it must have rank \(x.rank)")
        }
        let kernel = Array(w.shape.dropFirst(2))
        if let declared = try ctx.ints("kernel_shape"), declared != kernel {
            throw KernelError("kernel_shape \(declared) does not match the weight's \(kernel)")
        }
        let group = try ctx.int("group", default: 1)
        let window = try slidingWindow(ctx, input: x.shape, kernel: kernel)
        let geometry = try ConvGeometry(input: as4D(x.shape), weight: as4D(w.shape), window: window, group: group)
        try checkBias(ctx, length: geometry.outChannels)
        let out = fromAs4D([geometry.batch, geometry.outChannels, geometry.outH, geometry.outW], like: x.shape)
        return Prepared([TensorSpec(.float, out)], ConvKernel(geometry: geometry, outShape: out))
    }

    /// Input 2, when present, is a 1-D bias of `length` values.
    static func checkBias(_ ctx: OpContext, length: Int) throws {
        guard let b = ctx.optionalInput(2) else { return }
        guard b.kind == .float, b.rank == 1, b.shape[0] == length else {
            throw KernelError("bias of shape \(b.shape) for \(length) output channels; it must be [\(length)]")
        }
    }

    struct ConvTransposeKernel: OpKernel {
        let window: NeuralOps.Window
        let group: Int
        let outputPadding: (Int, Int)
        let outShape: [Int]
        /// Floats of the col buffer: (M/group)·kh·kw × H·W of the input (counted in the plan's memory).
        let colCount: Int
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0), w = try inputs.required(1)
            let bias = inputs.count > 2 ? inputs[2] : nil
            let ws = as4D(w.shape), xs = as4D(x.shape)
            var col = buffers.floats(colCount)
            defer { buffers.recycle(DenseTensor(shape: [col.count], floats: col)) }
            let y = try pooledOutput(outShape, buffers) { out in
                try x.withFloatPointer { xp in
                    try w.withFloatPointer { wp in
                        try withOptionalFloatPointer(bias) { bp in
                            try col.withUnsafeMutableBufferPointer { cb in
                                try NeuralOps.convTranspose2d(xp, xs, wp, ws, bias: bp, window: window, group: group,
                                                              outputPadding: outputPadding, out: out, col: cb.baseAddress!)
                            }
                        }
                    }
                }
            }
            return [y]
        }
    }

    /// ConvTranspose: y spatial = s·(x − 1) + output_padding + (k − 1)·d + 1 − pads. With output_shape (or auto_pad
    /// SAME_*, where the output is x·s) the pads are derived: total = s·(x − 1) + output_padding + (k − 1)·d + 1 −
    /// out, split as the ONNX spec says: SAME_UPPER (total/2, rest), otherwise (rest, total/2).
    static func prepareConvTranspose(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.floatInput(0), w = try ctx.floatInput(1)
        guard x.rank == 3 || x.rank == 4, w.rank == x.rank else {
            throw KernelError("input \(x.shape) and weight \(w.shape): only 1-D and 2-D ConvTranspose (same-rank input and weight) is run")
        }
        let spatial = x.rank - 2
        let group = try ctx.int("group", default: 1)
        guard group >= 1, x.shape[1] == w.shape[0], x.shape[1] % group == 0 else {
            throw KernelError("input channels \(x.shape[1]), weight \(w.shape) and group \(group) do not agree (weight [C, M/group, kh, kw])")
        }
        let kernel = Array(w.shape.dropFirst(2))
        if let declared = try ctx.ints("kernel_shape"), declared != kernel {
            throw KernelError("kernel_shape \(declared) does not match the weight's \(kernel)")
        }
        let op = try ctx.ints("output_padding") ?? Array(repeating: 0, count: spatial)
        guard op.count == spatial, op.allSatisfy({ $0 >= 0 }) else {
            throw KernelError("output_padding \(op) must be \(spatial) values ≥ 0")
        }
        let attributes = try WindowAttributes(ctx, input: x.shape, kernel: kernel)
        let dims = Array(x.shape.dropFirst(2))
        let full = try (0..<spatial).map { (i: Int) -> Int in
            try Checked.sum(try Checked.product(attributes.strides[i], dims[i] - 1, what: "the output size"), op[i],
                            try windowSpan(kernel[i], attributes.dilations[i]), what: "the output size")
        }
        let pads = try transposedPads(ctx, attributes, dims: dims, full: full)
        let window = attributes.window(pads: pads)
        let m = try Checked.product(w.shape[1], group, what: "the output channels")
        try checkBias(ctx, length: m)
        let out = (0..<spatial).map { (i: Int) -> Int in full[i] - pads[i] - pads[i + spatial] }
        guard out.allSatisfy({ $0 > 0 }) else { throw KernelError("the output would be empty (\(out))") }
        let outShape = [x.shape[0], m] + out
        let padding = spatial == 1 ? (0, op[0]) : (op[0], op[1])
        let (ws, xs) = (as4D(w.shape), as4D(x.shape))
        let col = try Checked.product([ws[1], ws[2], ws[3], xs[2], xs[3]], what: "the col buffer of \(x.shape)")
        try ExecutionPlan.checkSize([col])
        return Prepared([TensorSpec(.float, outShape)], ConvTransposeKernel(window: window, group: group,
                                                                             outputPadding: padding, outShape: outShape,
                                                                             colCount: col))
    }

    /// ConvTranspose's pads: derived from output_shape, or under SAME_* from the output x·s, as total = `full` − out
    /// split by `WindowAttributes.split`; none under VALID; else the pads attribute.
    static func transposedPads(_ ctx: OpContext, _ attributes: WindowAttributes, dims: [Int], full: [Int]) throws
        -> [Int] {
        let spatial = attributes.spatial
        var wanted: [Int]?
        if let shape = try ctx.ints("output_shape") {
            wanted = shape.count == spatial ? shape : (shape.count == spatial + 2 ? Array(shape.dropFirst(2)) : nil)
            guard wanted != nil else { throw KernelError("output_shape \(shape) does not give \(spatial) spatial sizes") }
        } else if attributes.isSame {
            wanted = try (0..<spatial).map {
                try Checked.product(dims[$0], attributes.strides[$0], what: "the output size")
            }
        }
        guard let wanted else {
            return attributes.autoPad == .valid ? Array(repeating: 0, count: 2 * spatial) : attributes.pads
        }
        var pads = [Int](repeating: 0, count: 2 * spatial)
        for i in 0..<spatial {
            let total = full[i] - wanted[i]
            guard total >= 0 else {
                throw KernelError("output_shape \(wanted) is larger than ConvTranspose can make (\(full))")
            }
            let (begin, end) = attributes.split(total)
            pads[i] = begin
            pads[i + spatial] = end
        }
        return pads
    }
}

extension ConvOps.ConvKernel: DifferentiableKernel {
    var saved: SavedValues { SavedValues(inputs: [0, 1], outputs: epilogue.clamp != nil) }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        guard epilogue.scale == nil else {
            throw KernelError("a Conv fused with BatchNormalization has no gradient; fold the BatchNormalization first")
        }
        let x = try inputs.required(0), w = try inputs.required(1)
        var g = try outputGradient(outputGradients, 0, shape: outShape, buffers)
        if let clamp = epilogue.clamp {
            guard let y = outputs.first, y.count == g.count else { throw KernelError("the forward's output is missing") }
            g = Self.masked(g, by: y, clamp, buffers)
        }
        var grads = try inputGradients(inputs, gradientMask(inputs, needs, limit: 3), buffers) { d in
            try x.withFloatBuffer { xp in
                try w.withFloatBuffer { wp in
                    try g.withFloatBuffer { gp in
                        try Backward.conv2d(x: xp, xShape: as4D(x.shape), w: wp, wShape: as4D(w.shape),
                                            window: geometry.window, group: geometry.group, gradient: gp,
                                            dx: d[0], dw: d[1], dBias: d[ifPresent: 2] ?? nil)
                    }
                }
            }
        }
        if fusedResidual, grads.count > 3, needs.count > 3, needs[3] { grads[3] = g }
        return grads
    }

    /// G·[lo < y < hi]: the gradient through the fused clamp.
    static func masked(_ g: DenseTensor, by y: DenseTensor, _ clamp: (lo: Float, hi: Float), _ buffers: BufferPool)
        -> DenseTensor {
        var out = buffers.floats(g.count)
        g.withFloats { gp in
            y.withFloats { yp in
                out.withUnsafeMutableBufferPointer { o in
                    parallelChunks(o.count, work: o.count) { r in
                        for i in r { o[i] = yp[i] > clamp.lo && yp[i] < clamp.hi ? gp[i] : 0 }
                    }
                }
            }
        }
        return DenseTensor(shape: g.shape, floats: out)
    }
}

extension ConvOps.ConvTransposeKernel: DifferentiableKernel {
    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0), w = try inputs.required(1)
        let g = try outputGradient(outputGradients, 0, shape: outShape, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 3), buffers) { d in
            try x.withFloatBuffer { xp in
                try w.withFloatBuffer { wp in
                    try g.withFloatBuffer { gp in
                        try Backward.convTranspose2d(x: xp, xShape: as4D(x.shape), w: wp, wShape: as4D(w.shape),
                                                     window: window, group: group, gradient: gp,
                                                     outputShape: as4D(outShape), dx: d[0], dw: d[1],
                                                     dBias: d[ifPresent: 2] ?? nil)
                    }
                }
            }
        }
    }
}

extension ConvOps.ConvKernel: ScratchingKernel {
    var scratchElements: Int { geometry.scratchCount }
}

extension ConvOps.ConvTransposeKernel: ScratchingKernel {
    var scratchElements: Int { colCount }
}
