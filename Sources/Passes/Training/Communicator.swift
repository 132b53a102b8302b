import CMPI
import Foundation

// The MPI world a process runs in, and its collectives with a watchdog (issue 23).
//
//   plain `amct-pipe …`            → rank 0 of 1: no MPI_Init, every collective returns at once
//   `mpirun -np N amct-pipe …`     → MPI_Init on first use; rank r of N
//
//   collective k:  every rank ──arrival(k)──▶ rank 0          (a tiny message, before the collective)
//                  MPI_I{allreduce,bcast} polled with MPI_Test until done or the deadline; a rank waiting longer
//                  than a second sends rank 0 a heartbeat each second
//   deadline:      rank 0 after `timeout` s names the ranks whose arrival(k) never came, or that arrived and went
//                  silent (stopped inside the collective), and calls MPI_Abort; the others wait `timeout + grace`
//                  (rank 0, alive, would have ended the job by then) and name rank 0.
// A rank that exits (error, signal) is mpirun's to notice: Open MPI's mpirun ends the job and names it.

/// The world of ranks a retraining run shares.
public final class Communicator: @unchecked Sendable {
    /// The process's world (MPI initialised on first use when launched by mpirun).
    public static let world = Communicator()

    public let rank: Int
    public let size: Int
    /// Seconds rank 0 waits in a collective for the other ranks before it ends the job (the others wait
    /// `timeout + grace`). Set once, before training (`--collective-timeout`).
    public var timeout: Double = Communicator.defaultTimeout
    public static let defaultTimeout: Double = 300
    private let usesMPI: Bool
    private var sequence: Int64 = 0
    private static let arrivalTag: Int32 = 23
    private lazy var heartbeats = Heartbeats(rank: rank, size: size)

    public var isRoot: Bool { rank == 0 }
    public var isDistributed: Bool { size > 1 }
    /// Extra seconds the non-root ranks wait, so rank 0 (which can name the missing rank) speaks first.
    var grace: Double { max(10, timeout / 10) }

    private init() {
        guard Self.launchedByMPI else {
            (rank, size, usesMPI) = (0, 1, false)
            return
        }
        if amct_mpi_initialized() == 0 { _ = amct_mpi_init() }
        (rank, size, usesMPI) = (Int(amct_mpi_rank()), Int(amct_mpi_size()), true)
    }

