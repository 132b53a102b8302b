import CProtoSchemas

// Caffe's weighted layers (one rule each; the table is `CaffeLayerTable`):
//
//   Convolution   { num_output, kernel, stride, pad, dilation, group, bias_term }
//       → Conv(x, W[O, C/g, k…], b[O]; kernel_shape, strides, pads, dilations, group) (depthwise: group = C)
//   Deconvolution { the same }
//       → ConvTranspose(x, W[C, O/g, k…], b[O]; …)
//   InnerProduct  { num_output, axis = 1, transpose, bias_term }
//       → axis 1: [Flatten(axis 1) when the input has rank > 2 →] Gemm(x, W, b; transB = !transpose)
//       → axis > 1: Reshape(… , K) → MatMul(x, Wᵀ) [→ Add(b)]
//
// Blobs: 0 the weight, 1 the bias (when bias_term); their shapes are checked against num_output, the input's
// channels and the kernel before anything is built.

/// Kernel, stride, pad and dilation of a Caffe convolution, as Caffe reads its repeated / _h _w fields.
struct CaffeConvGeometry {
    var kernel: [Int]
    var stride: [Int]
    var pad: [Int]
    var dilation: [Int]

    init(_ p: Caffe__ConvolutionParameter, spatial n: Int, _ b: CaffeBuilder) throws {
        func values(_ field: String, _ v: UnsafeMutablePointer<UInt32>?, _ count: Int, h: UInt32?, w: UInt32?,
                    default d: Int?) throws -> [Int] {
            if h != nil || w != nil {
                guard n == 2, count == 0, let h, let w else {
                    throw b.fail("\(field)_h and \(field)_w go together, on a 2-D input, without \(field)")
                }
                return [Int(h), Int(w)]
            }
            switch count {
            case 0:
                guard let d else { throw b.fail("\(field) is missing") }
                return Array(repeating: d, count: n)
            case 1: return Array(repeating: Int(v![0]), count: n)
            case n: return (0..<n).map { Int(v![$0]) }
            default: throw b.fail("\(field) has \(count) values for \(n) spatial axes (give 1 or \(n))")
            }
        }
        kernel = try values("kernel_size", p.kernel_size, p.n_kernel_size, h: p.has_kernel_h != 0 ? p.kernel_h : nil,
                            w: p.has_kernel_w != 0 ? p.kernel_w : nil, default: nil)
        stride = try values("stride", p.stride, p.n_stride, h: p.has_stride_h != 0 ? p.stride_h : nil,
                            w: p.has_stride_w != 0 ? p.stride_w : nil, default: 1)
        pad = try values("pad", p.pad, p.n_pad, h: p.has_pad_h != 0 ? p.pad_h : nil,
                         w: p.has_pad_w != 0 ? p.pad_w : nil, default: 0)
        dilation = try values("dilation", p.dilation, p.n_dilation, h: nil, w: nil, default: 1)
        guard kernel.allSatisfy({ $0 > 0 }), stride.allSatisfy({ $0 > 0 }), dilation.allSatisfy({ $0 > 0 }) else {
            throw b.fail("kernel_size, stride and dilation must be positive")
        }
        let limit = CaffeBuilder.parameterLimit
        guard (kernel + stride + pad + dilation).allSatisfy({ $0 <= limit }) else {
            throw b.fail("kernel_size, stride, pad and dilation must be at most \(limit)")
        }
    }

    var attributes: [Attribute] {
        [.ints("kernel_shape", kernel.map(Int64.init)), .ints("strides", stride.map(Int64.init)),
         .ints("pads", (pad + pad).map(Int64.init)), .ints("dilations", dilation.map(Int64.init))]
    }
}

extension CaffeLayerRule {
    static let convolution = CaffeLayerRule(type: "Convolution", bottoms: 1...1, tops: 1...1) { layer, b in
        try convolutionLike(layer, &b, transposed: false)
    }

    static let deconvolution = CaffeLayerRule(type: "Deconvolution", bottoms: 1...1, tops: 1...1) { layer, b in
        try convolutionLike(layer, &b, transposed: true)
    }

