import Foundation
import Graph
import Kernels

// Data sources (ARCHITECTURE "Data"): calibration, analysis, `run` and retraining read samples through one protocol,
// a batch at a time, so memory follows the batch, not the number of samples.

/// Samples by index: one tensor per model input (samples along axis 0), and class indices when the source has them.
public protocol DataSource: Sendable {
    /// The path and kind, for messages and summaries (`images in 3 class folders: data/train`).
    var description: String { get }
    /// How many samples there are.
    var count: Int { get }
    /// Per input name: the shape of one sample (no batch axis) and whether it holds integers.
    var samples: [String: SampleSpec] { get }
    /// One class index per sample (class folders, list files with integer labels), else nil.
    var labels: [Int64]? { get }
    /// The class names by index (class folders), else nil.
    var classNames: [String]? { get }
    /// The samples at `indices`, in that order, batch along axis 0. `epoch` seeds augmentation (nil: none).
    func read(_ indices: [Int], epoch: Int?) throws -> [String: DenseTensor]
    /// Everything at once, for `run` (arrays: each whole, even when their first dimensions are not a sample count).
    func readAll() throws -> [String: DenseTensor]
}

extension DataSource {
    public func readAll() throws -> [String: DenseTensor] { try read(Array(0..<count), epoch: nil) }
}

/// The shape of one sample of an input and its element type.
public struct SampleSpec: Sendable, Equatable {
    public var shape: [Int]
    public var isInteger: Bool
    public init(shape: [Int], isInteger: Bool) {
        self.shape = shape
        self.isInteger = isInteger
    }
}

/// Which labels a training source gives: `--labels NAME` (an array of an .npz), `--labels none` (distill), or the
/// source's own (class folders, list files; nil for arrays).
public enum LabelChoice: Sendable, Equatable {
    case fromSource
    case none
    case array(String)

    public init(argument: String?) {
        switch argument {
        case nil: self = .fromSource
        case "none": self = .none
        case let name?: self = .array(name)
        }
    }
}

public enum DataSources {
    static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]
    static let arrayExtensions: Set<String> = ["npy", "npz"]

    /// Opens `path` as the source its form says: a `.npz`/`.npy`, a folder of them (shards, sorted by name), a folder
    /// of images (sorted by name), a folder of class folders of images, or a list file (`*.txt`: `path<TAB>label`).
    /// `labelArray` names an .npz array kept out of the inputs (the labels); `inputs` are the model's.
    public static func open(
        _ path: String, inputs: [ValueInfo], preprocessing: Preprocessing = Preprocessing(),
        labelArray: String? = nil
    ) throws -> any DataSource {
        let names = inputs.compactMap(\.name)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError(path: path, "no such file or directory")
        }
        if !isDirectory.boolValue {
            if path.lowercased().hasSuffix(".txt") {
                return try ImageSource.list(path, inputs: inputs, preprocessing: preprocessing)
            }
            return try ArraySource(files: [path], description: path, inputs: names, labelArray: labelArray)
        }
        let entries = try listing(path)
        let arrays = entries.filter { arrayExtensions.contains(fileExtension($0)) }
        if !arrays.isEmpty {
            return try ArraySource(
                files: arrays.map { path + "/" + $0 },
                description: "\(arrays.count) shards in \(path)", inputs: names, labelArray: labelArray)
        }
        if entries.contains(where: { imageExtensions.contains(fileExtension($0)) }) {
            return try ImageSource.flat(path, entries: entries, inputs: inputs, preprocessing: preprocessing)
        }
        return try ImageSource.classes(path, entries: entries, inputs: inputs, preprocessing: preprocessing)
    }

    /// The names in a directory, sorted (by Unicode scalars, as Python's `sorted`), hidden ones left out.
    static func listing(_ path: String) throws -> [String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw DataError(path: path, "cannot list the directory: \(error.localizedDescription)")
        }
        return names.filter { !$0.hasPrefix(".") }
            .sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
    }

    static func fileExtension(_ name: String) -> String {
        guard let dot = name.lastIndex(of: ".") else { return "" }
        return name[name.index(after: dot)...].lowercased()
    }
}

