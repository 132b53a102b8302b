import Dispatch
import Foundation

/// A value handed to worker threads that the caller guarantees is used race-free (disjoint output ranges).
@usableFromInline
struct UncheckedSendable<T>: @unchecked Sendable {
    @usableFromInline let value: T
    @inlinable init(_ value: T) { self.value = value }
}

/// Elements one tensor may hold before a kernel or the executor's plan refuses it (a guard against shapes that would
/// exhaust memory): a quarter of physical memory in float32, and never past Int32.max, so every dimension fits the
/// 32-bit sizes BLAS takes (an M×K operand's M and K are each at most its element count).
public let kernelElementLimit = Int(min(ProcessInfo.processInfo.physicalMemory / 16, UInt64(Int32.max)))

/// Cores the kernels spread large work over.
public let kernelThreads = max(1, ProcessInfo.processInfo.activeProcessorCount)

/// Calls `body` on disjoint chunks of `0..<count` covering it, on every core when `work` (elements touched) is large
/// enough to pay for the hand-off, else once on the calling thread. `body` runs per chunk, never per element.
@inlinable
public func parallelChunks(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
    let threads = kernelThreads
    guard count > 1, threads > 1, work >= 1 << 15 else {
        if count > 0 { body(0..<count) }
        return
    }
    let chunks = min(count, threads * 4)
    withoutActuallyEscaping(body) { escapable in
        let box = UncheckedSendable(escapable)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            box.value((count * c / chunks)..<(count * (c + 1) / chunks))
        }
    }
}
