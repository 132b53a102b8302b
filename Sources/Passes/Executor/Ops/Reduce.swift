import Graph
import Kernels

// ReduceMean: the mean over `axes` (all axes when none are given), keepdims by default.
//   opset < 18: axes as an attribute;  ≥ 18: axes as optional input 1, and noop_with_empty_axes.
//
// Gradient (Backward.reduceMean): ∂x[i] = g[the output element i was averaged into] / n (n = the reduced count).

enum ReduceOps {
    static let reduceMean1 = Operator("ReduceMean", versions: 1...17, hasGradient: true) {
        try prepareMean($0, axesFromInput: false)
    }
    static let reduceMean18 = Operator("ReduceMean", versions: 18...Operator.newestOpset, hasGradient: true) {
        try prepareMean($0, axesFromInput: true)
    }

    struct MeanKernel: OpKernel {
        let layout: ReductionLayout, outShape: [Int], count: Int
        func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
            let x = try inputs.required(0)
            let y = pooledOutput(outShape, buffers) { out in
                x.withFloatPointer { Reduction.mean(layout, x: $0, count: count, out: out) }
            }
            return [y]
        }
    }

    static func prepareMean(_ ctx: OpContext, axesFromInput: Bool) throws -> Prepared {
        let x = try ctx.floatInput(0)
        let raw = axesFromInput ? try ctx.constantInts(1, what: "axes") : try ctx.ints("axes")
        let keep = try ctx.int("keepdims", default: 1) != 0
        if (raw ?? []).isEmpty, axesFromInput, try ctx.int("noop_with_empty_axes", default: 0) != 0 {
            return Prepared([TensorSpec(.float, x.shape)], MeanKernel(layout: ReductionLayout(shape: x.shape, axes: []),
                                                                   outShape: x.shape, count: x.count), aliasesInput: false)
        }
        let axes = Set(try (raw.flatMap { $0.isEmpty ? nil : $0 } ?? Array(0..<x.rank)).map { try ctx.axis($0, rank: x.rank) })
        guard x.count > 0 || axes.allSatisfy({ x.shape[$0] > 0 }) else { throw KernelError("the mean of an empty axis") }
        let out = keep ? x.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
            : x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        return Prepared([TensorSpec(.float, out)], MeanKernel(layout: ReductionLayout(shape: x.shape, axes: axes), outShape: out, count: x.count))
    }
}

extension ReduceOps.MeanKernel: DifferentiableKernel {
    var saved: SavedValues { .none }

    func backward(inputs: [DenseTensor?], outputs: [DenseTensor], outputGradients: [DenseTensor?], needs: [Bool],
                  _ buffers: BufferPool) throws -> [DenseTensor?] {
        let g = try outputGradient(outputGradients, 0, shape: outShape, buffers)
        // The layout's view of x: reduced axes as flags, or one reduced block [outer, reduced, inner].
        var shape = [layout.outer, layout.reduced, layout.inner], axes = [1]
        if let general = layout.general {
            shape = general.shape
            axes = general.reducedAxes.indices.filter { general.reducedAxes[$0] }
        }
        return try inputGradients(inputs, gradientMask(inputs, needs, limit: 1), buffers) { d in
            guard let dx = d[0] else { return }
            try g.withFloatBuffer { try Backward.reduceMean(gradient: $0, xShape: shape, axes: axes, dx: dx) }
        }
    }
}
