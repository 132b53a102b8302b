import ArgumentParser
import Passes

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what each layer will get under a config, and why (changes nothing).")

    @Argument(help: "The model (ONNX, or a Caffe deploy.prototxt with --weights).")
    var input: String

    @Option(help: ArgumentHelp(weightsHelp, valueName: "model.caffemodel"))
    var weights: String?

    @Option(help: "The AMCT config (text format: quant.cfg, prune.cfg, compressed1.cfg, ...).")
    var cfg: String

    @Flag(help: "Print JSON with stable keys instead of the table.")
    var json = false

    @Option(name: .customLong("input-shape"), help: ArgumentHelp(inputShapeHelp, valueName: "name:d0,d1,..."))
    var inputShapes: [String] = []

    func run() throws {
        try reportingErrors {
            var model = try ModelFile.load(input, weights: weights)
            try InputShape.apply(parsing: inputShapes, to: &model)
            let config = try CompressionConfig.load(cfg)
            let context = try plan(&model, config: config)
            guard let plan = context.plan else { return }
            let summary = PlanSummary(plan, warnings: context.diagnostics)
            print(json ? summary.json : summary.description)
        }
    }
}

