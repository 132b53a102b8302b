import Foundation

// The value `analyze` produces (Codable; `--json` and report.json are its encoding): per quantized layer the SQNR of
// the model's outputs with that layer alone quantized, the SQNR of the layer's own output, the SQNR with every layer
// quantized, and where the time went.
//
// SQNR (dB) = 10·log10(Σ ref² / Σ (ref − q)²) over every element of every float output and every sample; +inf when
// the quantized run is exact (encoded as the string "inf").

public struct SensitivityReport: Codable, Sendable {
    public struct Layer: Codable, Sendable {
        /// Position in the plan (graph order).
        public var index: Int
        public var name: String
        public var op: String
        public var actType: String
        public var weightType: String
        public var channelWise: Bool
        public var clipMin: Float
        public var clipMax: Float
        public var clipsFrom: ClipOrigin
        public var inputShape: [Int]
        public var outputShape: [Int]
        public var weightShape: [Int64]
        /// The plan's reason for the layer's settings ("global", "override by name (12:5)", …) and its config place.
        public var source: String
        public var sourceLine: Int?
        public var sourceColumn: Int?
        /// Model outputs vs float, this layer alone quantized.
        public var outputSQNR: Double
        /// This layer's own output vs float, this layer alone quantized.
        public var layerSQNR: Double
        /// Nodes re-run for this layer (the part of the graph downstream of it) and the time they took.
        public var rerunNodes: Int
        public var seconds: Double
    }

    public struct Timing: Codable, Sendable {
        /// Planning, pruning and IFMR calibration (as compress does them).
        public var prepare: Double
        /// One float forward pass per batch, keeping the values the layer runs read.
        public var floatForward: Double
        /// Every single-layer run (downstream parts only).
        public var layers: Double
        /// The all-layers-quantized forward passes.
        public var allLayers: Double
        public var total: Double
    }

    public var layers: [Layer]
    public var allLayersSQNR: Double
    public var samples: Int
    public var batches: Int
    /// Nodes of the float graph; Σ rerunNodes / (layers · graphNodes) is the share of a full pass per layer.
    public var graphNodes: Int
    public var seconds: Timing

    /// Layers worst first (lowest output SQNR; NaN, from a non-finite float output, counts as worst), ties by graph
    /// order.
    public var ranked: [Layer] {
        func key(_ l: Layer) -> Double { l.outputSQNR.isNaN ? -.infinity : l.outputSQNR }
        return layers.sorted { (key($0), $0.index) < (key($1), $1.index) }
    }

    /// The mean share of the graph's nodes a single-layer run re-runs.
    public var rerunShare: Double {
        guard !layers.isEmpty, graphNodes > 0 else { return 0 }
        return Double(layers.map(\.rerunNodes).reduce(0, +)) / Double(layers.count * graphNodes)
    }

    /// Pretty JSON ("inf" for an exact run).
    public func jsonData() throws -> Data { try analysisJSON(self) }
}

func analysisJSON<T: Encodable>(_ value: T) throws -> Data { try jsonData(value) }

/// Σ ref² and Σ (ref − q)² over float values, in double.
struct SQNRAccumulator {
    var signal: Double = 0
    var noise: Double = 0

    mutating func add(reference: DenseTensorFloats, quantized: DenseTensorFloats) {
        let n = min(reference.count, quantized.count)
        reference.withUnsafeBufferPointer { r in
            quantized.withUnsafeBufferPointer { q in
                var s: Double = 0, e: Double = 0
                for i in 0..<n {
                    let d = Double(r[i]) - Double(q[i])
                    s += Double(r[i]) * Double(r[i])
                    e += d * d
                }
                signal += s
                noise += e
            }
        }
    }

    var decibels: Double {
        if noise == 0 { return signal == 0 ? 0 : .infinity }
        if signal == 0 { return -.infinity }
        return 10 * log10(signal / noise)
    }
}

typealias DenseTensorFloats = [Float]
