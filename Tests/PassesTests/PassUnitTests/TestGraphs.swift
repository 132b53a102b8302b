// Small IR graphs built in code for the per-pass unit tests (issue 12 item 5), and the helpers they share: configs
// from text, a plan run on a graph, reading initializers back, and checking the error a call throws.

import Foundation
import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

/// Builds a graph node by node: float initializers, graph inputs/outputs, and nodes appended in order.
struct TestGraph {
    var graph = Graph(name: "unit")

    /// A float32 graph input with known dims.
    mutating func input(_ name: String, _ dims: [Int64]) {
        graph.inputs.append(ValueInfo(name: name, type: .tensor(.float, dims)))
    }

    /// A graph output (type left unset, as the passes do not read it).
    mutating func output(_ name: String) { graph.outputs.append(ValueInfo(name: name, type: nil)) }

    /// A float32 initializer.
    mutating func floats(_ name: String, _ dims: [Int64], _ values: [Float]) {
        graph.setInitializer(Tensor(name: name, dims: dims, floats: values))
    }

    /// An INT64 initializer (shapes, axes).
    mutating func int64s(_ name: String, _ values: [Int64]) {
        graph.setInitializer(values.withUnsafeBytes {
            Tensor(name: name, dataType: .int64, dims: [Int64(values.count)], rawBytes: $0)
        })
    }

    @discardableResult
    mutating func node(_ op: String, _ name: String, _ inputs: [String], _ outputs: [String],
                       _ attributes: [Attribute] = []) -> NodeID {
        graph.appendNode(Node(opType: op, name: name, inputs: inputs, outputs: outputs, attributes: attributes))
    }
}

/// A config read from text, as the CLI reads a file (errors point into "unit.cfg").
func unitConfig(_ text: String) throws -> CompressionConfig {
    let parsed = try TextFormat.parse(text, file: "unit.cfg", schema: .amctRetrainConfig)
    return try CompressionConfig(parsed.message, file: "unit.cfg")
}

/// A context holding the config and a default-domain opset import.
func unitContext(_ configText: String, opset: Int64 = 13) throws -> PassContext {
    var context = PassContext(opsetImports: [OpsetImport(domain: "", version: opset)])
    context.config = try unitConfig(configText)
    return context
}

/// Steps 2–5 (`Pipeline.plan`) on `graph` with the config: the context later passes start from.
func planned(_ graph: inout Graph, _ configText: String, opset: Int64 = 13) throws -> PassContext {
    var context = try unitContext(configText, opset: opset)
    try Pipeline.plan.run(&graph, &context)
    return context
}

/// The float values of a constant of the graph (fails the test when there is none).
func floatsOf(_ graph: Graph, _ value: String, file: StaticString = #filePath, line: UInt = #line) throws -> [Float] {
    let t = try XCTUnwrap(graph.constantTensor(value), "no constant '\(value)'", file: file, line: line)
    guard t.dataType == .float else {
        XCTFail("'\(value)' is \(t.dataType), not FLOAT", file: file, line: line)
        return []
    }
    return t.floatArray
}

/// The elements of a constant of the graph as `T` (INT8, INT32, UINT64 tensors).
func elementsOf<T>(_ graph: Graph, _ value: String, as type: T.Type, file: StaticString = #filePath, line: UInt = #line)
    throws -> [T]
{
    let t = try XCTUnwrap(graph.constantTensor(value), "no constant '\(value)'", file: file, line: line)
    return t.withElements(as: T.self) { Array($0) }
}

/// The node named `name` (fails the test when there is none).
func nodeNamed(_ graph: Graph, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> Node {
    graph[try XCTUnwrap(graph.firstNode(named: name), "no node '\(name)'", file: file, line: line)]
}

/// The op types of the graph's nodes, in order.
func opTypes(_ graph: Graph) -> [String] { graph.nodes.map(\.op) }

/// Runs `body`, expecting it to throw an `E`; returns the error for further checks.
func expectError<E: Error, R>(_ errorType: E.Type, file: StaticString = #filePath, line: UInt = #line,
                              _ body: () throws -> R) -> E? {
    do {
        _ = try body()
        XCTFail("expected \(E.self), nothing was thrown", file: file, line: line)
    } catch let e as E {
        return e
    } catch {
        XCTFail("expected \(E.self), got \(type(of: error)): \(error)", file: file, line: line)
    }
    return nil
}

/// Asserts two float arrays agree element by element within `accuracy`.
func assertClose(_ a: [Float], _ b: [Float], accuracy: Float = 1e-6,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "lengths differ: \(a) vs \(b)", file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() {
        XCTAssertEqual(x, y, accuracy: accuracy, "element \(i): \(a) vs \(b)", file: file, line: line)
    }
}

/// Configs the tests share.
enum UnitConfigs {
    /// INT8 activations (the default type) with clips [clipMin, clipMax], INT8 ARQ weights (channel_wise left to the
    /// layer's default).
    static func quant(clipMin: Float, clipMax: Float) -> String {
        """
        retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: \(clipMax) clip_min: \(clipMin) } } }
        retrain_weight_quant_config { arq_retrain { dst_type: INT8 } }
        """
    }
    /// INT8 activations from IFMR (no clips), INT8 ARQ weights.
    static let quantIFMR = """
        batch_num: 2
        retrain_data_quant_config { ulq_quantize { dst_type: INT8 } }
        retrain_weight_quant_config { arq_retrain { dst_type: INT8 } }
        """
    /// Filter pruning at `ratio` without 16-alignment.
    static func filter(_ ratio: Float) -> String {
        "prune_config { filter_pruner { balanced_l2_norm_filter_prune { "
            + "prune_ratio: \(ratio) ascend_optimized: false } } }"
    }
    static let twoOfFour =
        "prune_config { n_out_of_m_pruner { l1_selective_prune { n_out_of_m_type: M4N2 update_freq: 3 } } }"
}

/// Reusable graphs.
enum UnitGraphs {
    /// x[1,2,2,2] → Conv "conv"(w[2,2,1,1], b[2]) → y: the one-layer graph of the quantization tests.
    /// w rows: channel 0 = [0.5, −0.3], channel 1 = [0.2, −0.8]; b = [0.1, −0.2].
    static func oneConv() -> Graph {
        var t = TestGraph()
        t.input("x", [1, 2, 2, 2])
        t.floats("w", [2, 2, 1, 1], [0.5, -0.3, 0.2, -0.8])
        t.floats("b", [2], [0.1, -0.2])
        t.node("Conv", "conv", ["x", "w", "b"], ["y"])
        t.output("y")
        return t.graph
    }
}
