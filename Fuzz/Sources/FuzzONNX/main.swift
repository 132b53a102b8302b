// Fuzz target: the ONNX loader. Any bytes must load or fail with a GraphError, never trap; a model that loads
// must serialize again.
import CLibFuzzer
import Foundation
import Graph

func fuzzONNX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let model = try? ModelFile.decode(bytes) else { return 0 }
    _ = ModelFile.encode(model)
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzzONNX($0, $1) }))
