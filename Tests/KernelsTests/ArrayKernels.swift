import Foundation
@testable import Kernels

// Array-in, array-out forms of the executor's forward kernels, for tests that compare them (and their gradients) with
// float64 references. Each calls the pointer kernel the executor uses, so the references check that kernel.

extension NeuralOps {
    static func conv2d(
        _ x: [Float], _ xs: [Int], _ w: [Float], _ ws: [Int], bias: [Float]?, window: Window, group: Int
    ) throws -> ([Float], [Int]) {
        let g = try ConvGeometry(input: xs, weight: ws, window: window, group: group)
        var out = [Float](repeating: 0, count: g.outputCount)
        var scratch = [Float](repeating: 0, count: g.scratchCount)
        x.withUnsafeBufferPointer { xb in
            w.withUnsafeBufferPointer { wb in
                out.withUnsafeMutableBufferPointer { ob in
                    scratch.withUnsafeMutableBufferPointer { sb in
                        let (o, s) = (ob.baseAddress!, sb.baseAddress)
                        if let bias {
                            bias.withUnsafeBufferPointer {
                                conv2d(g, x: xb.baseAddress!, w: wb.baseAddress!, bias: $0.baseAddress, out: o, scratch: s)
                            }
                        } else {
                            conv2d(g, x: xb.baseAddress!, w: wb.baseAddress!, bias: nil, out: o, scratch: s)
                        }
                    }
                }
            }
        }
        return (out, [g.batch, g.outChannels, g.outH, g.outW])
    }

    static func matmul(_ a: [Float], _ aShape: [Int], _ b: [Float], _ bShape: [Int]) throws -> ([Float], [Int]) {
        let l = try MatMulLayout(aShape, bShape)
        var out = [Float](repeating: 0, count: l.outputCount)
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                out.withUnsafeMutableBufferPointer { matmul(l, a: ab.baseAddress!, b: bb.baseAddress!, out: $0.baseAddress!) }
            }
        }
        return (out, l.outShape)
    }

    static func softmax(_ x: [Float], _ xs: [Int], axis: Int, coerce2D: Bool) -> [Float] {
        let n = coerce2D ? xs[axis...].reduce(1, *) : xs[axis]
        let after = coerce2D ? 1 : xs[(axis + 1)...].reduce(1, *)
        var out = x
        x.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer {
                softmax(xb.baseAddress!, outer: x.count / max(n * after, 1), axis: n, after: after, out: $0.baseAddress!)
            }
        }
        return out
    }

    static func pool2d(
        _ x: [Float], _ xs: [Int], window: Window, max isMax: Bool, ceilMode: Bool, countIncludePad: Bool
    ) -> ([Float], [Int]) {
        let (ho, wo) = window.outputSize(xs[2], xs[3], ceilMode: ceilMode)
        var out = [Float](repeating: 0, count: xs[0] * xs[1] * ho * wo)
        x.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer {
                pool2d(xb.baseAddress!, planes: xs[0] * xs[1], h: xs[2], w: xs[3], window: window, max: isMax,
                       ceilMode: ceilMode, countIncludePad: countIncludePad, out: $0.baseAddress!)
            }
        }
        return (out, [xs[0], xs[1], ho, wo])
    }

    static func globalPool(_ x: [Float], _ xs: [Int], max isMax: Bool) -> ([Float], [Int]) {
        var out = [Float](repeating: 0, count: xs[0] * xs[1])
        x.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer {
                globalPool(xb.baseAddress!, planes: xs[0] * xs[1], size: xs.dropFirst(2).reduce(1, *), max: isMax, out: $0.baseAddress!)
            }
        }
        return (out, [xs[0], xs[1]] + Array(repeating: 1, count: xs.count - 2))
    }

    static func batchNorm(
        _ x: [Float], _ xs: [Int], scale: [Float], bias: [Float], mean: [Float], variance: [Float], epsilon: Float
    ) -> [Float] {
        var out = x
        x.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer {
                batchNorm(xb.baseAddress!, batch: xs[0], channels: xs[1], inner: xs.dropFirst(2).reduce(1, *), scale: scale,
                          bias: bias, mean: mean, variance: variance, epsilon: epsilon, out: $0.baseAddress!)
            }
        }
        return out
    }

    static func layerNorm(_ x: [Float], _ xs: [Int], axis: Int, epsilon: Float, scale: [Float], bias: [Float]?) -> [Float] {
        let inner = xs[axis...].reduce(1, *)
        var out = x
        x.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer {
                layerNorm(xb.baseAddress!, outer: x.count / inner, inner: inner, epsilon: epsilon, scale: scale, bias: bias,
                          out: $0.baseAddress!)
            }
        }
        return out
    }
}

extension Elementwise {
    /// out = f(a, b) with broadcasting, through the executor's closure-free loop for the four arithmetic ops.
    static func binary(_ a: [Float], _ aShape: [Int], _ b: [Float], _ bShape: [Int], _ f: (Float, Float) -> Float) throws -> ([Float], [Int]) {
        let layout = try BroadcastLayout([aShape, bShape])
        return (BroadcastKernels.generic(a, b, layout, f), layout.shape)
    }
}
