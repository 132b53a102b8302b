import Foundation
import Kernels

/// Reads the batches of a source on a thread of its own while the caller runs the model: at most `depth` batches wait,
/// so memory follows the batch size, never the number of samples. An error reading a batch comes out of `next()`
/// for that batch. Dropping the reader stops the thread after the batch it is reading.
public final class BatchReader {
    final class Shared: @unchecked Sendable {
        let condition = NSCondition()
        var ready: [Int: Result<[String: DenseTensor], any Error>] = [:]
        var consumed = 0
        var cancelled = false
    }

    private let shared = Shared()
    public let count: Int

    /// Starts reading `batches` (sample indices each) of `source`; `epoch` seeds augmentation (nil: none).
    public init(_ source: any DataSource, batches: [[Int]], epoch: Int? = nil, depth: Int = 2) {
        count = batches.count
        let shared = self.shared
        let thread = Thread {
            for (i, indices) in batches.enumerated() {
                shared.condition.lock()
                while i - shared.consumed >= depth && !shared.cancelled { shared.condition.wait() }
                let stop = shared.cancelled
                shared.condition.unlock()
                if stop { return }
                let result = Result { try source.read(indices, epoch: epoch) }
                shared.condition.lock()
                shared.ready[i] = result
                shared.condition.broadcast()
                shared.condition.unlock()
                if case .failure = result { return }
            }
        }
        thread.name = "amct-pipe data reader"
        thread.start()
    }

    deinit {
        shared.condition.lock()
        shared.cancelled = true
        shared.condition.broadcast()
        shared.condition.unlock()
    }

    /// The next batch, in order (waits for the reader).
    public func next() throws -> [String: DenseTensor] {
        shared.condition.lock()
        defer { shared.condition.unlock() }
        let i = shared.consumed
        precondition(i < count, "BatchReader: more batches taken than asked for")
        while shared.ready[i] == nil { shared.condition.wait() }
        let result = shared.ready.removeValue(forKey: i)!
        shared.consumed += 1
        shared.condition.broadcast()
        return try result.get()
    }
}
