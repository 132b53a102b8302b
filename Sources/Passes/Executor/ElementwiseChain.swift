import Graph
import Kernels

// Elementwise chains run as one pass over memory (Fusion.swift; their backward: ElementwiseChainBackward.swift):
//
//   x ─Mul(γ[1,C,1,1])─Add(β)─Add(3)─Clip(0,6)─Mul(x)─Div(6)─▶ y      six passes over a [N,C,H,W] tensor
//   ────────────────────────────────────────────────────────▶ y      one: per chunk of ≤ 1024 elements, each stage
//                                                                     in place on the output chunk (in L1)
//
// Every value in the chain has the output's shape; an operand from outside is the same shape or broadcast so that it
// is contiguous or constant along each chunk (BroadcastLayout's innermost run). BatchNormalization enters as the
// per-channel Mul and Add it is. The stages are the ops' own functions (FloatUnaryFunction, FloatBinaryOperation),
// specialised per op: dynamic dispatch happens once per stage and chunk, never per element.

/// Where a stage's other operand comes from, for one chunk.
struct ChunkOperand {
    let base: UnsafePointer<Float>
    /// 1: contiguous along the chunk; 0: one value for the chunk.
    let stride: Int
}

protocol ChainStage {
    /// Applies the stage in place on `io` (`count` elements); `operands` are the chain's outside inputs at this chunk.
    func apply(_ io: UnsafeMutablePointer<Float>, count: Int, _ operands: UnsafeBufferPointer<ChunkOperand>)
}

struct UnaryStage<F: FloatUnaryFunction>: ChainStage {
    let function: F
    func apply(_ io: UnsafeMutablePointer<Float>, count: Int, _ operands: UnsafeBufferPointer<ChunkOperand>) {
        function.run(io, io, count: count)
    }
}

struct BinaryStage<Op: FloatBinaryOperation>: ChainStage {
    /// Index of the outside operand; whether the chain's value is the left operand.
    let operand: Int
    let chainIsLeft: Bool
    func apply(_ io: UnsafeMutablePointer<Float>, count: Int, _ operands: UnsafeBufferPointer<ChunkOperand>) {
        let o = operands[operand]
        BroadcastKernels.stage(Op.gradient, io, o.base, stride: o.stride, chainIsLeft: chainIsLeft, count: count)
    }
}

/// The chain as one kernel: inputs are its outside operands (operand 0 is the chain's entry value).
struct ElementwiseChainKernel: OpKernel {
    let layout: BroadcastLayout
    let stages: [any ChainStage]
    static let chunk = 1024

    func forward(_ inputs: [DenseTensor?], _ buffers: BufferPool) throws -> [DenseTensor] {
        let values = try inputs.indices.map { try inputs.required($0) }
        let y = pooledOutput(layout.shape, buffers) { out in
            withPointers(values, [], 0) { bases in run(bases, out) }
        }
        return [y]
    }

    /// Nests one `withFloatPointer` per operand (a view for float tensors: no copy) and calls `body` with all bases.
    func withPointers(_ values: [DenseTensor], _ acc: [UnsafePointer<Float>], _ i: Int,
                      _ body: ([UnsafePointer<Float>]) -> Void) {
        guard i < values.count else { return body(acc) }
        values[i].withFloatPointer { base in withPointers(values, acc + [base], i + 1, body) }
    }

    private func run(_ bases: [UnsafePointer<Float>], _ out: UnsafeMutablePointer<Float>) {
        forEachChunk(bases) { offset, count, operands, _ in
            let io = out + offset
            Self.fillEntry(io, count: count, operands[0])
            for stage in stages { stage.apply(io, count: count, operands) }
        }
    }

    /// The entry value of a chunk into `io`.
    static func fillEntry(_ io: UnsafeMutablePointer<Float>, count: Int, _ entry: ChunkOperand) {
        if entry.stride == 0 {
            io.update(repeating: entry.base[0], count: count)
        } else {
            io.update(from: entry.base, count: count)
        }
    }

    /// Calls `body` for every chunk of the output (its offset and length, the operands there, and `scratch` floats of
    /// the calling thread's own), on every core.
    func forEachChunk(_ bases: [UnsafePointer<Float>], scratch: Int = 0,
                      _ body: (Int, Int, UnsafeBufferPointer<ChunkOperand>, UnsafeMutablePointer<Float>) -> Void) {
        let inner = layout.dims.last ?? 1
        let rows = layout.count / inner
        let chunksPerRow = (inner + Self.chunk - 1) / Self.chunk
        let strides = (0..<bases.count).map { layout.dims.isEmpty ? 0 : layout.strides[$0].last! }
        parallelChunks(rows * chunksPerRow, work: layout.count * max(stages.count, 1)) { range in
            var offsets = [Int](repeating: 0, count: bases.count + 1)
            var operands = [ChunkOperand](repeating: ChunkOperand(base: bases[0], stride: 0), count: bases.count)
            var lastRow = -1
            let own = UnsafeMutablePointer<Float>.allocate(capacity: max(scratch, 1))
            defer { own.deallocate() }
            for task in range {
                let row = task / chunksPerRow, start = (task % chunksPerRow) * Self.chunk
                let count = min(Self.chunk, inner - start)
                if row != lastRow {
                    if layout.dims.isEmpty { offsets = offsets.map { _ in 0 } } else { layout.rowOffsets(row, &offsets) }
                    lastRow = row
                }
                for k in bases.indices {
                    operands[k] = ChunkOperand(base: bases[k] + offsets[k] + start * strides[k], stride: strides[k])
                }
                operands.withUnsafeBufferPointer { body(row * inner + start, count, $0, own) }
            }
        }
    }
}

/// A prepared kernel that can be a stage of a chain.
protocol ChainableKernel {
    /// How many outside operands the stage reads besides the chain's value (0 for unary ops, whose other inputs, like
    /// Clip's bounds, are settled in the kernel).
    var chainOperands: Int { get }
    /// The stage this kernel is, given which of its inputs is the chain's value and the outside operand indices its
    /// other inputs take; nil when it cannot join (a broadcast that changes the chain's shape, an int64 form).
    func chainStage(chainInput: Int, operandIndex: Int?) -> (any ChainStage)?
}

extension UnaryKernel: ChainableKernel {
    var chainOperands: Int { 0 }
    func chainStage(chainInput: Int, operandIndex: Int?) -> (any ChainStage)? {
        chainInput == 0 ? UnaryStage(function: function) : nil
    }
}

extension BinaryOps.FloatBinaryKernel: ChainableKernel {
    var chainOperands: Int { 1 }
    func chainStage(chainInput: Int, operandIndex: Int?) -> (any ChainStage)? {
        guard let operandIndex else { return nil }
        return BinaryStage<Op>(operand: operandIndex, chainIsLeft: chainInput == 0)
    }
}
