import ArgumentParser
import Passes

// `amct-pipe plan`: the per-layer plan of a config on a model (Pipeline.plan), as a table or JSON.

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what each layer will get under a config, and why (changes nothing).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var config: ConfigOptions
    @OptionGroup var printing: JSONOptions
    @OptionGroup var shapes: InputShapeOptions

    func run() throws {
        try reportingErrors {
            var loaded = try model.load()
            try InputShape.apply(shapes.parsed(), to: &loaded)
            let context = try plan(&loaded, config: config.load())
            guard let plan = context.plan else { return }
            let summary = PlanSummary(plan, warnings: context.diagnostics)
            print(printing.json ? summary.json : summary.description)
        }
    }
}

