import Foundation

/// Scalar functions the elementwise kernels share.
public enum Elementwise {
    /// numpy broadcasting of two shapes (BroadcastLayout holds the rule).
    @inlinable
    public static func broadcastShape(_ a: [Int], _ b: [Int]) throws -> [Int] { try BroadcastLayout([a, b]).shape }

    @inlinable
    public static func erf(_ x: Float) -> Float { Float(Foundation.erf(Double(x))) }

    @inlinable
    public static func gelu(_ x: Float, tanhApproximation: Bool) -> Float {
        if tanhApproximation {
            let c = Float(0.7978845608028654)
            return 0.5 * x * (1 + tanhf(c * (x + 0.044715 * x * x * x)))
        }
        return 0.5 * x * (1 + erf(x / Float(2).squareRoot()))
    }
}
