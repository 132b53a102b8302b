// ValidateGraphPass and DeadCodeCleanupPass on graphs of 2–4 nodes.

import XCTest

@testable import Graph
@testable import Passes

final class GraphHygienePassUnitTests: XCTestCase {
    /// Relu reads b before Neg, which writes it, is listed: the pass sorts them and says so.
    func testValidateSortsAnOutOfOrderGraph() throws {
        var t = TestGraph()
        t.input("x", [2])
        t.node("Relu", "relu", ["b"], ["y"])
        t.node("Neg", "neg", ["x"], ["b"])
        t.output("y")
        var graph = t.graph
        var context = PassContext()
        try Pipeline([ValidateGraphPass()]).run(&graph, &context)
        XCTAssertEqual(graph.nodes.map { $0.name ?? "" }, ["neg", "relu"])
        XCTAssertNoThrow(try graph.validate())
        XCTAssertEqual(context.log.last?.summary, "nodes were out of order; sorted topologically")
    }

    func testValidateLeavesASortedGraphAndCountsIt() throws {
        var t = TestGraph()
        t.input("x", [2])
        t.node("Neg", "neg", ["x"], ["b"])
        t.node("Relu", "relu", ["b"], ["y"])
        t.output("y")
        var graph = t.graph
        var context = PassContext()
        try ValidateGraphPass().run(&graph, &context)
        XCTAssertEqual(graph.nodes.map { $0.name ?? "" }, ["neg", "relu"])
        XCTAssertEqual(context.log.last?.summary, "2 nodes in topological order")
    }

    func testValidateRefusesAnUndefinedInputNamingNodeAndValue() {
        var t = TestGraph()
        t.input("x", [2])
        t.node("Add", "add", ["x", "missing"], ["y"])
        t.output("y")
        var graph = t.graph
        var context = PassContext()
        let error = expectError(GraphError.self) { try ValidateGraphPass().run(&graph, &context) }
        XCTAssertEqual(error, .undefinedValue(node: "add", value: "missing"))
        XCTAssertTrue(error?.description.contains("'missing'") ?? false)
    }

    /// x → Relu → y is kept; x → Neg → z (read by nobody) goes, with the initializer only it read and one nobody reads.
    func testDeadCodeCleanupRemovesUnreadNodesAndInitializers() throws {
        var t = TestGraph()
        t.input("x", [2])
        t.floats("used", [2], [1, 2])
        t.floats("only_dead", [2], [3, 4])
        t.floats("orphan", [1], [5])
        t.node("Add", "add", ["x", "used"], ["a"])
        t.node("Relu", "relu", ["a"], ["y"])
        t.node("Mul", "dead", ["x", "only_dead"], ["z"])
        t.output("y")
        var graph = t.graph
        var context = PassContext()
        try Pipeline([DeadCodeCleanupPass()]).run(&graph, &context)
        XCTAssertEqual(graph.nodes.map { $0.name ?? "" }, ["add", "relu"])
        XCTAssertEqual(Array(graph.initializers.keys), ["used"])
        XCTAssertEqual(context.log.last?.summary, "removed 1 nodes, 2 initializers")
    }
}
