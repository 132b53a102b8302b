import Graph

// The Passes module's errors, in one file: each says what went wrong and what to change, naming the node, file (and
// line), pass or value concerned. Kernels' `KernelError` and Graph's errors have their own files in their modules.

// MARK: Passes and pipelines

/// A pass that cannot handle a node: which node, and why.
public struct PassError: Error, Sendable, CustomStringConvertible {
    public var node: String
    public var message: String
    public init(node: String, _ message: String) {
        self.node = node
        self.message = message
    }
    public var description: String { "node '\(node)': \(message)" }
}

/// A pass that needs what nothing before it provides.
public struct PipelineError: Error, CustomStringConvertible {
    public var pass: String
    public var missing: PassRequirement
    public init(pass: String, missing: PassRequirement) {
        self.pass = pass
        self.missing = missing
    }
    public var description: String {
        "pass '\(pass)' needs \(missing), and nothing before it in the pipeline provides it"
    }
}

/// A pass name that is not in the pipeline.
public struct PipelineEditError: Error, CustomStringConvertible {
    public var name: String
    public var passes: [String]
    public var description: String {
        "the pipeline has no pass named '\(name)' (it has: \(passes.joined(separator: ", ")))"
    }
}

// MARK: Configs and command-line values

/// A problem with a config: what, where, and what to do.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case textFormat, clipRange, batchNum, pruneRatio, weightBitWidth, duplicateOverride, asksForNothing,
            channelWiseOnLinear, unknownLayerType, unknownLayerName, ambiguousLayerName
    }
    public var kind: Kind
    public var location: SourceLocation
    public var message: String
    public init(_ kind: Kind, _ location: SourceLocation, _ message: String) {
        self.kind = kind
        self.location = location
        self.message = message
    }
    public var description: String { "\(location): \(MessageText.message(message))" }
}

/// Several config problems at once (all that were found).
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// A bad `--input-shape`: what to write instead.
public struct InputShapeError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// MARK: Data and calibration

/// A data source that cannot be read as asked: the message names the file (and line).
public struct DataError: Error, Sendable, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(MessageText.message(message))" }
}

/// Calibration would need more than the machine has, or more than Int counts.
public struct CalibrationSizeError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// MARK: Analysis

/// Why an analysis cannot run: no data to measure on, or nothing to measure.
public enum AnalysisError: Error, CustomStringConvertible {
    case noCalibrationData
    case nothingQuantized
    public var description: String {
        switch self {
        case .noCalibrationData:
            return "analyze measures the quantization error on real inputs: give calibration data "
                + "(--calib data.npz, or --calib random for a trial)"
        case .nothingQuantized:
            return "the config quantizes no layer of this model, so there is nothing to analyze"
        }
    }
}

/// A report or config that cannot be written, with the path and the system's reason.
public struct AnalyzeWriteError: Error, CustomStringConvertible {
    public var description: String
}
