// custom-pipeline: the AMCTPipe library with a pass of your own.
//
//   custom-pipeline in.onnx out.onnx [--cfg config.cfg] [--calib data.npz|random] [--min-weights N]
//
// Loads a model, builds the default compress pipeline, inserts `KeepSmallLayersFloat` right after the plan is made
// (layers with fewer than N weights, default 1,000, stay float, and the summary says why), runs it, saves the output
// and prints the summary: the same one `amct-pipe` prints. Without --cfg it quantizes every layer to INT8 (IFMR clips)
// with the config below; without --calib it calibrates on seeded random inputs.

import Foundation
import Passes

/// A user-written pass: a layer whose weight has fewer than `minimumWeights` elements keeps float (its quantization
/// costs accuracy and saves next to nothing). It edits the plan, so every later pass, the record and the summary
/// see the decision.
struct KeepSmallLayersFloat: PlanPass {  // a PlanPass is handed the plan (the pipeline checks it is made)
    let name = "keep-small-layers-float"
    var minimumWeights: Int

    func run(_ graph: inout Graph, plan: Plan, _ context: inout PassContext) throws {
        var plan = plan
        var kept: [String] = []
        for i in plan.layers.indices where plan.layers[i].quant != nil {
            let weights = plan.layers[i].layer.weightShape.reduce(1, *)
            guard weights < Int64(minimumWeights) else { continue }
            plan.layers[i].leaveFloat(because: .notApplicable("\(weights) weights, fewer than \(minimumWeights) (\(name))"))
            kept.append(plan.layers[i].layer.name)
        }
        context.plan = plan
        context.log.append((name, "\(kept.count) small layers kept in float: \(kept.joined(separator: ", "))"))
    }
}

let defaultConfig = """
    batch_num: 1
    retrain_data_quant_config: { ulq_quantize: { dst_type: INT8 } }
    retrain_weight_quant_config: { arq_retrain: { channel_wise: true dst_type: INT8 } }
    """

func main() throws {
    var arguments = Array(CommandLine.arguments.dropFirst())
    func option(_ flag: String) -> String? {
        guard let i = arguments.firstIndex(of: flag), i + 1 < arguments.count else { return nil }
        defer { arguments.removeSubrange(i...(i + 1)) }
        return arguments[i + 1]
    }
    let cfg = option("--cfg"), calib = option("--calib") ?? "random", minimum = option("--min-weights") ?? "1000"
    guard arguments.count == 2, let minimumWeights = Int(minimum), minimumWeights >= 0 else {
        throw UsageError()
    }
    let model = try ModelFile.load(arguments[0])
    let config = try cfg.map(CompressionConfig.load)
        ?? CompressionConfig(text: defaultConfig, file: "custom-pipeline's default config")
    let options = CompressOptions(calibration: CalibrationSource(argument: calib))
    let calibration = CalibrationPass(data: try options.calibrationData(for: model, batches: config.batchNum))

    var pipeline = Pipeline.compress(format: .qdq, calibration: calibration)
    try pipeline.insert(KeepSmallLayersFloat(minimumWeights: minimumWeights), after: OverrideResolutionPass().name)
    print(pipeline)

    var result = try pipeline.run(model, config: config)
    try result.save(to: arguments[1])
    print(result.summary)
}

struct UsageError: Error, CustomStringConvertible {
    var description: String {
        "usage: custom-pipeline in.onnx out.onnx [--cfg config.cfg] [--calib data.npz|random] [--min-weights N]"
    }
}

do {
    try main()
} catch {
    FileHandle.standardError.write(Data("custom-pipeline: error: \(error)\n".utf8))
    exit(1)
}
