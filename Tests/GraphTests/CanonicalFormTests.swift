// The canonical form at load (Sources/Graph/CanonicalForm.swift): Constant nodes and Identities of constants become
// initializers, with their values and names; what must stay a node stays. tests/python/canonical.py checks the same
// on every fixture against an independent Python reference.

import XCTest

@testable import Graph

final class CanonicalFormTests: XCTestCase {
    /// Constant(value) → w;  Identity(w) → w1 → Identity → w2;  MatMul(x, w1), MatMul(x, w2);  Constant(value_float),
    /// Constant(value_ints), Constant → graph output, Identity(x).
    func paddleStyle() -> Graph {
        var g = Graph(name: "paddle")
        g.inputs = [ValueInfo(name: "x", type: .tensor(.float, [1, 2]))]
        g.outputs = ["y1", "y2", "c_out", "x_copy", "s"].map { ValueInfo(name: $0, type: nil) }
        let w = Tensor(name: "ignored", dims: [2, 2], floats: [1, 2, 3, 4])
        g.appendNode(Node(opType: "Constant", name: "k", inputs: [], outputs: ["w"], attributes: [.tensor("value", w)]))
        g.appendNode(Node(opType: "Identity", name: "i1", inputs: ["w"], outputs: ["w1"]))
        g.appendNode(Node(opType: "Identity", name: "i2", inputs: ["w1"], outputs: ["w2"]))
        g.appendNode(Node(opType: "MatMul", name: "m1", inputs: ["x", "w1"], outputs: ["y1"]))
        g.appendNode(Node(opType: "MatMul", name: "m2", inputs: ["x", "w2"], outputs: ["y2"]))
        g.appendNode(Node(opType: "Constant", name: "f", inputs: [], outputs: ["half"],
                          attributes: [.float("value_float", 0.5)]))
        g.appendNode(Node(opType: "Constant", name: "shape", inputs: [], outputs: ["dims"],
                          attributes: [.ints("value_ints", [2, -1])]))
        g.appendNode(Node(opType: "Reshape", name: "r", inputs: ["y1", "dims"], outputs: ["r_out"]))
        g.appendNode(Node(opType: "Mul", name: "s", inputs: ["r_out", "half"], outputs: ["s"]))
        g.appendNode(Node(opType: "Constant", name: "c", inputs: [], outputs: ["c_out"],
                          attributes: [.floats("value_floats", [7])]))
        g.appendNode(Node(opType: "Identity", name: "ix", inputs: ["x"], outputs: ["x_copy"]))
        return g
    }

    func testConstantsBecomeInitializersWithTheirValuesAndNames() throws {
        var g = paddleStyle()
        let folded = g.foldConstantNodes()
        XCTAssertEqual(folded.constants, 3)
        XCTAssertEqual(folded.identities, 2)
        XCTAssertEqual(Array(g.initializers.keys), ["w", "half", "dims"])
        XCTAssertEqual(g.initializers["w"]?.floatArray, [1, 2, 3, 4])
        XCTAssertEqual(g.initializers["w"]?.dims, [2, 2])
        XCTAssertEqual(g.initializers["half"]?.floatArray, [0.5])
        XCTAssertEqual(g.initializers["half"]?.dims, [])
        XCTAssertEqual(g.initializers["dims"]?.int64Array, [2, -1])
        XCTAssertEqual(g.initializers["dims"]?.dataType, .int64)
        try g.validate()
    }

    func testAWeightReadThroughIdentitiesIsOneInitializer() throws {
        var g = paddleStyle()
        g.foldConstantNodes()
        let m1 = try XCTUnwrap(g.firstNode(named: "m1")), m2 = try XCTUnwrap(g.firstNode(named: "m2"))
        XCTAssertEqual(g[m1].inputs, ["x", "w"])
        XCTAssertEqual(g[m2].inputs, ["x", "w"])
        XCTAssertEqual(Set(g.consumers(of: "w")), [m1, m2])
        XCTAssertNil(g.firstNode(named: "i1"))
        XCTAssertNil(g.firstNode(named: "i2"))
    }

    func testWhatMustStayANodeStays() throws {
        var g = paddleStyle()
        g.foldConstantNodes()
        XCTAssertNotNil(g.firstNode(named: "c"), "a Constant that is a graph output stays")
        XCTAssertNil(g.initializers["c_out"])
        XCTAssertNotNil(g.firstNode(named: "ix"), "an Identity of a graph input is no constant")
        let strings = Tensor(name: "t", dataType: .string, dims: [0], rawBytes: UnsafeRawBufferPointer(start: nil, count: 0))
        var h = Graph()
        h.outputs = [ValueInfo(name: "z", type: nil)]
        h.appendNode(Node(opType: "Constant", name: "s", inputs: [], outputs: ["str"], attributes: [.tensor("value", strings)]))
        h.appendNode(Node(opType: "Identity", name: "z", inputs: ["str"], outputs: ["z"]))
        XCTAssertEqual(h.foldConstantNodes(), Graph.ConstantFolding())
        XCTAssertEqual(h.nodeCount, 2)
    }

    func testBelowIRVersion4TheNewInitializersAreGraphInputs() {
        var model = Model(graph: paddleStyle(), irVersion: 3)
        model.canonicalize()
        XCTAssertEqual(model.graph.inputs.compactMap(\.name), ["x", "w", "half", "dims"])
        var recent = Model(graph: paddleStyle(), irVersion: 7)
        recent.canonicalize()
        XCTAssertEqual(recent.graph.inputs.compactMap(\.name), ["x"])
    }

    func testTheLoaderCanonicalizes() throws {
        let model = try ModelFile.load(fixtures.appendingPathComponent("paddle_constants.onnx").path)
        for id in model.graph.order {
            XCTAssertNotEqual(model.graph[id].op, "Constant", "paddle_constants.onnx keeps a Constant")
        }
        XCTAssertFalse(model.graph.initializers.isEmpty)
    }
}
