import Foundation
import XCTest

import CProtoSchemas
@testable import Graph

/// The Caffe reader on nets written here as prototxt text (blobs inline, as a prototxt may carry them): the table,
/// naming, Caffe's shape rules and its errors. The numbers are checked against OpenCV in tests/python/test_caffe.py.
final class CaffeTests: XCTestCase {
    func convert(_ text: String) throws -> Model {
        try CaffeModel.decode(prototxt: text, caffemodel: nil, file: "t.prototxt")
    }

    func blob(_ dims: [Int], _ value: Float = 0.5) -> String {
        let count = dims.reduce(1, *)
        let data = (0..<count).map { _ in "data: \(value)" }.joined(separator: " ")
        return "blobs { shape { \(dims.map { "dim: \($0)" }.joined(separator: " ")) } \(data) }"
    }

    func input(_ dims: [Int]) -> String {
        "layer { name: \"in\" type: \"Input\" top: \"data\" input_param { shape { "
            + dims.map { "dim: \($0)" }.joined(separator: " ") + " } } }\n"
    }

    func assertCaffeError(_ text: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try convert(text), file: file, line: line) { error in
            XCTAssert(error is CaffeError || error is TextFormatErrors, "untyped: \(error)", file: file, line: line)
            XCTAssert(String(describing: error).contains(fragment), "\(error)", file: file, line: line)
        }
    }

    func testTheTableHasEveryLayerTheIssueNames() {
        let types = ["Input", "Convolution", "Deconvolution", "InnerProduct", "Pooling", "BatchNorm", "Scale", "ReLU",
                     "PReLU", "Sigmoid", "TanH", "Eltwise", "Concat", "Flatten", "Reshape", "Softmax", "Dropout",
                     "Power", "Split", "LRN"]
        XCTAssertEqual(Set(CaffeLayerTable.standard.keys), Set(types))
        XCTAssertEqual(CaffeLayerTable.rules.count, types.count, "one rule per type")
    }

    func testInPlaceNamesAndTheBatchNormScaleFold() throws {
        let model = try convert(input([1, 2, 4, 4]) + """
            layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
                    convolution_param { num_output: 2 kernel_size: 1 } \(blob([2, 2, 1, 1])) \(blob([2])) }
            layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" \(blob([2], 2)) \(blob([2], 4))
                    \(blob([1], 2)) }
            layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true }
                    \(blob([2], 3)) \(blob([2], 1)) }
            layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
            """)
        let g = model.graph
        XCTAssertEqual(g.nodes.map(\.op), ["Conv", "BatchNormalization", "Relu"])
        XCTAssertEqual(g.nodes.map { $0.name ?? "" }, ["conv", "bn", "relu"])
        XCTAssertEqual(g.nodes.map(\.outputs), [["conv/conv"], ["conv/sc"], ["conv"]])
        XCTAssertEqual(g.outputs.map(\.name), ["conv"])
        // Stats divided by the factor (2); γ and β from the Scale.
        XCTAssertEqual(g.initializers["bn.mean"]?.floatArray, [1, 1])
        XCTAssertEqual(g.initializers["bn.variance"]?.floatArray, [2, 2])
        XCTAssertEqual(g.initializers["bn.scale"]?.floatArray, [3, 3])
        XCTAssertEqual(g.initializers["bn.bias"]?.floatArray, [1, 1])
        XCTAssertNoThrow(try g.checkReferences())
    }

    func testPoolingUsesCaffesRounding() throws {
        // H = 1, W = 3, kernel 2, stride 2, pad 1: ceil gives 2 and 3, and both last windows would start in the
        // padding, so Caffe drops them: 1 × 2.
        let model = try convert(input([1, 1, 1, 3]) + """
            layer { name: "p" type: "Pooling" bottom: "data" top: "p"
                    pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 } }
            """)
        XCTAssertEqual(model.graph.outputs.first?.type, .tensor(.float, [1, 1, 1, 2]))
        XCTAssertEqual(model.graph.nodes.first?.ints("pads"), [1, 1, 1, 1])
    }

    func testV1TypeNames() {
        XCTAssertEqual(CaffeNetFile.v1TypeName(CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__CONVOLUTION), "Convolution")
        XCTAssertEqual(CaffeNetFile.v1TypeName(CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__INNER_PRODUCT), "InnerProduct")
        XCTAssertEqual(CaffeNetFile.v1TypeName(CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__RELU), "ReLU")
        XCTAssertEqual(CaffeNetFile.v1TypeName(CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__TANH), "TanH")
        XCTAssertEqual(CaffeNetFile.v1TypeName(CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__SOFTMAX_LOSS), "SoftmaxWithLoss")
    }

    func testHostileNetsAreTypedErrors() {
        assertCaffeError(input([1, 3, 1 << 31, 1 << 31, 1 << 31]), "every dimension must be positive")
        assertCaffeError(input([1, 3, 4, 4]) + "layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"r\" }",
                         "t.prototxt:2:1: layer 'r' (ReLU): bottom 'x' is not produced")
        assertCaffeError(input([1, 3, 4, 4]) + "layer { name: \"pb\" type: \"PriorBox\" bottom: \"data\" top: \"pb\" }",
                         "t.prototxt:2:1: layer 'pb' (PriorBox): layer type 'PriorBox' is not supported")
        assertCaffeError(input([1, 3, 4, 4]) + "layer { name: \"n\" type: \"ReLU\" norm_param { } }",
                         "t.prototxt:2:32: unknown field 'norm_param'")
        // A blob shape whose product overflows, and one whose values disagree with its shape.
        assertCaffeError(input([1, 1, 4, 4]) + """
            layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 1
                    kernel_size: 1 bias_term: false } blobs { shape { dim: 4294967296 dim: 4294967296 } data: 1 } }
            """, "overflow")
        assertCaffeError(input([1, 1, 4, 4]) + """
            layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2
                    kernel_size: 1 bias_term: false } \(blob([1, 1, 1, 1])) }
            """, "the layer needs 2x1x1x1")
        // Sizes computed from huge parameters never trap.
        assertCaffeError(input([1, 1, 4, 4]) + """
            layer { name: "d" type: "Deconvolution" bottom: "data" top: "d" convolution_param { num_output: 1
                    kernel_size: 4000000000 stride: 4000000000 } }
            """, "at most")
        assertCaffeError(input([1, 1, 4, 4]) + """
            layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { kernel_size: 9 } }
            """, "larger than the padded input")
    }
}
