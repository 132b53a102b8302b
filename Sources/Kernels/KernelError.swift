// The Kernels module's error: an op the kernels cannot compute as given, with a message the executor prefixes with
// the node, op and opset.

/// An op the kernels cannot compute as given (an attribute value, a shape).
public struct KernelError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
