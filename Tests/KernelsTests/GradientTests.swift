import Foundation
import XCTest

@testable import Kernels

/// Every backward kernel against central finite differences in float64: a naive Double forward written here (plain
/// loops, independent of the kernels), F(x) = Σ R·f(x) for a random R, ∂F/∂x_i = (F(x + h·e_i) − F(x − h·e_i))/2h,
/// compared with the float32 analytic gradient the kernel computes for g = R. Each reference forward is also checked
/// against the kernel forward it stands for, so the gradients are those of the op the executor runs.
final class GradientTests: XCTestCase {
    var rng = SeededRandom(seed: 20_261_123)

    // MARK: Harness

    /// float32 buffers the kernels read and write, freed when the test ends.
    var arena: [UnsafeMutableBufferPointer<Float>] = []

    override func tearDown() {
        for b in arena { b.deallocate() }
        arena = []
        super.tearDown()
    }

    func zeros(_ n: Int) -> UnsafeMutableBufferPointer<Float> {
        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
        b.initialize(repeating: 0)
        arena.append(b)
        return b
    }

    func ro(_ values: [Double]) -> UnsafeBufferPointer<Float> {
        let b = zeros(values.count)
        for i in values.indices { b[i] = Float(values[i]) }
        return UnsafeBufferPointer(b)
    }

    /// Random values exactly representable in float32.
    func values(_ n: Int, _ lo: Double = -1, _ hi: Double = 1) -> [Double] {
        rng.uniform(n, lo, hi).map { Double(Float($0)) }
    }

    /// Values at least `gap` away from every kink (where a piecewise op's derivative jumps).
    func values(_ n: Int, _ lo: Double, _ hi: Double, avoiding kinks: [Double], gap: Double = 1e-2) -> [Double] {
        values(n, lo, hi).map { v in
            var v = v
            for k in kinks where abs(v - k) < gap { v = Double(Float(k + (v < k ? -gap : gap))) }
            return v
        }
    }

    func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    /// |analytic − fd| ≤ 1e-3·|fd| + 1e-4·‖fd‖∞ element by element.
    func checkGradient(
        _ what: String, _ x: [Double], _ analytic: [Float], _ r: [Double], h: Double = 1e-4,
        file: StaticString = #filePath, line: UInt = #line, _ f: ([Double]) -> [Double]
    ) {
        XCTAssertEqual(analytic.count, x.count, "\(what): gradient size", file: file, line: line)
        guard analytic.count == x.count else { return }
        var fd = [Double](repeating: 0, count: x.count)
        var probe = x
        for i in x.indices {
            probe[i] = x[i] + h
            let plus = dot(r, f(probe))
            probe[i] = x[i] - h
            let minus = dot(r, f(probe))
            probe[i] = x[i]
            fd[i] = (plus - minus) / (2 * h)
        }
        let scale = fd.map(abs).max() ?? 0
        XCTAssertGreaterThan(scale, 0, "\(what): the check is vacuous (zero gradient)", file: file, line: line)
        var worst = 0.0
        var at = 0
        for i in x.indices {
            let err = abs(Double(analytic[i]) - fd[i]) / (1e-3 * abs(fd[i]) + 1e-4 * scale)
            if err > worst {
                worst = err
                at = i
            }
        }
        XCTAssertLessThanOrEqual(
            worst, 1, "\(what): element \(at) analytic \(analytic[at]) vs finite difference \(fd[at])",
            file: file, line: line)
    }

    /// The kernel's float32 forward equals the Double reference within float32 rounding.
    func checkForward(
        _ what: String, _ kernel: [Float], _ reference: [Double], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(kernel.count, reference.count, "\(what): forward size", file: file, line: line)
        let scale = max(reference.map(abs).max() ?? 0, 1e-6)
        for (a, b) in zip(kernel, reference) where abs(Double(a) - b) > 1e-5 * scale {
            XCTFail("\(what): forward \(a) vs reference \(b)", file: file, line: line)
            return
        }
    }

    /// Offset in an operand of `shape` of the output element `flat` of `out` (numpy broadcasting).
    func broadcastOffset(_ flat: Int, _ out: [Int], _ shape: [Int]) -> Int {
        var rem = flat
        var offset = 0
        var step = 1
        let pad = out.count - shape.count
        for d in stride(from: out.count - 1, through: 0, by: -1) {
            let i = rem % out[d]
            rem /= out[d]
            if d >= pad {
                let s = shape[d - pad]
                if s != 1 { offset += i * step }
                step *= s
            }
        }
        return offset
    }

    // MARK: Convolution

