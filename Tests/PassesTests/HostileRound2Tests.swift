import Foundation
import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

/// Issue 19: integer extremes that used to trap, the plan's memory, outputs replacing inputs, checkpoint checks.
final class HostileRound2Tests: XCTestCase {
    func context(_ attributes: [Attribute]) -> OpContext {
        OpContext(node: Node(opType: "Conv", name: "c", inputs: [], outputs: [], attributes: attributes), opset: 13, inputs: [])
    }

    func testIntegerAttributesAtInt64MinAreErrors() {
        XCTAssertThrowsError(try context([.int("group", .min)]).int("group", default: 1))
        XCTAssertThrowsError(try context([.ints("pads", [0, .min])]).ints("pads"))
        XCTAssertThrowsError(try context([.int("axis", 1 << 40)]).int("axis", default: 0))
        XCTAssertEqual(try context([.int("axis", -(1 << 40) + 1)]).int("axis", default: 0), -(1 << 40) + 1)
    }

    func testCheckedArithmeticThrowsOnOverflow() throws {
        XCTAssertThrowsError(try Checked.sum(Int.max, 1, what: "x"))
        XCTAssertThrowsError(try Checked.product(1 << 62, 2, what: "x"))
        XCTAssertEqual(try Checked.sum([3, -5, 7], what: "x"), 5)
    }

    /// x[1,2,3,8] → Slice on axis 3 with the given starts, ends and steps → y.
    func slice(_ start: Int64, _ end: Int64, _ step: Int64) throws -> [Float] {
        var g = Graph(name: "s")
        for (name, v) in [("starts", start), ("ends", end), ("axes", 3), ("steps", step)] {
            [v].withUnsafeBytes { g.setInitializer(Tensor(name: name, dataType: .int64, dims: [1], rawBytes: $0)) }
        }
        g.inputs = [ValueInfo(name: "x", type: .tensor(.float, [1, 2, 3, 8]))]
        g.outputs = [ValueInfo(name: "y", type: nil)]
        _ = g.appendNode(Node(opType: "Slice", name: "slice", inputs: ["x", "starts", "ends", "axes", "steps"], outputs: ["y"]))
        let x = DenseTensor(shape: [1, 2, 3, 8], floats: (0..<48).map(Float.init))
        return try XCTUnwrap(GraphExecutor(graph: g, opset: 13).run(["x": x])["y"]).floats
    }

    func testSliceAtIntegerExtremes() throws {
        XCTAssertEqual(try slice(.max, .min, .min), [7, 15, 23, 31, 39, 47])  // the last element of each row
        XCTAssertEqual(try slice(.min, .max, .max), [0, 8, 16, 24, 32, 40])
        XCTAssertEqual(try slice(0, .max, 1 << 62), [0, 8, 16, 24, 32, 40])
        XCTAssertEqual(try slice(.max, .max, 1), [])
        XCTAssertEqual(try slice(6, .min, -3), [6, 3, 0, 14, 11, 8, 22, 19, 16, 30, 27, 24, 38, 35, 32, 46, 43, 40])
    }

    func testSliceGradientWithAHugeStep() throws {
        var dx = [Float](repeating: 0, count: 8)
        try [Float(2)].withUnsafeBufferPointer { g in
            try dx.withUnsafeMutableBufferPointer {
                try Backward.slice(gradient: g, xShape: [8], starts: [3], steps: [1 << 62], counts: [1], dx: $0)
            }
        }
        XCTAssertEqual(dx, [0, 0, 0, 2, 0, 0, 0, 0])
        XCTAssertFalse(Backward.sliceFits(8, 1, 1 << 62, 2))
        XCTAssertFalse(Backward.sliceFits(8, 7, .max, 3))
    }

    /// x[1,1024] → Relu → Relu → y, unfused: the peak holds x, the first Relu's value and y.
    func testPlannedBytesCountLiveValues() throws {
        var g = Graph(name: "r")
        g.inputs = [ValueInfo(name: "x", type: .tensor(.float, [1, 1024]))]
        g.outputs = [ValueInfo(name: "y", type: nil)]
        _ = g.appendNode(Node(opType: "Relu", name: "r1", inputs: ["x"], outputs: ["a"]))
        _ = g.appendNode(Node(opType: "Relu", name: "r2", inputs: ["a"], outputs: ["y"]))
        let executor = try GraphExecutor(graph: g, opset: 13, fuse: false)
        try executor.prepare(["x": TensorSpec(.float, [1, 1024])])
        XCTAssertEqual(executor.plannedBytes, 3 * 4096)
    }