    static func convolutionLike(_ layer: CaffeLayer, _ b: inout CaffeBuilder, transposed: Bool) throws {
        var p = Caffe__ConvolutionParameter()
        caffe__convolution_parameter__init(&p)
        if let given = layer.params.convolution { p = given.pointee }
        let x = b.input(0)
        guard x.shape.count >= 3 else {
            throw b.fail("the input has shape \(CaffeBuilder.show(x.shape)); a convolution needs N, C and spatial axes")
        }
        guard p.axis == 1 else { throw b.fail("axis \(p.axis) is not supported (only the channel axis 1)") }
        let n = x.shape.count - 2
        let g = try CaffeConvGeometry(p, spatial: n, b)
        let channels = x.shape[1], outputs = Int(p.num_output), group = Int(p.group)
        guard outputs > 0 else { throw b.fail("num_output is missing or 0") }
        guard group > 0, channels % group == 0, outputs % group == 0 else {
            throw b.fail("group \(group) must divide the input channels (\(channels)) and num_output (\(outputs))")
        }
        var spatial: [Int] = []
        for i in 0..<n {
            let extent = g.dilation[i] * (g.kernel[i] - 1) + 1
            let size = x.shape[2 + i]
            let out = transposed ? try b.product(g.stride[i], size - 1) + extent - 2 * g.pad[i]
                : (size + 2 * g.pad[i] - extent) < 0 ? 0 : (size + 2 * g.pad[i] - extent) / g.stride[i] + 1
            guard out > 0 else {
                throw b.fail("spatial axis \(i) of size \(size) with kernel \(g.kernel[i]), pad \(g.pad[i]), stride "
                    + "\(g.stride[i]) and dilation \(g.dilation[i]) leaves no output")
            }
            spatial.append(out)
        }
        let shape = try b.checked([x.shape[0], outputs] + spatial, "the output")
        let weightShape = transposed ? [channels, outputs / group] + g.kernel : [outputs, channels / group] + g.kernel
        let w = try b.constant("weight", dims: weightShape, b.blob(0, expected: weightShape, "weight"))
        var inputs = [x.name, w]
        if p.bias_term != 0 {
            inputs.append(try b.constant("bias", dims: [outputs], b.blob(1, expected: [outputs], "bias")))
        }
        b.node(transposed ? "ConvTranspose" : "Conv", inputs, g.attributes + [.int("group", Int64(group))],
               output: b.outputName(0))
        b.setOutput(0, shape: shape)
    }

    static let innerProduct = CaffeLayerRule(type: "InnerProduct", bottoms: 1...1, tops: 1...1) { layer, b in
        var p = Caffe__InnerProductParameter()
        caffe__inner_product_parameter__init(&p)
        if let given = layer.params.innerProduct { p = given.pointee }
        let x = b.input(0)
        let axis = try b.axis(p.axis, rank: x.shape.count, "axis")
        guard axis > 0 else { throw b.fail("axis 0 would mix the batch into the features") }
        let k = x.shape[axis...].reduce(1, *), outputs = Int(p.num_output)
        guard outputs > 0 else { throw b.fail("num_output is missing or 0") }
        let transpose = p.transpose != 0
        let shape = try b.checked(Array(x.shape[..<axis]) + [outputs], "the output")
        let weight = try b.blob(0, expected: transpose ? [k, outputs] : [outputs, k], "weight")
        let bias = p.bias_term != 0 ? try b.blob(1, expected: [outputs], "bias") : nil
        if axis == 1 {
            var flat = x.name
            if x.shape.count > 2 {
                flat = b.temporary("flatten")
                b.node("Flatten", [x.name], [.int("axis", 1)], output: flat, part: "flatten")
            }
            let w = b.constant("weight", dims: transpose ? [k, outputs] : [outputs, k], weight)
            var inputs = [flat, w]
            if let bias { inputs.append(b.constant("bias", dims: [outputs], bias)) }
            b.node("Gemm", inputs, [.int("transB", transpose ? 0 : 1)], output: b.outputName(0))
        } else {
            let s = b.int64Constant("shape", Array(x.shape[..<axis]) + [k])
            let flat = b.temporary("reshape")
            b.node("Reshape", [x.name, s], output: flat, part: "reshape")
            // MatMul takes W as [K, O].
            var wKO = weight
            if !transpose {
                for r in 0..<outputs { for c in 0..<k { wKO[c * outputs + r] = weight[r * k + c] } }
            }
            let w = b.constant("weight", dims: [k, outputs], wKO)
            if let bias {
                let product = b.temporary("matmul")
                b.node("MatMul", [flat, w], output: product)
                b.node("Add", [product, b.constant("bias", dims: [outputs], bias)], output: b.outputName(0), part: "bias")
            } else {
                b.node("MatMul", [flat, w], output: b.outputName(0))
            }
        }
        b.setOutput(0, shape: shape)
    }
}
