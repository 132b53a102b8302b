import Foundation
import Graph
import Kernels

/// JPEG/PNG files decoded and preprocessed a batch at a time: a flat folder (no labels), class folders (labels are
/// the folders in sorted order), or a list file (`relative/path<TAB>label` per line, paths relative to the file).
public struct ImageSource: DataSource {
    public let description: String
    public let files: [String]
    public let labels: [Int64]?
    public let classNames: [String]?
    /// Why a list file has no labels (a label that is not an integer), for `retrain`, which needs them.
    public let labelProblem: DataError?
    public let preprocessing: Preprocessing
    let inputName: String
    /// Channels, height, width of every sample (planar, as preprocessing gives it).
    let planes: [Int]

    public var count: Int { files.count }
    /// One sample's shape as the model takes it: [C, H, W], or [H, W, C] with `--layout nhwc`.
    var sampleShape: [Int] { preprocessing.channelsLast ? [planes[1], planes[2], planes[0]] : planes }
    public var samples: [String: SampleSpec] { [inputName: SampleSpec(shape: sampleShape, isInteger: false)] }

    init(
        description: String, files: [String], labels: [Int64]?, classNames: [String]?, labelProblem: DataError? = nil,
        inputs: [ValueInfo], preprocessing: Preprocessing
    ) throws {
        try preprocessing.validate()
        guard let first = files.first else { throw DataError(path: description, "holds no images (.jpg, .jpeg, .png)") }
        guard inputs.count <= 1 else {
            throw DataError(
                path: description,
                "images feed a model with one input; this one has \(inputs.count) "
                    + "(\(inputs.compactMap(\.name).joined(separator: ", "))): use a .npz per input name")
        }
        let dims = inputs.first?.type?.tensorShape?.dims
        if let input = inputs.first, let dims, !preprocessing.channelsLast {
            try Self.checkChannelsFirst(input.name ?? "input", Shape(dims), description)
        }
        let channels = dims.flatMap { $0.count == 4 ? $0[preprocessing.channelsLast ? 3 : 1].size : nil } ?? 3
        guard channels == 1 || channels == 3 else {
            throw DataError(
                path: description, "the model's input has \(channels) channels; images give 1 (gray) or 3 (RGB)")
        }
        self.description = description
        self.files = files
        self.labels = labels
        self.classNames = classNames
        self.labelProblem = labelProblem
        self.preprocessing = preprocessing
        self.inputName = inputs.first?.name ?? "input"
        if let (h, w) = preprocessing.fixedSize {
            planes = [channels, h, w]
        } else {
            var none: SplitMix?
            let s = try preprocessing.apply(DecodedImage.read(first, channels: channels), random: &none)
            planes = [channels, s.height, s.width]
        }
    }

    /// Images are given as NCHW samples unless `--layout nhwc`: a model input with channels last ([N, H, W, 1|3], the
    /// second dimension not a channel count) is refused pointing at the flag, not as a wrong channel count or shape.
    static func checkChannelsFirst(_ name: String, _ shape: Shape, _ description: String) throws {
        let dims = shape.dims
        guard dims.count == 4, let last = dims[3].size, last == 1 || last == 3, dims[1].size.map({ $0 != 1 && $0 != 3 })
            ?? true else { return }
        throw DataError(
            path: description,
            "model input '\(name)' has shape \(describe(shape)), channels last (NHWC); images are fed "
                + "channels first ([N, \(last), H, W]) unless you give --layout nhwc")
    }

    /// A folder of images, in sorted name order; other files are left out.
    static func flat(_ path: String, entries: [String], inputs: [ValueInfo], preprocessing: Preprocessing) throws
        -> ImageSource
    {
        let files = entries.filter { DataSources.imageExtensions.contains(DataSources.fileExtension($0)) }.map {
            path + "/" + $0
        }
        return try ImageSource(
            description: "\(files.count) images in \(path)", files: files, labels: nil, classNames: nil,
            inputs: inputs, preprocessing: preprocessing)
    }