/// Arrays from `.npz`/`.npy` files (one file, or shards concatenated along axis 0 in order), read lazily.
public struct ArraySource: DataSource {
    public let description: String
    public let count: Int
    public let samples: [String: SampleSpec]
    public let labels: [Int64]?
    public var classNames: [String]? { nil }
    /// Per shard: its first sample's global index, and its arrays (the label array left out).
    let shards: [(start: Int, members: [String: NumpyMember])]
    /// Why one file's arrays are not samples (first dimensions that differ, none at all): an error when read by
    /// sample, not for `run`, which feeds each array whole.
    public let problem: DataError?

    public init(files: [String], description: String, inputs: [String] = [], labelArray: String? = nil) throws {
        var shards: [(Int, [String: NumpyMember])] = []
        var specs: [String: SampleSpec]?
        var labels: [Int64] = []
        var total = 0
        var problem: DataError?
        for file in files {
            var members = try NumpyArchive.open(file)
            var labelMember: NumpyMember?
            if let labelArray {
                labelMember = members.removeValue(forKey: labelArray)
                guard labelMember != nil else {
                    throw DataError(
                        path: file,
                        "no array named '\(labelArray)' for --labels (arrays: "
                            + "\(members.keys.sorted().joined(separator: ", ")))")
                }
            }
            members = try Self.inputArrays(members, inputs: inputs, file: file)
            let n: Int
            do {
                n = try Self.sampleCount(members, file: file)
            } catch let error as DataError where files.count == 1 {
                n = members.values.first?.shape.first ?? 0
                problem = error
            }
            let shardSpecs = Self.specs(members)
            if let specs, specs != shardSpecs {
                throw DataError(path: file, "its arrays differ from the first shard's in names, sample shapes or types")
            }
            specs = shardSpecs
            if let l = labelMember { labels += try Self.labels(l, count: n, file: file, name: labelArray!) }
            shards.append((total, members))
            total += n
        }
        guard let specs else { throw DataError(path: description, "holds no arrays") }
        if total == 0 && problem == nil {
            guard files.count == 1 else { throw DataError(path: description, "holds no samples") }
            problem = DataError(path: description, "holds no samples")
        }
        self.problem = problem
        self.description = description
        self.count = total
        self.samples = specs
        self.labels = labelArray == nil ? nil : labels
        self.shards = shards
    }

    static func specs(_ members: [String: NumpyMember]) -> [String: SampleSpec] {
        members.mapValues { SampleSpec(shape: Array($0.shape.dropFirst()), isInteger: $0.isInteger) }
    }

    static func sampleCount(_ members: [String: NumpyMember], file: String) throws -> Int {
        var count: Int?
        for (name, m) in members.sorted(by: { $0.key < $1.key }) {
            guard let n = m.shape.first else {
                throw DataError(path: file, "array '\(name)' is a scalar; samples go along axis 0")
            }
            if let c = count, c != n {
                throw DataError(path: file, "array '\(name)' has \(n) samples, another array has \(c)")
            }
            count = n
        }
        return count ?? 0
    }

    static func labels(_ m: NumpyMember, count: Int, file: String, name: String) throws -> [Int64] {
        guard m.isInteger, m.shape.count == 1 else {
            throw DataError(
                path: file,
                "--labels array '\(name)' must be 1-D integers (class indices), is "
                    + "\(m.dtype) of shape \(m.shape)")
        }
        guard m.shape[0] == count else {
            throw DataError(
                path: file,
                "the labels hold \(m.shape[0]) values for \(count) samples; "
                    + "one class index per sample")
        }
        var floats: [Float] = []
        var ints: [Int64] = []
        try m.read(rows: Array(0..<count), floats: &floats, ints: &ints)
        return ints
    }

