import Graph
import Kernels

// Resize (opset ≥ 11) of the two trailing axes of a rank-4 input, nearest or linear, from constant scales or sizes:
//
//   out = floor(in · scale) (scales), or sizes;  x_in from x_out by coordinate_transformation_mode; nearest rounds
//   by nearest_mode, linear interpolates the two neighbours (see Kernels/Resampling.swift). N and C are not resized.
//
// Gradient (Backward.resize2d, through the forward's own tables, so every coordinate and nearest mode above):
//   nearest ∂x[i_y, i_x] += g[o];  linear ∂x[corner] += g[o]·(its bilinear weight). None for roi/scales/sizes.

enum ResizeOps {
    static let resize11 = Operator("Resize", versions: 11...Operator.newestOpset, hasGradient: true, prepare: prepare)

    struct ResizeKernel: OpKernel {
        let input: [Int], output: [Int], ys: ResampleAxis, xs: ResampleAxis, linear: Bool
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            let y = pooledOutput(output, buffers) { out in
                x.withFloatPointer { xp in
                    Resampling.resize2d(xp, planes: input[0] * input[1], h: input[2], w: input[3], ys: ys, xs: xs,
                                        linear: linear, out: out)
                }
            }
            return [y]
        }
    }

    static func prepare(_ ctx: OpContext) throws -> Prepared {
        let x = try ctx.floatInput(0)
        guard x.rank == 4 else { throw KernelError("input of shape \(x.shape): only rank-4 (N, C, H, W) Resize is run") }
        guard x.shape[2] > 0, x.shape[3] > 0 else {
            throw KernelError("input of shape \(x.shape) has no pixels to resize")
        }
        let mode = ctx.string("mode", default: "nearest")
        guard mode == "nearest" || mode == "linear" else { throw KernelError("mode \(mode) is not run (nearest and linear are)") }
        guard try ctx.int("antialias", default: 0) == 0 else { throw KernelError("antialias is not supported") }
        if let axes = try ctx.ints("axes"), axes.map({ $0 < 0 ? $0 + 4 : $0 }) != [2, 3] {
            throw KernelError("axes \(axes): only H and W (axes 2, 3) are resized")
        }
        let scales = try ctx.constantFloats(2, what: "scales").flatMap { $0.isEmpty ? nil : $0 }
        let sizes = try ctx.constantInts(3, what: "sizes").flatMap { $0.isEmpty ? nil : $0 }
        var outHW: (Int, Int), scaleHW: (Float, Float)
        if let sizes {
            let hw = sizes.count == 4 ? Array(sizes[2...]) : sizes
            guard sizes.count == 4 || sizes.count == 2, sizes.count == 2 || (sizes[0] == x.shape[0] && sizes[1] == x.shape[1]) else {
                throw KernelError("sizes \(sizes): only H and W are resized")
            }
            guard ctx.string("keep_aspect_ratio_policy", default: "stretch") == "stretch" else {
                throw KernelError("keep_aspect_ratio_policy other than stretch is not supported")
            }
            outHW = (hw[0], hw[1])
            scaleHW = (Float(hw[0]) / Float(x.shape[2]), Float(hw[1]) / Float(x.shape[3]))
        } else if let scales {
            let hw = scales.count == 4 ? Array(scales[2...]) : scales
            guard scales.count == 4 || scales.count == 2, scales.count == 2 || (scales[0] == 1 && scales[1] == 1) else {
                throw KernelError("scales \(scales): only H and W are resized")
            }
            guard hw.allSatisfy({ $0.isFinite && $0 > 0 && $0 < 1e6 }) else { throw KernelError("scales \(scales) must be finite and positive") }
            outHW = (Int(Float(x.shape[2]) * hw[0]), Int(Float(x.shape[3]) * hw[1]))
            scaleHW = (hw[0], hw[1])
        } else {
            throw KernelError("Resize needs scales or sizes")
        }
        guard outHW.0 > 0, outHW.1 > 0 else { throw KernelError("the output would be empty (\(outHW.0)×\(outHW.1))") }
        try ExecutionPlan.checkSize([x.shape[0], x.shape[1], outHW.0, outHW.1])
        let coordinateName = ctx.string("coordinate_transformation_mode", default: "half_pixel")
        guard let coordinates = ResampleAxis.Coordinates(rawValue: coordinateName) else {
            throw KernelError("coordinate_transformation_mode \(coordinateName) is not run")
        }
        var nearest: ResampleAxis.NearestMode?
        if mode == "nearest" {
            let name = ctx.string("nearest_mode", default: "round_prefer_floor")
            guard let m = ResampleAxis.NearestMode(rawValue: name) else { throw KernelError("nearest_mode \(name) is not run") }
            nearest = m
        }
        let ys = ResampleAxis(inSize: x.shape[2], outSize: outHW.0, scale: scaleHW.0, coordinates: coordinates, nearest: nearest)
        let xs = ResampleAxis(inSize: x.shape[3], outSize: outHW.1, scale: scaleHW.1, coordinates: coordinates, nearest: nearest)
        let out = [x.shape[0], x.shape[1], outHW.0, outHW.1]
        return Prepared([TensorSpec(.float, out)], ResizeKernel(input: x.shape, output: out, ys: ys, xs: xs, linear: mode == "linear"))
    }
}

extension ResizeOps.ResizeKernel: DifferentiableKernel {
    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let g = try outputGradient(outputGradients, 0, shape: output, buffers)
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 1), buffers) { d in
            guard let dx = d[0] else { return }
            try g.withFloatBuffer { gp in
                try Backward.resize2d(gradient: gp, planes: input[0] * input[1], h: input[2], w: input[3],
                                      ys: ys, xs: xs, linear: linear, dx: dx)
            }
        }
    }
}
