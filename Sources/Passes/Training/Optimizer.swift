import Foundation

// The parameter store and its optimizer: every trainable value (weights, biases, affine parameters, activation clamps,
// WtsULQ clips) in one contiguous float32 array, parameter after parameter; the optimizer's moments and a step's
// gradients (`Gradients`) laid out the same way, so the update is one loop over the buffers and summing the
// gradients over ranks one all-reduce.
//
//   SGD      v = μ·v + g;  p −= lr·v                                   (μ = 0.9)
//   Adam     m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;  p −= lr·m̂/(√v̂ + ε)   (β1 0.9, β2 0.999, ε 1e-8, bias-corrected)
//   lr(t)    cosine from the base rate to 0 over the run: lr·½(1 + cos(π·t/T))

public enum OptimizerKind: String, Sendable, Codable, CaseIterable {
    case sgd, adam
}

public struct ParameterStore: Sendable {
    public internal(set) var names: [String] = []
    public internal(set) var shapes: [[Int]] = []
    /// Where each parameter starts in `values`, and (last) where the last one ends.
    public internal(set) var offsets: [Int] = [0]
    /// Every parameter's values, one after another.
    public internal(set) var values: [Float] = []
    /// Momentum (SGD) or first moment (Adam), and Adam's second moment, laid out as `values`.
    var first: [Float] = []
    var second: [Float] = []
    /// Updates taken so far.
    public internal(set) var step = 0
    private var byName: [String: Int] = [:]

    public init() {}

    public var count: Int { names.count }

    /// The elements of parameter `p` in `values`.
    public func range(_ p: Int) -> Range<Int> { offsets[p]..<offsets[p + 1] }

    /// Parameter `p`'s values (a copy); setting it takes an array of the same size.
    public subscript(p: Int) -> [Float] {
        get { Array(values[range(p)]) }
        set {
            precondition(newValue.count == range(p).count, "parameter \(names[p]) holds \(range(p).count) values")
            values.replaceSubrange(range(p), with: newValue)
        }
    }

    /// Element `i` of parameter `p`.
    public subscript(p: Int, i: Int) -> Float {
        get { values[offsets[p] + i] }
        set { values[offsets[p] + i] = newValue }
    }

    /// Adds a parameter; returns its index.
    @discardableResult
    mutating func add(_ name: String, shape: [Int], values v: [Float]) -> Int {
        byName[name] = names.count
        names.append(name)
        shapes.append(shape)
        values.append(contentsOf: v)
        offsets.append(values.count)
        first.append(contentsOf: repeatElement(0, count: v.count))
        second.append(contentsOf: repeatElement(0, count: v.count))
        return names.count - 1
    }

    public func index(of name: String) -> Int? { byName[name] }

    /// Reads parameter `p` in place.
    func withValues<R>(_ p: Int, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try values.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[range(p)])) }
    }

    /// Writes parameter `p` in place.
    mutating func withMutableValues<R>(_ p: Int, _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        let r = range(p)
        return try values.withUnsafeMutableBufferPointer { try body(UnsafeMutableBufferPointer(rebasing: $0[r])) }
    }

    /// One optimizer step over the parameters that have a gradient: one loop over each run of consecutive such
    /// parameters (the whole buffer when every parameter has one).
    mutating func update(_ gradients: Gradients, kind: OptimizerKind, learningRate lr: Float) {
        step += 1
        let (b1, b2, eps, mu): (Float, Float, Float, Float) = (0.9, 0.999, 1e-8, 0.9)
        let c1 = 1 - Float(Foundation.pow(Double(b1), Double(step)))
        let c2 = 1 - Float(Foundation.pow(Double(b2), Double(step)))
        let runs = gradients.presentRuns(offsets)
        values.withUnsafeMutableBufferPointer { w in
            first.withUnsafeMutableBufferPointer { m in
                second.withUnsafeMutableBufferPointer { v in
                    gradients.buffer.withUnsafeBufferPointer { g in
                        for run in runs {
                            switch kind {
                            case .sgd:
                                for i in run {
                                    m[i] = mu * m[i] + g[i]
                                    w[i] -= lr * m[i]
                                }
                            case .adam:
                                for i in run {
                                    m[i] = b1 * m[i] + (1 - b1) * g[i]
                                    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                                    w[i] -= lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The cosine schedule: `base` at step 0, falling to 0 at `total`.
    static func cosine(_ base: Float, step: Int, total: Int) -> Float {
        guard total > 0 else { return base }
        return base * Float(0.5 * (1 + Foundation.cos(Double.pi * Double(min(step, total)) / Double(total))))
    }
}

/// A step's gradients, laid out as the store's values, then one presence flag per parameter (1: it has a gradient;
/// a parameter without one is left alone by the optimizer, moments included). One buffer, so the ranks sum it in one
/// all-reduce (Distributed.swift).
struct Gradients {
    var buffer: [Float]
    let parameters: Int

    init(_ store: ParameterStore) {
        parameters = store.count
        buffer = [Float](repeating: 0, count: store.values.count + store.count)
    }

    private var flagBase: Int { buffer.count - parameters }

    func has(_ p: Int) -> Bool { buffer[flagBase + p] > 0 }

    /// Sets parameter `p`'s gradient; one of another size than the parameter is an error, not a trap.
    mutating func set(_ p: Int, in store: ParameterStore, _ g: UnsafeBufferPointer<Float>) throws {
        let r = store.range(p)
        guard g.count == r.count else {
            throw PassError(node: store.names[p], "its gradient has \(g.count) values, the parameter \(r.count)")
        }
        buffer.withUnsafeMutableBufferPointer { b in
            UnsafeMutableBufferPointer(rebasing: b[r]).update(fromContentsOf: g)
        }
        buffer[flagBase + p] = 1
    }

    /// Parameter `p`'s gradient in place (nil when it has none).
    mutating func withGradient<R>(_ p: Int, in store: ParameterStore,
                                  _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R? {
        guard has(p) else { return nil }
        let r = store.range(p)
        return try buffer.withUnsafeMutableBufferPointer { try body(UnsafeMutableBufferPointer(rebasing: $0[r])) }
    }

    /// Parameter `p`'s gradient (a copy), nil when it has none.
    func gradient(_ p: Int, in store: ParameterStore) -> [Float]? { has(p) ? Array(buffer[store.range(p)]) : nil }

    /// The element ranges of maximal runs of consecutive parameters that have a gradient.
    func presentRuns(_ offsets: [Int]) -> [Range<Int>] {
        var runs: [Range<Int>] = []
        var start: Int?
        for p in 0...parameters {
            let present = p < parameters && has(p)
            if present, start == nil { start = offsets[p] }
            if !present, let s = start {
                runs.append(s..<offsets[p])
                start = nil
            }
        }
        return runs
    }
}