    public func read(_ indices: [Int], epoch: Int?) throws -> [String: DenseTensor] {
        if let problem { throw problem }
        var feeds: [String: DenseTensor] = [:]
        for (name, spec) in samples {
            var floats: [Float] = []
            var ints: [Int64] = []
            let inner = spec.shape.reduce(1, *)
            if spec.isInteger {
                ints.reserveCapacity(indices.count * inner)
            } else {
                floats.reserveCapacity(indices.count * inner)
            }
            var i = 0
            while i < indices.count {
                let s = shard(of: indices[i])
                var rows: [Int] = []
                while i < indices.count, shard(of: indices[i]) == s {
                    rows.append(indices[i] - shards[s].start)
                    i += 1
                }
                try shards[s].members[name]!.read(rows: rows, floats: &floats, ints: &ints)
            }
            let shape = [indices.count] + spec.shape
            feeds[name] = DenseTensor(shape: shape, integer: spec.isInteger, floats: floats, ints: ints)
        }
        return feeds
    }

    /// Every array whole (one file), or every sample (shards).
    public func readAll() throws -> [String: DenseTensor] {
        guard shards.count == 1 else { return try read(Array(0..<count), epoch: nil) }
        return try shards[0].members.mapValues { m in
            var floats: [Float] = [], ints: [Int64] = []
            if m.shape.contains(0) {  // nothing to read (and no row list of a billion empty rows)
                return DenseTensor(shape: m.shape, integer: m.isInteger, floats: [], ints: [])
            }
            // A 0-d array (a scalar input) is one row of one value.
            try m.read(rows: m.shape.isEmpty ? [0] : Array(0..<m.shape[0]), floats: &floats, ints: &ints)
            guard (m.isInteger ? ints.count : floats.count) == m.shape.reduce(1, *) else {
                throw DataError(path: description, "array of shape \(m.shape) holds another number of values")
            }
            return DenseTensor(shape: m.shape, integer: m.isInteger, floats: floats, ints: ints)
        }
    }

    /// The shard holding sample `index` (binary search over the starts).
    func shard(of index: Int) -> Int {
        var low = 0
        var high = shards.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if shards[mid].start <= index { low = mid } else { high = mid - 1 }
        }
        return low
    }
}

/// Arrays held in memory (`--calib random`, tests, library callers).
public struct MemorySource: DataSource {
    public let description: String
    public let count: Int
    public let samples: [String: SampleSpec]
    public let labels: [Int64]?
    public var classNames: [String]? { nil }
    let source: ArraySource

    public init(arrays: [String: NumpyArray], labels: [Int64]? = nil, description: String) throws {
        source = try ArraySource(members: arrays.mapValues(NumpyMember.init), description: description)
        if let labels, labels.count != source.count {
            throw DataError(
                path: description,
                "the labels hold \(labels.count) values for \(source.count) samples; "
                    + "one class index per sample")
        }
        self.description = description
        self.count = source.count
        self.samples = source.samples
        self.labels = labels
    }

    public func read(_ indices: [Int], epoch: Int?) throws -> [String: DenseTensor] {
        try source.read(indices, epoch: epoch)
    }

    public func readAll() throws -> [String: DenseTensor] { try source.readAll() }
}

extension ArraySource {
    init(members: [String: NumpyMember], description: String) throws {
        let n = try Self.sampleCount(members, file: description)
        guard n > 0 else { throw DataError(path: description, "holds no samples") }
        self.description = description
        self.count = n
        self.samples = Self.specs(members)
        self.labels = nil
        self.shards = [(0, members)]
        self.problem = nil
    }

    /// The model's inputs among a file's arrays: a `.npy` (named "") is the one input of a one-input model; every
    /// input must be there; other arrays are left out.
    static func inputArrays(_ all: [String: NumpyMember], inputs: [String], file: String) throws -> [String:
        NumpyMember]
    {
        guard !inputs.isEmpty else { return all }
        var members = all
        if let single = members.removeValue(forKey: "") {
            guard inputs.count == 1 else {
                throw DataError(
                    path: file,
                    "a .npy holds one array, and the model has \(inputs.count) inputs "
                        + "(\(inputs.joined(separator: ", "))); use a .npz with one array per input name")
            }
            members[inputs[0]] = single
        }
        for name in inputs where members[name] == nil {
            throw DataError(
                path: file,
                "no array named '\(name)' for model input '\(name)' (arrays: "
                    + "\(members.keys.sorted().joined(separator: ", ")))")
        }
        return members.filter { inputs.contains($0.key) }
    }
}
