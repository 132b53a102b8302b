import Graph
import Kernels

// What a plan holds in memory, known before any data runs, and the one check of it against the memory available.
//
//   peakBytes      the most a batch holds at once: graph inputs, the values alive at a step (a value is freed after
//                  its last reader; views share their input's storage), the step's scratch (im2col)
//   valueBytes     every value of a batch at once: what training's tape keeps (forward values and their gradients)
//   foldedBytes    values computed at plan time from constants (checked as each is made, before it is allocated)

/// A kernel that allocates scratch memory besides its outputs while it runs.
protocol ScratchingKernel: OpKernel {
    var scratchElements: Int { get }
}

extension TensorSpec {
    /// Bytes of the value (float 4, int64 8, bool 1 per element).
    var byteCount: Int {
        switch kind {
        case .float: return 4 * count
        case .int64: return 8 * count
        case .bool: return count
        }
    }
}

extension ExecutionPlan {
    /// Sets `peakBytes`, `peakStep` and `valueBytes` from the specs of the plan's slots (constants excluded: the
    /// model's own tensors, or folded values already counted).
    mutating func measureMemory(_ specs: [Int: TensorSpec]) {
        func root(_ s: Int) -> Int {
            var r = s
            while let a = aliasOf[r] { r = a }
            return r
        }
        func bytes(_ s: Int) -> Int {
            guard s >= 0, aliasOf[s] == nil, let spec = specs[s], spec.constant == nil else { return 0 }
            return spec.byteCount
        }
        // A storage is freed when the last slot sharing it is released.
        var sharers: [Int: Int] = [:]
        for s in specs.keys where s >= 0 { sharers[root(s), default: 0] += 1 }
        var live = inputSlots.reduce(foldedBytes) { $0 + bytes($1.slot) }
        var peak = live, total = live
        peakStep = nil
        for (i, step) in steps.enumerated() {
            let made = step.outputs.reduce(0) { $0 + bytes($1) }
            live += made
            total += made
            let scratch = 4 * ((step.kernel as? any ScratchingKernel)?.scratchElements ?? 0)
            if live + scratch > peak || peakStep == nil {
                peak = live + scratch
                peakStep = i
            }
            for s in step.release {
                let r = root(s)
                sharers[r, default: 1] -= 1
                if sharers[r] == 0 { live -= bytes(r) }
            }
        }
        peakBytes = peak
        valueBytes = total
    }

    /// Throws when a value an op makes in `prepare` (ConstantOfShape, Range) would not fit in the memory available.
    static func checkConstant(bytes: Int) throws {
        let available = MemoryBudget.availableBytes
        guard bytes > available else { return }
        throw KernelError("its value would need \(MemoryBudget.formatSize(bytes)); \(MemoryBudget.formatSize(available)) "
            + "of memory is available")
    }

    /// Throws, naming the node, when `bytes` exceed the memory available (MemoryBudget).
    static func checkMemory(_ bytes: Int, _ node: Node, _ opset: Int, _ what: String) throws {
        let available = MemoryBudget.availableBytes
        guard bytes > available else { return }
        throw error(node, opset, "\(what) would need \(MemoryBudget.formatSize(bytes)) at this node; "
            + "\(MemoryBudget.formatSize(available)) of memory is available (a smaller batch, or smaller sizes in the "
            + "model, would fit)")
    }
}
