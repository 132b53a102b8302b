import Foundation

// Vector-Jacobian products of the elementwise ops, with numpy broadcasting: the gradient g has the broadcast output
// shape and each input's gradient is g's contribution summed over the axes that input was broadcast along.
//   Add  y = a + b:   ∂a = g,            ∂b = g
//   Sub  y = a − b:   ∂a = g,            ∂b = −g
//   Mul  y = a·b:     ∂a = g·b,          ∂b = g·a
//   Div  y = a/b:     ∂a = g/b,          ∂b = −g·a/b²
//   Pow  y = a^b:     ∂a = g·b·a^(b−1),  ∂b = g·a^b·ln a where a > 0, else 0
//   Where y = c ? a : b:  ∂a = g·[c],  ∂b = g·[¬c]
// Every function ADDS into its gradient outputs (the caller zeroes them); a nil output is not computed.

/// Rows of a broadcast walk: the output collapsed to [rows, length] (adjacent axes merged where every operand is
/// contiguous or broadcast across both), with each operand's element offset at the start of each row and its stride
/// along the row (0 when broadcast). Loops over a row are contiguous for the output and closure-free.
public struct BroadcastRows {
    public let rows: Int
    public let length: Int
    /// offsets[k][r]: where operand k's row r starts.
    public let offsets: [[Int]]
    /// rowStrides[k]: operand k's stride along a row.
    public let rowStrides: [Int]

    /// The axes merge as `BroadcastLayout` merges them (the output is broadcast with the operands, so it is theirs).
    public init(output out: [Int], operands: [[Int]]) throws {
        let layout = try BroadcastLayout(operands + [out])
        guard layout.shape == out else { throw KernelError("shapes \(operands) do not broadcast to \(out)") }
        let total = layout.count
        guard total > 0, let length = layout.dims.last else {
            rows = total > 0 ? 1 : 0
            self.length = total > 0 ? 1 : 0
            let empty: [Int] = total > 0 ? [0] : []
            offsets = operands.map { _ in empty }
            rowStrides = operands.map { _ in 0 }
            return
        }
        let rowCount = total / length
        self.length = length
        rows = rowCount
        rowStrides = operands.indices.map { layout.strides[$0].last! }
        var offs: [[Int]] = operands.map { _ in [Int](repeating: 0, count: rowCount) }
        var current = [Int](repeating: 0, count: operands.count + 1)
        for r in 0..<rowCount {
            layout.rowOffsets(r, &current)
            for k in operands.indices { offs[k][r] = current[k] }
        }
        offsets = offs
    }
}

public enum Backward {
    public enum BinaryOp: Sendable {
        case add, sub, mul, div, pow, max, prelu
        /// Whether the gradient reads the operands' values (add and sub need only their shapes).
        public var readsOperands: Bool { self != .add && self != .sub }
    }

    /// dst[0], dst[stride], … += t[0..<count]; a zero stride sums the row into dst[0].
    @inline(__always)
    static func accumulateRow(
        _ t: UnsafeMutablePointer<Float>, count: Int, into dst: UnsafeMutablePointer<Float>, stride: Int
    ) {
        if stride == 0 {
            var s: Float = 0
            for j in 0..<count { s += t[j] }
            dst[0] += s
        } else if stride == 1 {
            for j in 0..<count { dst[j] += t[j] }
        } else {
            for j in 0..<count { dst[j * stride] += t[j] }
        }
    }

