import Graph
import Kernels

// Shared by the op files: required inputs at run time, pooled float outputs, and the window attributes of Conv,
// ConvTranspose and pooling (one place reads and checks strides, dilations, pads and auto_pad: `WindowAttributes`).

/// A pointer for empty buffers, never read or written (kernels are not called on empty tensors).
nonisolated(unsafe) private let emptyFloats = UnsafeMutablePointer<Float>.allocate(capacity: 1)

extension Array where Element == DenseTensor? {
    /// A required input at run time (the plan has checked it is produced).
    func required(_ i: Int) throws -> DenseTensor {
        guard i < count, let v = self[i] else { throw KernelError("input \(i) is missing at run time") }
        return v
    }
}

extension DenseTensor {
    /// The float elements behind a pointer (a view for float tensors; converted for others).
    func withFloatPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try withFloats { try body($0.baseAddress ?? UnsafePointer(emptyFloats)) }
    }
}

/// The float elements of an optional tensor behind a pointer (nil when absent).
func withOptionalFloatPointer<R>(_ t: DenseTensor?, _ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
    guard let t else { return try body(nil) }
    return try t.withFloatPointer { try body($0) }
}

/// The float elements of an optional tensor as a buffer (nil when absent), without a copy.
func withOptionalFloats<R>(_ t: DenseTensor?, _ body: (UnsafeBufferPointer<Float>?) throws -> R) rethrows -> R {
    guard let t else { return try body(nil) }
    return try t.withFloats { try body($0) }
}

/// A float output of `shape` from the pool, filled by `body` (not called when the output is empty).
func pooledOutput(_ shape: [Int], _ buffers: BufferPool, _ body: (UnsafeMutablePointer<Float>) throws -> Void) rethrows -> DenseTensor {
    let count = shape.reduce(1, *)
    guard count > 0 else { return DenseTensor(shape: shape, floats: []) }
    var out = buffers.floats(count)
    try out.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    return DenseTensor(shape: shape, floats: out)
}

/// The window attributes of Conv, ConvTranspose and the pools (`strides`, `dilations`, `pads`, `auto_pad`), read and
/// checked in one place for 1-D or 2-D spatial input (1-D runs as H = 1): each list has the window's rank (pads twice
/// it, begins then ends), strides and dilations ≥ 1, pads ≥ 0, auto_pad one of NOTSET, SAME_UPPER, SAME_LOWER, VALID.
/// What SAME pads to is each op's: `slidingWindow` for a window sliding over its input, ConvTranspose's own rule.
struct WindowAttributes {
    enum AutoPad: String { case notSet = "NOTSET", sameUpper = "SAME_UPPER", sameLower = "SAME_LOWER", valid = "VALID" }
    let kernel: [Int], strides: [Int], dilations: [Int]
    /// The `pads` attribute (zeros when absent).
    let pads: [Int]
    let autoPad: AutoPad
    var spatial: Int { kernel.count }
    var isSame: Bool { autoPad == .sameUpper || autoPad == .sameLower }

