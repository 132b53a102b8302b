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
struct SeededRandom {
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
    var name: String { "\(op)\(label.isEmpty ? "" : " (\(label))") opset \(opset)" }
}

final class OperatorGradientTests: XCTestCase {
    var random = SeededRandom(state: 42)

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
    func ints(_ values: [Int64], _ shape: [Int]? = nil) -> DenseTensor { DenseTensor(shape: shape ?? [values.count], ints: values) }
    func scalar(_ v: Float) -> DenseTensor { DenseTensor(shape: [], floats: [v]) }

    // MARK: The check

    func prepare(_ c: GradientCase) throws -> (Operator, Prepared) {
        let op = try XCTUnwrap(OperatorRegistry.standard.lookup(domain: "", opType: c.op, opset: c.opset), c.name)
        let node = Node(opType: c.op, name: "n", inputs: c.inputs.indices.map { c.inputs[$0] == nil ? "" : "in\($0)" },
                        outputs: (0..<c.outputs).map { "out\($0)" }, attributes: c.attributes)
        let specs = c.inputs.indices.map { i -> TensorSpec? in
            guard let t = c.inputs[i] else { return nil }
            if c.checked.contains(i) { return TensorSpec(t.isFloat ? .float : .int64, t.shape) }
            return TensorSpec(constant: t)
        }
        return (op, try op.prepare(OpContext(node: node, opset: c.opset, inputs: specs)))
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
    func check(_ c: GradientCase, step h: Float = 1e-2, tolerance: Double = 2e-2, file: StaticString = #filePath,
               line: UInt = #line) throws -> Double {
        let (_, prepared) = try prepare(c)
        let kernel = try XCTUnwrap(prepared.kernel as? any DifferentiableKernel, "\(c.name): no gradient", file: file, line: line)
        let ys = try prepared.kernel.forward(c.inputs, BufferPool())
        XCTAssertEqual(ys.map(\.shape), prepared.outputs.map(\.shape), "\(c.name): forward shapes", file: file, line: line)
        let r = ys.map { y in (0..<y.count).map { _ in random.uniform(-1, 1) } }
        let gradients = ys.indices.map { DenseTensor(shape: ys[$0].shape, floats: r[$0]) }
        let grads = try kernel.backward(inputs: c.inputs, outputs: ys, outputGradients: gradients,
                                        needs: needs(c), BufferPool())
        XCTAssertEqual(grads.count, c.inputs.count, "\(c.name): one gradient slot per input", file: file, line: line)
        var worst = 0.0
        for i in c.inputs.indices {
            guard c.checked.contains(i) else {
                if i < grads.count { XCTAssertNil(grads[i], "\(c.name): input \(i) is not differentiable", file: file, line: line) }
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
            XCTAssertLessThanOrEqual(err / scale, tolerance,
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
            GradientCase(op: "Conv", attributes: [.int("group", 2), .ints("strides", [2, 1]), .ints("pads", [1, 0, 1, 2]),
                                                  .ints("dilations", [1, 2])],
                         inputs: [floats([2, 4, 5, 6]), floats([6, 2, 3, 3]), floats([6])], checked: [0, 1, 2],
                         label: "grouped, strided, dilated, padded"),
            GradientCase(op: "Conv", attributes: [.int("group", 3), .ints("pads", [1, 1, 1, 1])],
                         inputs: [floats([1, 3, 5, 5]), floats([6, 1, 3, 3]), floats([6])], checked: [0, 1, 2], label: "depthwise ×2"),
            GradientCase(op: "Conv", attributes: [.ints("strides", [2]), .ints("pads", [1, 1])],
                         inputs: [floats([2, 3, 7]), floats([4, 3, 3]), floats([4])], checked: [0, 1, 2], label: "1-D"),
            GradientCase(op: "Conv", inputs: [floats([1, 4, 3, 3]), floats([5, 4, 1, 1])], checked: [0, 1], label: "pointwise, no bias"),
            GradientCase(op: "Conv", attributes: [.string("auto_pad", "SAME_UPPER"), .ints("strides", [2, 2])],
                         inputs: [floats([1, 2, 5, 4]), floats([3, 2, 3, 2]), floats([3])], checked: [1], label: "SAME_UPPER, weight only"),
        ]
    }

    func matMulCases() -> [GradientCase] {
        [
            GradientCase(op: "Gemm", attributes: [.int("transA", 1), .int("transB", 1), .float("alpha", 0.7), .float("beta", 1.3)],
                         inputs: [floats([4, 3]), floats([5, 4]), floats([5])], checked: [0, 1, 2], label: "transA transB, C [N]"),
            GradientCase(op: "Gemm", inputs: [floats([3, 4]), floats([4, 5]), floats([3, 1])], checked: [0, 1, 2], label: "C [M, 1]"),
            GradientCase(op: "Gemm", attributes: [.int("transB", 1)], inputs: [floats([2, 6]), floats([3, 6])], checked: [0, 1],
                         label: "no C"),
            GradientCase(op: "MatMul", inputs: [floats([2, 1, 3, 4]), floats([3, 4, 5])], checked: [0, 1], label: "broadcast batch"),
            GradientCase(op: "MatMul", inputs: [floats([2, 3, 4]), floats([4, 5])], checked: [0, 1], label: "stacked"),
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
            cases.append(GradientCase(op: op, inputs: [a, op == "Div" ? floats([3, 1], -2, -0.5) : floats([3, 1])],
                                      checked: [0, 1], label: "both broadcast"))
        }
        cases.append(GradientCase(op: "Pow", inputs: [floats([2, 3, 4], 0.5, 2), floats([4], 0.5, 2.5)], checked: [0, 1]))
        cases.append(GradientCase(op: "Pow", inputs: [floats([3, 4], 0.5, 2), DenseTensor(shape: [], floats: [2])],
                                  checked: [0, 1], label: "squared"))
        cases.append(GradientCase(op: "Mul", inputs: [floats([2, 3]), ints([2, 3, 4], [3])], checked: [0], label: "int64 b"))
        return cases
    }

    func unaryCases() -> [GradientCase] {
        func u(_ op: String, _ x: DenseTensor, opset: Int = 17, _ attributes: [Attribute] = [], label: String = "") -> GradientCase {
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
            u("Gelu", floats(shape), opset: 20), u("Gelu", floats(shape), opset: 20, [.string("approximate", "tanh")], label: "tanh"),
            u("Sqrt", floats(shape, 0.5, 3)), u("Exp", floats(shape)), u("Neg", floats(shape)),
            u("Abs", floats(shape, avoiding: [0])), u("Reciprocal", floats(shape, 0.5, 2)),
            u("Clip", floats(shape, avoiding: [-0.5, 1.5]), opset: 6, [.float("min", -0.5), .float("max", 1.5)]),
            GradientCase(op: "Clip", opset: 13, inputs: [floats([4, 5], avoiding: [-1, 0.8]), scalar(-1), scalar(0.8)], checked: [0]),
            GradientCase(op: "Clip", opset: 13, inputs: [floats([4, 5], avoiding: [0.3]), nil, scalar(0.3)], checked: [0],
                         label: "max only"),
        ]
    }

    func poolCases() -> [GradientCase] {
        [
            GradientCase(op: "GlobalAveragePool", inputs: [floats([2, 3, 4, 5])], checked: [0]),
            GradientCase(op: "GlobalMaxPool", inputs: [distinct([2, 3, 4])], checked: [0]),
            GradientCase(op: "MaxPool", attributes: [.ints("kernel_shape", [3, 3]), .ints("strides", [2, 2]), .ints("pads", [1, 1, 1, 1])],
                         inputs: [distinct([1, 2, 5, 5])], checked: [0]),
            GradientCase(op: "MaxPool", attributes: [.ints("kernel_shape", [2, 2]), .int("ceil_mode", 1), .ints("strides", [2, 2]),
                                                     .ints("dilations", [1, 2])],
                         inputs: [distinct([1, 2, 5, 6])], checked: [0], label: "ceil, dilated"),
            GradientCase(op: "AveragePool", attributes: [.ints("kernel_shape", [3, 2]), .ints("strides", [2, 1]), .ints("pads", [1, 0, 1, 1]),
                                                         .int("count_include_pad", 1)],
                         inputs: [floats([2, 2, 5, 4])], checked: [0], label: "count_include_pad"),
            GradientCase(op: "AveragePool", attributes: [.ints("kernel_shape", [3]), .ints("pads", [1, 1]), .int("ceil_mode", 1),
                                                         .ints("strides", [2])],
                         inputs: [floats([2, 3, 6])], checked: [0], label: "1-D, ceil"),
        ]
    }

    func viewCases() -> [GradientCase] {
        [
            GradientCase(op: "Flatten", attributes: [.int("axis", -1)], inputs: [floats([2, 3, 4])], checked: [0]),
            GradientCase(op: "Reshape", opset: 14, inputs: [floats([2, 3, 4]), ints([4, -1])], checked: [0]),
            GradientCase(op: "Squeeze", opset: 13, inputs: [floats([3, 4, 1]), ints([-1])], checked: [0]),
            GradientCase(op: "Squeeze", opset: 11, attributes: [.ints("axes", [0])], inputs: [floats([1, 4])], checked: [0]),
            GradientCase(op: "Unsqueeze", opset: 13, inputs: [floats([3, 4]), ints([0, -1])], checked: [0]),
            GradientCase(op: "Unsqueeze", opset: 11, attributes: [.ints("axes", [1])], inputs: [floats([3, 4])], checked: [0]),
            GradientCase(op: "Identity", inputs: [floats([2, 3])], checked: [0]),
            GradientCase(op: "Dropout", opset: 13, inputs: [floats([2, 3])], checked: [0]),
        ]
    }

    func batchNormCases() -> [GradientCase] {
        [
            GradientCase(op: "BatchNormalization", opset: 15, attributes: [.float("epsilon", 1e-3)],
                         inputs: [floats([2, 3, 4, 2]), floats([3]), floats([3]), floats([3], -1, 1), floats([3], 0.5, 2)],
                         checked: [0, 1, 2, 3, 4]),
            GradientCase(op: "BatchNormalization", opset: 9,
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
