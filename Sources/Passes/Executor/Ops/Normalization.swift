import Graph
import Kernels

// BatchNormalization (inference form), LayerNormalization and Softmax.
//
//   BatchNormalization  y = (x − μ[c]) / √(σ²[c] + ε) · γ[c] + β[c]     over axis 1; γ, β, μ, σ² of length C
//   LayerNormalization  y = (x − mean) / √(var + ε) · γ + β              over the axes from `axis` on
//   Softmax (≥ 13)      over `axis` (default −1);  Softmax (< 13): over all axes from `axis` (default 1) on
//   LRN                 y = x·(bias + α/size·Σ x²)^−β over a window of `size` channels (NeuralOps.lrn)
//
// Gradients (Backward.batchNorm, layerNorm, softmax; g = ∂y):
//   BatchNormalization  k = γ/√(σ² + ε):  ∂x = g·k   ∂γ = Σ g·(x − μ)/√(σ² + ε)   ∂β = Σ g
//                       ∂μ = −k·Σ g   ∂σ² = −½·γ·∂γ/(σ² + ε)      (sums over every axis but 1)
//   LayerNormalization  r = 1/√(var + ε), x̂ = (x − mean)·r, d = g·γ:  ∂x = r·(d − mean(d) − x̂·mean(d·x̂))
//                       ∂γ = Σ g·x̂   ∂β = Σ g   (over the outer rows; a one-element γ or β sums everything)
//   Softmax             ∂x = y·(g − Σ_axis g·y)
//   LRN                 Backward.lrn

enum NormalizationOps {
    static let batchNormalization = Operator("BatchNormalization", versions: 1...Operator.newestOpset,
                                             hasGradient: true, prepare: prepareBatchNorm)
    static let layerNormalization = Operator("LayerNormalization", versions: 17...Operator.newestOpset,
                                             hasGradient: true, prepare: prepareLayerNorm)
    static let softmax1 = Operator("Softmax", versions: 1...12, hasGradient: true) {
        try prepareSoftmax($0, coerce2D: true)
    }
    static let softmax13 = Operator("Softmax", versions: 13...Operator.newestOpset, hasGradient: true) {
        try prepareSoftmax($0, coerce2D: false)
    }

    static let lrn = Operator("LRN", versions: 1...Operator.newestOpset, hasGradient: true) { ctx in
        let x = try ctx.floatInput(0)
        guard x.rank >= 3 else { throw KernelError("input of shape \(x.shape) has no channel and spatial axes") }
        let size = try ctx.int("size", default: 0)
        guard size > 0 else { throw KernelError("size \(size) must be positive") }
        let kernel = LRNKernel(shape: x.shape, size: size, alpha: ctx.float("alpha", default: 1e-4),
                               beta: ctx.float("beta", default: 0.75), bias: ctx.float("bias", default: 1))
        return Prepared([TensorSpec(.float, x.shape)], kernel)
    }

    struct LRNKernel: OpKernel {
        let shape: [Int], size: Int, alpha: Float, beta: Float, bias: Float
        var inner: Int { shape.dropFirst(2).reduce(1, *) }
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            let y = pooledOutput(shape, buffers) { out in
                x.withFloatPointer { xp in
                    NeuralOps.lrn(xp, batch: shape[0], channels: shape[1], inner: inner, size: size, alpha: alpha,
                                  beta: beta, bias: bias, out: out)
                }
            }
            return [y]
        }
    }

    struct BatchNormKernel: OpKernel {
        let shape: [Int], epsilon: Float
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            let p = try (1...4).map { try inputs.required($0).floats }
            let inner = shape.dropFirst(2).reduce(1, *)
            let y = pooledOutput(shape, buffers) { out in
                x.withFloatPointer { xp in
                    NeuralOps.batchNorm(xp, batch: shape[0], channels: shape[1], inner: inner, scale: p[0], bias: p[1],
                                        mean: p[2], variance: p[3], epsilon: epsilon, out: out)
                }
            }
            return [y]
        }
    }

    static func prepareBatchNorm(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.floatInput(0)
        guard x.rank >= 2 else { throw KernelError("input of shape \(x.shape) has no channel axis") }
        let c = x.shape[1]
        for (i, name) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
            let p = try ctx.input(i)
            guard p.rank == 1, p.shape[0] == c else {
                throw KernelError("\(name) of shape \(p.shape) for \(c) channels; it must be [\(c)]")
            }
        }
        let training = try ctx.int("training_mode", default: 0) != 0
        if ctx.node.outputs.dropFirst().contains(where: { !$0.isEmpty }) || training {
            throw KernelError("training-mode BatchNormalization (running statistics as outputs) is not run; export in eval mode")
        }
        return Prepared([TensorSpec(.float, x.shape)], BatchNormKernel(shape: x.shape, epsilon: ctx.float("epsilon", default: 1e-5)))
    }

    struct LayerNormKernel: OpKernel {
        let shape: [Int], inner: Int, epsilon: Float
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0), scale = try inputs.required(1).floats
            let bias = inputs.count > 2 ? inputs[2]?.floats : nil
            let y = pooledOutput(shape, buffers) { out in
                x.withFloatPointer { xp in
                    NeuralOps.layerNorm(xp, outer: shape.reduce(1, *) / inner, inner: inner, epsilon: epsilon,
                                        scale: scale, bias: bias, out: out)
                }
            }
            return [y]
        }
    }

    static func prepareLayerNorm(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.floatInput(0)
        let axis = try ctx.axis(try ctx.int("axis", default: -1), rank: x.rank)
        let inner = x.shape[axis...].reduce(1, *)
        for i in [1, 2] {
            guard let p = ctx.optionalInput(i) else { continue }
            guard p.count == inner || p.count == 1 else {
                throw KernelError("\(i == 1 ? "scale" : "bias") of shape \(p.shape) does not fit the normalized axes \(Array(x.shape[axis...]))")
            }
        }
        _ = try ctx.input(1)
        if ctx.node.outputs.dropFirst().contains(where: { !$0.isEmpty }) {
            throw KernelError("the Mean and InvStdDev outputs are not computed")
        }
        guard inner > 0 else { throw KernelError("normalizes over an empty axis") }
        return Prepared([TensorSpec(.float, x.shape)],
                        LayerNormKernel(shape: x.shape, inner: inner, epsilon: ctx.float("epsilon", default: 1e-5)))
    }

    struct SoftmaxKernel: OpKernel {
        let shape: [Int], outer: Int, axis: Int, after: Int
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            let y = pooledOutput(shape, buffers) { out in
                x.withFloatPointer { NeuralOps.softmax($0, outer: outer, axis: axis, after: after, out: out) }
            }
            return [y]
        }
    }

    static func prepareSoftmax(_ ctx: OpContext, coerce2D: Bool) throws -> Prepared {
        let x = try ctx.floatInput(0)
        let axis = try ctx.axis(try ctx.int("axis", default: coerce2D ? 1 : -1), rank: x.rank)
        let n = coerce2D ? x.shape[axis...].reduce(1, *) : (x.rank == 0 ? 1 : x.shape[axis])
        let after = coerce2D || x.rank == 0 ? 1 : x.shape[(axis + 1)...].reduce(1, *)
        let outer = x.rank == 0 ? 1 : x.shape[..<axis].reduce(1, *)
        return Prepared([TensorSpec(.float, x.shape)], SoftmaxKernel(shape: x.shape, outer: outer, axis: n, after: after))
    }
}

