import Graph

// What a pass may assume about a node before it reads it, checked in one place: an input the op needs is there, a
// constant holds every element its dims promise (float32 where the pass computes on it), sizes fit in Int, and the
// numbers it computes with are finite. Each failure is a PassError naming the node and what to change.

/// Input `index` of `node` (`role` says what it is), or an error when the node has fewer inputs than its op needs.
func requiredInput(_ node: Node, _ index: Int, _ role: String) throws -> String {
    guard index < node.inputs.count, !node.inputs[index].isEmpty else {
        throw PassError(
            node: node.displayName,
            "\(node.op) has \(node.inputs.count) input\(node.inputs.count == 1 ? "" : "s"); its \(role) (input \(index)) is missing")
    }
    return node.inputs[index]
}

/// The number of elements `dims` hold, or nil when a dimension is negative or the product overflows Int.
func checkedElementCount(_ dims: [Int64]) -> Int? {
    var count = 1
    for d in dims {
        guard d >= 0, d <= Int64(Int.max) else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
        if overflow { return nil }
        count = product
    }
    return count
}

/// The constant value `value` as a float32 tensor whose bytes match its dims; nil when `value` is not a constant.
/// `node` and `role` name it in the error when it is a constant of another type or with missing elements.
func floatConstant(_ graph: Graph, _ value: String, node: String, role: String) throws -> Tensor? {
    guard let t = graph.constantTensor(value) else { return nil }
    guard t.dataType == .float else {
        throw PassError(node: node, "its \(role) '\(value)' is \(t.dataType), not FLOAT; only float32 constants can be rewritten here")
    }
    try checkComplete(t, value, node: node, role: role)
    return t
}

/// Checks that a constant's bytes hold exactly the elements its dims promise.
func checkComplete(_ t: Tensor, _ value: String, node: String, role: String) throws {
    guard let count = checkedElementCount(t.dims) else {
        throw PassError(node: node, "its \(role) '\(value)' has dims \(t.dims), which are negative or too large")
    }
    guard let bytes = t.dataType.byteCount(elements: count), bytes == t.byteCount else {
        throw PassError(
            node: node, "its \(role) '\(value)' has dims \(t.dims) (\(count) elements) but holds \(t.byteCount) bytes of \(t.dataType)")
    }
}

/// Checks that every element of a float32 tensor is finite; the error names the node, the tensor and the first
/// bad value.
func requireFinite(_ t: Tensor, _ value: String, node: String, role: String) throws {
    let bad: (Int, Float)? = t.withElements(as: Float.self) { w in
        for i in w.indices where !w[i].isFinite { return (i, w[i]) }
        return nil
    }
    if let (i, v) = bad {
        throw PassError(node: node, "its \(role) '\(value)' holds \(v) at element \(i); NaN and infinity cannot be quantized or pruned")
    }
}

/// A float32 constant that must be there: the constant, or an error saying it is not one.
func requiredFloatConstant(_ graph: Graph, _ value: String, node: String, role: String) throws -> Tensor {
    guard let t = try floatConstant(graph, value, node: node, role: role) else {
        throw PassError(node: node, "its \(role) '\(value)' is not a constant (an initializer or Constant node)")
    }
    return t
}

/// `v` as an Int32, saturating at the ends of its range (NaN gives 0; callers reject NaN before).
func saturatingInt32(_ v: Float) -> Int32 {
    guard v.isFinite else { return v.isNaN ? 0 : (v > 0 ? .max : .min) }
    if v >= 2_147_483_648 { return .max }
    if v <= -2_147_483_648 { return .min }
    return Int32(v)
}
