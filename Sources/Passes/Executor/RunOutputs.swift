import Graph
import Kernels

// Where `ModelRun` puts each batch's outputs, in sample order: into an .npz as they come (NumpyStreamWriter; the
// file's shapes are fixed by the first batch, before the others run) or gathered in memory (checked to fit after the
// first batch). Several batches need outputs batched along axis 0, of the same shape from batch to batch.

struct OutputSink {
    let path: String?
    /// The graph's outputs, in order.
    let names: [String]
    /// The outputs the first batch gave, in graph order, with their shape after axis 0 and element type.
    var layout: [(name: String, inner: [Int], isFloat: Bool)] = []
    var writer: NumpyStreamWriter?
    var gathered: [String: NumpyArray] = [:]

    init(path: String?, names: [String]) {
        self.path = path
        self.names = names
    }

    /// Batch `batch` of `rows` samples out of `samples` (0: a whole run of arrays that are not samples).
    mutating func add(_ results: [String: DenseTensor], batch: Int, rows: Int, samples: Int) throws {
        let several = samples > rows
        if batch == 0 { try start(results, rows: rows, samples: samples, several: several) }
        for (k, entry) in layout.enumerated() {
            let t = results[entry.name]!
            if several {
                guard t.shape == [rows] + entry.inner, t.isFloat == entry.isFloat else {
                    throw Self.unbatched(entry.name, t.shape, rows: rows)
                }
            }
            if let writer {
                if t.isFloat {
                    try t.withFloats { try writer.append(k, UnsafeRawBufferPointer($0)) }
                } else {
                    try t.ints.withUnsafeBytes { try writer.append(k, $0) }
                }
            } else {
                Self.append(t, to: &gathered[entry.name])
            }
        }
    }

    /// Fixes the outputs' order and shapes from the first batch; opens the file, or checks the memory.
    mutating func start(_ first: [String: DenseTensor], rows: Int, samples: Int, several: Bool) throws {
        layout = names.compactMap { name in
            first[name].map { (name, Array($0.shape.dropFirst()), $0.isFloat) }
        }
        if several {
            for entry in layout where first[entry.name]!.shape.first != rows {
                throw Self.unbatched(entry.name, first[entry.name]!.shape, rows: rows)
            }
        }
        let batches = several ? 1 + (samples - 1) / rows : 1
        if let path {
            writer = try NumpyStreamWriter(path: path, arrays: layout.map { entry in
                (entry.name, several ? [samples] + entry.inner : first[entry.name]!.shape, entry.isFloat)
            })
        } else {
            let perBatch = first.values.reduce(0) { $0 + 4 * $1.count }
            let (total, overflow) = perBatch.multipliedReportingOverflow(by: batches)
            try MemoryBudget.check(bytes: (total, overflow), for: "the outputs of \(batches) batches")
        }
    }

    /// The arrays gathered (none when written), after closing the file.
    func finish() throws -> [(name: String, array: NumpyArray)] {
        try writer?.finish()
        return layout.compactMap { entry in gathered[entry.name].map { (entry.name, $0) } }
    }

    static func unbatched(_ name: String, _ shape: [Int], rows: Int) -> PassError {
        PassError(node: name, "output '\(name)' has shape \(shape) for a batch of \(rows) samples: it is "
            + "not batched along axis 0 (or changes shape between batches), so batches cannot be concatenated; give "
            + "--batch-size the number of samples")
    }

    /// Appends a batch's output to the rows gathered so far (float stays float; anything else is int64).
    static func append(_ t: DenseTensor, to gathered: inout NumpyArray?) {
        guard var array = gathered else {
            gathered = NumpyArray(t)
            return
        }
        gathered = nil  // the array's storage held once, so appending does not copy it
        array.shape[0] += t.shape[0]
        switch array.values {
        case .float(var f):
            array.values = .int64([])
            t.withFloats { f.append(contentsOf: $0) }
            array.values = .float(f)
        case .int64(var i):
            array.values = .float([])
            i.append(contentsOf: t.ints)
            array.values = .int64(i)
        }
        gathered = array
    }
}
