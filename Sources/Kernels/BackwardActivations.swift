import Foundation

// Vector-Jacobian products of the unary activations and math ops (same shape in and out).
//   Relu: g·[x > 0];  LeakyRelu: g·(x ≥ 0 ? 1 : α);  Clip(lo, hi): g·[lo ≤ x ≤ hi]
//   HardSigmoid(α, β): g·α·[0 < αx + β < 1];  HardSwish y = x·clamp(x/6 + ½, 0, 1): g·(x ≤ −3 ? 0 : x ≥ 3 ? 1 : x/3 + ½)
//   Sigmoid (from y): g·y·(1 − y);  Tanh (from y): g·(1 − y²);  Sqrt (from y): g/(2y);  Exp (from y): g·y
//   Erf: g·2/√π·e^(−x²);  Gelu (erf): g·(½(1 + erf(x/√2)) + x·e^(−x²/2)/√(2π))
//   Gelu (tanh): t = tanh(c(x + 0.044715x³)), c = √(2/π): g·(½(1 + t) + ½x(1 − t²)·c(1 + 0.134145x²))
//   Neg: −g;  Abs: g·sign(x) (0 at 0);  Reciprocal (from y): −g·y²
// Every function ADDS into dx (the caller zeroes it). The kernel takes x or y as each formula needs (named).

extension Backward {
    public static func relu(
        x: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(x.count == g.count && dx.count == g.count)
        for i in g.indices { dx[i] += x[i] > 0 ? g[i] : 0 }
    }

    public static func leakyRelu(
        x: UnsafeBufferPointer<Float>, alpha: Float, gradient g: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(x.count == g.count && dx.count == g.count)
        for i in g.indices { dx[i] += x[i] >= 0 ? g[i] : alpha * g[i] }
    }

    /// Clip with optional bounds (nil = unbounded): the gradient passes where lo ≤ x ≤ hi.
    public static func clip(
        x: UnsafeBufferPointer<Float>, min lo: Float?, max hi: Float?, gradient g: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(x.count == g.count && dx.count == g.count)
        let l = lo ?? -.infinity
        let h = hi ?? .infinity
        for i in g.indices { dx[i] += (x[i] >= l && x[i] <= h) ? g[i] : 0 }
    }

    public static func hardSigmoid(
        x: UnsafeBufferPointer<Float>, alpha: Float, beta: Float, gradient g: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(x.count == g.count && dx.count == g.count)
        for i in g.indices {
            let t = alpha * x[i] + beta
            dx[i] += (t > 0 && t < 1) ? alpha * g[i] : 0
        }
    }

    public static func hardSwish(
        x: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(x.count == g.count && dx.count == g.count)
        for i in g.indices {
            let v = x[i]
            let d: Float = v <= -3 ? 0 : (v >= 3 ? 1 : v / 3 + 0.5)
            dx[i] += g[i] * d
        }
    }

    /// From the output y = σ(x).
    public static func sigmoid(
        y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(y.count == g.count && dx.count == g.count)
        for i in g.indices { dx[i] += g[i] * y[i] * (1 - y[i]) }
    }

    /// From the output y = tanh(x).
    public static func tanh(
        y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(y.count == g.count && dx.count == g.count)
        for i in g.indices { dx[i] += g[i] * (1 - y[i] * y[i]) }
    }

    /// From the output y = √x.
    public static func sqrt(
        y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(y.count == g.count && dx.count == g.count)
        for i in g.indices { dx[i] += g[i] / (2 * y[i]) }
    }

    public static func erf(
        x: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(x.count == g.count && dx.count == g.count)
        let k = Float(2 / Double.pi.squareRoot())
        for i in g.indices { dx[i] += g[i] * k * expf(-x[i] * x[i]) }
    }

    public static func gelu(
        x: UnsafeBufferPointer<Float>, tanhApproximation: Bool, gradient g: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(x.count == g.count && dx.count == g.count)
        if tanhApproximation {
            let c = Float(0.7978845608028654)
            for i in g.indices {
                let v = x[i]
                let t = tanhf(c * (v + 0.044715 * v * v * v))
                dx[i] += g[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v))
            }
        } else {
            let invSqrt2 = Float(1 / 2.0.squareRoot())
            let invSqrt2Pi = Float(1 / (2 * Double.pi).squareRoot())
            for i in g.indices {
                let v = x[i]
                dx[i] += g[i] * (0.5 * (1 + Elementwise.erf(v * invSqrt2)) + v * invSqrt2Pi * expf(-0.5 * v * v))
            }
        }
    }

    /// From the output y = eˣ.
    public static func exp(
        y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(y.count == g.count && dx.count == g.count)
        for i in g.indices { dx[i] += g[i] * y[i] }
    }

    public static func neg(gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>) {
        precondition(dx.count == g.count)
        for i in g.indices { dx[i] -= g[i] }
    }

    /// g·sign(x), 0 at x = 0.
    public static func abs(
        x: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(x.count == g.count && dx.count == g.count)
        for i in g.indices { dx[i] += x[i] > 0 ? g[i] : (x[i] < 0 ? -g[i] : 0) }
    }

    /// From the output y = 1/x: −g·y².
    public static func reciprocal(
        y: UnsafeBufferPointer<Float>, gradient g: UnsafeBufferPointer<Float>, dx: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(y.count == g.count && dx.count == g.count)
        for i in g.indices { dx[i] -= g[i] * y[i] * y[i] }
    }
}
