import Graph
import Kernels

// BatchNormalization (inference form), LayerNormalization and Softmax.
//
//   BatchNormalization  y = (x − μ[c]) / √(σ²[c] + ε) · γ[c] + β[c]     over axis 1; γ, β, μ, σ² of length C
//   LayerNormalization  y = (x − mean) / √(var + ε) · γ + β              over the axes from `axis` on
//   Softmax (≥ 13)      over `axis` (default −1);  Softmax (< 13): over all axes from `axis` (default 1) on

enum NormalizationOps {
    static let batchNormalization = Operator("BatchNormalization", versions: 1...Operator.newestOpset, prepare: prepareBatchNorm)
    static let layerNormalization = Operator("LayerNormalization", versions: 17...Operator.newestOpset, prepare: prepareLayerNorm)
    static let softmax1 = Operator("Softmax", versions: 1...12) { try prepareSoftmax($0, coerce2D: true) }
    static let softmax13 = Operator("Softmax", versions: 13...Operator.newestOpset) { try prepareSoftmax($0, coerce2D: false) }

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
