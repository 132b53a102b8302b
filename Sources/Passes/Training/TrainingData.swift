import Foundation
import Graph
import Kernels

/// Samples to train or validate on: a data source whose inputs match the model's, and class indices when the loss is
/// cross-entropy (an .npz array named by --labels, or a class-folder / list-file source's own).
public struct TrainingData: Sendable {
    public let samples: any DataSource
    public let labels: [Int64]?
    public var count: Int { samples.count }
    public var source: String { samples.description }
    /// Where the labels come from, for the summary ("class folders", "array 'y'"), nil when distilling.
    public let labelOrigin: String?

    public init(samples: any DataSource, useLabels: Bool = true) {
        self.samples = samples
        self.labels = useLabels ? samples.labels : nil
        labelOrigin = labels == nil ? nil : samples.classNames != nil ? "the class folders" : "the source"
    }

    public init(arrays: [String: NumpyArray], labels: [Int64]?, source: String) throws {
        samples = try MemorySource(arrays: arrays, labels: labels, description: source)
        self.labels = labels
        labelOrigin = labels == nil ? nil : "the labels array"
    }

    /// Opens `path` (any data source) for `model`. Labels: an .npz array by name, a labelled source's own (class
    /// folders, a list file with integer labels), or none (distillation).
    public static func load(_ path: String, for model: Model, labels: LabelChoice,
                            preprocessing: Preprocessing = Preprocessing()) throws -> TrainingData {
        var arrayName: String?
        if case .array(let name) = labels { arrayName = name }
        let source = try DataSources.open(path, inputs: CalibrationData.modelInputs(model), preprocessing: preprocessing,
                                          labelArray: arrayName)
        try CalibrationData.check(source, against: CalibrationData.modelInputs(model))
        if let problem = (source as? ArraySource)?.problem { throw problem }
        if arrayName != nil, source is ImageSource {
            throw DataError(path: path, "--labels NAME names an .npz array; images carry their labels (class folders, list "
                                + "files): give no --labels, or --labels none to distill")
        }
        if labels == .fromSource, let image = source as? ImageSource, let problem = image.labelProblem { throw problem }
        var data = TrainingData(samples: source, useLabels: labels != .none)
        if let arrayName, data.labels != nil { data = TrainingData(samples: source, origin: "array '\(arrayName)'") }
        return data
    }

    init(samples: any DataSource, origin: String) {
        self.samples = samples
        self.labels = samples.labels
        self.labelOrigin = origin
    }

    /// The samples at `indices`, as executor inputs, with their labels; `epoch` seeds augmentation (nil: none).
    public func batch(_ indices: ArraySlice<Int>, epoch: Int? = nil) throws
        -> (feeds: [String: DenseTensor], labels: [Int64]?) {
        let feeds = try samples.read(Array(indices), epoch: epoch)
        return (feeds, labels.map { l in indices.map { l[$0] } })
    }

    /// The sample order of an epoch: a permutation seeded by (seed, epoch), the same on every run.
    public func order(seed: UInt64, epoch: Int) -> [Int] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(truncatingIfNeeded: epoch) &* 0xBF58_476D_1CE4_E5B9 &+ 1
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }
}
