// Fuzz target: reading a retraining checkpoint (what --resume reads). The bytes are read as an .npz and checked as a
// checkpoint twice: as they are (the checksum must catch a change) and resealed with the checksum of what they hold,
// so the record's and the arrays' checks are fuzzed too. Each must succeed or throw a typed error, never trap.
import CLibFuzzer
import Foundation
import Graph
import Passes

func fuzzCheckpoint(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    guard var arrays = try? NumpyArchive.parse(UnsafeRawBufferPointer(start: data, count: size), path: "fuzz.npz") else {
        return 0
    }
    for _ in 0..<2 {
        do {
            _ = try CheckpointFile(arrays: arrays, path: "checkpoint.npz")
        } catch {
            _ = String(describing: error)
        }
        arrays["checksum"] = nil
        let sum = NumpyArchive.checksum(arrays)
        arrays["checksum"] = NumpyArray(shape: [1], values: .int64([Int64(sum)]), dtype: "<i8")
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzzCheckpoint($0, $1) }))
