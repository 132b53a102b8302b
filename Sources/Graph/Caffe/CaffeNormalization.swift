import CProtoSchemas

// Caffe's normalization layers (one rule each; the table is `CaffeLayerTable`):
//
//   BatchNorm { eps }, blobs mean, variance, factor
//       → BatchNormalization(x, scale = 1, B = 0, mean / factor, variance / factor; epsilon)  (factor 0: stats 0)
//   BatchNorm → Scale { bias_term } (the Scale the BatchNorm's only reader, on axis 1)
//       → one BatchNormalization with scale = γ, B = β (the BN+Scale pair Caffe nets use for batch norm; the
//         BatchNormalization keeps the BatchNorm's layer name and writes the Scale's top)
//   Scale { axis, num_axes, bias_term } alone, blobs γ [β]
//       → Mul(x, γ) [→ Add(β)], γ and β shaped to broadcast over the axes after axis + num_axes
//   LRN { ACROSS_CHANNELS, local_size, alpha, beta, k } → LRN(size, alpha, beta, bias = k)
//   LRN { WITHIN_CHANNEL }  → Mul(x, x) → AveragePool(size², pad (size−1)/2) → Mul(alpha) → Add(1)
//                             → Pow(−beta) → Mul(x, ·)   (Caffe's own composition; k plays no part there)

extension CaffeLayerRule {
    static let batchNorm = CaffeLayerRule(type: "BatchNorm", bottoms: 1...1, tops: 1...1) { layer, b in
        var p = Caffe__BatchNormParameter()
        caffe__batch_norm_parameter__init(&p)
        if let given = layer.params.batchNorm { p = given.pointee }
        let x = b.input(0)
        guard x.shape.count >= 2 else { throw b.fail("the input has shape \(CaffeBuilder.show(x.shape)); no channel axis") }
        let c = x.shape[1]
        let mean = try b.blob(0, expected: [c], "mean")
        let variance = try b.blob(1, expected: [c], "variance")
        let factor = try b.blob(2, expected: [1], "moving-average factor")[0]
        let s: Float = factor == 0 ? 0 : 1 / factor
        let inputs = [
            x.name, b.constant("scale", dims: [c], Array(repeating: 1, count: c)),
            b.constant("bias", dims: [c], Array(repeating: 0, count: c)),
            b.constant("mean", dims: [c], mean.map { $0 * s }), b.constant("variance", dims: [c], variance.map { $0 * s }),
        ]
        let id = b.node("BatchNormalization", inputs, [.float("epsilon", p.eps)], output: b.outputName(0))
        b.setOutput(0, shape: x.shape)
        if let reader = b.soleReader(ofOutput: 0), reader.type == "Scale", reader.bottoms.count == 1 {
            b.foldableBatchNorm[b.outputID(0)] = id
        }
    }

    static let scale = CaffeLayerRule(type: "Scale", bottoms: 1...1, tops: 1...1) { layer, b in
        var p = Caffe__ScaleParameter()
        caffe__scale_parameter__init(&p)
        if let given = layer.params.scale { p = given.pointee }
        let x = b.input(0)
        let rank = x.shape.count
        let axis = try b.axis(p.axis, rank: rank, "axis")
        guard p.num_axes >= -1, p.num_axes == -1 || axis + Int(p.num_axes) <= rank else {
            throw b.fail("num_axes \(p.num_axes) does not fit an input of rank \(rank) from axis \(axis)")
        }
        let end = p.num_axes == -1 ? rank : axis + Int(p.num_axes)
        let shape = Array(x.shape[axis..<end])
        let gamma = try b.blob(0, expected: shape, "scale")
        let beta = p.bias_term != 0 ? try b.blob(1, expected: shape, "bias") : nil
        if let bn = b.foldableBatchNorm[b.inputID(0)], axis == 1, end == 2 {
            // Fold into the BatchNormalization that the BatchNorm layer wrote: its scale and bias become γ and β.
            let n = b.graph[bn]
            b.graph.setInitializer(Tensor(name: n.inputs[1], dims: [Int64(shape[0])], floats: gamma))
            if let beta { b.graph.setInitializer(Tensor(name: n.inputs[2], dims: [Int64(shape[0])], floats: beta)) }
            let output = b.outputName(0)
            b.graph.updateNode(bn) { $0.outputs = [output] }
            b.values[b.inputID(0)] = nil  // the BatchNorm's own top no longer exists
            b.setOutput(0, shape: x.shape)
            return
        }
        let broadcast = shape + Array(repeating: 1, count: rank - end)
        let product = beta == nil ? b.outputName(0) : b.temporary("mul")
        b.node("Mul", [x.name, b.constant("scale", dims: broadcast, gamma)], output: product,
               part: beta == nil ? nil : "mul")
        if let beta {
            b.node("Add", [product, b.constant("bias", dims: broadcast, beta)], output: b.outputName(0))
        }
        b.setOutput(0, shape: x.shape)
    }

    static let lrn = CaffeLayerRule(type: "LRN", bottoms: 1...1, tops: 1...1) { layer, b in
        var p = Caffe__LRNParameter()
        caffe__lrnparameter__init(&p)
        if let given = layer.params.lrn { p = given.pointee }
        let x = b.input(0)
        guard x.shape.count == 4 else { throw b.fail("the input has shape \(CaffeBuilder.show(x.shape)); LRN needs 4-D") }
        let size = Int(p.local_size)
        guard size % 2 == 1, size <= CaffeBuilder.parameterLimit else {
            throw b.fail("local_size \(p.local_size) must be odd (and at most \(CaffeBuilder.parameterLimit))")
        }
        if p.norm_region == CAFFE__LRNPARAMETER__NORM_REGION__ACROSS_CHANNELS {
            b.node("LRN", [x.name], [.int("size", Int64(size)), .float("alpha", p.alpha), .float("beta", p.beta),
                                      .float("bias", p.k)], output: b.outputName(0))
        } else {
            let square = b.temporary("square"), pooled = b.temporary("pool"), scaled = b.temporary("alpha")
            let shifted = b.temporary("shift"), powered = b.temporary("pow")
            let half = Int64((size - 1) / 2)
            b.node("Mul", [x.name, x.name], output: square, part: "square")
            b.node("AveragePool", [square], [.ints("kernel_shape", [Int64(size), Int64(size)]), .ints("strides", [1, 1]),
                                             .ints("pads", [half, half, half, half]), .int("count_include_pad", 1)],
                   output: pooled, part: "pool")
            b.node("Mul", [pooled, b.constant("alpha", dims: [], [p.alpha])], output: scaled, part: "alpha")
            b.node("Add", [scaled, b.constant("one", dims: [], [1])], output: shifted, part: "shift")
            b.node("Pow", [shifted, b.constant("power", dims: [], [-p.beta])], output: powered, part: "pow")
            b.node("Mul", [x.name, powered], output: b.outputName(0))
        }
        b.setOutput(0, shape: x.shape)
    }
}
