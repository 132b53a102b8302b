import CProtoSchemas

// Caffe's Pooling layer (its rule in `CaffeLayerTable`):
//
//   Pooling { global_pooling, MAX }          → GlobalMaxPool
//   Pooling { global_pooling, AVE }          → GlobalAveragePool
//   Pooling { MAX, kernel, stride, pad }     → MaxPool(pads = pad, pad + extra)
//   Pooling { AVE, kernel, stride, pad = 0 } → AveragePool(pads = 0, extra; count_include_pad = 0)
//   Pooling { AVE, pad > 0, extra = 0 }      → AveragePool(pads = pad; count_include_pad = 1)
//   Pooling { AVE, pad > 0, extra > 0 }      → Pad(pad, zeros) → AveragePool(pads = 0, extra; count_include_pad = 0)
//
// Caffe's output size: ceil((H + 2·pad − k) / s) + 1 (floor with round_mode: FLOOR), less one when the last window
// would start in the padding (pad > 0 and (out − 1)·s ≥ H + pad). `extra` is the padding at the end that makes
// ONNX's floor rounding give that size. Caffe's average divides by the window clipped to the padded input
// [−pad, H + pad), never to the extra: that is what the three AveragePool forms reproduce.

extension CaffeLayerRule {
    static let pooling = CaffeLayerRule(type: "Pooling", bottoms: 1...1, tops: 1...1) { layer, b in
        var p = Caffe__PoolingParameter()
        caffe__pooling_parameter__init(&p)
        if let given = layer.params.pooling { p = given.pointee }
        let x = b.input(0)
        guard x.shape.count == 4 else {
            throw b.fail("the input has shape \(CaffeBuilder.show(x.shape)); Caffe pools 4-D (N, C, H, W) blobs")
        }
        let isMax: Bool
        switch p.pool {
        case CAFFE__POOLING_PARAMETER__POOL_METHOD__MAX: isMax = true
        case CAFFE__POOLING_PARAMETER__POOL_METHOD__AVE: isMax = false
        default: throw b.fail("pool method STOCHASTIC is not supported (only MAX and AVE)")
        }
        let hw = [x.shape[2], x.shape[3]]
        if p.global_pooling != 0 {
            guard p.has_kernel_size == 0 && p.has_kernel_h == 0 && p.has_kernel_w == 0 else {
                throw b.fail("global_pooling takes no kernel_size")
            }
            guard p.pad == 0 && p.pad_h == 0 && p.pad_w == 0 else { throw b.fail("global_pooling takes no pad") }
            b.node(isMax ? "GlobalMaxPool" : "GlobalAveragePool", [x.name], output: b.outputName(0))
            b.setOutput(0, shape: [x.shape[0], x.shape[1], 1, 1])
            return
        }
        func pair(_ field: String, _ one: UInt32, _ hasOne: Bool, _ h: UInt32, _ hasH: Bool, _ w: UInt32, _ hasW: Bool,
                  default d: Int?) throws -> [Int] {
            if hasH || hasW {
                guard hasH && hasW && !hasOne else {
                    throw b.fail("\(field)_h and \(field)_w go together, without \(field)")
                }
                return [Int(h), Int(w)]
            }
            if hasOne { return [Int(one), Int(one)] }
            guard let d else { throw b.fail("\(field) is missing") }
            return [d, d]
        }
        let kernel = try pair("kernel_size", p.kernel_size, p.has_kernel_size != 0, p.kernel_h, p.has_kernel_h != 0,
                              p.kernel_w, p.has_kernel_w != 0, default: nil)
        let stride = try pair("stride", p.stride, p.has_stride != 0, p.stride_h, p.has_stride_h != 0,
                              p.stride_w, p.has_stride_w != 0, default: 1)
        let pad = try pair("pad", p.pad, p.has_pad != 0, p.pad_h, p.has_pad_h != 0, p.pad_w, p.has_pad_w != 0,
                           default: 0)
        guard kernel.allSatisfy({ $0 > 0 }), stride.allSatisfy({ $0 > 0 }) else {
            throw b.fail("kernel_size and stride must be positive")
        }
        guard (kernel + stride + pad).allSatisfy({ $0 <= CaffeBuilder.parameterLimit }) else {
            throw b.fail("kernel_size, stride and pad must be at most \(CaffeBuilder.parameterLimit)")
        }
        guard pad[0] < kernel[0] && pad[1] < kernel[1] else { throw b.fail("pad must be smaller than the kernel") }
        let ceilMode = p.round_mode != CAFFE__POOLING_PARAMETER__ROUND_MODE__FLOOR
        var out = [0, 0], extra = [0, 0]
        for i in 0..<2 {
            let span = hw[i] + 2 * pad[i] - kernel[i]
            guard span >= 0 else {
                throw b.fail("the kernel \(kernel[i]) is larger than the padded input (\(hw[i]) + 2·\(pad[i]))")
            }
            out[i] = (ceilMode ? (span + stride[i] - 1) / stride[i] : span / stride[i]) + 1
            if pad[i] > 0 && (out[i] - 1) * stride[i] >= hw[i] + pad[i] { out[i] -= 1 }
            extra[i] = max(0, (out[i] - 1) * stride[i] + kernel[i] - (hw[i] + 2 * pad[i]))
        }
        var attributes: [Attribute] = [.ints("kernel_shape", kernel.map(Int64.init)),
                                        .ints("strides", stride.map(Int64.init))]
        let shape = [x.shape[0], x.shape[1], out[0], out[1]]
        let hasPad = pad != [0, 0], hasExtra = extra != [0, 0]
        if isMax {
            attributes.append(.ints("pads", [pad[0], pad[1], pad[0] + extra[0], pad[1] + extra[1]].map(Int64.init)))
            b.node("MaxPool", [x.name], attributes, output: b.outputName(0))
        } else if hasPad && !hasExtra {
            attributes.append(.ints("pads", (pad + pad).map(Int64.init)))
            attributes.append(.int("count_include_pad", 1))
            b.node("AveragePool", [x.name], attributes, output: b.outputName(0))
        } else {
            var source = x.name
            if hasPad {
                let pads = b.int64Constant("pads", [0, 0, pad[0], pad[1], 0, 0, pad[0], pad[1]])
                source = b.temporary("pad")
                b.node("Pad", [x.name, pads], output: source, part: "pad")
            }
            attributes.append(.ints("pads", [0, 0, Int64(extra[0]), Int64(extra[1])]))
            attributes.append(.int("count_include_pad", 0))
            b.node("AveragePool", [source], attributes, output: b.outputName(0))
        }
        b.setOutput(0, shape: shape)
    }
}
