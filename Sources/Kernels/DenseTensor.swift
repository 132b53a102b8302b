/// A dense row-major value of the executor: a shape and contiguous elements (float32, int64 or bool).
public struct DenseTensor: Sendable {
    public enum Elements: Sendable {
        case float([Float])
        /// Float elements borrowed from memory another object owns (a model's initializer): a view, never copied.
        case floatView(FloatView)
        case int64([Int64])
        case bool([Bool])
    }
    public var shape: [Int]
    public var elements: Elements

    public init(shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not hold \(floats.count) values")
        self.shape = shape
        elements = .float(floats)
    }
    public init(shape: [Int], ints: [Int64]) {
        precondition(shape.reduce(1, *) == ints.count, "shape \(shape) does not hold \(ints.count) values")
        self.shape = shape
        elements = .int64(ints)
    }
    public init(shape: [Int], bools: [Bool]) {
        precondition(shape.reduce(1, *) == bools.count, "shape \(shape) does not hold \(bools.count) values")
        self.shape = shape
        elements = .bool(bools)
    }

    /// A view of `view.count` floats (the caller has checked the count against the shape).
    public init(shape: [Int], view: FloatView) {
        self.shape = shape
        elements = .floatView(view)
    }

    /// A value of `shape` whose elements a backward step does not read (the tape did not keep them): its shape and
    /// count stand for the value, its elements are empty.
    public init(placeholderOf shape: [Int]) {
        self.shape = shape
        elements = .float([])
    }

    public var count: Int { shape.reduce(1, *) }

    /// The float elements for reading, without a copy for float tensors and views.
    public func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        switch elements {
        case .float(let f): return try f.withUnsafeBufferPointer(body)
        case .floatView(let v): return try body(UnsafeBufferPointer(start: v.base, count: v.count))
        default: return try floats.withUnsafeBufferPointer(body)
        }
    }

    public var floats: [Float] {
        switch elements {
        case .float(let f): return f
        case .floatView(let v): return Array(UnsafeBufferPointer(start: v.base, count: v.count))
        case .int64(let i): return i.map(Float.init)
        case .bool(let b): return b.map { $0 ? 1 : 0 }
        }
    }
    public var ints: [Int64] {
        switch elements {
        case .int64(let i): return i
        case .float(let f): return f.map { Int64(clampingFloat: $0) }
        case .floatView(let v): return UnsafeBufferPointer(start: v.base, count: v.count).map { Int64(clampingFloat: $0) }
        case .bool(let b): return b.map { $0 ? 1 : 0 }
        }
    }
    public var isFloat: Bool {
        switch elements {
        case .float, .floatView: return true
        default: return false
        }
    }
}

/// Floats another object owns, kept alive by holding it.
public struct FloatView: @unchecked Sendable {
    public let owner: AnyObject
    public let base: UnsafePointer<Float>
    public let count: Int
    public init(owner: AnyObject, base: UnsafePointer<Float>, count: Int) {
        self.owner = owner
        self.base = base
        self.count = count
    }
}

/// Row-major strides of a shape.
@inlinable
public func stridesOf(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i] = s
        s *= shape[i]
    }
    return strides
}

/// Normalizes a possibly negative axis.
@inlinable
public func normalizedAxis(_ axis: Int, rank: Int) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < max(rank, 1) else { throw KernelError("axis \(axis) is out of range for rank \(rank)") }
    return a
}

extension Int64 {
    /// Float → Int64 truncating toward zero, NaN as 0 and out-of-range values at the nearest bound (never a trap).
    @inlinable
    public init(clampingFloat f: Float) {
        if f.isNaN {
            self = 0
        } else if f >= 9.2233715e18 {
            self = .max
        } else if f <= -9.2233715e18 {
            self = .min
        } else {
            self = Int64(f)
        }
    }
}

/// Size arithmetic on numbers a model gives (dims, attributes, constant inputs): an overflow is a `KernelError`
/// naming `what`, never a trap.
public enum Checked {
    public static func sum(_ terms: Int..., what: String) throws -> Int { try sum(terms, what: what) }
    public static func product(_ factors: Int..., what: String) throws -> Int { try product(factors, what: what) }

    public static func sum(_ terms: [Int], what: String) throws -> Int {
        var total = 0
        for t in terms {
            let (s, overflow) = total.addingReportingOverflow(t)
            guard !overflow else {
                throw KernelError("\(what) overflows (\(terms.map(String.init).joined(separator: " + ")))")
            }
            total = s
        }
        return total
    }

    public static func product(_ factors: [Int], what: String) throws -> Int {
        var total = 1
        for f in factors {
            let (p, overflow) = total.multipliedReportingOverflow(by: f)
            guard !overflow else {
                throw KernelError("\(what) overflows (\(factors.map(String.init).joined(separator: " × ")))")
            }
            total = p
        }
        return total
    }
}
