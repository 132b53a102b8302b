import Kernels

/// Float buffers the executor reuses after a value's last reader ran, so a batch allocates (and faults in) its
/// intermediate memory once, not once per op. A buffer handed out has stale contents: the kernel writes every element.
public final class BufferPool {
    private var free: [Int: [[Float]]] = [:]
    private var held = 0
    /// Most elements kept for reuse; past that, freed buffers go back to the allocator.
    public var limit: Int

    public init(limit: Int = 1 << 31) { self.limit = limit }

    /// A buffer of `count` floats (contents unspecified).
    public func floats(_ count: Int) -> [Float] {
        if var list = free[count], let buffer = list.popLast() {
            free[count] = list
            held -= count
            return buffer
        }
        return [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    /// A buffer of `count` zeros.
    public func zeros(_ count: Int) -> [Float] {
        var buffer = floats(count)
        buffer.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        return buffer
    }

    /// Takes back a float value's storage for a later `floats` call.
    public func recycle(_ value: DenseTensor) {
        guard case .float(let buffer) = value.elements, !buffer.isEmpty, held + buffer.count <= limit else { return }
        free[buffer.count, default: []].append(buffer)
        held += buffer.count
    }

    public func removeAll() {
        free = [:]
        held = 0
    }
}
