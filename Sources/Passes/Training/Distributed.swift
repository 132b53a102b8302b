import Foundation
import Kernels

// Data-parallel retraining (issue 23): N ranks train one model as one process would with a global batch of
// `TrainingOptions.batchSize` (= --batch-size × N from the command line); everything here is a no-op on one rank.
//
//   start     every rank plans, prunes and calibrates as one process would (same data, same global batch); rank 0
//             alone reads --resume; then rank 0's parameters, moments, masks and training state go to every rank
//   a step    rank r reads piece r of the global batch (every N-th --batch-size batch of the global order) →
//             forward/backward → gradients packed into one fused buffer (+ one presence flag per parameter) →
//             all-reduce (sum) → ÷ N → the same optimizer step on every rank
//   scoring   whole global batches, batch b on rank b mod N; loss·samples, correct and samples summed
//   epoch end train loss averaged and accuracy summed over ranks; a hash of the parameters and masks compared
//             (a rank that drifted takes rank 0's state); rank 0 writes the checkpoint

extension Communicator {
    // MARK: Shards

    /// Piece `rank` of a global batch cut into `size` contiguous pieces (equal when the batch divides).
    func shard(_ batch: [Int]) -> [Int] {
        guard isDistributed else { return batch }
        let lo = batch.count * rank / size, hi = batch.count * (rank + 1) / size
        return Array(batch[lo..<hi])
    }

    /// The scoring batches this rank runs: batch b on rank b mod N.
    func scoringShard(_ batches: [[Int]]) -> [[Int]] {
        guard isDistributed else { return batches }
        return batches.enumerated().filter { $0.offset % size == rank }.map(\.element)
    }

    /// A run N ranks can share exactly: a global batch that divides into N pieces, and data holding a whole one.
    public func checkShards(globalBatch: Int, samples: Int, source: String) throws {
        guard isDistributed else { return }
        guard globalBatch % size == 0 else {
            throw PassError(node: "--batch-size", "the global batch \(globalBatch) does not divide over \(size) ranks")
        }
        guard samples >= globalBatch else {
            throw DataError(path: source, "has \(samples) samples, fewer than one global batch of \(globalBatch) "
                            + "(\(globalBatch / size) per rank × \(size) ranks): lower --batch-size or the rank count")
        }
    }

    // MARK: Gradients

    /// The gradients averaged over the ranks: one all-reduce of the step's one buffer (every parameter's gradient,
    /// zeros where a rank has none, then one presence flag per parameter), divided by N. A parameter no rank has a
    /// gradient for stays without one (the optimizer leaves it, and its moments, alone).
    func averaged(_ gradients: Gradients, step: Int) -> Gradients {
        guard isDistributed else { return gradients }
        var result = gradients
        sum(&result.buffer, "gradient all-reduce of step \(step + 1)")
        let ranks = Float(size), values = result.buffer.count - result.parameters
        result.buffer.withUnsafeMutableBufferPointer { b in
            for i in 0..<values { b[i] /= ranks }
        }
        return result
    }