    /// The gradients of elements `range` of a binary op whose operands are each full-size or one value (a value
    /// that takes no gradient when it is one); `da`/`db` are full-size.
    static func binaryRange(
        _ op: BinaryOp, a: UnsafeBufferPointer<Float>, aScalar: Bool, b: UnsafeBufferPointer<Float>, bScalar: Bool,
        gradient g: UnsafeBufferPointer<Float>, da: UnsafeMutableBufferPointer<Float>?,
        db: UnsafeMutableBufferPointer<Float>?, range: Range<Int>
    ) {
        let sa = aScalar ? 0 : 1, sb = bScalar ? 0 : 1
        switch op {
        case .add, .sub:
            if let da { for i in range { da[i] += g[i] } }
            if let db {
                if op == .add { for i in range { db[i] += g[i] } } else { for i in range { db[i] -= g[i] } }
            }
        case .mul:
            if let da { for i in range { da[i] += g[i] * b[i * sb] } }
            if let db { for i in range { db[i] += g[i] * a[i * sa] } }
        case .div:
            if let da { for i in range { da[i] += g[i] / b[i * sb] } }
            if let db {
                for i in range {
                    let bv = b[i * sb]
                    db[i] -= g[i] * a[i * sa] / (bv * bv)
                }
            }
        case .pow:
            for i in range {
                let av = a[i * sa], bv = b[i * sb]
                da?[i] += g[i] * bv * powf(av, bv - 1)
                db?[i] += av > 0 ? g[i] * powf(av, bv) * logf(av) : 0
            }
        case .max:
            for i in range {
                let first = a[i * sa] >= b[i * sb]
                da?[i] += first ? g[i] : 0
                db?[i] += first ? 0 : g[i]
            }
        case .prelu:
            for i in range {
                let av = a[i * sa], negative = av < 0
                da?[i] += negative ? g[i] * b[i * sb] : g[i]
                db?[i] += negative ? g[i] * av : 0
            }
        }
    }

    /// Gradients of a broadcasting binary op y = op(a, b) given g = ∂y.
    public static func binary(
        _ op: BinaryOp, a: UnsafeBufferPointer<Float>, aShape: [Int], b: UnsafeBufferPointer<Float>, bShape: [Int],
        gradient g: UnsafeBufferPointer<Float>, da: UnsafeMutableBufferPointer<Float>?,
        db: UnsafeMutableBufferPointer<Float>?
    ) throws {
        let out = try Elementwise.broadcastShape(aShape, bShape)
        let sized = !op.readsOperands || a.count == aShape.reduce(1, *) && b.count == bShape.reduce(1, *)
        guard g.count == out.reduce(1, *), sized,
            (da?.count ?? aShape.reduce(1, *)) == aShape.reduce(1, *), (db?.count ?? bShape.reduce(1, *)) == bShape.reduce(1, *)
        else { throw KernelError("\(op) gradient: buffers do not match shapes \(aShape), \(bShape)") }
        let total = out.reduce(1, *), aCount = aShape.reduce(1, *), bCount = bShape.reduce(1, *)
        if (aCount == total || aCount == 1 && da == nil) && (bCount == total || bCount == 1 && db == nil) {
            // No operand that takes a gradient is broadcast: one pass over the elements, on every core.
            parallelChunks(total, work: total) { r in
                binaryRange(op, a: a, aScalar: aCount == 1, b: b, bScalar: bCount == 1, gradient: g, da: da, db: db,
                            range: r)
            }
            return
        }
        let walk = try BroadcastRows(output: out, operands: [aShape, bShape])
        let len = walk.length
        let sa = walk.rowStrides[0]
        let sb = walk.rowStrides[1]
        let ta = UnsafeMutablePointer<Float>.allocate(capacity: max(len, 1))
        let tb = UnsafeMutablePointer<Float>.allocate(capacity: max(len, 1))
        defer {
            ta.deallocate()
            tb.deallocate()
        }
        for r in 0..<walk.rows {
            let ao = walk.offsets[0][r]
            let bo = walk.offsets[1][r]
            let o = r * len
            let gr = g.baseAddress! + o
            switch op {
            case .add, .sub:
                if da != nil { for j in 0..<len { ta[j] = gr[j] } }
                let sign: Float = op == .add ? 1 : -1
                if db != nil { for j in 0..<len { tb[j] = sign * gr[j] } }
            case .mul:
                if da != nil { for j in 0..<len { ta[j] = gr[j] * b[bo + j * sb] } }
                if db != nil { for j in 0..<len { tb[j] = gr[j] * a[ao + j * sa] } }
            case .div:
                if da != nil { for j in 0..<len { ta[j] = gr[j] / b[bo + j * sb] } }
                if db != nil {
                    for j in 0..<len {
                        let bv = b[bo + j * sb]
                        tb[j] = -gr[j] * a[ao + j * sa] / (bv * bv)
                    }
                }
            case .pow:
                for j in 0..<len {
                    let av = a[ao + j * sa]
                    let bv = b[bo + j * sb]
                    ta[j] = gr[j] * bv * powf(av, bv - 1)
                    tb[j] = av > 0 ? gr[j] * powf(av, bv) * logf(av) : 0
                }
            case .max:  // the gradient goes to the operand that won (a on a tie)
                for j in 0..<len {
                    let first = a[ao + j * sa] >= b[bo + j * sb]
                    ta[j] = first ? gr[j] : 0
                    tb[j] = first ? 0 : gr[j]
                }
            case .prelu:  // ∂x = g·(x < 0 ? slope : 1), ∂slope = g·(x < 0 ? x : 0)
                for j in 0..<len {
                    let av = a[ao + j * sa]
                    let negative = av < 0
                    ta[j] = negative ? gr[j] * b[bo + j * sb] : gr[j]
                    tb[j] = negative ? gr[j] * av : 0
                }
            }
            if let da { accumulateRow(ta, count: len, into: da.baseAddress! + ao, stride: sa) }
            if let db { accumulateRow(tb, count: len, into: db.baseAddress! + bo, stride: sb) }
        }
    }

