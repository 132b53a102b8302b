import CProtoSchemas

// Caffe layers that move, join or pass data (one rule each; the table is `CaffeLayerTable`):
//
//   Input   { shape }              → a graph input per top (float, the shape as given)
//   Concat  { axis | concat_dim }  → Concat(axis)
//   Flatten { axis, end_axis }     → Flatten(axis) when it flattens axis 1 to the end, else Reshape(static shape)
//   Reshape { shape, axis, num_axes } → Reshape(static shape; Caffe's 0 = copy, -1 = infer resolved here)
//   Softmax { axis = 1 }           → Softmax(axis) (opset 13: along that axis only, as Caffe)
//   Dropout                        → nothing: the top is the bottom (inference); Identity when it is a graph output
//   Split                          → nothing: every top is the bottom
//   Eltwise { SUM [coeff], PROD, MAX } → Add chain (Mul by a scalar where coeff ≠ 1) / Mul chain / Max chain

extension CaffeLayerRule {
    static let input = CaffeLayerRule(type: "Input", bottoms: 0...0, tops: 1...Int.max) { layer, b in
        var shapes: [[Int]] = []
        if let p = layer.params.input?.pointee {
            for i in 0..<p.n_shape {
                let s = p.shape[i]!.pointee
                shapes.append((0..<s.n_dim).map { Int(clamping: s.dim[$0]) })
            }
        }
        guard shapes.count == 1 || shapes.count == b.outputCount else {
            throw b.fail("input_param needs one shape, or one per top (\(b.outputCount)); it has \(shapes.count)")
        }
        for i in 0..<b.outputCount {
            let shape = shapes.count == 1 ? shapes[0] : shapes[i]
            guard !shape.isEmpty else { throw b.fail("input_param shape \(i) has no dim") }
            try b.addGraphInput(i, shape: b.checked(shape, "input '\(b.outputName(i))'"))
        }
    }

    static let concat = CaffeLayerRule(type: "Concat", bottoms: 1...Int.max, tops: 1...1) { layer, b in
        let p = layer.params.concat?.pointee
        let first = b.input(0).shape
        let raw = p.map { $0.has_axis == 0 && $0.has_concat_dim != 0 ? Int32(clamping: $0.concat_dim) : $0.axis } ?? 1
        let axis = try b.axis(raw, rank: first.count, "axis")
        var out = first
        for i in 1..<max(b.inputCount, 1) {
            let s = b.input(i).shape
            guard s.count == first.count, s.indices.allSatisfy({ $0 == axis || s[$0] == first[$0] }) else {
                throw b.fail("bottom \(i) has shape \(CaffeBuilder.show(s)), which does not fit "
                    + "\(CaffeBuilder.show(first)) outside axis \(axis)")
            }
            out[axis] += s[axis]
        }
        let shape = try b.checked(out, "the output")
        b.node("Concat", (0..<b.inputCount).map { b.input($0).name }, [.int("axis", Int64(axis))], output: b.outputName(0))
        b.setOutput(0, shape: shape)
    }

    static let flatten = CaffeLayerRule(type: "Flatten", bottoms: 1...1, tops: 1...1) { layer, b in
        let x = b.input(0)
        let p = layer.params.flatten?.pointee
        let start = try b.axis(p?.axis ?? 1, rank: x.shape.count, "axis")
        let end = try b.axis(p?.end_axis ?? -1, rank: x.shape.count, "end_axis")
        guard start <= end else { throw b.fail("axis \(start) is after end_axis \(end)") }
        let middle = x.shape[start...end].reduce(1, *)
        let shape = Array(x.shape[..<start]) + [middle] + Array(x.shape[(end + 1)...])
        if start == 1 && end == x.shape.count - 1 {
            b.node("Flatten", [x.name], [.int("axis", 1)], output: b.outputName(0))
        } else {
            let s = b.int64Constant("shape", shape)
            b.node("Reshape", [x.name, s], output: b.outputName(0))
        }
        b.setOutput(0, shape: shape)
    }