    /// Class folders in sorted order (label = position), each with its images in sorted name order.
    static func classes(_ path: String, entries: [String], inputs: [ValueInfo], preprocessing: Preprocessing) throws
        -> ImageSource
    {
        var files: [String] = []
        var labels: [Int64] = []
        var names: [String] = []
        for name in entries {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &isDirectory),
                isDirectory.boolValue
            else { continue }
            let images = try DataSources.listing(path + "/" + name)
                .filter { DataSources.imageExtensions.contains(DataSources.fileExtension($0)) }
            guard !images.isEmpty else { continue }
            files += images.map { "\(path)/\(name)/\($0)" }
            labels += Array(repeating: Int64(names.count), count: images.count)
            names.append(name)
        }
        guard !files.isEmpty else {
            throw DataError(
                path: path, "holds no .npy/.npz arrays, images (.jpg, .jpeg, .png), or class folders of images")
        }
        return try ImageSource(
            description: "\(files.count) images in \(names.count) class folders in \(path)", files: files,
            labels: labels, classNames: names, inputs: inputs, preprocessing: preprocessing)
    }

    /// A list file: `relative/path<TAB>label` per line (empty lines skipped), in the file's order. Integer labels are
    /// class indices; other labels (transcriptions) leave the source unlabelled, which calibration does not mind.
    static func list(_ path: String, inputs: [ValueInfo], preprocessing: Preprocessing) throws -> ImageSource {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(path: path, "cannot read the file")
        }
        let text = String(decoding: data, as: UTF8.self)
        let directory = (path as NSString).deletingLastPathComponent
        var files: [String] = []
        var labels: [Int64] = []
        var problem: DataError?
        for (i, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.allSatisfy(\.isWhitespace) { continue }
            let at = "\(path):\(i + 1)"
            guard let tab = line.firstIndex(of: "\t") else {
                throw DataError(path: at, "no tab: each line is 'relative/path<TAB>label'")
            }
            let relative = String(line[..<tab])
            let label = line[line.index(after: tab)...]
            let file = relative.hasPrefix("/") || directory.isEmpty ? relative : directory + "/" + relative
            guard FileManager.default.isReadableFile(atPath: file) else {
                throw DataError(
                    path: at,
                    "'\(MessageText.name(relative))' is not a readable file (paths are relative to the list file)")
            }
            files.append(file)
            if let value = Int64(label.trimmingCharacters(in: .whitespaces)) {
                labels.append(value)
            } else if problem == nil {
                problem = DataError(
                    path: at,
                    "label '\(MessageText.name(String(label)))' is not an integer class index; "
                        + "train without labels with --labels none (distillation)")
            }
        }
        guard !files.isEmpty else { throw DataError(path: path, "lists no images") }
        return try ImageSource(
            description: "\(files.count) images listed in \(path)", files: files,
            labels: problem == nil ? labels : nil, classNames: nil, labelProblem: problem,
            inputs: inputs, preprocessing: preprocessing)
    }

    public func read(_ indices: [Int], epoch: Int?) throws -> [String: DenseTensor] {
        let batch = try readPlanar(indices, epoch: epoch)
        let values = preprocessing.channelsLast ? Self.channelsLast(batch, planes: planes) : batch
        return [inputName: DenseTensor(shape: [indices.count] + sampleShape, floats: values)]
    }

    /// The samples at `indices`, decoded and preprocessed, each [C, H, W].
    func readPlanar(_ indices: [Int], epoch: Int?) throws -> [Float] {
        let per = planes.reduce(1, *)
        var batch = [Float]()
        batch.reserveCapacity(indices.count * per)
        for index in indices {
            var random = epoch.map { SplitMix(seed: preprocessing.seed, epoch: $0, index: index) }
            let s = try preprocessing.apply(DecodedImage.read(files[index], channels: planes[0]), random: &random)
            guard s.height == planes[1], s.width == planes[2] else {
                throw DataError(
                    path: files[index],
                    "is \(s.height)×\(s.width) after preprocessing; the first image gives "
                        + "\(planes[1])×\(planes[2]): give --resize H,W or --crop H,W so samples share a size"
                )
            }
            batch += s.values
        }
        return batch
    }

    /// Samples [C, H, W] each, as [H, W, C] each.
    static func channelsLast(_ planar: [Float], planes: [Int]) -> [Float] {
        let (c, hw) = (planes[0], planes[1] * planes[2])
        var out = [Float](repeating: 0, count: planar.count)
        for s in 0..<(planar.count / max(c * hw, 1)) {
            let base = s * c * hw
            for k in 0..<c {
                for i in 0..<hw { out[base + i * c + k] = planar[base + k * hw + i] }
            }
        }
        return out
    }
}