    /// Rank-reduced variance of a distillation target over the global batch (nil alone: the local one is global).
    func globalVariance(_ t: UnsafeBufferPointer<Float>) -> Double? {
        guard isDistributed else { return nil }
        var first = [t.reduce(0.0) { $0 + Double($1) }, Double(t.count)]
        sum(&first, "distillation variance (mean)")
        let mean = first[0] / max(first[1], 1)
        var second = [t.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) }]
        sum(&second, "distillation variance")
        let variance = second[0] / max(first[1], 1)
        return variance > 0 && variance.isFinite ? variance : 1
    }

    // MARK: Scores and reports

    /// Scoring sums (loss·samples, correct, samples) over the ranks.
    func reduceScore(_ total: inout Double, _ right: inout Int, _ seen: inout Int) {
        guard isDistributed else { return }
        var sums = [total, Double(right), Double(seen)]
        sum(&sums, "validation reduction")
        (total, right, seen) = (sums[0], Int(sums[1]), Int(sums[2]))
    }

    /// An epoch's report for the job: the train loss averaged over ranks (each saw an equal piece of every global
    /// batch), accuracy summed (each rank divided its correct count by the global samples).
    func reduce(_ report: EpochReport) -> EpochReport {
        guard isDistributed else { return report }
        var sums = [Double(report.trainLoss) / Double(size), Double(report.trainAccuracy ?? 0)]
        sum(&sums, "epoch \(report.epoch) report")
        var result = report
        result.trainLoss = Float(sums[0])
        result.trainAccuracy = report.trainAccuracy.map { _ in Float(sums[1]) }
        return result
    }

    // MARK: State

    /// What rank 0 tells the others at the start (besides arrays).
    struct StartRecord: Codable {
        var epochsDone: Int
        var step: Int
        var reports: [EpochReport]
        var before: Score?
        var bestEpoch: Int?
        var bestScore: Score?
        var resumedFrom: Int?
        var maskCounts: [Int]
    }

    /// Every rank takes rank 0's start: parameters, optimizer moments, masks and training state (a resumed one too).
    func synchronizeStart(_ trainer: Trainer, _ state: inout TrainingState) {
        guard isDistributed else { return }
        let record = StartRecord(
            epochsDone: state.epochsDone, step: trainer.store.step, reports: state.reports, before: state.before,
            bestEpoch: state.best?.epoch, bestScore: state.best?.score, resumedFrom: state.resumedFrom,
            maskCounts: trainer.masks.map(\.mask.count))
        var bytes = isRoot ? [UInt8]((try? JSONEncoder().encode(record)) ?? Data()) : []
        broadcast(&bytes, "start of training (rank 0's state)")
        guard let got = try? JSONDecoder().decode(StartRecord.self, from: Data(bytes)) else {
            abort("the training state rank 0 sent could not be read")
        }
        synchronizeParameters(trainer, maskCounts: got.maskCounts)
        var best = got.bestEpoch == nil ? [] : (state.best?.values ?? trainer.store.values)
        broadcast(&best, "start of training (best epoch)")
        state.epochsDone = got.epochsDone
        state.reports = got.reports
        state.before = got.before
        state.resumedFrom = got.resumedFrom
        trainer.store.step = got.step
        if let epoch = got.bestEpoch, let score = got.bestScore {
            state.best = (epoch, score, best)
        }
    }

    /// Rank 0's parameters, moments and masks on every rank.
    func synchronizeParameters(_ trainer: Trainer, maskCounts: [Int]) {
        var values = trainer.store.values, first = trainer.store.first, second = trainer.store.second
        for k in trainer.masks.indices where trainer.masks[k].mask.count != maskCounts[k] {
            trainer.masks[k].mask = [UInt8](repeating: 0, count: maskCounts[k])
        }
        var masks = trainer.masks.flatMap { $0.mask.map(Float.init) }
        broadcast(&values, "start of training (parameters)")
        broadcast(&first, "start of training (optimizer moments)")
        broadcast(&second, "start of training (optimizer moments)")
        broadcast(&masks, "start of training (2:4 masks)")
        trainer.store.values = values
        trainer.store.first = first
        trainer.store.second = second
        var offset = 0
        for k in trainer.masks.indices {
            let n = maskCounts[k]
            trainer.masks[k].mask = masks[offset..<(offset + n)].map { UInt8($0) }
            offset += n
        }
    }

    /// At an epoch's end: whether every rank holds the same parameters and masks; a rank that does not (a
    /// non-deterministic reduction could do it) takes rank 0's. Returns whether they agreed.
    @discardableResult
    func checkAgreement(_ trainer: Trainer, epoch: Int) -> Bool {
        guard isDistributed else { return true }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bits: UInt64) { hash = (hash ^ bits) &* 0x100_0000_01b3 }
        for x in trainer.store.values { mix(UInt64(x.bitPattern)) }
        for m in trainer.masks { for x in m.mask { mix(UInt64(x)) } }
        if agree(hash, "parameter check of epoch \(epoch)") { return true }
        if isRoot {
            FileHandle.standardError.write(Data(("amct-pipe: warning: the ranks' parameters differed after epoch "
                + "\(epoch); every rank continues from rank 0's\n").utf8))
        }
        synchronizeParameters(trainer, maskCounts: trainer.masks.map(\.mask.count))
        return false
    }
}
