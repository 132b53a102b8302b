// Vector-Jacobian products of Gemm and MatMul, through cblas_sgemm.
// Gemm  Y[M, N] = α·A'·B' + β·C  (A' = Aᵀ when transA, B' = Bᵀ when transB, C broadcast to [M, N]):
//   ∂A' = α·G·B'ᵀ  (∂A = its transpose when transA:  α·B'·Gᵀ)
//   ∂B' = α·A'ᵀ·G  (∂B = its transpose when transB:  α·Gᵀ·A')
//   ∂C  = β·G summed over the axes C was broadcast along
// MatMul Y[..., M, N] = A[..., M, K]·B[..., K, N] with numpy batch broadcasting (a 1-D A is [1, K], a 1-D B [K, 1]):
//   ∂A_i += G_i·B_iᵀ,  ∂B_i += A_iᵀ·G_i  for each output batch i, summed into the operand's own batch (broadcast batch
//   dims reduce by accumulation). A 2-D operand against a batched one folds the whole batch into one GEMM.
// Every function ADDS into its gradient outputs (the caller zeroes them); a nil output is not computed.

extension Backward {
    /// Gemm gradients; `cShape` is the bias' shape when there is one.
    public static func gemm(
        a: UnsafeBufferPointer<Float>, aShape: [Int], b: UnsafeBufferPointer<Float>, bShape: [Int], cShape: [Int]?,
        alpha: Float, beta: Float, transA: Bool, transB: Bool, gradient g: UnsafeBufferPointer<Float>,
        da: UnsafeMutableBufferPointer<Float>?, db: UnsafeMutableBufferPointer<Float>?,
        dc: UnsafeMutableBufferPointer<Float>?
    ) throws {
        guard aShape.count == 2, bShape.count == 2 else {
            throw KernelError("Gemm gradient needs 2-D inputs, got \(aShape), \(bShape)")
        }
        let (m, k) = transA ? (aShape[1], aShape[0]) : (aShape[0], aShape[1])
        let (k2, n) = transB ? (bShape[1], bShape[0]) : (bShape[0], bShape[1])
        guard k == k2, g.count == m * n, a.count == m * k, b.count == k * n,
            (da?.count ?? a.count) == a.count, (db?.count ?? b.count) == b.count
        else { throw KernelError("Gemm gradient: \(aShape) × \(bShape) and a gradient of \(g.count) do not agree") }
        if let dc, let cShape {
            var scaled = [Float](repeating: 0, count: g.count)
            for i in g.indices { scaled[i] = beta * g[i] }
            try scaled.withUnsafeBufferPointer { try reduceToShape($0, [m, n], into: dc, shape: cShape) }
        }
        guard m > 0, n > 0, k > 0 else { return }
        let (ab, bb, gb) = (a.baseAddress!, b.baseAddress!, g.baseAddress!)
        let (lda, ldb) = (aShape[1], bShape[1])
        if let da {
            if transA {
                NeuralOps.sgemm(
                    transA: transB, transB: true, m: k, n: m, k: n, alpha: alpha, bb, lda: ldb, gb, ldb: n,
                    beta: 1, da.baseAddress!, ldc: m)
            } else {
                NeuralOps.sgemm(
                    transA: false, transB: !transB, m: m, n: k, k: n, alpha: alpha, gb, lda: n, bb, ldb: ldb,
                    beta: 1, da.baseAddress!, ldc: k)
            }
        }
        if let db {
            if transB {
                NeuralOps.sgemm(
                    transA: true, transB: transA, m: n, n: k, k: m, alpha: alpha, gb, lda: n, ab, ldb: lda,
                    beta: 1, db.baseAddress!, ldc: k)
            } else {
                NeuralOps.sgemm(
                    transA: !transA, transB: false, m: k, n: n, k: m, alpha: alpha, ab, lda: lda, gb, ldb: n,
                    beta: 1, db.baseAddress!, ldc: n)
            }
        }
    }

    /// MatMul gradients with numpy semantics (batch broadcasting, 1-D operands).
    public static func matmul(
        a: UnsafeBufferPointer<Float>, aShape: [Int], b: UnsafeBufferPointer<Float>, bShape: [Int],
        gradient g: UnsafeBufferPointer<Float>, da: UnsafeMutableBufferPointer<Float>?,
        db: UnsafeMutableBufferPointer<Float>?
    ) throws {
        guard !aShape.isEmpty, !bShape.isEmpty else { throw KernelError("MatMul gradient: scalar operands") }
        let ash = aShape.count == 1 ? [1, aShape[0]] : aShape
        let bsh = bShape.count == 1 ? [bShape[0], 1] : bShape
        let (m, k) = (ash[ash.count - 2], ash[ash.count - 1])
        let (k2, n) = (bsh[bsh.count - 2], bsh[bsh.count - 1])
        let aBatch = Array(ash.dropLast(2))
        let bBatch = Array(bsh.dropLast(2))
        let batch = try Elementwise.broadcastShape(aBatch, bBatch)
        let batches = batch.reduce(1, *)
        guard k == k2, g.count == batches * m * n, a.count == ash.reduce(1, *), b.count == bsh.reduce(1, *),
            (da?.count ?? a.count) == a.count, (db?.count ?? b.count) == b.count
        else { throw KernelError("MatMul gradient: \(aShape) × \(bShape) and a gradient of \(g.count) do not agree") }
        guard k > 0, m > 0, n > 0, batches > 0 else { return }
        let (ab, bb, gb) = (a.baseAddress!, b.baseAddress!, g.baseAddress!)
        let aFull = aBatch.reduce(1, *) == batches
        // A batched against a shared 2-D B: the batch folds into the rows.
        if bBatch.allSatisfy({ $0 == 1 }) && aFull {
            let rows = batches * m
            if let da {
                NeuralOps.sgemm(
                    transA: false, transB: true, m: rows, n: k, k: n, gb, lda: n, bb, ldb: n, beta: 1, da.baseAddress!,
                    ldc: k)
            }
            if let db {
                NeuralOps.sgemm(
                    transA: true, transB: false, m: k, n: n, k: rows, ab, lda: k, gb, ldb: n, beta: 1, db.baseAddress!,
                    ldc: n)
            }
            return
        }
        let walk = try BroadcastRows(output: batch, operands: [aBatch, bBatch])
        var i = 0
        for r in 0..<walk.rows {
            for j in 0..<walk.length {
                let ao = (walk.offsets[0][r] + j * walk.rowStrides[0]) * m * k
                let bo = (walk.offsets[1][r] + j * walk.rowStrides[1]) * k * n
                let go = gb + i * m * n
                if let da {
                    NeuralOps.sgemm(
                        transA: false, transB: true, m: m, n: k, k: n, go, lda: n, bb + bo, ldb: n,
                        beta: 1, da.baseAddress! + ao, ldc: k)
                }
                if let db {
                    NeuralOps.sgemm(
                        transA: true, transB: false, m: k, n: n, k: m, ab + ao, lda: k, go, ldb: n,
                        beta: 1, db.baseAddress! + bo, ldc: n)
                }
                i += 1
            }
        }
    }
}
