import Graph
import Kernels

// The training ops of SEMANTICS §7 around each quantized layer, and the 2:4 masks:
//
//   forward:   x ─ActsULQ(clamp_max, clamp_min)─▶ x̂ ─┐
//              w ─[mask]─ARQ (s from w, every step) or WtsULQ(c)─▶ ŵ ─┴─▶ layer(x̂, ŵ, b)
//   backward:  ∂x̂ → ActsULQ backward → ∂x, ∂clamp_max, ∂clamp_min;  ∂ŵ → ∂w (ARQ: straight through; WtsULQ: inside
//              the range, and ∂c) → masked;  the 2:4 mask is recomputed from |w| every update_freq steps
//
// The math is Kernels/TrainingQuant.swift; this file binds it to a layer and to the parameter store.

/// The training ops of one quantized layer.
struct StepQuantizer: Sendable {
    let layerIndex: Int
    let layerName: String
    let node: NodeID
    let actBits: Int
    let fixedMin: Bool
    /// Parameter indices of clamp_max and clamp_min (one value each).
    let clampMax: Int, clampMin: Int
    /// The weight's parameter index (nil when the weight is not trained: it is quantized as it is).
    let weight: Int?
    let weightBits: Int
    let algorithm: WeightAlgorithm
    let layout: ChannelLayout
    /// WtsULQ: the parameter index of the per-channel clips.
    let weightClips: Int?

    func range(_ store: ParameterStore) -> TrainingQuant.ULQRange {
        TrainingQuant.ULQRange(clampMax: store[clampMax, 0], clampMin: store[clampMin, 0], fixedMin: fixedMin,
                               bits: actBits)
    }

    func quantizeActivation(_ x: DenseTensor, _ store: ParameterStore, _ buffers: BufferPool) -> DenseTensor {
        let r = range(store)
        var out = buffers.floats(x.count)
        x.withFloats { xb in
            out.withUnsafeMutableBufferPointer { TrainingQuant.actsULQForward(xb, r, into: $0) }
        }
        return DenseTensor(shape: x.shape, floats: out)
    }

    func quantizeWeight(_ w: DenseTensor, _ store: ParameterStore) throws -> DenseTensor {
        let values = w.floats
        guard values.count == layout.elementCount else {
            throw KernelError("layer \(layerName): weight of \(values.count) values does not fit its channel layout")
        }
        var out = [Float](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { wb in
            out.withUnsafeMutableBufferPointer { ob in
                if algorithm == .ulq, let c = weightClips {
                    TrainingQuant.wtsULQForward(wb, layout, clips: store[c], bits: weightBits, into: ob)
                } else {
                    TrainingQuant.arqForward(wb, layout, bits: weightBits, into: ob)
                }
            }
        }
        return DenseTensor(shape: w.shape, floats: out)
    }

    /// ∂x (when `needX`) from ∂x̂, adding ∂clamp_max/∂clamp_min into `clampGradients`.
    func activationBackward(x: DenseTensor, gradient: DenseTensor, needX: Bool, _ store: ParameterStore,
                            clampGradients: inout [Int: Float], _ buffers: BufferPool) -> DenseTensor? {
        let r = range(store)
        var dx = needX ? buffers.floats(x.count) : []
        let (dMax, dMin) = x.withFloats { xb in
            gradient.withFloats { gb in
                dx.withUnsafeMutableBufferPointer { d in
                    TrainingQuant.actsULQBackward(xb, gradient: gb, r, dx: needX ? d : nil)
                }
            }
        }
        clampGradients[clampMax, default: 0] += dMax
        clampGradients[clampMin, default: 0] += dMin
        return needX ? DenseTensor(shape: x.shape, floats: dx) : nil
    }

    /// ∂w from ∂ŵ: straight through for ARQ; WtsULQ passes it inside the range and adds ∂c into `clipGradients`.
    func weightBackward(w: DenseTensor, gradient: DenseTensor, _ store: ParameterStore,
                        clipGradients: inout [Int: [Float]]) -> DenseTensor {
        guard algorithm == .ulq, let c = weightClips else { return gradient }
        var dw = [Float](repeating: 0, count: w.count)
        var dc = clipGradients[c] ?? [Float](repeating: 0, count: layout.channels)
        w.floats.withUnsafeBufferPointer { wb in
            gradient.floats.withUnsafeBufferPointer { gb in
                dw.withUnsafeMutableBufferPointer { d in
                    dc.withUnsafeMutableBufferPointer { dcb in
                        TrainingQuant.wtsULQBackward(wb, gradient: gb, layout, clips: store[c], bits: weightBits, dw: d,
                                                     dClips: dcb)
                    }
                }
            }
        }
        clipGradients[c] = dc
        return DenseTensor(shape: w.shape, floats: dw)
    }
}

/// A 2:4-pruned weight: its mask, recomputed from |w| every `updateFreq` steps (0: the first step only).
struct TwoOfFourMask: Sendable {
    let parameter: Int
    let layerName: String
    let outer: Int, cin: Int, inner: Int
    let updateFreq: Int
    var mask: [UInt8] = []

    func isDue(step: Int) -> Bool { mask.isEmpty || (updateFreq > 0 && step % updateFreq == 0) }

    mutating func recompute(_ store: inout ParameterStore) {
        mask = store.withValues(parameter) { TrainingQuant.twoOfFourMask($0, outer: outer, cin: cin, inner: inner) }
        store.withMutableValues(parameter) { apply(to: $0) }
    }

    func apply(to values: UnsafeMutableBufferPointer<Float>) {
        guard values.count == mask.count else { return }
        mask.withUnsafeBufferPointer { TrainingQuant.applyMask($0, to: values) }
    }
}
