// Fuzz target: the .npy / .npz reader. Any bytes must read or fail with a NumpyError, never trap, and never
// allocate more than the input can hold (run with -rss_limit_mb to see that).
import CLibFuzzer
import Foundation
import Graph

func fuzzNumpy(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    do {
        _ = try NumpyArchive.parse(UnsafeRawBufferPointer(start: data, count: size), path: "fuzz.npz")
    } catch {
        _ = String(describing: error)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzzNumpy($0, $1) }))
