import Graph
import Kernels

// Gemm and MatMul through OpenBLAS sgemm.
//
//   Gemm    Y = alpha · A' · B' + beta · C     A' = transA ? Aᵀ : A, C broadcast to [M, N]
//   MatMul  Y = A · B with numpy batch broadcasting; a batched A times a 2-D B is one sgemm over the stacked rows
//
// Gradients (Backward.gemm / matmul), G = ∂Y:
//   Gemm    ∂A' = α·G·B'ᵀ   ∂B' = α·A'ᵀ·G   (transposed back when transA / transB)   ∂C = β·G summed to C's shape
//   MatMul  ∂A_i = G_i·B_iᵀ   ∂B_i = A_iᵀ·G_i per output batch i, summed over the batch axes an operand was
//           broadcast on

enum MatMulOps {
    static let gemm = Operator("Gemm", versions: 1...Operator.newestOpset, hasGradient: true, prepare: prepareGemm)
    static let matMul = Operator("MatMul", versions: 1...Operator.newestOpset, hasGradient: true,
                                 prepare: prepareMatMul)

    struct GemmKernel: OpKernel {
        let alpha: Float, beta: Float, transA: Bool, transB: Bool
        let outShape: [Int]
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let a = try inputs.required(0), b = try inputs.required(1)
            let c = inputs.count > 2 ? inputs[2] : nil
            let y = try pooledOutput(outShape, buffers) { out in
                try a.withFloatPointer { ap in
                    try b.withFloatPointer { bp in
                        try withOptionalFloats(c) { cb in
                            try NeuralOps.gemm(ap, a.shape, bp, b.shape, c: cb.map { ($0, c!.shape) }, alpha: alpha, beta: beta,
                                               transA: transA, transB: transB, out: out)
                        }
                    }
                }
            }
            return [y]
        }
    }

    static func prepareGemm(_ ctx: OpContext) throws -> Prepared {
        let a = try ctx.floatInput(0), b = try ctx.floatInput(1)
        guard a.rank == 2, b.rank == 2 else { throw KernelError("Gemm needs 2-D A and B, got \(a.shape) and \(b.shape)") }
        let transA = try ctx.int("transA", default: 0) != 0, transB = try ctx.int("transB", default: 0) != 0
        let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (k2, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == k2 else { throw KernelError("A \(a.shape) and B \(b.shape) (transA \(transA ? 1 : 0), transB \(transB ? 1 : 0)) do not agree") }
        if let c = ctx.optionalInput(2) {
            guard c.kind == .float, (try? BroadcastLayout([c.shape, [m, n]]))?.shape == [m, n] else {
                throw KernelError("C of shape \(c.shape) does not broadcast to the output [\(m), \(n)]")
            }
        }
        let kernel = GemmKernel(alpha: ctx.float("alpha", default: 1), beta: ctx.float("beta", default: 1),
                                transA: transA, transB: transB, outShape: [m, n])
        return Prepared([TensorSpec(.float, [m, n])], kernel)
    }

    struct MatMulKernel: OpKernel {
        let layout: NeuralOps.MatMulLayout
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let a = try inputs.required(0), b = try inputs.required(1)
            let y = pooledOutput(layout.outShape, buffers) { out in
                a.withFloatPointer { ap in b.withFloatPointer { bp in NeuralOps.matmul(layout, a: ap, b: bp, out: out) } }
            }
            return [y]
        }
    }

    static func prepareMatMul(_ ctx: OpContext) throws -> Prepared {
        let a = try ctx.floatInput(0), b = try ctx.floatInput(1)
        let layout = try NeuralOps.MatMulLayout(a.shape, b.shape)
        return Prepared([TensorSpec(.float, layout.outShape)], MatMulKernel(layout: layout))
    }
}

extension MatMulOps.GemmKernel: DifferentiableKernel {
    var saved: SavedValues { .inputs([0, 1]) }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let a = try inputs.required(0), b = try inputs.required(1)
        let c = inputs[ifPresent: 2] ?? nil
        let g = try outputGradient(outputGradients, 0, shape: outputs[0].shape, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 3), buffers) { d in
            try a.withFloatBuffer { ap in
                try b.withFloatBuffer { bp in
                    try g.withFloatBuffer { gp in
                        try Backward.gemm(a: ap, aShape: a.shape, b: bp, bShape: b.shape, cShape: c?.shape,
                                          alpha: alpha, beta: beta, transA: transA, transB: transB, gradient: gp,
                                          da: d[0], db: d[1], dc: d[ifPresent: 2] ?? nil)
                    }
                }
            }
        }
    }
}

extension MatMulOps.MatMulKernel: DifferentiableKernel {
    var saved: SavedValues { .inputs([0, 1]) }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let a = try inputs.required(0), b = try inputs.required(1)
        let g = try outputGradient(outputGradients, 0, shape: layout.outShape, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 2), buffers) { d in
            try a.withFloatBuffer { ap in
                try b.withFloatBuffer { bp in
                    try g.withFloatBuffer { gp in
                        try Backward.matmul(a: ap, aShape: a.shape, b: bp, bShape: b.shape, gradient: gp,
                                            da: d[0], db: d[1])
                    }
                }
            }
        }
    }
}
