import Graph
import Kernels

// The one home of the conversions between the three tensor types:
//
//   Tensor (Graph's initializers) ─▶ DenseTensor (executor values)   ExecutionPlan.dense(t), checked against its dims
//   DenseTensor ─▶ Tensor                                             value.tensor(named:)
//   DenseTensor ─▶ NumpyArray (.npy/.npz arrays)                      NumpyArray(value)
//   [Float] / [Int64] ─▶ NumpyArray                                   NumpyArray(shape:floats:), (shape:ints:)
//   float or integer values read from an array ─▶ DenseTensor         DenseTensor(shape:integer:floats:ints:)
//
// Float values stay float32 (float16 and double initializers are widened or narrowed to it); integer values become
// int64; bool stays bool in the executor and becomes 0/1 bytes in an initializer.

extension ExecutionPlan {
    /// An initializer as an executor value (converted once per plan): float32 aligned bytes are viewed, not copied.
    static func dense(_ t: Tensor) -> Result<DenseTensor, KernelError> {
        let shape = t.dims.map { Int(clamping: $0) }
        do { try checkSize(shape) } catch {
            return .failure(KernelError("initializer '\(t.name ?? "")' has dims \(t.dims)"))
        }
        let count = shape.reduce(1, *)
        guard let size = t.dataType.byteCount(elements: count),
            size == t.byteCount || t.dataType == .bool && t.byteCount == count
        else {
            let need = "not what dims \(t.dims) of \(t.dataType) need"
            return .failure(KernelError("initializer '\(t.name ?? "")' holds \(t.byteCount) bytes, \(need)"))
        }
        return converted(t, shape: shape, count: count)
    }

    /// The elements of `t` (checked to hold `count`) as an executor value of `shape`.
    private static func converted(_ t: Tensor, shape: [Int], count: Int) -> Result<DenseTensor, KernelError> {
        func floats<T>(_: T.Type, _ f: (T) -> Float) -> DenseTensor {
            DenseTensor(shape: shape, floats: t.withElements(as: T.self) { $0.map(f) })
        }
        func ints<T>(_: T.Type, _ f: (T) -> Int64) -> DenseTensor {
            DenseTensor(shape: shape, ints: t.withElements(as: T.self) { $0.map(f) })
        }
        switch t.dataType {
        case .float:
            // A view of the initializer's own bytes when they are aligned for Float (they are malloc'd): no copy.
            if case .bytes(let buffer) = t.data, let base = buffer.baseAddress,
                Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
                let view = FloatView(owner: buffer, base: UnsafePointer(base.assumingMemoryBound(to: Float.self)),
                                     count: count)
                return .success(DenseTensor(shape: shape, view: view))
            }
            return .success(floats(Float.self) { $0 })
        case .float16: return .success(floats(Float16.self, Float.init))
        case .double: return .success(floats(Double.self, Float.init))
        case .int64: return .success(ints(Int64.self) { $0 })
        case .int32: return .success(ints(Int32.self, Int64.init))
        case .int8: return .success(ints(Int8.self, Int64.init))
        case .uint8: return .success(ints(UInt8.self, Int64.init))
        case .bool:
            return .success(DenseTensor(shape: shape, bools: t.withElements(as: UInt8.self) { $0.map { $0 != 0 } }))
        default:
            return .failure(KernelError("tensor '\(t.name ?? "")' of type \(t.dataType) is not read by the executor"))
        }
    }
}

extension DenseTensor {
    /// Values read from an array: int64 when it holds integers, else float32.
    init(shape: [Int], integer: Bool, floats: [Float], ints: [Int64]) {
        self = integer ? DenseTensor(shape: shape, ints: ints) : DenseTensor(shape: shape, floats: floats)
    }

    /// The value as an initializer (float, int64 or bool).
    func tensor(named name: String) -> Tensor {
        let dims = shape.map(Int64.init)
        switch elements {
        case .float, .floatView: return Tensor(name: name, dims: dims, floats: floats)
        case .int64(let i): return i.withUnsafeBytes { Tensor(name: name, dataType: .int64, dims: dims, rawBytes: $0) }
        case .bool(let b):
            return b.map { $0 ? UInt8(1) : 0 }.withUnsafeBytes {
                Tensor(name: name, dataType: .bool, dims: dims, rawBytes: $0)
            }
        }
    }
}

extension NumpyArray {
    /// A float32 array (`<f4`).
    init(shape: [Int], floats: [Float]) { self.init(shape: shape, values: .float(floats), dtype: "<f4") }

    /// An int64 array (`<i8`).
    init(shape: [Int], ints: [Int64]) { self.init(shape: shape, values: .int64(ints), dtype: "<i8") }

    /// An executor value as an array: float stays float32, anything else becomes int64.
    init(_ t: DenseTensor) {
        self = t.isFloat ? NumpyArray(shape: t.shape, floats: t.floats) : NumpyArray(shape: t.shape, ints: t.ints)
    }
}