    func testPlanOverTheMemoryAvailableNamesTheNode() throws {
        var g = Graph(name: "p")
        [Int64(0), 0, 4000, 4000, 0, 0, 4000, 4000].withUnsafeBytes {
            g.setInitializer(Tensor(name: "pads", dataType: .int64, dims: [8], rawBytes: $0))
        }
        g.inputs = [ValueInfo(name: "x", type: .tensor(.float, [1, 1, 8, 8]))]
        g.outputs = [ValueInfo(name: "y", type: nil)]
        _ = g.appendNode(Node(opType: "Pad", name: "wide", inputs: ["x", "pads"], outputs: ["y"]))
        setenv(MemoryBudget.environmentVariable, "1M", 1)
        defer { unsetenv(MemoryBudget.environmentVariable) }
        XCTAssertThrowsError(try GraphExecutor(graph: g, opset: 13).prepare(["x": TensorSpec(.float, [1, 1, 8, 8])])) {
            XCTAssertTrue("\($0)".contains("node 'wide'") && "\($0)".contains("of memory is available"), "\($0)")
        }
    }

    func testFileRolesCompareFilesByIdentity() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("roles-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = FileManager.default.createFile(atPath: dir + "/in.npz", contents: Data([1]))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.npz", withDestinationPath: dir + "/in.npz")
        for spelling in ["in.npz", "link.npz", "./in.npz", "sub/../in.npz"] {
            var roles = FileRoles()
            roles.input(dir + "/in.npz", "--inputs")
            roles.output(dir + "/" + spelling, "-o")
            XCTAssertThrowsError(try roles.check(), spelling) {
                XCTAssertTrue("\($0)".contains("--inputs") && "\($0)".contains("-o"), "\($0)")
            }
        }
        var two = FileRoles()
        two.output(dir + "/new.onnx", "-o")
        two.output(dir + "/./new.onnx", "--record")
        XCTAssertThrowsError(try two.check())
        var fine = FileRoles()
        fine.input(dir + "/in.npz", "--inputs")
        fine.output(dir + "/out.npz", "-o")
        XCTAssertNoThrow(try fine.check())
    }

    func testCheckpointFileChecksAChecksumAndTheRecord() throws {
        let record = Checkpoint.Record(epochsDone: 1, step: 2, names: ["w"], shapes: [[2]], reports: [
            EpochReport(epoch: 1, trainLoss: 1, trainAccuracy: nil, validationLoss: nil, validationAccuracy: nil,
                        seconds: 0, samplesPerSecond: 0),
        ], seed: 0, batchSize: 1, optimizer: "adam", learningRate: 0.1)
        func arrays(_ r: Checkpoint.Record, value: [Float] = [1, 2], seal: Bool = true) throws -> [String: NumpyArray] {
            let json = try JSONEncoder().encode(r)
            var a: [String: NumpyArray] = ["record": NumpyArray(shape: [json.count], values: .int64(json.map(Int64.init)), dtype: "<i8")]
            for name in ["value.0", "first.0", "second.0"] { a[name] = NumpyArray(shape: [2], values: .float(value), dtype: "<f4") }
            if seal { a["checksum"] = NumpyArray(shape: [1], values: .int64([Int64(NumpyArchive.checksum(a))]), dtype: "<i8") }
            return a
        }
        XCTAssertNoThrow(try CheckpointFile(arrays: arrays(record), path: "c"))
        var damaged = try arrays(record)
        damaged["value.0"] = NumpyArray(shape: [2], values: .float([1, 2.5]), dtype: "<f4")
        XCTAssertThrowsError(try CheckpointFile(arrays: damaged, path: "c")) { XCTAssertTrue("\($0)".contains("checksum")) }
        var negative = record
        negative.epochsDone = -1
        XCTAssertThrowsError(try CheckpointFile(arrays: arrays(negative), path: "c")) { XCTAssertTrue("\($0)".contains("record")) }
        XCTAssertThrowsError(try CheckpointFile(arrays: arrays(record, value: [1, 2, 3]), path: "c")) {
            XCTAssertTrue("\($0)".contains("value.0"))
        }
    }
}