    /// Whether mpirun (Open MPI, MPICH's hydra, a PMIx launcher) started this process.
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].contains { env[$0] != nil }
    }

    /// "rank r of N" from the launcher's environment, without initialising MPI (for error messages); nil alone.
    public static var launchedRank: String? {
        let env = ProcessInfo.processInfo.environment
        guard let rank = env["OMPI_COMM_WORLD_RANK"] ?? env["PMI_RANK"] ?? env["PMIX_RANK"],
              let size = env["OMPI_COMM_WORLD_SIZE"] ?? env["PMI_SIZE"], size != "1" else { return nil }
        return "rank \(rank) of \(size)"
    }

    /// Ends MPI cleanly (every rank calls it once the run is done); nothing alone.
    public func finalize() {
        guard usesMPI, amct_mpi_finalized() == 0 else { return }
        if isDistributed { heartbeats.stop() }
        _ = amct_mpi_finalize()
    }

    /// Prints `message` naming this rank and ends every rank of the job (MPI_Abort); exits alone.
    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("amct-pipe: error: (rank \(rank) of \(size)) \(message)\n".utf8))
        if usesMPI { amct_mpi_abort(1) }
        exit(1)
    }

    // MARK: Collectives

    /// Sums `values` over every rank, in place.
    public func sum(_ values: inout [Float], _ what: @autoclosure () -> String) {
        guard isDistributed, !values.isEmpty else { return }
        values.withUnsafeMutableBufferPointer { b in
            Self.chunks(b.count) { start, count in
                run(what()) { amct_mpi_iallreduce_sum_float(b.baseAddress! + start, count, $0) }
            }
        }
    }

    /// Sums `values` over every rank (Double: exact for counts), in place.
    public func sum(_ values: inout [Double], _ what: @autoclosure () -> String) {
        guard isDistributed, !values.isEmpty else { return }
        values.withUnsafeMutableBufferPointer { b in
            Self.chunks(b.count) { start, count in
                run(what()) { amct_mpi_iallreduce_sum_double(b.baseAddress! + start, count, $0) }
            }
        }
    }

    /// Whether `hash` is the same on every rank.
    public func agree(_ hash: UInt64, _ what: @autoclosure () -> String) -> Bool {
        guard isDistributed else { return true }
        var both = [hash, ~hash]  // max(h) == ~max(~h) = min(h) only when every rank has the same h
        both.withUnsafeMutableBufferPointer { b in run(what()) { amct_mpi_iallreduce_max_u64(b.baseAddress!, 2, $0) } }
        return both[0] == ~both[1]
    }

    /// Rank 0's `bytes` on every rank (any length; the others' input is replaced).
    public func broadcast(_ bytes: inout [UInt8], _ what: @autoclosure () -> String) {
        guard isDistributed else { return }
        var length = [UInt8](withUnsafeBytes(of: Int64(bytes.count).littleEndian, Array.init))
        raw(&length, what())
        let count = Int(length.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) })
        if !isRoot { bytes = [UInt8](repeating: 0, count: count) }
        raw(&bytes, what())
    }

    /// Rank 0's floats on every rank (the same count on every rank).
    public func broadcast(_ values: inout [Float], _ what: @autoclosure () -> String) {
        guard isDistributed, !values.isEmpty else { return }
        values.withUnsafeMutableBytes { b in
            Self.chunks(b.count) { start, count in
                run(what()) { amct_mpi_ibcast_bytes(b.baseAddress! + start, count, $0) }
            }
        }
    }

    private func raw(_ bytes: inout [UInt8], _ what: String) {
        bytes.withUnsafeMutableBytes { b in
            guard let base = b.baseAddress else { return }
            Self.chunks(b.count) { start, count in run(what) { amct_mpi_ibcast_bytes(base + start, count, $0) } }
        }
    }

    /// Calls `body(start, count)` over `total` elements in pieces MPI's Int32 counts can hold.
    static func chunks(_ total: Int, _ body: (Int, Int32) -> Void) {
        let piece = 1 << 30
        var start = 0
        repeat {
            let count = min(piece, total - start)
            body(start, Int32(count))
            start += count
        } while start < total
    }

    // MARK: Watchdog

    /// Starts one non-blocking collective and polls it to completion, ending the job when it outlasts the deadline.
    private func run(_ what: String, _ start: (UnsafeMutablePointer<amct_mpi_request>) -> Int32) {
        sequence += 1
        let arrivals = Arrivals(sequence: sequence, rank: rank, size: size, tag: Self.arrivalTag)
        defer { arrivals.release() }
        let request = UnsafeMutablePointer<amct_mpi_request>.allocate(capacity: 1)
        defer { request.deallocate() }
        request.initialize(to: amct_mpi_request())
        let began = Date()
        if start(request) != 0 { abort("MPI could not start the \(what)") }
        let limit = isRoot ? timeout : timeout + grace
        var polls = 0
        while amct_mpi_test(request) == 0 {
            arrivals.poll()
            heartbeats.beat()
            let waited = Date().timeIntervalSince(began)
            if waited > limit { timedOut(what, waited, arrivals) }
            polls += 1
            if waited < 0.5 || polls % 64 != 0 { sched_yield() } else { usleep(200) }
        }
        while !arrivals.complete() {  // the collective ended, so every arrival was sent: these end at once
            if Date().timeIntervalSince(began) > limit { timedOut(what, limit, arrivals) }
            sched_yield()
        }
    }

    private func timedOut(_ what: String, _ seconds: Double, _ arrivals: Arrivals) -> Never {
        let waited = String(format: "%.0f s", seconds)
        if isRoot {
            let absent = arrivals.missing, silent = heartbeats.silent(for: max(2, min(timeout / 2, 10)))
            let stuck = Set(absent + silent).sorted()
            let names = (stuck.count == 1 ? "rank " : "ranks ") + stuck.map(String.init).joined(separator: ", ")
            let limit = "; ending the job (--collective-timeout sets the limit)"
            guard !stuck.isEmpty else {
                abort("the \(what) (collective #\(sequence)) did not complete within \(waited) though every rank "
                      + "reached it and answers: the network between the ranks may be down\(limit)")
            }
            let did = absent.isEmpty ? "reached the \(what) (collective #\(sequence)) but went silent inside it"
                : "did not reach the \(what) (collective #\(sequence))"
            abort("\(names) \(did) within \(waited): it died or hangs\(limit)")
        }
        abort("rank 0 did not complete the \(what) (collective #\(sequence)) within \(waited): rank 0 died or "
              + "hangs (alive, it would have named a missing rank by now); ending the job")
    }
}

