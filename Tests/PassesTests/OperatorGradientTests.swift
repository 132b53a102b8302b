import Foundation
import XCTest

@testable import Graph
@testable import Kernels
@testable import Passes

// The executor's gradient slot, op by op: each case builds one node, prepares it through OperatorRegistry.standard,
// runs the forward, and checks DifferentiableKernel.backward (with a random output gradient R) against central finite
// differences of Σ R·forward, computed with the same Float forward. The kernels' math is checked in float64 by
// KernelsTests/GradientTests; this checks the wiring: input order, shapes, and the attributes (strides, pads, groups,
// transB, axes, perm, …) reaching the backward kernels. Inputs are chosen away from kinks (Relu at 0, Clip bounds,
// MaxPool ties) by more than the step.

/// A seeded generator (SplitMix64), so every run checks the same numbers.
struct GradientCheckRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * Float(Double(next() >> 11) / Double(1 << 53))
    }
}

/// One node to check: its inputs (nil = absent optional), which of them are checked against finite differences (the
/// others are constants known before the data runs and must get no gradient).
struct GradientCase {
    var op: String
    var opset: Int = 17
    var attributes: [Attribute] = []
    var inputs: [DenseTensor?]
    var checked: Set<Int>
    var outputs = 1
    var label = ""
    /// Changes the prepared kernel (the plan's fusion, set by hand).
    var adjust: ((any OpKernel) -> any OpKernel)?
    var name: String { "\(op)\(label.isEmpty ? "" : " (\(label))") opset \(opset)" }
}

final class OperatorGradientTests: XCTestCase {
    var random = GradientCheckRandom(state: 42)

    // MARK: Inputs

