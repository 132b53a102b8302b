// Fuzz target: the text-format reader and the config rules behind it. Any bytes must read or fail with
// TextFormatErrors / ConfigErrors, never trap or hang; every error message must print.
import CLibFuzzer
import Foundation
import Graph
import Passes

func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self) else { return 0 }
    do {
        let parsed = try TextFormat.parse(text, file: "fuzz.cfg", schema: .amctRetrainConfig)
        _ = try CompressionConfig(parsed.message, file: "fuzz.cfg")
    } catch {
        _ = String(describing: error)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzzConfig($0, $1) }))