    static let reshape = CaffeLayerRule(type: "Reshape", bottoms: 1...1, tops: 1...1) { layer, b in
        let x = b.input(0)
        guard let p = layer.params.reshape?.pointee, let spec = p.shape?.pointee else {
            throw b.fail("reshape_param.shape is missing")
        }
        let dims = (0..<spec.n_dim).map { spec.dim[$0] }
        let rank = x.shape.count
        // Caffe: axis counts from the end when negative (-1: after the last axis); num_axes -1: to the end.
        let start = p.axis >= 0 ? Int(p.axis) : rank + 1 + Int(p.axis)
        guard start >= 0 && start <= rank else { throw b.fail("axis \(p.axis) is out of range for rank \(rank)") }
        guard p.num_axes >= -1 else { throw b.fail("num_axes \(p.num_axes) must be -1 or more") }
        let end = p.num_axes == -1 ? rank : start + Int(p.num_axes)
        guard end <= rank else { throw b.fail("axis \(p.axis) + num_axes \(p.num_axes) pass the input's rank \(rank)") }
        var middle: [Int] = []
        var inferred: Int?
        for (i, d) in dims.enumerated() {
            switch d {
            case 0:
                guard start + i < rank else {
                    throw b.fail("shape dim \(i) is 0 (copy) but the input has no axis \(start + i)")
                }
                middle.append(x.shape[start + i])
            case -1:
                guard inferred == nil else { throw b.fail("shape has more than one -1") }
                inferred = i
                middle.append(1)
            default:
                guard d > 0, let v = Int(exactly: d) else { throw b.fail("shape dim \(i) is \(d): use 0, -1 or a size") }
                middle.append(v)
            }
        }
        var shape = Array(x.shape[..<start]) + middle + Array(x.shape[end...])
        let total = x.shape.reduce(1, *)
        guard let known = CaffeBuilder.count(shape), known > 0 else { throw b.fail("the shape's element count overflows") }
        if let inferred {
            guard total % known == 0 else {
                throw b.fail("cannot infer the -1: \(total) elements do not divide by \(known)")
            }
            shape[start + inferred] = total / known
        } else if known != total {
            throw b.fail("shape \(CaffeBuilder.show(shape)) holds \(known) elements, the input "
                + "\(CaffeBuilder.show(x.shape)) has \(total)")
        }
        let s = b.int64Constant("shape", shape)
        b.node("Reshape", [x.name, s], output: b.outputName(0))
        b.setOutput(0, shape: shape)
    }

    static let softmax = CaffeLayerRule(type: "Softmax", bottoms: 1...1, tops: 1...1) { layer, b in
        let x = b.input(0)
        let axis = try b.axis(layer.params.softmax?.pointee.axis ?? 1, rank: x.shape.count, "axis")
        b.node("Softmax", [x.name], [.int("axis", Int64(axis))], output: b.outputName(0))
        b.setOutput(0, shape: x.shape)
    }

    static let dropout = CaffeLayerRule(type: "Dropout", bottoms: 1...1, tops: 1...1) { _, b in
        b.alias(0, to: b.input(0))
    }

    static let split = CaffeLayerRule(type: "Split", bottoms: 1...1, tops: 1...Int.max) { _, b in
        for i in 0..<b.outputCount { b.alias(i, to: b.input(0)) }
    }

    static let eltwise = CaffeLayerRule(type: "Eltwise", bottoms: 2...Int.max, tops: 1...1) { layer, b in
        let x = b.input(0)
        for i in 1..<b.inputCount where b.input(i).shape != x.shape {
            throw b.fail("bottom \(i) has shape \(CaffeBuilder.show(b.input(i).shape)), bottom 0 "
                + "\(CaffeBuilder.show(x.shape)): Eltwise needs equal shapes")
        }
        let p = layer.params.eltwise?.pointee
        let coeffs = p.map { Array(UnsafeBufferPointer(start: $0.coeff, count: $0.n_coeff)) } ?? []
        let operation = p?.operation ?? CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__SUM
        var terms = (0..<b.inputCount).map { b.input($0).name }
        let op: String
        switch operation {
        case CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__SUM:
            op = "Add"
            guard coeffs.isEmpty || coeffs.count == b.inputCount else {
                throw b.fail("has \(coeffs.count) coeff for \(b.inputCount) bottoms (give none or one per bottom)")
            }
            for (i, c) in coeffs.enumerated() where c != 1 {
                let k = b.constant("coeff\(i)", dims: [], [c])
                let scaled = b.temporary("coeff\(i)")
                b.node("Mul", [terms[i], k], output: scaled, part: "coeff\(i)")
                terms[i] = scaled
            }
        case CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__PROD, CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__MAX:
            guard coeffs.isEmpty else { throw b.fail("coeff is only for the SUM operation") }
            op = operation == CAFFE__ELTWISE_PARAMETER__ELTWISE_OP__MAX ? "Max" : "Mul"
        default:
            throw b.fail("operation \(operation.rawValue) is not SUM, PROD or MAX")
        }
        // A chain of binary nodes; the last one bears the layer's name and writes the top.
        var acc = terms[0]
        for i in 1..<terms.count {
            let last = i == terms.count - 1
            let out = last ? b.outputName(0) : b.temporary("\(op.lowercased())\(i)")
            b.node(op, [acc, terms[i]], output: out, part: last ? nil : "\(op.lowercased())\(i)")
            acc = out
        }
        b.setOutput(0, shape: x.shape)
    }
}