    init(_ ctx: OpContext, input: [Int], kernel: [Int]) throws {
        let spatial = input.count - 2
        guard spatial == 1 || spatial == 2 else {
            throw KernelError("\(max(spatial, 0))-D windows (input \(input)) are not run; 1-D and 2-D are")
        }
        guard kernel.count == spatial, kernel.allSatisfy({ $0 >= 1 }) else {
            throw KernelError("kernel \(kernel) does not fit a \(spatial)-D input \(input)")
        }
        func list(_ name: String, _ length: Int, _ fallback: Int, minimum: Int) throws -> [Int] {
            guard let v = try ctx.ints(name) else { return Array(repeating: fallback, count: length) }
            guard v.count == length else {
                throw KernelError("\(name) has \(v.count) values; a \(spatial)-D window needs \(length)")
            }
            guard v.allSatisfy({ $0 >= minimum }) else { throw KernelError("\(name) \(v) must be at least \(minimum)") }
            return v
        }
        self.kernel = kernel
        strides = try list("strides", spatial, 1, minimum: 1)
        dilations = try list("dilations", spatial, 1, minimum: 1)
        pads = try list("pads", 2 * spatial, 0, minimum: 0)
        let mode = ctx.string("auto_pad", default: "NOTSET")
        guard let autoPad = AutoPad(rawValue: mode) else {
            throw KernelError("auto_pad \(mode) is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
        }
        self.autoPad = autoPad
    }

    /// `total` padding as (begin, end): SAME_UPPER puts the odd one at the end, any other mode at the beginning.
    func split(_ total: Int) -> (begin: Int, end: Int) {
        autoPad == .sameUpper ? (total / 2, total - total / 2) : (total - total / 2, total / 2)
    }

    /// The kernels' window with `pads` (begins, then ends); 1-D as H = 1.
    func window(pads p: [Int]) -> NeuralOps.Window {
        let (k, s, d) = (kernel, strides, dilations)
        if spatial == 1 {
            return NeuralOps.Window(kernel: (1, k[0]), strides: (1, s[0]), dilations: (1, d[0]), pads: (0, p[0], 0, p[1]))
        }
        return NeuralOps.Window(kernel: (k[0], k[1]), strides: (s[0], s[1]), dilations: (d[0], d[1]),
                                pads: (p[0], p[1], p[2], p[3]))
    }
}

/// The window of Conv and the pools over `input`: the attribute's pads, none under VALID, and under SAME_* the total
/// that makes the output ⌈x/s⌉ (max(0, (⌈x/s⌉ − 1)·s + (k − 1)·d + 1 − x), split by `WindowAttributes.split`).
/// Every size `outputSize` forms is checked to fit Int.
func slidingWindow(_ ctx: OpContext, input: [Int], kernel: [Int]) throws -> NeuralOps.Window {
    let a = try WindowAttributes(ctx, input: input, kernel: kernel)
    let (spatial, s, d) = (a.spatial, a.strides, a.dilations)
    let dims = Array(input.dropFirst(2))
    var p = a.autoPad == .valid ? Array(repeating: 0, count: 2 * spatial) : a.pads
    if a.isSame {
        for i in 0..<spatial {
            let out = (dims[i] + s[i] - 1) / s[i]
            let reach = try Checked.sum(try Checked.product(out - 1, s[i], what: "the window's reach"),
                                        try windowSpan(a.kernel[i], d[i]), what: "the window's reach")
            let (begin, end) = a.split(max(0, reach - dims[i]))
            p[i] = begin
            p[i + spatial] = end
        }
    }
    for i in 0..<spatial {  // every size outputSize forms, checked once here
        _ = try windowSpan(a.kernel[i], d[i])
        _ = try Checked.sum(dims[i], p[i], p[i + spatial], what: "axis \(i + 2) padded by \(p)")
    }
    return a.window(pads: p)
}

/// (k − 1)·d + 1: the input a kernel of `k` taps dilated by `d` spans.
func windowSpan(_ k: Int, _ d: Int) throws -> Int {
    let what = "kernel \(k) dilated by \(d)"
    return try Checked.sum(try Checked.product(k - 1, d, what: what), 1, what: what)
}

/// NCHW view of a 1-D or 2-D spatial shape.
func as4D(_ shape: [Int]) -> [Int] { shape.count == 3 ? [shape[0], shape[1], 1, shape[2]] : shape }
/// Back from the NCHW view to the rank of `like`.
func fromAs4D(_ shape: [Int], like: [Int]) -> [Int] { like.count == 3 ? [shape[0], shape[1], shape[3]] : shape }

// MARK: Gradients (the DifferentiableKernel conformances of the op files)

extension DenseTensor {
    /// The float elements as a buffer (a view for float tensors; converted for others).
    func withFloatBuffer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withFloats { try body($0) }
    }
}

/// The gradient of output `k`: zeros of `shape` when nothing downstream reads the output.
func outputGradient(_ gradients: [DenseTensor?], _ k: Int, shape: [Int], _ buffers: BufferPool) throws -> DenseTensor {
    let count = shape.reduce(1, *)
    guard k < gradients.count, let g = gradients[k] else {
        return DenseTensor(shape: shape, floats: buffers.zeros(count))
    }
    guard g.count == count, g.isFloat else {
        throw KernelError("the gradient of output \(k) has shape \(g.shape); the output has \(shape)")
    }
    return g
}

/// Which inputs get a gradient: asked for by `needs`, present, float, and among the first `limit` inputs (the others
/// are shapes, indices, statistics).
func gradientMask(_ inputs: [DenseTensor?], _ needs: [Bool], limit: Int = .max) -> [Bool] {
    inputs.indices.map { i in i < limit && i < needs.count && needs[i] && inputs[i]?.isFloat == true }
}

/// A pooled buffer other closures can write through while it is held (one exclusive access per box).
private final class GradientBox {
    var values: [Float]
    init(_ values: [Float]) { self.values = values }
}

/// Runs `body` with a zeroed pooled buffer for each input `wanted` (nil elsewhere); returns them as tensors of the
/// inputs' shapes. The backward kernels add into the buffers.
func inputGradients(
    _ inputs: [DenseTensor?], _ wanted: [Bool], _ buffers: BufferPool,
    _ body: ([UnsafeMutableBufferPointer<Float>?]) throws -> Void
) throws -> [DenseTensor?] {
    let boxes = inputs.indices.map { i -> GradientBox? in
        guard wanted[i], let x = inputs[i] else { return nil }
        return GradientBox(buffers.zeros(x.count))
    }
    guard boxes.contains(where: { $0 != nil }) else { return inputs.map { _ in nil } }
    var pointers = [UnsafeMutableBufferPointer<Float>?](repeating: nil, count: boxes.count)
    func nest(_ i: Int) throws {
        guard i < boxes.count else { return try body(pointers) }
        guard let box = boxes[i] else { return try nest(i + 1) }
        try box.values.withUnsafeMutableBufferPointer { p in
            pointers[i] = p
            try nest(i + 1)
        }
    }
    try nest(0)
    return inputs.indices.map { i in boxes[i].map { DenseTensor(shape: inputs[i]!.shape, floats: $0.values) } }
}

/// The element at `i`, nil past the end.
extension Array {
    subscript(ifPresent i: Int) -> Element? { i < count ? self[i] : nil }
}
