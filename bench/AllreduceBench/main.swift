import Foundation
import Passes

// `mpirun -np N allreduce-bench COUNT…`: the time of one gradient all-reduce of COUNT floats, through the path
// retraining takes (Communicator.sum: MPI_Iallreduce polled by the watchdog). Rank 0 prints one line per count:
//   floats  bytes  median seconds  (over 7 runs after 2 warm-ups)  algorithm bandwidth 2(N−1)/N·bytes/s

let world = Communicator.world
var lines: [String] = []
for argument in CommandLine.arguments.dropFirst() {
    guard let count = Int(argument), count > 0 else {
        FileHandle.standardError.write(Data("allreduce-bench: '\(argument)' is not a positive float count\n".utf8))
        exit(1)
    }
    var buffer = [Float](repeating: 1, count: count)
    var times: [Double] = []
    for run in 0..<9 {
        let start = DispatchTime.now().uptimeNanoseconds
        world.sum(&buffer, "benchmark all-reduce")
        if run >= 2 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
    }
    let median = times.sorted()[times.count / 2]
    let bytes = Double(count * 4), n = Double(world.size)
    let bandwidth = 2 * (n - 1) / n * bytes / median / 1e9
    lines.append(String(format: "%d %.0f %.6f %.3f", count, bytes, median, bandwidth))
}
if world.isRoot { print(lines.joined(separator: "\n")) }
world.finalize()
