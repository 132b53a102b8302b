import Foundation

// The parameter store and its optimizer: every trainable value (weights, biases, affine parameters, activation clamps,
// WtsULQ clips) as one flat float32 array, updated in place.
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
    public internal(set) var values: [[Float]] = []
    /// Momentum (SGD) or first moment (Adam), and Adam's second moment.
    var first: [[Float]] = []
    var second: [[Float]] = []
    /// Updates taken so far.
    public internal(set) var step = 0

    public init() {}

    /// Adds a parameter; returns its index.
    @discardableResult
    mutating func add(_ name: String, shape: [Int], values v: [Float]) -> Int {
        names.append(name)
        shapes.append(shape)
        values.append(v)
        first.append([Float](repeating: 0, count: v.count))
        second.append([Float](repeating: 0, count: v.count))
        return names.count - 1
    }

    public func index(of name: String) -> Int? { names.firstIndex(of: name) }

    /// One optimizer step over the parameters that have a gradient.
    mutating func update(_ gradients: [[Float]?], kind: OptimizerKind, learningRate lr: Float) {
        step += 1
        let (b1, b2, eps, mu): (Float, Float, Float, Float) = (0.9, 0.999, 1e-8, 0.9)
        let c1 = 1 - Float(Foundation.pow(Double(b1), Double(step)))
        let c2 = 1 - Float(Foundation.pow(Double(b2), Double(step)))
        for p in values.indices {
            guard let g = gradients[p] else { continue }
            let n = values[p].count
            values[p].withUnsafeMutableBufferPointer { w in
                first[p].withUnsafeMutableBufferPointer { m in
                    second[p].withUnsafeMutableBufferPointer { v in
                        g.withUnsafeBufferPointer { g in
                            switch kind {
                            case .sgd:
                                for i in 0..<n {
                                    m[i] = mu * m[i] + g[i]
                                    w[i] -= lr * m[i]
                                }
                            case .adam:
                                for i in 0..<n {
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