    /// Sums `g` (of shape `out`) down to `shape` (numpy broadcasting) and adds it into `dst`: the gradient of a
    /// broadcast, and of Expand.
    public static func reduceToShape(
        _ g: UnsafeBufferPointer<Float>, _ out: [Int], into dst: UnsafeMutableBufferPointer<Float>, shape: [Int]
    ) throws {
        guard try Elementwise.broadcastShape(shape, out) == out, g.count == out.reduce(1, *),
            dst.count == shape.reduce(1, *)
        else { throw KernelError("a gradient of shape \(out) does not reduce to \(shape)") }
        let walk = try BroadcastRows(output: out, operands: [shape])
        let len = walk.length
        let s = walk.rowStrides[0]
        for r in 0..<walk.rows {
            accumulateRow(
                UnsafeMutablePointer(mutating: g.baseAddress! + r * len), count: len,
                into: dst.baseAddress! + walk.offsets[0][r], stride: s)
        }
    }

    /// dst += g (Identity, Reshape, Flatten, Squeeze, Unsqueeze, Dropout in inference: the data does not move).
    public static func accumulate(_ g: UnsafeBufferPointer<Float>, into dst: UnsafeMutableBufferPointer<Float>) {
        precondition(g.count == dst.count)
        for i in g.indices { dst[i] += g[i] }
    }

    /// Where(c, a, b): the gradient goes to a where c holds and to b elsewhere, each summed down to its shape.
    public static func whereSelect(
        condition: UnsafeBufferPointer<Bool>, conditionShape: [Int], aShape: [Int], bShape: [Int],
        gradient g: UnsafeBufferPointer<Float>, da: UnsafeMutableBufferPointer<Float>?,
        db: UnsafeMutableBufferPointer<Float>?
    ) throws {
        let out = try Elementwise.broadcastShape(try Elementwise.broadcastShape(conditionShape, aShape), bShape)
        guard g.count == out.reduce(1, *), condition.count == conditionShape.reduce(1, *),
            (da?.count ?? aShape.reduce(1, *)) == aShape.reduce(1, *),
            (db?.count ?? bShape.reduce(1, *)) == bShape.reduce(1, *)
        else { throw KernelError("Where gradient: buffers do not match \(conditionShape), \(aShape), \(bShape)") }
        let walk = try BroadcastRows(output: out, operands: [conditionShape, aShape, bShape])
        let len = walk.length
        let sc = walk.rowStrides[0]
        let sa = walk.rowStrides[1]
        let sb = walk.rowStrides[2]
        let ta = UnsafeMutablePointer<Float>.allocate(capacity: max(len, 1))
        let tb = UnsafeMutablePointer<Float>.allocate(capacity: max(len, 1))
        defer {
            ta.deallocate()
            tb.deallocate()
        }
        for r in 0..<walk.rows {
            let co = walk.offsets[0][r]
            let o = r * len
            for j in 0..<len {
                let keep = condition[co + j * sc]
                ta[j] = keep ? g[o + j] : 0
                tb[j] = keep ? 0 : g[o + j]
            }
            if let da { accumulateRow(ta, count: len, into: da.baseAddress! + walk.offsets[1][r], stride: sa) }
            if let db { accumulateRow(tb, count: len, into: db.baseAddress! + walk.offsets[2][r], stride: sb) }
        }
    }
}