extension NormalizationOps.BatchNormKernel: DifferentiableKernel {
    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0)
        let p = try (1...4).map { try inputs.required($0).floats }
        let g = try outputGradient(outputGradients, 0, shape: shape, buffers)
        var wanted = gradientMask(inputs, needs, limit: 5)
        // ∂μ and ∂σ² are computed from ∂β and ∂γ.
        if wanted[3] { wanted[2] = inputs[2]?.isFloat == true }
        if wanted[4] { wanted[1] = inputs[1]?.isFloat == true }
        let asked = gradientMask(inputs, needs, limit: 5)
        var grads = try inputGradients(inputs, wanted, buffers) { d in
            try x.withFloatBuffer { xp in
                try g.withFloatBuffer { gp in
                    try Backward.batchNorm(x: xp, xShape: shape, scale: p[0], mean: p[2], variance: p[3],
                                           epsilon: epsilon, gradient: gp, dx: d[0], dScale: d[1], dBias: d[2])
                    if let dMean = d[3], let dBias = d[2] {
                        for c in dMean.indices { dMean[c] = -p[0][c] / (p[3][c] + epsilon).squareRoot() * dBias[c] }
                    }
                    if let dVar = d[4], let dScale = d[1] {
                        for c in dVar.indices { dVar[c] = -0.5 * p[0][c] * dScale[c] / (p[3][c] + epsilon) }
                    }
                }
            }
        }
        for i in grads.indices where !asked[i] { grads[i] = nil }
        return grads
    }
}

extension NormalizationOps.LRNKernel: DifferentiableKernel {
    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0)
        let g = try outputGradient(outputGradients, 0, shape: shape, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 1), buffers) { d in
            guard let dx = d[0] else { return }
            x.withFloatBuffer { xp in
                g.withFloatBuffer { gp in
                    Backward.lrn(x: xp, batch: shape[0], channels: shape[1], inner: inner, size: size, alpha: alpha,
                                 beta: beta, bias: bias, gradient: gp, dx: dx)
                }
            }
        }
    }
}

extension NormalizationOps.LayerNormKernel: DifferentiableKernel {
    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0), scale = try inputs.required(1).floats
        let g = try outputGradient(outputGradients, 0, shape: shape, buffers)
        // The axis whose trailing block is `inner` (any of equal product gives the same blocks).
        let axis = shape.indices.last { shape[$0...].reduce(1, *) == inner } ?? 0
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 3), buffers) { d in
            try x.withFloatBuffer { xp in
                try g.withFloatBuffer { gp in
                    try Backward.layerNorm(x: xp, shape: shape, axis: axis, epsilon: epsilon, scale: scale,
                                           gradient: gp, dx: d[0], dScale: d[1], dBias: nil)
                    if let dBias = d[ifPresent: 2] ?? nil {
                        for i in gp.indices { dBias[i % inner % dBias.count] += gp[i] }
                    }
                }
            }
        }
    }
}

extension NormalizationOps.SoftmaxKernel: DifferentiableKernel {
    var saved: SavedValues { .output }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        guard let y = outputs.first else { throw KernelError("the forward's output is missing") }
        let g = try outputGradient(outputGradients, 0, shape: shape, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 1), buffers) { d in
            guard let dx = d[0] else { return }
            try y.withFloatBuffer { yp in
                try g.withFloatBuffer { gp in
                    // The forward's blocks: [outer, axis, after], softmax along the middle.
                    try Backward.softmax(y: yp, shape: [outer, axis, after], axis: 1, coerce2D: false, gradient: gp,
                                         dx: dx)
                }
            }
        }
    }
}
