// Matrix products through OpenBLAS sgemm, row-major float32:
//
//   MatMul  Y[b] = A[b] · B[b] with numpy batch broadcasting. A batched A against a 2-D B (a shared weight) is one
//           sgemm with the batches stacked as rows; otherwise one sgemm per batch.

extension NeuralOps {
    /// The batch offsets of a broadcast batched MatMul, computed once per shape.
    public struct MatMulLayout: Sendable {
        public let m: Int, k: Int, n: Int
        public let batches: Int
        public let outShape: [Int]
        /// Element offsets into A and B per batch (empty when B is shared and the batches stack into one sgemm).
        public let aOffsets: [Int], bOffsets: [Int]
        public let stacked: Bool

        public init(_ aShape: [Int], _ bShape: [Int]) throws {
            guard !aShape.isEmpty, !bShape.isEmpty else { throw KernelError("MatMul of a scalar (\(aShape) × \(bShape))") }
            let ash = aShape.count == 1 ? [1, aShape[0]] : aShape
            let bsh = bShape.count == 1 ? [bShape[0], 1] : bShape
            (m, k) = (ash[ash.count - 2], ash[ash.count - 1])
            let k2 = bsh[bsh.count - 2]
            n = bsh[bsh.count - 1]
            guard k == k2 else { throw KernelError("MatMul of \(aShape) × \(bShape): inner sizes \(k) and \(k2) differ") }
            let aBatch = Array(ash.dropLast(2)), bBatch = Array(bsh.dropLast(2))
            let layout = try BroadcastLayout([aBatch, bBatch])
            // The offsets below are one per batch: refuse a broadcast no machine holds before allocating them.
            var total = layout.count
            for d in [m, n] {
                let (p, overflow) = total.multipliedReportingOverflow(by: Swift.max(d, 1))
                guard !overflow, p <= kernelElementLimit else { throw KernelError("MatMul of \(aShape) × \(bShape) is too large to run") }
                total = p
            }
            batches = layout.count
            var shape = layout.shape + [m, n]
            if aShape.count == 1 { shape.remove(at: shape.count - 2) }
            if bShape.count == 1 { shape.removeLast() }
            outShape = shape
            stacked = bBatch.reduce(1, *) == 1 && aBatch.reduce(1, *) == batches
            if stacked || batches == 0 || m == 0 || n == 0 {  // stacked, or an empty output: no offsets to walk
                aOffsets = []
                bOffsets = []
            } else {
                // One offset pair per batch, made here, before a plan can weigh it: at most 2^22 (64 MiB).
                guard batches <= 1 << 22 else {
                    throw KernelError("MatMul of \(aShape) × \(bShape) broadcasts over \(batches) batches; at most 4194304 run")
                }
                var ao: [Int] = [], bo: [Int] = []
                ao.reserveCapacity(batches)
                bo.reserveCapacity(batches)
                var offsets = [0, 0]
                let inner = layout.dims.last ?? 1
                for row in 0..<(batches / inner) {
                    if layout.dims.isEmpty { offsets = [0, 0] } else { layout.rowOffsets(row, &offsets) }
                    let sa = layout.strides.first?.last ?? 0, sb = layout.strides.last?.last ?? 0
                    for i in 0..<inner {
                        ao.append((offsets[0] + i * sa) * m * k)
                        bo.append((offsets[1] + i * sb) * k * n)
                    }
                }
                aOffsets = ao
                bOffsets = bo
            }
        }
        public var outputCount: Int { batches * m * n }
    }

    public static func matmul(_ l: MatMulLayout, a: UnsafePointer<Float>, b: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        guard l.outputCount > 0 else { return }
        if l.k == 0 {
            out.update(repeating: 0, count: l.outputCount)
            return
        }
        if l.stacked {
            sgemm(transA: false, transB: false, m: l.batches * l.m, n: l.n, k: l.k, a, lda: l.k, b, ldb: l.n, out, ldc: l.n)
            return
        }
        for i in 0..<l.batches {
            sgemm(transA: false, transB: false, m: l.m, n: l.n, k: l.k, a + l.aOffsets[i], lda: l.k, b + l.bOffsets[i],
                  ldb: l.n, out + i * l.m * l.n, ldc: l.n)
        }
    }
}
