// Fuzz target: load a model from the input bytes and plan it under a fixed config (fixtures/configs/compressed1.cfg,
// which quantizes, prunes and overrides by name and type). Any bytes must plan or fail with a typed error.
import Foundation
import CLibFuzzer
import Graph
import Passes

let configPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures/configs/compressed1.cfg").path
let config: CompressionConfig = {
    do { return try CompressionConfig.load(ProcessInfo.processInfo.environment["FUZZ_PLAN_CFG"] ?? configPath) } catch {
        fatalError("the fuzz config does not load: \(error)")
    }
}()

func fuzzPlan(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    guard var model = try? ModelFile.decode(UnsafeRawBufferPointer(start: data, count: size)) else { return 0 }
    do {
        _ = try plan(&model, config: config)
    } catch {
        _ = String(describing: error)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzzPlan($0, $1) }))
