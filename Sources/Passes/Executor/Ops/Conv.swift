import Graph
import Kernels

// Conv and ConvTranspose, 1-D and 2-D (1-D runs as H = 1).
//
//   Conv           y[n,m,·] = b[m] + Σ_c w[m,c,·] ⋆ x[n,c,·]        x [N,C,(H,)W], w [M, C/group, (kh,) kw], b [M]
//   ConvTranspose  y = col2im(Wᵀ · x) + b                             w [C, M/group, kh, kw]
//
// Checked before any data runs: the weight's rank against the input's, kernel_shape against the weight, the length
// and range of strides/dilations/pads, group against both channel counts, the bias length.

enum ConvOps {
    static let conv = Operator("Conv", versions: 1...Operator.newestOpset, prepare: prepareConv)
    static let convTranspose = Operator("ConvTranspose", versions: 1...Operator.newestOpset, prepare: prepareConvTranspose)

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
        let window = try windowAttributes(ctx, input: x.shape, kernel: kernel)
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
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0), w = try inputs.required(1)
            let bias = inputs.count > 2 ? inputs[2]?.floats : nil
            let (v, s) = try NeuralOps.convTranspose2d(x.floats, x.shape, w.floats, w.shape, bias: bias, window: window,
                                                       group: group, outputPadding: outputPadding)
            return [DenseTensor(shape: s, floats: v)]
        }
    }

    static func prepareConvTranspose(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.floatInput(0), w = try ctx.floatInput(1)
        guard x.rank == 4, w.rank == 4 else {
            throw KernelError("input \(x.shape) and weight \(w.shape): only 2-D ConvTranspose (rank-4 input and weight) is run")
        }
        guard ctx.node.ints("output_shape") == nil else {
            throw KernelError("output_shape is not supported; give pads and output_padding instead")
        }
        let group = try ctx.int("group", default: 1)
        guard group >= 1, x.shape[1] == w.shape[0], x.shape[1] % group == 0 else {
            throw KernelError("input channels \(x.shape[1]), weight \(w.shape) and group \(group) do not agree (weight [C, M/group, kh, kw])")
        }
        let kernel = Array(w.shape.dropFirst(2))
        if let declared = try ctx.ints("kernel_shape"), declared != kernel {
            throw KernelError("kernel_shape \(declared) does not match the weight's \(kernel)")
        }
        guard ctx.string("auto_pad", default: "NOTSET") == "NOTSET" || ctx.string("auto_pad", default: "") == "VALID" else {
            throw KernelError("auto_pad \(ctx.string("auto_pad", default: "")) is not supported on ConvTranspose; give pads")
        }
        let window = try windowAttributes(ctx, input: x.shape, kernel: kernel)
        let op = try ctx.ints("output_padding") ?? [0, 0]
        guard op.count == 2, op.allSatisfy({ $0 >= 0 }) else { throw KernelError("output_padding \(op) must be 2 values ≥ 0") }
        let m = w.shape[1] * group
        try checkBias(ctx, length: m)
        let (sh, sw) = window.strides, (dh, dw) = window.dilations
        let ho = sh * (x.shape[2] - 1) + op[0] + (kernel[0] - 1) * dh + 1 - window.pads.0 - window.pads.2
        let wo = sw * (x.shape[3] - 1) + op[1] + (kernel[1] - 1) * dw + 1 - window.pads.1 - window.pads.3
        guard ho > 0, wo > 0 else { throw KernelError("the output would be empty (\(ho)×\(wo))") }
        return Prepared([TensorSpec(.float, [x.shape[0], m, ho, wo])],
                        ConvTransposeKernel(window: window, group: group, outputPadding: (op[0], op[1])))
    }
}