    func convRef(
        _ x: [Double], _ xs: [Int], _ w: [Double], _ ws: [Int], _ b: [Double]?, _ win: NeuralOps.Window, _ group: Int
    ) -> [Double] {
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
        let (m, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3])
        let (ho, wo) = win.outputSize(h, wd)
        let mg = m / group
        var out = [Double](repeating: 0, count: n * m * ho * wo)
        for img in 0..<n {
            for oc in 0..<m {
                let grp = oc / mg
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var acc = b?[oc] ?? 0
                        for ic in 0..<cg {
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let iy = oy * win.strides.0 - win.pads.0 + ky * win.dilations.0
                                    let ix = ox * win.strides.1 - win.pads.1 + kx * win.dilations.1
                                    guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                                    acc +=
                                        x[((img * c + grp * cg + ic) * h + iy) * wd + ix]
                                        * w[((oc * cg + ic) * kh + ky) * kw + kx]
                                }
                            }
                        }
                        out[((img * m + oc) * ho + oy) * wo + ox] = acc
                    }
                }
            }
        }
        return out
    }

    func runConv(
        _ xs: [Int], m: Int, kernel: (Int, Int), strides: (Int, Int), dilations: (Int, Int), pads: (Int, Int, Int, Int),
        group: Int, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let ws = [m, xs[1] / group, kernel.0, kernel.1]
        let win = NeuralOps.Window(kernel: kernel, strides: strides, dilations: dilations, pads: pads)
        let x = values(xs.reduce(1, *))
        let w = values(ws.reduce(1, *))
        let b = values(m)
        let y = convRef(x, xs, w, ws, b, win, group)
        let (yk, _) = try NeuralOps.conv2d(
            x.map { Float($0) }, xs, w.map { Float($0) }, ws, bias: b.map { Float($0) }, window: win, group: group)
        checkForward("conv \(xs) \(ws)", yk, y, file: file, line: line)
        let r = values(y.count)
        let dx = zeros(x.count)
        let dw = zeros(w.count)
        let db = zeros(m)
        try Backward.conv2d(
            x: ro(x), xShape: xs, w: ro(w), wShape: ws, window: win, group: group, gradient: ro(r),
            dx: dx, dw: dw, dBias: db)
        checkGradient("conv dx \(xs) \(ws) g\(group)", x, Array(dx), r, file: file, line: line) {
            convRef($0, xs, w, ws, b, win, group)
        }
        checkGradient("conv dw \(xs) \(ws) g\(group)", w, Array(dw), r, file: file, line: line) {
            convRef(x, xs, $0, ws, b, win, group)
        }
        checkGradient("conv db \(xs) \(ws) g\(group)", b, Array(db), r, file: file, line: line) {
            convRef(x, xs, w, ws, $0, win, group)
        }
    }

    func testConvGrouped2D() throws {
        try runConv(
            [2, 4, 7, 6], m: 6, kernel: (3, 2), strides: (2, 1), dilations: (1, 2), pads: (1, 0, 2, 1), group: 2)
    }

    func testConvDirect1x1AndStrided1x1() throws {
        try runConv(
            [2, 3, 5, 4], m: 4, kernel: (1, 1), strides: (1, 1), dilations: (1, 1), pads: (0, 0, 0, 0), group: 1)
        try runConv(
            [1, 3, 5, 5], m: 2, kernel: (1, 1), strides: (2, 2), dilations: (1, 1), pads: (0, 1, 1, 0), group: 1)
    }

    func testConv1D() throws {
        // 1-D as the executor passes it: H = 1, kernel (1, k).
        try runConv(
            [2, 3, 1, 11], m: 4, kernel: (1, 3), strides: (1, 2), dilations: (1, 2), pads: (0, 1, 0, 2), group: 1)
        try runConv(
            [1, 4, 1, 9], m: 4, kernel: (1, 3), strides: (1, 1), dilations: (1, 1), pads: (0, 1, 0, 1), group: 4)
    }

    func testConvDepthwise() throws {
        typealias Case = (x: [Int], m: Int, kernel: (Int, Int), strides: (Int, Int), dilations: (Int, Int),
                          pads: (Int, Int, Int, Int), group: Int)
        let cases: [Case] = [
            ([2, 4, 6, 7], 8, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 4),
            ([1, 3, 7, 5], 3, (3, 2), (1, 2), (2, 1), (2, 0, 1, 1), 3),
            // Rows of 19 and 21 outputs: eight lanes and a tail at stride 1.
            ([2, 3, 4, 21], 3, (3, 3), (1, 1), (1, 1), (1, 0, 1, 0), 3),
            ([1, 2, 3, 23], 4, (1, 5), (1, 1), (1, 1), (0, 2, 0, 2), 2),
            // Zero-padded planes (width stride and dilation 1): rows narrower than eight, a height stride and
            // dilation with two outputs per input channel, and pads wider than the kernel.
            ([1, 2, 5, 6], 2, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 2),
            ([2, 2, 9, 12], 4, (3, 3), (2, 1), (2, 1), (2, 1, 1, 1), 2),
            ([1, 2, 2, 10], 2, (2, 3), (1, 1), (1, 1), (1, 3, 0, 4), 2),
            // Pads far taller than the image under a large height stride: one pass per tap.
            ([1, 2, 2, 3], 2, (2, 2), (50, 1), (1, 1), (100, 40, 100, 40), 2),
        ]
        for c in cases {
            try runConv(c.x, m: c.m, kernel: c.kernel, strides: c.strides, dilations: c.dilations, pads: c.pads,
                        group: c.group)
        }
    }

    func testConvGradientsAccumulate() throws {
        let xs = [1, 2, 4, 4]
        let ws = [3, 2, 3, 3]
        let win = NeuralOps.Window(kernel: (3, 3), pads: (1, 1, 1, 1))
        let x = ro(values(32))
        let w = ro(values(54))
        let g = ro(values(48))
        let once = zeros(32)
        let twice = zeros(32)
        let dw1 = zeros(54)
        let dw2 = zeros(54)
        try Backward.conv2d(
            x: x, xShape: xs, w: w, wShape: ws, window: win, group: 1, gradient: g, dx: once, dw: dw1, dBias: nil)
        for _ in 0..<2 {
            try Backward.conv2d(
                x: x, xShape: xs, w: w, wShape: ws, window: win, group: 1, gradient: g, dx: twice, dw: dw2, dBias: nil)
        }
        for (a, b) in zip(Array(once) + Array(dw1), Array(twice) + Array(dw2)) {
            XCTAssertEqual(2 * a, b, accuracy: 1e-5 * max(1, abs(b)))
        }
    }

    func convTransposeRef(
        _ x: [Double], _ xs: [Int], _ w: [Double], _ ws: [Int], _ b: [Double], _ win: NeuralOps.Window,
        _ group: Int, _ outPad: (Int, Int)
    ) -> [Double] {
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
        let (mg, kh, kw) = (ws[1], ws[2], ws[3])
        let m = mg * group
        let cg = c / group
        let ho = win.strides.0 * (h - 1) + outPad.0 + (kh - 1) * win.dilations.0 + 1 - win.pads.0 - win.pads.2
        let wo = win.strides.1 * (wd - 1) + outPad.1 + (kw - 1) * win.dilations.1 + 1 - win.pads.1 - win.pads.3
        var out = [Double](repeating: 0, count: n * m * ho * wo)
        for img in 0..<n {
            for oc in 0..<m { for p in 0..<(ho * wo) { out[(img * m + oc) * ho * wo + p] = b[oc] } }
            for ic in 0..<c {
                let grp = ic / cg
                for iy in 0..<h {
                    for ix in 0..<wd {
                        let v = x[((img * c + ic) * h + iy) * wd + ix]
                        for oc in 0..<mg {
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let oy = iy * win.strides.0 - win.pads.0 + ky * win.dilations.0
                                    let ox = ix * win.strides.1 - win.pads.1 + kx * win.dilations.1
                                    guard oy >= 0, oy < ho, ox >= 0, ox < wo else { continue }
                                    out[((img * m + grp * mg + oc) * ho + oy) * wo + ox] +=
                                        v * w[((ic * mg + oc) * kh + ky) * kw + kx]
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    func runConvTranspose(
        _ xs: [Int], mg: Int, kernel: (Int, Int), strides: (Int, Int), dilations: (Int, Int),
        pads: (Int, Int, Int, Int), outPad: (Int, Int), group: Int
    ) throws {
        let ws = [xs[1], mg, kernel.0, kernel.1]
        let win = NeuralOps.Window(kernel: kernel, strides: strides, dilations: dilations, pads: pads)
        let x = values(xs.reduce(1, *))
        let w = values(ws.reduce(1, *))
        let b = values(mg * group)
        let y = convTransposeRef(x, xs, w, ws, b, win, group, outPad)
        let (yk, ys) = try NeuralOps.convTranspose2d(
            x.map { Float($0) }, xs, w.map { Float($0) }, ws, bias: b.map { Float($0) },
            window: win, group: group, outputPadding: outPad)
        checkForward("convTranspose \(xs) \(ws)", yk, y)
        let r = values(y.count)
        let dx = zeros(x.count)
        let dw = zeros(w.count)
        let db = zeros(b.count)
        try Backward.convTranspose2d(
            x: ro(x), xShape: xs, w: ro(w), wShape: ws, window: win, group: group, gradient: ro(r),
            outputShape: ys, dx: dx, dw: dw, dBias: db)
        checkGradient("convTranspose dx", x, Array(dx), r) { convTransposeRef($0, xs, w, ws, b, win, group, outPad) }
        checkGradient("convTranspose dw", w, Array(dw), r) { convTransposeRef(x, xs, $0, ws, b, win, group, outPad) }
        checkGradient("convTranspose db", b, Array(db), r) { convTransposeRef(x, xs, w, ws, $0, win, group, outPad) }
    }

    func testConvTranspose() throws {
        try runConvTranspose(
            [2, 4, 3, 4], mg: 3, kernel: (3, 2), strides: (2, 3), dilations: (1, 1), pads: (1, 0, 1, 1), outPad: (1, 0),
            group: 2)
        try runConvTranspose(
            [1, 3, 4, 3], mg: 2, kernel: (2, 3), strides: (1, 2), dilations: (2, 1), pads: (0, 1, 1, 0), outPad: (0, 1),
            group: 1)
    }

    // MARK: Gemm, MatMul

    func gemmRef(
        _ a: [Double], _ ash: [Int], _ b: [Double], _ bsh: [Int], _ c: [Double], _ csh: [Int], _ alpha: Double,
        _ beta: Double,
        _ ta: Bool, _ tb: Bool
    ) -> [Double] {
        let (m, k) = ta ? (ash[1], ash[0]) : (ash[0], ash[1])
        let n = tb ? bsh[0] : bsh[1]
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for p in 0..<k { acc += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]) }
                out[i * n + j] = alpha * acc + beta * c[broadcastOffset(i * n + j, [m, n], csh)]
            }
        }
        return out
    }

    func testGemm() throws {
        let (m, k, n) = (3, 4, 5)
        for (ta, tb, csh) in [
            (false, false, [n]), (false, true, [m, 1]), (true, false, [m, n]), (true, true, [Int]()),
            (false, true, [1, n]),
        ] {
            let ash = ta ? [k, m] : [m, k]
            let bsh = tb ? [n, k] : [k, n]
            let a = values(m * k)
            let b = values(k * n)
            let c = values(csh.reduce(1, *))
            let (alpha, beta) = (0.7, 1.3)
            let y = gemmRef(a, ash, b, bsh, c, csh, alpha, beta, ta, tb)
            let (yk, _) = try NeuralOps.gemm(
                a.map { Float($0) }, ash, b.map { Float($0) }, bsh, c: (c.map { Float($0) }, csh),
                alpha: Float(alpha), beta: Float(beta), transA: ta, transB: tb)
            checkForward("gemm \(ta) \(tb)", yk, y)
            let r = values(y.count)
            let da = zeros(a.count)
            let db = zeros(b.count)
            let dc = zeros(c.count)
            try Backward.gemm(
                a: ro(a), aShape: ash, b: ro(b), bShape: bsh, cShape: csh, alpha: Float(alpha), beta: Float(beta),
                transA: ta, transB: tb, gradient: ro(r), da: da, db: db, dc: dc)
            let what = "gemm transA \(ta) transB \(tb) C \(csh)"
            checkGradient("\(what) dA", a, Array(da), r) { gemmRef($0, ash, b, bsh, c, csh, alpha, beta, ta, tb) }
            checkGradient("\(what) dB", b, Array(db), r) { gemmRef(a, ash, $0, bsh, c, csh, alpha, beta, ta, tb) }
            checkGradient("\(what) dC", c, Array(dc), r) { gemmRef(a, ash, b, bsh, $0, csh, alpha, beta, ta, tb) }
        }
    }

    func matmulRef(_ a: [Double], _ aShape: [Int], _ b: [Double], _ bShape: [Int]) -> ([Double], [Int]) {
        let ash = aShape.count == 1 ? [1, aShape[0]] : aShape
        let bsh = bShape.count == 1 ? [bShape[0], 1] : bShape
        let (m, k, n) = (ash[ash.count - 2], ash[ash.count - 1], bsh[bsh.count - 1])
        let aB = Array(ash.dropLast(2))
        let bB = Array(bsh.dropLast(2))
        let rank = max(aB.count, bB.count)
        let pa = Array(repeating: 1, count: rank - aB.count) + aB
        let pb = Array(repeating: 1, count: rank - bB.count) + bB
        let batch = (0..<rank).map { max(pa[$0], pb[$0]) }
        let batches = batch.reduce(1, *)
        var out = [Double](repeating: 0, count: batches * m * n)
        for i in 0..<batches {
            let ao = broadcastOffset(i, batch, aB) * m * k
            let bo = broadcastOffset(i, batch, bB) * k * n
            for r in 0..<m {
                for c in 0..<n {
                    var acc = 0.0
                    for p in 0..<k { acc += a[ao + r * k + p] * b[bo + p * n + c] }
                    out[(i * m + r) * n + c] = acc
                }
            }
        }
        var shape = batch + [m, n]
        if aShape.count == 1 { shape.remove(at: shape.count - 2) }
        if bShape.count == 1 { shape.removeLast() }
        return (out, shape)
    }

    func testMatMulBatchedAndBroadcast() throws {
        for (ash, bsh) in [
            ([2, 3, 4, 5], [5, 6]), ([3, 1, 4, 5], [2, 5, 3]), ([5], [2, 5, 3]), ([2, 4, 5], [5]),
            ([4, 5], [3, 5, 2]),
            ([2, 1, 3, 4], [1, 3, 4, 2]), ([4], [4]),
        ] {
            let a = values(ash.reduce(1, *))
            let b = values(bsh.reduce(1, *))
            let (y, shape) = matmulRef(a, ash, b, bsh)
            let (yk, ks) = try NeuralOps.matmul(a.map { Float($0) }, ash, b.map { Float($0) }, bsh)
            XCTAssertEqual(ks, shape)
            checkForward("matmul \(ash) \(bsh)", yk, y)
            let r = values(y.count)
            let da = zeros(a.count)
            let db = zeros(b.count)
            try Backward.matmul(a: ro(a), aShape: ash, b: ro(b), bShape: bsh, gradient: ro(r), da: da, db: db)
            checkGradient("matmul \(ash)×\(bsh) dA", a, Array(da), r) { matmulRef($0, ash, b, bsh).0 }
            checkGradient("matmul \(ash)×\(bsh) dB", b, Array(db), r) { matmulRef(a, ash, $0, bsh).0 }
        }
    }

    // MARK: Elementwise

    typealias UnaryBackward = (
        UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>
    ) -> Void

    /// `fromOutput`: the kernel takes y = f(x) rather than x.
    func runUnary(
        _ name: String, _ x: [Double], fromOutput: Bool = false, _ f: @escaping (Double) -> Double,
        _ backward: UnaryBackward
    ) {
        let y = x.map(f)
        let r = values(x.count)
        let dx = zeros(x.count)
        backward(ro(fromOutput ? y : x), ro(r), dx)
        checkGradient(name, x, Array(dx), r) { $0.map(f) }
    }

    func testActivations() {
        let n = 64
        runUnary("relu", values(n, -2, 2, avoiding: [0]), { max($0, 0) }) { Backward.relu(x: $0, gradient: $1, dx: $2) }
        runUnary("leakyRelu", values(n, -2, 2, avoiding: [0]), { $0 >= 0 ? $0 : 0.1 * $0 }) {
            Backward.leakyRelu(x: $0, alpha: 0.1, gradient: $1, dx: $2)
        }
        runUnary("clip", values(n, -2, 2, avoiding: [-0.5, 1]), { min(max($0, -0.5), 1) }) {
            Backward.clip(x: $0, min: -0.5, max: 1, gradient: $1, dx: $2)
        }
        runUnary("clip min only", values(n, -2, 2, avoiding: [0.25]), { max($0, 0.25) }) {
            Backward.clip(x: $0, min: 0.25, max: nil, gradient: $1, dx: $2)
        }
        // HardSigmoid(α = 0.3, β = 0.4): kinks where 0.3x + 0.4 is 0 or 1.
        runUnary("hardSigmoid", values(n, -4, 4, avoiding: [-4.0 / 3, 2]), { max(0, min(1, 0.3 * $0 + 0.4)) }) {
            Backward.hardSigmoid(x: $0, alpha: 0.3, beta: 0.4, gradient: $1, dx: $2)
        }
        runUnary("hardSwish", values(n, -5, 5, avoiding: [-3, 3]), { $0 * max(0, min(1, $0 / 6 + 0.5)) }) {
            Backward.hardSwish(x: $0, gradient: $1, dx: $2)
        }
        runUnary("sigmoid", values(n, -4, 4), fromOutput: true, { 1 / (1 + exp(-$0)) }) {
            Backward.sigmoid(y: $0, gradient: $1, dx: $2)
        }
        runUnary("tanh", values(n, -3, 3), fromOutput: true, { Foundation.tanh($0) }) {
            Backward.tanh(y: $0, gradient: $1, dx: $2)
        }
        runUnary("sqrt", values(n, 0.1, 3), fromOutput: true, { $0.squareRoot() }) {
            Backward.sqrt(y: $0, gradient: $1, dx: $2)
        }
    }

    func binaryRef(_ op: Backward.BinaryOp, _ a: [Double], _ ash: [Int], _ b: [Double], _ bsh: [Int]) -> [Double] {
        let rank = max(ash.count, bsh.count)
        let pa = Array(repeating: 1, count: rank - ash.count) + ash
        let pb = Array(repeating: 1, count: rank - bsh.count) + bsh
        let out = (0..<rank).map { max(pa[$0], pb[$0]) }
        return (0..<out.reduce(1, *)).map { i in
            let x = a[broadcastOffset(i, out, ash)]
            let y = b[broadcastOffset(i, out, bsh)]
            switch op {
            case .add: return x + y
            case .sub: return x - y
            case .mul: return x * y
            case .div: return x / y
            case .pow: return Foundation.pow(x, y)
            case .max: return Swift.max(x, y)
            case .prelu: return x < 0 ? x * y : x
            }
        }
    }

    func testBinaryBroadcasting() throws {
        let shapes: [([Int], [Int])] = [
            ([2, 3, 4], [3, 1]), ([2, 1, 4], [1, 3, 1]), ([5], []), ([], [2, 3]), ([3, 4], [3, 4]),
            ([2, 3, 4, 5], [1, 3, 1, 1]), ([4, 1], [5]),
        ]
        for op in [Backward.BinaryOp.add, .sub, .mul, .div, .pow] {
            for (ash, bsh) in shapes {
                // Div needs b away from 0; Pow a positive base.
                let a = op == .pow ? values(ash.reduce(1, *), 0.5, 2) : values(ash.reduce(1, *))
                let b = op == .div ? values(bsh.reduce(1, *), 0.5, 2) : values(bsh.reduce(1, *), -1.5, 1.5)
                let y = binaryRef(op, a, ash, b, bsh)
                let fop: (Float, Float) -> Float
                switch op {
                case .add: fop = (+)
                case .sub: fop = (-)
                case .mul: fop = (*)
                case .div: fop = (/)
                case .pow: fop = { powf($0, $1) }
                case .max, .prelu: fop = { _, _ in 0 }  // kinked: checked away from the kinks in OperatorGradientTests
                }
                let (yk, _) = try Elementwise.binary(a.map { Float($0) }, ash, b.map { Float($0) }, bsh, fop)
                checkForward("\(op) \(ash) \(bsh)", yk, y)
                let r = values(y.count)
                let da = zeros(a.count)
                let db = zeros(b.count)
                try Backward.binary(op, a: ro(a), aShape: ash, b: ro(b), bShape: bsh, gradient: ro(r), da: da, db: db)
                checkGradient("\(op) \(ash) \(bsh) da", a, Array(da), r) { binaryRef(op, $0, ash, b, bsh) }
                checkGradient("\(op) \(ash) \(bsh) db", b, Array(db), r) { binaryRef(op, a, ash, $0, bsh) }
            }
        }
    }

    func testReduceToShape() throws {
        // Expand's gradient: [3, 1] broadcast to [2, 3, 4].
        let g = values(24)
        let dst = zeros(3)
        try Backward.reduceToShape(ro(g), [2, 3, 4], into: dst, shape: [3, 1])
        for c in 0..<3 {
            let expected = (0..<2).reduce(0.0) { s, i in s + (0..<4).reduce(0.0) { $0 + g[(i * 3 + c) * 4 + $1] } }
            XCTAssertEqual(Double(Array(dst)[c]), expected, accuracy: 1e-5)
        }
        XCTAssertThrowsError(try Backward.reduceToShape(ro(g), [2, 3, 4], into: zeros(2), shape: [2]))
    }

    // MARK: Reductions, softmax

    func reduceMeanRef(_ x: [Double], _ xs: [Int], _ axes: [Int]) -> [Double] {
        var kept = xs
        for a in axes { kept[a] = 1 }
        var out = [Double](repeating: 0, count: kept.reduce(1, *))
        let n = Double(axes.reduce(1) { $0 * xs[$1] })
        for i in x.indices { out[broadcastOffset(i, xs, kept)] += x[i] / n }
        return out
    }

    func testReduceMean() throws {
        for (xs, axes) in [([2, 3, 4, 5], [1, 3]), ([3, 4], [1]), ([2, 3, 4], [0, 1, 2]), ([4, 1, 3], [0])] {
            let x = values(xs.reduce(1, *))
            let y = reduceMeanRef(x, xs, axes)
            let r = values(y.count)
            let dx = zeros(x.count)
            try Backward.reduceMean(gradient: ro(r), xShape: xs, axes: axes.map { $0 - xs.count }, dx: dx)
            checkGradient("reduceMean \(xs) \(axes)", x, Array(dx), r) { reduceMeanRef($0, xs, axes) }
        }
    }

    func softmaxRef(_ x: [Double], _ xs: [Int], _ axis: Int, _ coerce: Bool) -> [Double] {
        let inner = coerce ? xs[axis...].reduce(1, *) : xs[axis]
        let after = coerce ? 1 : xs[(axis + 1)...].reduce(1, *)
        var out = x
        for o in 0..<(x.count / (inner * after)) {
            for a in 0..<after {
                let idx = (0..<inner).map { o * inner * after + a + $0 * after }
                let mx = idx.map { x[$0] }.max()!
                let sum = idx.reduce(0.0) { $0 + exp(x[$1] - mx) }
                for i in idx { out[i] = exp(x[i] - mx) / sum }
            }
        }
        return out
    }

    func testSoftmax() throws {
        for (xs, axis, coerce) in [
            ([2, 3, 4], 1, false), ([3, 5], 1, false), ([2, 3, 4], 2, false), ([2, 3, 4], 1, true),
            ([4, 2, 3], 0, false),
        ] {
            let x = values(xs.reduce(1, *), -2, 2)
            let y = softmaxRef(x, xs, axis, coerce)
            let r = values(y.count)
            checkForward(
                "softmax \(xs) \(axis)", NeuralOps.softmax(x.map { Float($0) }, xs, axis: axis, coerce2D: coerce), y)
            let dx = zeros(x.count)
            try Backward.softmax(y: ro(y), shape: xs, axis: axis, coerce2D: coerce, gradient: ro(r), dx: dx)
            checkGradient("softmax \(xs) axis \(axis) coerce \(coerce)", x, Array(dx), r) {
                softmaxRef($0, xs, axis, coerce)
            }
        }
    }

    // MARK: Shape ops

    func transposeRef(_ x: [Double], _ xs: [Int], _ perm: [Int]) -> [Double] {
        let os = perm.map { xs[$0] }
        let xst = stridesOf(xs)
        return (0..<x.count).map { flat in
            var rem = flat
            var off = 0
            for d in stride(from: os.count - 1, through: 0, by: -1) {
                off += (rem % os[d]) * xst[perm[d]]
                rem /= os[d]
            }
            return x[off]
        }
    }

    func testTranspose() throws {
        for (xs, perm) in [
            ([2, 3, 4], [2, 0, 1]), ([2, 3, 4, 5], [0, 2, 3, 1]), ([3, 4], [1, 0]), ([2, 3, 1], [0, 1, 2]),
        ] {
            let x = values(xs.reduce(1, *))
            let y = transposeRef(x, xs, perm)
            let r = values(y.count)
            checkForward("transpose", ShapeOps.transpose(x.map { Float($0) }, xs, perm: perm).0, y)
            let dx = zeros(x.count)
            try Backward.transpose(gradient: ro(r), outShape: perm.map { xs[$0] }, perm: perm, dx: dx)
            checkGradient("transpose \(xs) \(perm)", x, Array(dx), r) { transposeRef($0, xs, perm) }
        }
    }

    func testConcat() throws {
        for (shapes, axis) in [
            ([[2, 1, 3], [2, 4, 3], [2, 2, 3]], 1), ([[1, 3], [2, 3]], 0), ([[2, 3, 2], [2, 3, 1]], -1),
        ] {
            let xs = shapes.map { values($0.reduce(1, *)) }
            let ax = axis < 0 ? axis + shapes[0].count : axis
            func ref(_ parts: [[Double]]) -> [Double] {
                ShapeOps.concat(zip(parts, shapes).map { ($0.0, $0.1) }, axis: ax).0
            }
            let y = ref(xs)
            let r = values(y.count)
            let grads = shapes.map { zeros($0.reduce(1, *)) }
            try Backward.concat(gradient: ro(r), shapes: shapes, axis: axis, dx: grads.map { Optional($0) })
            for k in shapes.indices {
                checkGradient("concat part \(k) of \(shapes)", xs[k], Array(grads[k]), r) { v in
                    var parts = xs
                    parts[k] = v
                    return ref(parts)
                }
            }
        }
    }

    func testSlice() throws {
        let xs = [5, 6, 4]
        let starts = [1, 5, 0]
        let steps = [2, -2, 3]
        let counts = [2, 3, 2]
        let x = values(xs.reduce(1, *))
        func ref(_ v: [Double]) -> [Double] {
            var out: [Double] = []
            for i in 0..<counts[0] {
                for j in 0..<counts[1] {
                    for k in 0..<counts[2] {
                        out.append(
                            v[
                                ((starts[0] + i * steps[0]) * xs[1] + starts[1] + j * steps[1]) * xs[2] + starts[2] + k
                                    * steps[2]])
                    }
                }
            }
            return out
        }
        let y = ref(x)
        let r = values(y.count)
        checkForward("slice", ShapeOps.slice(x.map { Float($0) }, xs, starts: starts, steps: steps, counts: counts), y)
        let dx = zeros(x.count)
        try Backward.slice(gradient: ro(r), xShape: xs, starts: starts, steps: steps, counts: counts, dx: dx)
        checkGradient("slice", x, Array(dx), r, ref)
        XCTAssertThrowsError(
            try Backward.slice(gradient: ro(r), xShape: xs, starts: [4, 5, 0], steps: steps, counts: counts, dx: dx))
    }

    // MARK: Pooling, resize, normalization

    func poolRef(
        _ x: [Double], _ xs: [Int], _ win: NeuralOps.Window, max isMax: Bool, ceil: Bool, includePad: Bool
    ) -> [Double] {
        let (h, w) = (xs[2], xs[3])
        let (ho, wo) = win.outputSize(h, w, ceilMode: ceil)
        var out: [Double] = []
        for plane in 0..<(xs[0] * xs[1]) {
            for oy in 0..<ho {
                for ox in 0..<wo {
                    var acc = isMax ? -Double.infinity : 0
                    var count = 0
                    for ky in 0..<win.kernel.0 {
                        for kx in 0..<win.kernel.1 {
                            let iy = oy * win.strides.0 - win.pads.0 + ky * win.dilations.0
                            let ix = ox * win.strides.1 - win.pads.1 + kx * win.dilations.1
                            if iy >= 0, iy < h, ix >= 0, ix < w {
                                let v = x[(plane * h + iy) * w + ix]
                                acc = isMax ? max(acc, v) : acc + v
                                count += 1
                            } else if includePad, iy < h + win.pads.2, ix < w + win.pads.3 {
                                count += 1
                            }
                        }
                    }
                    out.append(isMax ? acc : acc / Double(count))
                }
            }
        }
        return out
    }

    func testMaxPool() throws {
        let cases: [([Int], NeuralOps.Window, Bool)] = [
            ([2, 3, 7, 6], NeuralOps.Window(kernel: (3, 3), strides: (2, 2), pads: (1, 1, 1, 1)), false),
            ([1, 2, 6, 7], NeuralOps.Window(kernel: (2, 3), strides: (2, 2), pads: (0, 1, 0, 0)), true),
            ([1, 2, 7, 7], NeuralOps.Window(kernel: (2, 2), strides: (1, 2), dilations: (2, 2)), false),
            ([2, 2, 1, 9], NeuralOps.Window(kernel: (1, 3), strides: (1, 2), pads: (0, 1, 0, 1)), true),
        ]
        for (xs, win, ceil) in cases {
            // Distinct values, so the maxima are unique and a step of h does not change them.
            var x = (0..<xs.reduce(1, *)).map { Double($0) * 0.01 }
            x.shuffle(using: &rng)
            let y = poolRef(x, xs, win, max: true, ceil: ceil, includePad: false)
            let r = values(y.count)
            checkForward(
                "maxPool",
                NeuralOps.pool2d(
                    x.map { Float($0) }, xs, window: win, max: true, ceilMode: ceil, countIncludePad: false
                ).0, y)
            let dx = zeros(x.count)
            try Backward.maxPool2d(x: ro(x), xShape: xs, window: win, ceilMode: ceil, gradient: ro(r), dx: dx)
            checkGradient("maxPool \(xs) ceil \(ceil)", x, Array(dx), r, h: 1e-4) {
                poolRef($0, xs, win, max: true, ceil: ceil, includePad: false)
            }
        }
    }

    func testAveragePool() throws {
        let cases: [([Int], NeuralOps.Window, Bool, Bool)] = [
            ([2, 3, 7, 6], NeuralOps.Window(kernel: (3, 3), strides: (2, 2), pads: (1, 1, 1, 1)), false, false),
            ([2, 3, 7, 6], NeuralOps.Window(kernel: (3, 3), strides: (2, 2), pads: (1, 1, 1, 1)), false, true),
            ([1, 2, 6, 7], NeuralOps.Window(kernel: (2, 3), strides: (2, 2), pads: (0, 1, 0, 0)), true, true),
            ([1, 2, 6, 7], NeuralOps.Window(kernel: (2, 3), strides: (2, 2), pads: (0, 1, 0, 0)), true, false),
        ]
        for (xs, win, ceil, includePad) in cases {
            let x = values(xs.reduce(1, *))
            let y = poolRef(x, xs, win, max: false, ceil: ceil, includePad: includePad)
            let r = values(y.count)
            checkForward(
                "avgPool",
                NeuralOps.pool2d(
                    x.map { Float($0) }, xs, window: win, max: false, ceilMode: ceil,
                    countIncludePad: includePad
                ).0, y)
            let dx = zeros(x.count)
            try Backward.averagePool2d(
                xShape: xs, window: win, ceilMode: ceil, countIncludePad: includePad, gradient: ro(r), dx: dx)
            checkGradient("avgPool \(xs) ceil \(ceil) pad \(includePad)", x, Array(dx), r) {
                poolRef($0, xs, win, max: false, ceil: ceil, includePad: includePad)
            }
        }
    }

    func testGlobalAveragePool() throws {
        let xs = [2, 3, 4, 5]
        let x = values(120)
        func ref(_ v: [Double]) -> [Double] { (0..<6).map { p in (0..<20).reduce(0.0) { $0 + v[p * 20 + $1] } / 20 } }
        let y = ref(x)
        let r = values(6)
        checkForward("GAP", NeuralOps.globalPool(x.map { Float($0) }, xs, max: false).0, y)
        let dx = zeros(120)
        try Backward.globalAveragePool(xShape: xs, gradient: ro(r), dx: dx)
        checkGradient("GAP", x, Array(dx), r, ref)
    }

    /// The executor's Resize (Sources/Passes/GraphExecutor.swift): coordinates in float32 as it computes them,
    /// interpolation in Double.
    func resizeRef(_ x: [Double], _ xs: [Int], _ out: (Int, Int), linear: Bool, asymmetric: Bool) -> [Double] {
        let (h, w) = (xs[2], xs[3])
        let sy = Float(h) / Float(out.0)
        let sx = Float(w) / Float(out.1)
        var y: [Double] = []
        for plane in 0..<(xs[0] * xs[1]) {
            for oy in 0..<out.0 {
                for ox in 0..<out.1 {
                    let fy = asymmetric ? Float(oy) * sy : (Float(oy) + 0.5) * sy - 0.5
                    let fx = asymmetric ? Float(ox) * sx : (Float(ox) + 0.5) * sx - 0.5
                    let p = plane * h * w
                    if !linear {
                        let iy = min(h - 1, max(0, Int(asymmetric ? fy.rounded(.down) : (fy + 0.5).rounded(.down))))
                        let ix = min(w - 1, max(0, Int(asymmetric ? fx.rounded(.down) : (fx + 0.5).rounded(.down))))
                        y.append(x[p + iy * w + ix])
                    } else {
                        let cy = min(max(fy, 0), Float(h - 1))
                        let cx = min(max(fx, 0), Float(w - 1))
                        let y0 = Int(cy)
                        let x0 = Int(cx)
                        let y1 = min(y0 + 1, h - 1)
                        let x1 = min(x0 + 1, w - 1)
                        let dy = Double(cy - Float(y0))
                        let dx = Double(cx - Float(x0))
                        let top = x[p + y0 * w + x0] * (1 - dx) + x[p + y0 * w + x1] * dx
                        let bottom = x[p + y1 * w + x0] * (1 - dx) + x[p + y1 * w + x1] * dx
                        y.append(top * (1 - dy) + bottom * dy)
                    }
                }
            }
        }
        return y
    }

    func testResize() throws {
        for (xs, out) in [([2, 2, 3, 4], (7, 9)), ([1, 3, 6, 5], (4, 3)), ([1, 1, 4, 4], (8, 8))] {
            for linear in [false, true] {
                for asymmetric in [false, true] {
                    let x = values(xs.reduce(1, *))
                    let y = resizeRef(x, xs, out, linear: linear, asymmetric: asymmetric)
                    let r = values(y.count)
                    let dx = zeros(x.count)
                    // The reference's rounding for nearest: ties up at half_pixel, floor at asymmetric.
                    let coordinates: ResampleAxis.Coordinates = asymmetric ? .asymmetric : .halfPixel
                    let nearest: ResampleAxis.NearestMode? = linear ? nil : (asymmetric ? .floor : .roundPreferCeil)
                    let ys = ResampleAxis(inSize: xs[2], outSize: out.0, scale: Float(out.0) / Float(xs[2]),
                                          coordinates: coordinates, nearest: nearest)
                    let xsAxis = ResampleAxis(inSize: xs[3], outSize: out.1, scale: Float(out.1) / Float(xs[3]),
                                              coordinates: coordinates, nearest: nearest)
                    try Backward.resize2d(
                        gradient: ro(r), planes: xs[0] * xs[1], h: xs[2], w: xs[3], ys: ys, xs: xsAxis, linear: linear,
                        dx: dx)
                    checkGradient("resize \(xs)→\(out) linear \(linear) asymmetric \(asymmetric)", x, Array(dx), r) {
                        resizeRef($0, xs, out, linear: linear, asymmetric: asymmetric)
                    }
                }
            }
        }
    }

    func batchNormRef(
        _ x: [Double], _ xs: [Int], _ scale: [Double], _ bias: [Double], _ mean: [Double], _ variance: [Double]
    ) -> [Double] {
        let c = xs[1]
        let inner = xs.dropFirst(2).reduce(1, *)
        return x.indices.map { i in
            let ch = (i / inner) % c
            return (x[i] - mean[ch]) / (variance[ch] + 1e-5).squareRoot() * scale[ch] + bias[ch]
        }
    }

    func testBatchNorm() throws {
        for xs in [[2, 3, 4, 5], [4, 3], [2, 3, 7]] {
            let c = 3
            let x = values(xs.reduce(1, *))
            let scale = values(c, 0.5, 2)
            let bias = values(c)
            let mean = values(c)
            let variance = values(c, 0.2, 2)
            let y = batchNormRef(x, xs, scale, bias, mean, variance)
            let r = values(y.count)
            let f = { (v: [Double]) in v.map { Float($0) } }
            checkForward(
                "batchNorm",
                NeuralOps.batchNorm(
                    f(x), xs, scale: f(scale), bias: f(bias), mean: f(mean), variance: f(variance),
                    epsilon: 1e-5), y)
            let dx = zeros(x.count)
            let ds = zeros(c)
            let db = zeros(c)
            try Backward.batchNorm(
                x: ro(x), xShape: xs, scale: f(scale), mean: f(mean), variance: f(variance), epsilon: 1e-5,
                gradient: ro(r), dx: dx, dScale: ds, dBias: db)
            checkGradient("batchNorm dx \(xs)", x, Array(dx), r) { batchNormRef($0, xs, scale, bias, mean, variance) }
            checkGradient("batchNorm dscale \(xs)", scale, Array(ds), r) {
                batchNormRef(x, xs, $0, bias, mean, variance)
            }
            checkGradient("batchNorm dbias \(xs)", bias, Array(db), r) {
                batchNormRef(x, xs, scale, $0, mean, variance)
            }
        }
    }

    // MARK: Losses

    func crossEntropyRef(_ z: [Double], _ shape: [Int], _ labels: [Int64]) -> Double {
        let (n, c) = (shape[0], shape[1])
        let inner = shape.dropFirst(2).reduce(1, *)
        var total = 0.0
        for img in 0..<n {
            for i in 0..<inner {
                let logits = (0..<c).map { z[(img * c + $0) * inner + i] }
                let lse = log(logits.reduce(0.0) { $0 + exp($1) })
                total += lse - logits[Int(labels[img * inner + i])]
            }
        }
        return total / Double(n * inner)
    }

    func testCrossEntropy() throws {
        for shape in [[4, 5], [2, 3, 4]] {
            let z = values(shape.reduce(1, *), -3, 3)
            let positions = shape[0] * shape.dropFirst(2).reduce(1, *)
            let labels = (0..<positions).map { _ in Int64.random(in: 0..<Int64(shape[1]), using: &rng) }
            let dz = zeros(z.count)
            let loss = try Loss.crossEntropy(logits: ro(z), shape: shape, labels: labels, gradient: dz)
            XCTAssertEqual(Double(loss), crossEntropyRef(z, shape, labels), accuracy: 1e-5)
            checkGradient("cross-entropy \(shape)", z, Array(dz), [1]) { [crossEntropyRef($0, shape, labels)] }
        }
        XCTAssertThrowsError(
            try Loss.crossEntropy(logits: ro([0, 0, 0, 0, 0, 0]), shape: [2, 3], labels: [0, 3], gradient: nil))
        XCTAssertThrowsError(
            try Loss.crossEntropy(logits: ro([0, 0, 0, 0, 0, 0]), shape: [2, 3], labels: [0], gradient: nil))
    }

    func testMeanSquaredError() throws {
        let p = values(30)
        let t = values(30)
        func ref(_ v: [Double]) -> [Double] { [zip(v, t).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / 30] }
        let dp = zeros(30)
        let loss = try Loss.meanSquaredError(ro(p), target: ro(t), scale: 0.5, gradient: dp)
        XCTAssertEqual(Double(loss), ref(p)[0], accuracy: 1e-6)
        checkGradient("mse (scale ½)", p, Array(dp), [0.5], ref)
    }

    // MARK: More ops (what the transformer and OCR benches use)

    func testMathOps() {
        let n = 48
        runUnary("erf", values(n, -2, 2), { Foundation.erf($0) }) { Backward.erf(x: $0, gradient: $1, dx: $2) }
        runUnary("gelu", values(n, -3, 3), { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }) {
            Backward.gelu(x: $0, tanhApproximation: false, gradient: $1, dx: $2)
        }
        let c = (2 / Double.pi).squareRoot()
        runUnary(
            "gelu tanh", values(n, -3, 3), { 0.5 * $0 * (1 + Foundation.tanh(c * ($0 + 0.044715 * $0 * $0 * $0))) }
        ) {
            Backward.gelu(x: $0, tanhApproximation: true, gradient: $1, dx: $2)
        }
        runUnary("exp", values(n, -2, 2), fromOutput: true, { Foundation.exp($0) }) {
            Backward.exp(y: $0, gradient: $1, dx: $2)
        }
        runUnary("neg", values(n), { -$0 }) { Backward.neg(gradient: $1, dx: $2) }
        runUnary("abs", values(n, -2, 2, avoiding: [0]), { Swift.abs($0) }) {
            Backward.abs(x: $0, gradient: $1, dx: $2)
        }
        runUnary("reciprocal", values(n, -2, 2, avoiding: [0], gap: 0.3), fromOutput: true, { 1 / $0 }) {
            Backward.reciprocal(y: $0, gradient: $1, dx: $2)
        }
    }

    func testWhere() throws {
        let (cs, ash, bsh) = ([3, 1], [2, 3, 4], [4])
        let cond = (0..<3).map { $0 != 1 }
        let a = values(24)
        let b = values(4)
        func ref(_ a: [Double], _ b: [Double]) -> [Double] {
            (0..<24).map { i in cond[broadcastOffset(i, [2, 3, 4], cs)] ? a[i] : b[broadcastOffset(i, [2, 3, 4], bsh)] }
        }
        let r = values(24)
        let da = zeros(24)
        let db = zeros(4)
        try cond.withUnsafeBufferPointer {
            try Backward.whereSelect(
                condition: $0, conditionShape: cs, aShape: ash, bShape: bsh, gradient: ro(r), da: da, db: db)
        }
        checkGradient("where da", a, Array(da), r) { ref($0, b) }
        checkGradient("where db", b, Array(db), r) { ref(a, $0) }
    }

    func layerNormRef(_ x: [Double], _ inner: Int, _ scale: [Double], _ bias: [Double]) -> [Double] {
        var out = x
        for base in stride(from: 0, to: x.count, by: inner) {
            let v = x[base..<(base + inner)]
            let mean = v.reduce(0, +) / Double(inner)
            let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(inner)
            for i in 0..<inner {
                out[base + i] =
                    (x[base + i] - mean) / (variance + 1e-5).squareRoot() * scale[i % scale.count]
                    + bias[i % bias.count]
            }
        }
        return out
    }

    func testLayerNorm() throws {
        for (shape, axis, sc) in [([2, 3, 8], -1, 8), ([2, 3, 4], 1, 12), ([3, 6], 1, 3)] {
            let x = values(shape.reduce(1, *), -2, 2)
            let scale = values(sc, 0.5, 1.5)
            let bias = values(sc)
            let inner = shape[(axis < 0 ? axis + shape.count : axis)...].reduce(1, *)
            let y = layerNormRef(x, inner, scale, bias)
            let r = values(y.count)
            checkForward(
                "layerNorm",
                NeuralOps.layerNorm(
                    x.map { Float($0) }, shape, axis: axis < 0 ? axis + shape.count : axis, epsilon: 1e-5,
                    scale: scale.map { Float($0) }, bias: bias.map { Float($0) }), y)
            let dx = zeros(x.count)
            let ds = zeros(sc)
            let db = zeros(sc)
            try Backward.layerNorm(
                x: ro(x), shape: shape, axis: axis, epsilon: 1e-5, scale: scale.map { Float($0) }, gradient: ro(r),
                dx: dx, dScale: ds, dBias: db)
            checkGradient("layerNorm dx \(shape)", x, Array(dx), r) { layerNormRef($0, inner, scale, bias) }
            checkGradient("layerNorm dscale \(shape)", scale, Array(ds), r) { layerNormRef(x, inner, $0, bias) }
            checkGradient("layerNorm dbias \(shape)", bias, Array(db), r) { layerNormRef(x, inner, scale, $0) }
        }
    }

    func testGlobalMaxPoolAndReduceSum() throws {
        let xs = [2, 3, 2, 5]
        var x = (0..<60).map { Double($0) * 0.01 }
        x.shuffle(using: &rng)
        func gmp(_ v: [Double]) -> [Double] { (0..<6).map { p in v[(p * 10)..<(p * 10 + 10)].max()! } }
        let r = values(6)
        let dx = zeros(60)
        checkForward("globalMaxPool", NeuralOps.globalPool(x.map { Float($0) }, xs, max: true).0, gmp(x))
        try Backward.globalMaxPool(x: ro(x), xShape: xs, gradient: ro(r), dx: dx)
        checkGradient("globalMaxPool", x, Array(dx), r, gmp)
        let v = values(60)
        let r2 = values(20)
        let dv = zeros(60)
        func sum(_ v: [Double]) -> [Double] { reduceMeanRef(v, xs, [1]).map { $0 * 3 } }
        try Backward.reduceSum(gradient: ro(r2), xShape: xs, axes: [1], dx: dv)
        checkGradient("reduceSum", v, Array(dv), r2, sum)
    }

    func testSplitPadGather() throws {
        // Split [2, 7, 3] along 1 into 2, 4, 1; the middle output has no gradient.
        let shapes = [[2, 2, 3], [2, 4, 3], [2, 1, 3]]
        let x = values(42)
        func parts(_ v: [Double]) -> [[Double]] {
            var out: [[Double]] = [[], [], []]
            for o in 0..<2 {
                var at = o * 21
                for (k, s) in shapes.enumerated() {
                    out[k] += v[at..<(at + s[1] * 3)]
                    at += s[1] * 3
                }
            }
            return out
        }
        let r0 = values(12)
        let r2 = values(6)
        let dx = zeros(42)
        try Backward.split(gradients: [ro(r0), nil, ro(r2)], shapes: shapes, axis: 1, dx: dx)
        checkGradient("split", x, Array(dx), r0 + r2) {
            let p = parts($0)
            return p[0] + p[2]
        }

        // Pad [3, 4] with begins [1, -1] and ends [0, 2] (a negative pad crops).
        let xs = [3, 4]
        let pads = [1, -1, 0, 2]
        let px = values(12)
        let (py, _) = ShapeOps.pad(px, xs, pads: pads, value: 0.0)
        let pr = values(py.count)
        let pdx = zeros(12)
        try Backward.pad(gradient: ro(pr), xShape: xs, pads: pads, dx: pdx)
        checkGradient("pad", px, Array(pdx), pr) { ShapeOps.pad($0, xs, pads: pads, value: 0.0).0 }

        // Gather along axis 1 of [2, 4, 3] with a repeated and a negative index.
        let gx = values(24)
        let idx: [Int64] = [3, -4, 0, 2, 3]
        let gr = values(2 * idx.count * 3)
        let gdx = zeros(24)
        try Backward.gather(gradient: ro(gr), xShape: [2, 4, 3], indices: idx, axis: 1, dx: gdx)
        checkGradient("gather", gx, Array(gdx), gr) {
            try! ShapeOps.gather($0, [2, 4, 3], indices: idx, indicesShape: [5], axis: 1).0
        }
        XCTAssertThrowsError(
            try Backward.gather(gradient: ro(gr), xShape: [2, 4, 3], indices: [4, 0, 0, 0, 0], axis: 1, dx: gdx))
    }
}