    func floats(_ shape: [Int], _ lo: Float = -2, _ hi: Float = 2) -> DenseTensor {
        DenseTensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in random.uniform(lo, hi) })
    }
    /// Values at least `gap` from every kink.
    func floats(_ shape: [Int], avoiding kinks: [Float], gap: Float = 0.08) -> DenseTensor {
        let values = (0..<shape.reduce(1, *)).map { _ -> Float in
            while true {
                let v = random.uniform(-2.5, 2.5)
                if kinks.allSatisfy({ abs(v - $0) > gap }) { return v }
            }
        }
        return DenseTensor(shape: shape, floats: values)
    }
    /// Distinct values 0.1 apart in random order (no max ties within a step).
    func distinct(_ shape: [Int]) -> DenseTensor {
        var values = (0..<shape.reduce(1, *)).map { Float($0) * 0.1 - 1 }
        for i in stride(from: values.count - 1, to: 0, by: -1) { values.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        return DenseTensor(shape: shape, floats: values)
    }
    func ints(_ values: [Int64], _ shape: [Int]? = nil) -> DenseTensor {
        DenseTensor(shape: shape ?? [values.count], ints: values)
    }
    func scalar(_ v: Float) -> DenseTensor { DenseTensor(shape: [], floats: [v]) }

    // MARK: The check

    func prepare(_ c: GradientCase) throws -> (Operator, Prepared) {
        let op = try XCTUnwrap(OperatorRegistry.standard.lookup(domain: "", opType: c.op, opset: c.opset), c.name)
        let node = Node(
            opType: c.op, name: "n", inputs: c.inputs.indices.map { c.inputs[$0] == nil ? "" : "in\($0)" },
            outputs: (0..<c.outputs).map { "out\($0)" }, attributes: c.attributes)
        let specs = c.inputs.indices.map { i -> TensorSpec? in
            guard let t = c.inputs[i] else { return nil }
            if c.checked.contains(i) { return TensorSpec(t.isFloat ? .float : .int64, t.shape) }
            return TensorSpec(constant: t)
        }
        var prepared = try op.prepare(OpContext(node: node, opset: c.opset, inputs: specs))
        if let adjust = c.adjust { prepared.kernel = adjust(prepared.kernel) }
        return (op, prepared)
    }

    /// Asked for: the checked inputs, and every int64/bool input (which must still get none).
    func needs(_ c: GradientCase) -> [Bool] {
        c.inputs.indices.map { i in c.checked.contains(i) || (c.inputs[i].map { !$0.isFloat } ?? false) }
    }

    /// Σ_k R_k·y_k in double.
    func objective(_ kernel: any OpKernel, _ inputs: [DenseTensor?], _ r: [[Float]]) throws -> Double {
        let ys = try kernel.forward(inputs, BufferPool())
        var s = 0.0
        for (y, rk) in zip(ys, r) { for (a, b) in zip(y.floats, rk) { s += Double(a) * Double(b) } }
        return s
    }

    /// Checks every `checked` input's gradient against central differences; returns the worst relative error.
    @discardableResult
    func check(
        _ c: GradientCase, step h: Float = 1e-2, tolerance: Double = 5e-3, file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> Double {
        let (_, prepared) = try prepare(c)
        let kernel = try XCTUnwrap(
            prepared.kernel as? any DifferentiableKernel, "\(c.name): no gradient", file: file, line: line)
        let ys = try prepared.kernel.forward(c.inputs, BufferPool())
        XCTAssertEqual(
            ys.map(\.shape), prepared.outputs.map(\.shape), "\(c.name): forward shapes", file: file, line: line)
        let r = ys.map { y in (0..<y.count).map { _ in random.uniform(-1, 1) } }
        let gradients = ys.indices.map { DenseTensor(shape: ys[$0].shape, floats: r[$0]) }
        let grads = try kernel.backward(
            inputs: c.inputs, outputs: ys, outputGradients: gradients,
            needs: needs(c), BufferPool())
        XCTAssertEqual(grads.count, c.inputs.count, "\(c.name): one gradient slot per input", file: file, line: line)
        // What the tape keeps is enough: the values `saved` leaves out reach backward as placeholders (shape only).
        let saved = kernel.saved
        let kept = c.inputs.enumerated().map { i, t in
            t.map { saved.readsInput(i) || !$0.isFloat ? $0 : DenseTensor(placeholderOf: $0.shape) }
        }
        let keptOutputs = saved.outputs ? ys : ys.map { DenseTensor(placeholderOf: $0.shape) }
        let fromTape = try kernel.backward(
            inputs: kept, outputs: keptOutputs, outputGradients: gradients, needs: needs(c), BufferPool())
        for (a, b) in zip(grads, fromTape) {
            XCTAssertEqual(a?.floats, b?.floats, "\(c.name): backward from the kept values only", file: file, line: line)
        }
        var worst = 0.0
        for i in c.inputs.indices {
            guard c.checked.contains(i) else {
                if i < grads.count {
                    XCTAssertNil(grads[i], "\(c.name): input \(i) is not differentiable", file: file, line: line)
                }
                continue
            }
            let x = try XCTUnwrap(c.inputs[i])
            let g = try XCTUnwrap(grads[i], "\(c.name): input \(i) has no gradient", file: file, line: line)
            XCTAssertEqual(g.shape, x.shape, "\(c.name): gradient \(i) shape", file: file, line: line)
            let analytic = g.floats
            var numeric = [Double](repeating: 0, count: x.count)
            var values = x.floats
            for j in values.indices {
                let v = values[j]
                var perturbed = c.inputs
                values[j] = v + h
                perturbed[i] = DenseTensor(shape: x.shape, floats: values)
                let plus = try objective(prepared.kernel, perturbed, r)
                values[j] = v - h
                perturbed[i] = DenseTensor(shape: x.shape, floats: values)
                let minus = try objective(prepared.kernel, perturbed, r)
                values[j] = v
                numeric[j] = (plus - minus) / Double(2 * h)
            }
            let scale = max(numeric.map(abs).max() ?? 0, 1e-2)
            let err = zip(analytic, numeric).map { abs(Double($0) - $1) }.max() ?? 0
            worst = max(worst, err / scale)
            XCTAssertLessThanOrEqual(
                err / scale, tolerance,
                "\(c.name): input \(i) gradient off by \(err) (largest \(scale)); analytic \(analytic.prefix(8)), numeric \(numeric.prefix(8).map { Float($0) })",
                file: file, line: line)
        }
        return worst
    }

    func checkAll(_ cases: [GradientCase], file: StaticString = #filePath, line: UInt = #line) {
        for c in cases {
            do { try check(c, file: file, line: line) } catch { XCTFail("\(c.name): \(error)", file: file, line: line) }
        }
    }
}

// MARK: Cases

extension OperatorGradientTests {
    func convCases() -> [GradientCase] {
        [
            GradientCase(
                op: "Conv",
                attributes: [
                    .int("group", 2), .ints("strides", [2, 1]), .ints("pads", [1, 0, 1, 2]),
                    .ints("dilations", [1, 2]),
                ],
                inputs: [floats([2, 4, 5, 6]), floats([6, 2, 3, 3]), floats([6])], checked: [0, 1, 2],
                label: "grouped, strided, dilated, padded"),
            GradientCase(
                op: "Conv", attributes: [.int("group", 3), .ints("pads", [1, 1, 1, 1])],
                inputs: [floats([1, 3, 5, 5]), floats([6, 1, 3, 3]), floats([6])], checked: [0, 1, 2],
                label: "depthwise ×2"),
            GradientCase(
                op: "Conv", attributes: [.ints("strides", [2]), .ints("pads", [1, 1])],
                inputs: [floats([2, 3, 7]), floats([4, 3, 3]), floats([4])], checked: [0, 1, 2], label: "1-D"),
            GradientCase(
                op: "Conv", inputs: [floats([1, 4, 3, 3]), floats([5, 4, 1, 1])], checked: [0, 1],
                label: "pointwise, no bias"),
            GradientCase(
                op: "Conv", attributes: [.string("auto_pad", "SAME_UPPER"), .ints("strides", [2, 2])],
                inputs: [floats([1, 2, 5, 4]), floats([3, 2, 3, 2]), floats([3])], checked: [1],
                label: "SAME_UPPER, weight only"),
        ]
    }

    func matMulCases() -> [GradientCase] {
        [
            GradientCase(
                op: "Gemm",
                attributes: [.int("transA", 1), .int("transB", 1), .float("alpha", 0.7), .float("beta", 1.3)],
                inputs: [floats([4, 3]), floats([5, 4]), floats([5])], checked: [0, 1, 2], label: "transA transB, C [N]"
            ),
            GradientCase(
                op: "Gemm", inputs: [floats([3, 4]), floats([4, 5]), floats([3, 1])], checked: [0, 1, 2],
                label: "C [M, 1]"),
            GradientCase(
                op: "Gemm", attributes: [.int("transB", 1)], inputs: [floats([2, 6]), floats([3, 6])], checked: [0, 1],
                label: "no C"),
            GradientCase(
                op: "MatMul", inputs: [floats([2, 1, 3, 4]), floats([3, 4, 5])], checked: [0, 1],
                label: "broadcast batch"),
            GradientCase(
                op: "MatMul", inputs: [floats([2, 3, 4]), floats([4, 5])], checked: [0, 1], label: "stacked"),
            GradientCase(op: "MatMul", inputs: [floats([4]), floats([2, 4, 3])], checked: [0, 1], label: "1-D A"),
            GradientCase(op: "MatMul", inputs: [floats([2, 3, 4]), floats([4])], checked: [0, 1], label: "1-D B"),
        ]
    }

    func binaryCases() -> [GradientCase] {
        var cases: [GradientCase] = []
        for op in ["Add", "Sub", "Mul", "Div"] {
            let b = op == "Div" ? floats([3, 1], 0.5, 2) : floats([3, 1])
            cases.append(GradientCase(op: op, inputs: [floats([2, 3, 4]), b], checked: [0, 1], label: "b broadcast"))
            let a = floats([1, 4])
            cases.append(
                GradientCase(
                    op: op, inputs: [a, op == "Div" ? floats([3, 1], -2, -0.5) : floats([3, 1])],
                    checked: [0, 1], label: "both broadcast"))
        }
        cases.append(
            GradientCase(op: "Pow", inputs: [floats([2, 3, 4], 0.5, 2), floats([4], 0.5, 2.5)], checked: [0, 1]))
        cases.append(
            GradientCase(
                op: "Pow", inputs: [floats([3, 4], 0.5, 2), DenseTensor(shape: [], floats: [2])],
                checked: [0, 1], label: "squared"))
        cases.append(
            GradientCase(op: "Mul", inputs: [floats([2, 3]), ints([2, 3, 4], [3])], checked: [0], label: "int64 b"))
        // |a| > 0.3 and |b| < 0.1: no pair sits on Max's kink; x away from PRelu's kink at 0.
        let a = floats([2, 3, 4], avoiding: [0], gap: 0.3)
        cases.append(GradientCase(op: "Max", inputs: [a, floats([3, 1], -0.1, 0.1)], checked: [0, 1]))
        cases.append(
            GradientCase(op: "PRelu", inputs: [floats([2, 3, 4], avoiding: [0]), floats([3, 1])], checked: [0, 1]))
        return cases
    }

    func unaryCases() -> [GradientCase] {
        func u(_ op: String, _ x: DenseTensor, opset: Int = 17, _ attributes: [Attribute] = [], label: String = "")
            -> GradientCase
        {
            GradientCase(op: op, opset: opset, attributes: attributes, inputs: [x], checked: [0], label: label)
        }
        let shape = [3, 5]
        return [
            u("Relu", floats(shape, avoiding: [0])),
            u("LeakyRelu", floats(shape, avoiding: [0]), [.float("alpha", 0.3)]),
            u("Sigmoid", floats(shape)), u("Tanh", floats(shape)),
            u("HardSigmoid", floats([4, 10], avoiding: [-1.5, 1.5]), [.float("alpha", 1 / 3), .float("beta", 0.5)]),
            u("HardSwish", DenseTensor(shape: [2, 5], floats: [-4, -2.5, -1, -0.3, 0.2, 0.7, 1.5, 2.6, 3.4, 5])),
            u("Erf", floats(shape)),
            u("Gelu", floats(shape), opset: 20),
            u("Gelu", floats(shape), opset: 20, [.string("approximate", "tanh")], label: "tanh"),
            u("Sqrt", floats(shape, 0.5, 3)), u("Exp", floats(shape)), u("Neg", floats(shape)),
            u("Abs", floats(shape, avoiding: [0])), u("Reciprocal", floats(shape, 0.5, 2)),
            u("Clip", floats(shape, avoiding: [-0.5, 1.5]), opset: 6, [.float("min", -0.5), .float("max", 1.5)]),
            GradientCase(
                op: "Clip", opset: 13, inputs: [floats([4, 5], avoiding: [-1, 0.8]), scalar(-1), scalar(0.8)],
                checked: [0]),
            GradientCase(
                op: "Clip", opset: 13, inputs: [floats([4, 5], avoiding: [0.3]), nil, scalar(0.3)], checked: [0],
                label: "max only"),
        ]
    }

    func poolCases() -> [GradientCase] {
        [
            GradientCase(op: "GlobalAveragePool", inputs: [floats([2, 3, 4, 5])], checked: [0]),
            GradientCase(op: "GlobalMaxPool", inputs: [distinct([2, 3, 4])], checked: [0]),
            GradientCase(
                op: "MaxPool",
                attributes: [.ints("kernel_shape", [3, 3]), .ints("strides", [2, 2]), .ints("pads", [1, 1, 1, 1])],
                inputs: [distinct([1, 2, 5, 5])], checked: [0]),
            GradientCase(
                op: "MaxPool",
                attributes: [
                    .ints("kernel_shape", [2, 2]), .int("ceil_mode", 1), .ints("strides", [2, 2]),
                    .ints("dilations", [1, 2]),
                ],
                inputs: [distinct([1, 2, 5, 6])], checked: [0], label: "ceil, dilated"),
            GradientCase(
                op: "AveragePool",
                attributes: [
                    .ints("kernel_shape", [3, 2]), .ints("strides", [2, 1]), .ints("pads", [1, 0, 1, 1]),
                    .int("count_include_pad", 1),
                ],
                inputs: [floats([2, 2, 5, 4])], checked: [0], label: "count_include_pad"),
            GradientCase(
                op: "AveragePool",
                attributes: [
                    .ints("kernel_shape", [3]), .ints("pads", [1, 1]), .int("ceil_mode", 1),
                    .ints("strides", [2]),
                ],
                inputs: [floats([2, 3, 6])], checked: [0], label: "1-D, ceil"),
        ]
    }

    func viewCases() -> [GradientCase] {
        [
            GradientCase(op: "Flatten", attributes: [.int("axis", -1)], inputs: [floats([2, 3, 4])], checked: [0]),
            GradientCase(op: "Reshape", opset: 14, inputs: [floats([2, 3, 4]), ints([4, -1])], checked: [0]),
            GradientCase(op: "Squeeze", opset: 13, inputs: [floats([3, 4, 1]), ints([-1])], checked: [0]),
            GradientCase(
                op: "Squeeze", opset: 11, attributes: [.ints("axes", [0])], inputs: [floats([1, 4])], checked: [0]),
            GradientCase(op: "Unsqueeze", opset: 13, inputs: [floats([3, 4]), ints([0, -1])], checked: [0]),
            GradientCase(
                op: "Unsqueeze", opset: 11, attributes: [.ints("axes", [1])], inputs: [floats([3, 4])], checked: [0]),
            GradientCase(op: "Identity", inputs: [floats([2, 3])], checked: [0]),
            GradientCase(op: "Dropout", opset: 13, inputs: [floats([2, 3])], checked: [0]),
        ]
    }

    func batchNormCases() -> [GradientCase] {
        [
            GradientCase(
                op: "BatchNormalization", opset: 15, attributes: [.float("epsilon", 1e-3)],
                inputs: [floats([2, 3, 4, 2]), floats([3]), floats([3]), floats([3], -1, 1), floats([3], 0.5, 2)],
                checked: [0, 1, 2, 3, 4]),
            GradientCase(
                op: "BatchNormalization", opset: 9,
                inputs: [floats([4, 3]), floats([3]), floats([3]), floats([3], -1, 1), floats([3], 0.5, 2)],
                checked: [0, 1, 2], label: "2-D, frozen statistics"),
        ]
    }
}

extension OperatorGradientTests {
    func testConvGradients() { checkAll(convCases()) }
    func testGemmAndMatMulGradients() { checkAll(matMulCases()) }
    func testBinaryGradients() { checkAll(binaryCases()) }
    func testUnaryGradients() { checkAll(unaryCases()) }
    func testPoolGradients() { checkAll(poolCases()) }
    func testViewGradients() { checkAll(viewCases()) }
    func testBatchNormGradients() { checkAll(batchNormCases()) }
}

extension OperatorGradientTests {
    func normalizationCases() -> [GradientCase] {
        [
            GradientCase(
                op: "LayerNormalization", attributes: [.int("axis", -2), .float("epsilon", 1e-3)],
                inputs: [floats([2, 3, 4]), floats([3, 4]), floats([3, 4])], checked: [0, 1, 2]),
            GradientCase(
                op: "LayerNormalization", inputs: [floats([3, 5]), floats([5]), floats([1])], checked: [0, 1, 2],
                label: "one-element bias"),
            GradientCase(
                op: "LayerNormalization", inputs: [floats([2, 4]), floats([1])], checked: [0, 1], label: "no bias"),
            GradientCase(
                op: "Softmax", opset: 13, attributes: [.int("axis", 1)], inputs: [floats([2, 3, 4])], checked: [0]),
            GradientCase(op: "Softmax", opset: 13, inputs: [floats([3, 5])], checked: [0], label: "default axis"),
            GradientCase(op: "LRN", attributes: [.int("size", 3), .float("alpha", 0.5), .float("bias", 2)],
                         inputs: [floats([2, 5, 2, 3])], checked: [0]),
            GradientCase(op: "LRN", attributes: [.int("size", 4), .float("alpha", 0.3)],
                         inputs: [floats([1, 6, 3])], checked: [0], label: "even size, rank 3"),
            GradientCase(
                op: "Softmax", opset: 11, attributes: [.int("axis", 1)], inputs: [floats([2, 3, 4])], checked: [0],
                label: "coerced to 2-D"),
            GradientCase(
                op: "ReduceMean", opset: 13, attributes: [.ints("axes", [0, 2]), .int("keepdims", 0)],
                inputs: [floats([2, 3, 4])], checked: [0], label: "axes 0, 2"),
            GradientCase(
                op: "ReduceMean", opset: 13, attributes: [.ints("axes", [-1])], inputs: [floats([2, 3, 4])],
                checked: [0],
                label: "last axis"),
            GradientCase(
                op: "ReduceMean", opset: 18, inputs: [floats([2, 3, 4]), ints([-2])], checked: [0], label: "axes input"),
            GradientCase(op: "ReduceMean", opset: 18, inputs: [floats([2, 3])], checked: [0], label: "all axes"),
        ]
    }

    func movementCases() -> [GradientCase] {
        [
            GradientCase(
                op: "Transpose", attributes: [.ints("perm", [2, 0, 1])], inputs: [floats([2, 3, 4])], checked: [0]),
            GradientCase(op: "Transpose", inputs: [floats([2, 3, 4])], checked: [0], label: "reversed"),
            GradientCase(
                op: "Concat", attributes: [.int("axis", -1)],
                inputs: [floats([2, 3]), floats([2, 1]), floats([2, 2])],
                checked: [0, 1, 2]),
            GradientCase(
                op: "Concat", attributes: [.int("axis", 0)], inputs: [floats([1, 3]), floats([2, 3])], checked: [1],
                label: "second only"),
            GradientCase(
                op: "Slice", opset: 13,
                inputs: [floats([4, 6]), ints([1, 5]), ints([4, 0]), ints([0, -1]), ints([2, -2])], checked: [0],
                label: "negative axis and step"),
            GradientCase(
                op: "Slice", opset: 13, inputs: [floats([3, 5]), ints([1]), ints([100]), ints([1])], checked: [0],
                label: "clamped end"),
            GradientCase(
                op: "Split", opset: 13, attributes: [.int("axis", 1)], inputs: [floats([2, 6]), ints([2, 4])],
                checked: [0],
                outputs: 2),
            GradientCase(
                op: "Split", opset: 11, attributes: [.int("axis", -1)], inputs: [floats([2, 3, 6])], checked: [0],
                outputs: 3, label: "equal"),
            GradientCase(op: "Expand", inputs: [floats([3, 1]), ints([2, 3, 4])], checked: [0]),
            GradientCase(
                op: "Pad", opset: 13, inputs: [floats([2, 3]), ints([1, -1, 0, 2]), scalar(0.5)], checked: [0],
                label: "constant, cropping"),
            GradientCase(
                op: "Pad", opset: 18, inputs: [floats([2, 3, 4]), ints([1, 2]), nil, ints([-1])], checked: [0],
                label: "axes"),
            GradientCase(
                op: "Pad", opset: 2, attributes: [.ints("pads", [0, 1, 1, 0])], inputs: [floats([2, 3])], checked: [0]),
            GradientCase(
                op: "Gather", attributes: [.int("axis", 1)],
                inputs: [floats([3, 5]), ints([0, 4, -1, 2], [2, 2])], checked: [0], label: "repeated index"),
            GradientCase(op: "Gather", inputs: [floats([4, 2]), ints([3])], checked: [0]),
            GradientCase(
                op: "Where",
                inputs: [DenseTensor(shape: [3, 1], bools: [true, false, true]), floats([3, 4]), floats([4])],
                checked: [1, 2]),
            GradientCase(op: "Cast", attributes: [.int("to", 1)], inputs: [floats([2, 3])], checked: [0]),
        ]
    }

    func transposedConvCases() -> [GradientCase] {
        [
            GradientCase(
                op: "ConvTranspose",
                attributes: [
                    .int("group", 2), .ints("strides", [2, 2]), .ints("pads", [1, 1, 1, 1]),
                    .ints("output_padding", [1, 0]),
                ],
                inputs: [floats([1, 4, 3, 3]), floats([4, 3, 3, 3]), floats([6])], checked: [0, 1, 2]),
            GradientCase(
                op: "ConvTranspose", attributes: [.ints("strides", [2]), .ints("dilations", [2])],
                inputs: [floats([2, 2, 4]), floats([2, 3, 3])], checked: [0, 1], label: "1-D"),
        ]
    }

    func resizeCases() -> [GradientCase] {
        func resize(
            _ x: [Int], scales: [Float]? = nil, sizes: [Int64]? = nil, _ attributes: [Attribute], _ label: String
        ) -> GradientCase {
            GradientCase(
                op: "Resize", opset: 13, attributes: attributes,
                inputs: [floats(x), nil, scales.map { DenseTensor(shape: [4], floats: $0) }, sizes.map { ints($0) }],
                checked: [0], label: label)
        }
        return [
            resize([1, 2, 4, 4], scales: [1, 1, 0.5, 0.5], [], "nearest 2× down: round_prefer_floor ties"),
            resize(
                [1, 2, 3, 3], scales: [1, 1, 2, 1.5], [.string("coordinate_transformation_mode", "asymmetric")],
                "nearest asymmetric"),
            resize(
                [1, 1, 3, 4], sizes: [1, 1, 5, 7],
                [
                    .string("nearest_mode", "ceil"),
                    .string("coordinate_transformation_mode", "tf_half_pixel_for_nn"),
                ], "nearest ceil"),
            resize([2, 2, 3, 4], scales: [1, 1, 2, 1.5], [.string("mode", "linear")], "linear half_pixel"),
            resize(
                [1, 2, 3, 3], sizes: [1, 2, 5, 7],
                [.string("mode", "linear"), .string("coordinate_transformation_mode", "align_corners")],
                "linear align_corners"),
            resize(
                [1, 1, 4, 5], sizes: [1, 1, 1, 3],
                [
                    .string("mode", "linear"),
                    .string("coordinate_transformation_mode", "pytorch_half_pixel"),
                ], "linear pytorch"),
        ]
    }

    func testNormalizationGradients() { checkAll(normalizationCases()) }
    func testDataMovementGradients() { checkAll(movementCases()) }
    func testConvTransposeGradients() { checkAll(transposedConvCases()) }
    func testResizeGradients() { checkAll(resizeCases()) }
}

// MARK: The registry's flags, and the slot's contract

extension OperatorGradientTests {
    /// Ops without a gradient, one sample each.
    func nonDifferentiableSamples() -> [GradientCase] {
        [
            GradientCase(op: "Equal", inputs: [floats([2, 3]), floats([3])], checked: []),
            GradientCase(op: "Less", inputs: [floats([2, 3]), floats([3])], checked: []),
            GradientCase(op: "Greater", inputs: [floats([2, 3]), floats([3])], checked: []),
            GradientCase(op: "Shape", inputs: [floats([2, 3])], checked: []),
            GradientCase(op: "Range", opset: 11, inputs: [scalar(0), scalar(5), scalar(1)], checked: []),
            GradientCase(
                op: "Constant", attributes: [.tensor("value", Tensor(name: nil, dims: [2], floats: [1, 2]))],
                inputs: [],
                checked: []),
            GradientCase(op: "ConstantOfShape", opset: 9, inputs: [ints([2, 3])], checked: []),
        ]
    }

    func allSamples() -> [GradientCase] {
        convCases() + transposedConvCases() + matMulCases() + binaryCases() + unaryCases() + poolCases() + viewCases()
            + batchNormCases() + normalizationCases() + movementCases() + resizeCases() + nonDifferentiableSamples()
    }

    func testEveryRegistryEntryWithAGradientHasADifferentiableKernelAndNoOtherDoes() throws {
        let samples = allSamples()
        var differentiable = 0
        for op in OperatorRegistry.standard.operators {
            let name = "\(op.opType) \(op.versions)"
            guard let c = samples.first(where: { $0.op == op.opType && op.versions.contains($0.opset) }) else {
                XCTFail("no sample input for \(name)")
                continue
            }
            let node = Node(
                opType: c.op, name: "n", inputs: c.inputs.indices.map { c.inputs[$0] == nil ? "" : "in\($0)" },
                outputs: (0..<c.outputs).map { "out\($0)" }, attributes: c.attributes)
            let specs = c.inputs.map { $0.map { TensorSpec(constant: $0) } }
            let prepared = try op.prepare(OpContext(node: node, opset: c.opset, inputs: specs))
            XCTAssertEqual(
                prepared.kernel is any DifferentiableKernel, op.hasGradient, "\(name): hasGradient \(op.hasGradient)")
            if op.hasGradient { differentiable += 1 }
        }
        XCTAssertGreaterThanOrEqual(differentiable, 50)
        // int64 forms of differentiable ops (shape arithmetic) are not differentiable.
        for c in [
            GradientCase(op: "Add", inputs: [ints([1, 2]), ints([3])], checked: []),
            GradientCase(op: "Neg", inputs: [ints([1, 2])], checked: []),
            GradientCase(op: "Clip", opset: 13, inputs: [ints([1, 2]), ints([0], []), nil], checked: []),
        ] {
            let (_, prepared) = try prepare(c)
            XCTAssertFalse(prepared.kernel is any DifferentiableKernel, "\(c.name) on int64")
        }
    }

    /// A nil output gradient reads as zeros: Split with only its second output used scatters into the second window.
    func testMissingOutputGradientsReadAsZeros() throws {
        let x = floats([2, 5])
        let c = GradientCase(
            op: "Split", opset: 13, attributes: [.int("axis", 1)], inputs: [x, ints([2, 3])], checked: [0],
            outputs: 2)
        let (_, prepared) = try prepare(c)
        let kernel = try XCTUnwrap(prepared.kernel as? any DifferentiableKernel)
        let ys = try kernel.forward(c.inputs, BufferPool())
        let r: [Float] = (0..<6).map { Float($0) + 1 }
        let grads = try kernel.backward(
            inputs: c.inputs, outputs: ys, outputGradients: [nil, DenseTensor(shape: [2, 3], floats: r)],
            needs: [true, false], BufferPool())
        XCTAssertEqual(grads[0]?.floats, [0, 0, 1, 2, 3, 0, 0, 4, 5, 6])
        XCTAssertNil(grads[1])
        // A single-output op with no gradient downstream gives zeros, and nothing where not needed.
        let conv = GradientCase(
            op: "Conv", inputs: [floats([1, 2, 3, 3]), floats([2, 2, 2, 2]), floats([2])], checked: [0, 1, 2])
        let (_, p) = try prepare(conv)
        let k = try XCTUnwrap(p.kernel as? any DifferentiableKernel)
        let cy = try k.forward(conv.inputs, BufferPool())
        let cg = try k.backward(
            inputs: conv.inputs, outputs: cy, outputGradients: [nil], needs: [false, true, false], BufferPool())
        XCTAssertNil(cg[0])
        XCTAssertEqual(cg[1]?.floats, [Float](repeating: 0, count: 16))
        XCTAssertNil(cg[2])
    }

    /// A Conv the plan fused with a residual Add and a clamp (training's fusion): ∂x, ∂W, ∂b and ∂r through the
    /// clamp's mask, against finite differences (values away from the bounds by more than the step).
    func testFusedConvGradientsMatchFiniteDifferences() throws {
        for (clamp, label) in [((Float(0), Float.infinity), "Relu"), ((Float(-0.5), Float(1.5)), "Clip")] {
            var c = GradientCase(
                op: "Conv", attributes: [.ints("pads", [1, 1, 1, 1])],
                inputs: [floats([2, 2, 4, 4]), floats([3, 2, 3, 3], -0.4, 0.4), floats([3]), floats([2, 3, 4, 4])],
                checked: [0, 1, 2, 3], label: "fused residual + \(label)")
            c.adjust = { kernel in
                guard var conv = kernel as? ConvOps.ConvKernel else { return kernel }
                conv.fusedResidual = true
                conv.epilogue = NeuralOps.Epilogue(clamp: clamp)
                return conv
            }
            // Keep every output 0.1 away from the bounds: shift the residual where the sum is close.
            let (_, p) = try prepare(c)
            let y = try p.kernel.forward(c.inputs, BufferPool())[0].floats
            var r = c.inputs[3]!.floats
            for i in r.indices {
                for bound in [clamp.0, clamp.1] where bound.isFinite && abs(y[i] - bound) < 0.1 { r[i] += 0.25 }
            }
            c.inputs[3] = DenseTensor(shape: [2, 3, 4, 4], floats: r)
            try check(c, step: 1e-3)
        }
    }

    /// A Conv fused with BatchNormalization (inference only: training folds BN first) refuses to differentiate.
    func testConvFusedWithBatchNormHasNoGradient() throws {
        let c = GradientCase(op: "Conv", inputs: [floats([1, 2, 3, 3]), floats([2, 2, 1, 1])], checked: [0, 1])
        let (_, p) = try prepare(c)
        var kernel = try XCTUnwrap(p.kernel as? ConvOps.ConvKernel)
        let y = try kernel.forward(c.inputs, BufferPool())
        kernel.epilogue = NeuralOps.Epilogue(scale: [1, 2])
        XCTAssertThrowsError(
            try kernel.backward(inputs: c.inputs, outputs: y, outputGradients: y, needs: [true, true], BufferPool())
        ) {
            XCTAssertTrue("\($0)".contains("BatchNormalization"), "\($0)")
        }
    }

    /// Reflect and edge Pad are not trained through: a clear error, not a wrong gradient.
    func testReflectPadGradientIsAnError() throws {
        let c = GradientCase(
            op: "Pad", opset: 13, attributes: [.string("mode", "reflect")],
            inputs: [floats([2, 3]), ints([0, 1, 0, 1])],
            checked: [0])
        let (_, p) = try prepare(c)
        let kernel = try XCTUnwrap(p.kernel as? any DifferentiableKernel)
        let y = try kernel.forward(c.inputs, BufferPool())
        XCTAssertThrowsError(
            try kernel.backward(inputs: c.inputs, outputs: y, outputGradients: y, needs: [true, false], BufferPool())
        ) {
            XCTAssertTrue("\($0)".contains("reflect"), "\($0)")
        }
    }
}
