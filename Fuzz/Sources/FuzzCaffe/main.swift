// Fuzz target: the Caffe reader (prototxt text + caffemodel bytes → IR). The input is the prototxt's text, a NUL
// byte, then the caffemodel's bytes (no NUL: the prototxt alone). Any input must convert or fail with a typed error
// (TextFormatErrors, CaffeError, GraphError), never trap; a model that converts must serialize; every error prints.
import CLibFuzzer
import Foundation
import Graph

func fuzzCaffe(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let split = bytes.firstIndex(of: 0)
    guard let text = String(validating: UnsafeBufferPointer(rebasing: bytes[..<(split ?? size)]), as: UTF8.self)
    else { return 0 }
    do {
        let model: Model
        if let split {
            let weights = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[(split + 1)...]))
            model = try CaffeModel.decode(prototxt: text, caffemodel: weights, file: "fuzz.prototxt")
        } else {
            model = try CaffeModel.decode(prototxt: text, caffemodel: nil, file: "fuzz.prototxt")
        }
        _ = ModelFile.encode(model)
    } catch {
        _ = String(describing: error)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzzCaffe($0, $1) }))
