import Graph
import Kernels

// MaxPool, AveragePool (1-D and 2-D), GlobalAveragePool, GlobalMaxPool on N×C×spatial.
//
//   MaxPool      y = max of the window's taps inside the input
//   AveragePool  y = mean of the taps inside (count_include_pad: divided by the taps inside the padded extent)
//   Global*Pool  y[n, c, 1, …] = mean / max over all spatial positions
//
// Gradients (Backward.maxPool2d, averagePool2d, globalAveragePool, globalMaxPool; g = ∂y):
//   MaxPool  g to the window's (first) maximum   AveragePool  g/count to every tap inside the window (count as forward)
//   GlobalAveragePool  g/(H·W…) to every position   GlobalMaxPool  g to the plane's first maximum

enum PoolOps {
    static let maxPool = Operator("MaxPool", versions: 1...Operator.newestOpset, hasGradient: true) {
        try preparePool($0, max: true)
    }
    static let averagePool = Operator("AveragePool", versions: 1...Operator.newestOpset, hasGradient: true) {
        try preparePool($0, max: false)
    }
    static let globalAveragePool = Operator("GlobalAveragePool", versions: 1...Operator.newestOpset,
                                            hasGradient: true) {
        try prepareGlobal($0, max: false)
    }
    static let globalMaxPool = Operator("GlobalMaxPool", versions: 1...Operator.newestOpset, hasGradient: true) {
        try prepareGlobal($0, max: true)
    }

    struct PoolKernel: OpKernel {
        let input: [Int], output: [Int], window: NeuralOps.Window
        let isMax: Bool, ceilMode: Bool, countIncludePad: Bool
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            let s = as4D(input)
            let y = pooledOutput(output, buffers) { out in
                x.withFloatPointer { xp in
                    NeuralOps.pool2d(xp, planes: s[0] * s[1], h: s[2], w: s[3], window: window, max: isMax,
                                     ceilMode: ceilMode, countIncludePad: countIncludePad, out: out)
                }
            }
            return [y]
        }
    }

    static func preparePool(_ ctx: OpContext, max isMax: Bool) throws -> Prepared {
        let x = try ctx.floatInput(0)
        guard let kernel = try ctx.ints("kernel_shape") else { throw KernelError("kernel_shape is required") }
        guard x.rank == 3 || x.rank == 4 else { throw KernelError("input of shape \(x.shape): only 1-D and 2-D pooling is run") }
        if isMax, ctx.node.outputs.count > 1, !ctx.node.outputs[1].isEmpty {
            throw KernelError("the Indices output is not computed")
        }
        let ceilMode = try ctx.int("ceil_mode", default: 0) != 0
        let window = try slidingWindow(ctx, input: x.shape, kernel: kernel)
        let s = as4D(x.shape)
        let (ho, wo) = window.outputSize(s[2], s[3], ceilMode: ceilMode)
        guard ho > 0, wo > 0 else { throw KernelError("the output would be empty (\(ho)×\(wo)) for input \(x.shape)") }
        let out = fromAs4D([s[0], s[1], ho, wo], like: x.shape)
        let kernelValue = PoolKernel(input: x.shape, output: out, window: window, isMax: isMax, ceilMode: ceilMode,
                                     countIncludePad: try ctx.int("count_include_pad", default: 0) != 0)
        return Prepared([TensorSpec(.float, out)], kernelValue)
    }

    struct GlobalPoolKernel: OpKernel {
        let input: [Int], output: [Int], isMax: Bool
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            let y = pooledOutput(output, buffers) { out in
                x.withFloatPointer { xp in
                    NeuralOps.globalPool(xp, planes: input[0] * input[1], size: input.dropFirst(2).reduce(1, *), max: isMax, out: out)
                }
            }
            return [y]
        }
    }

    static func prepareGlobal(_ ctx: OpContext, max isMax: Bool) throws -> Prepared {
        let x = try ctx.floatInput(0)
        guard x.rank >= 3 else { throw KernelError("input of shape \(x.shape) has no spatial axes") }
        let out = [x.shape[0], x.shape[1]] + Array(repeating: 1, count: x.rank - 2)
        return Prepared([TensorSpec(.float, out)], GlobalPoolKernel(input: x.shape, output: out, isMax: isMax))
    }
}

extension PoolOps.PoolKernel: DifferentiableKernel {
    var saved: SavedValues { isMax ? .inputs([0]) : .none }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0)
        let g = try outputGradient(outputGradients, 0, shape: output, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 1), buffers) { d in
            guard let dx = d[0] else { return }
            try g.withFloatBuffer { gp in
                if isMax {
                    try x.withFloatBuffer { xp in
                        try Backward.maxPool2d(x: xp, xShape: as4D(input), window: window, ceilMode: ceilMode,
                                               gradient: gp, dx: dx)
                    }
                } else {
                    try Backward.averagePool2d(xShape: as4D(input), window: window, ceilMode: ceilMode,
                                               countIncludePad: countIncludePad, gradient: gp, dx: dx)
                }
            }
        }
    }
}

extension PoolOps.GlobalPoolKernel: DifferentiableKernel {
    var saved: SavedValues { isMax ? .inputs([0]) : .none }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let x = try inputs.required(0)
        let g = try outputGradient(outputGradients, 0, shape: output, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 1), buffers) { d in
            guard let dx = d[0] else { return }
            try g.withFloatBuffer { gp in
                if isMax {
                    try x.withFloatBuffer { xp in
                        try Backward.globalMaxPool(x: xp, xShape: input, gradient: gp, dx: dx)
                    }
                } else {
                    try Backward.globalAveragePool(xShape: input, gradient: gp, dx: dx)
                }
            }
        }
    }
}