/// The arrival messages of one collective: rank 0 receives one from every other rank, the others send theirs.
private final class Arrivals {
    let rank: Int, size: Int
    private let buffers: UnsafeMutablePointer<Int64>
    private let requests: UnsafeMutablePointer<amct_mpi_request>
    private var done: [Bool]

    init(sequence: Int64, rank: Int, size: Int, tag: Int32) {
        (self.rank, self.size) = (rank, size)
        let count = rank == 0 ? size : 1
        buffers = .allocate(capacity: count)
        buffers.initialize(repeating: sequence, count: count)
        requests = .allocate(capacity: count)
        requests.initialize(repeating: amct_mpi_request(), count: count)
        done = [Bool](repeating: false, count: count)
        if rank == 0 {
            done[0] = true
            for r in 1..<size { _ = amct_mpi_irecv_arrival(buffers + r, Int32(r), tag, requests + r) }
        } else {
            _ = amct_mpi_isend_arrival(buffers, tag, requests)
        }
    }

    /// Tests the pending messages once.
    func poll() {
        for i in done.indices where !done[i] { done[i] = amct_mpi_test(requests + i) != 0 }
    }

    func complete() -> Bool {
        poll()
        return !done.contains(false)
    }

    /// Rank 0: the ranks whose arrival has not come.
    var missing: [Int] { rank == 0 ? done.indices.filter { !done[$0] } : [] }

    func release() {
        buffers.deallocate()
        requests.deallocate()
    }
}

/// Liveness while waiting: every rank but 0 sends a heartbeat each second it waits in a collective; rank 0 keeps one
/// receive posted and the time of each rank's last heartbeat.
private final class Heartbeats {
    let rank: Int
    private static let tag: Int32 = 24
    private let value = UnsafeMutablePointer<Int64>.allocate(capacity: 1)  // never freed: sends are not waited for
    private let request = UnsafeMutablePointer<amct_mpi_request>.allocate(capacity: 1)
    private var last: [Date]
    private var lastSent = Date.distantPast
    private var posted = false

    init(rank: Int, size: Int) {
        self.rank = rank
        value.initialize(to: Int64(rank))
        request.initialize(to: amct_mpi_request())
        last = [Date](repeating: .distantPast, count: size)
    }

    /// Rank 0: takes the heartbeats that came; the others: sends one when a second has passed since the last.
    func beat() {
        guard rank == 0 else {
            if Date().timeIntervalSince(lastSent) >= 1 {
                _ = amct_mpi_send_heartbeat(value, Self.tag)
                lastSent = Date()
            }
            return
        }
        var source: Int32 = 0
        while true {
            if !posted { posted = amct_mpi_irecv_heartbeat(value, Self.tag, request) == 0 }
            guard posted, amct_mpi_test_source(request, &source) != 0 else { return }
            posted = false
            if source >= 0 && Int(source) < last.count { last[Int(source)] = Date() }
        }
    }

    /// Rank 0: the other ranks not heard from for `seconds`.
    func silent(for seconds: Double) -> [Int] {
        beat()
        return last.indices.filter { $0 != 0 && Date().timeIntervalSince(last[$0]) > seconds }
    }

    /// Rank 0: withdraws the posted receive (before MPI_Finalize).
    func stop() {
        if rank == 0 && posted { amct_mpi_cancel(request) }
        posted = false
    }
}
