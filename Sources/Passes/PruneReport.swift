import Graph

// What the pruning passes did, as typed values: the summary renders `PruneEvent`s (one line each), the record file
// renders each layer's `PruneRecord`. Passes append values; no pass formats a line.

/// One thing a pruning pass did to a channel group or a layer.
public enum PruneEvent: Sendable, Equatable, CustomStringConvertible {
    /// Filter pruning left a group alone: the coupling analysis blocked it.
    case blocked(layers: [String], channels: Int, reason: String)
    /// Filter pruning left a group alone: one of its producers shares the channels and is not filter-pruned.
    case sharedWithUnpruned(layers: [String], layer: String, source: PlanSource)
    /// The ratio keeps every channel (after 16-alignment when `ascendOptimized`).
    case unchanged(layers: [String], channels: Int, ratio: Float, ascendOptimized: Bool)
    case pruned(layers: [String], channels: Int, remain: Int, ratio: Float, ascendOptimized: Bool)
    /// 2:4: `zeros` of `weights` are 0 after the mask, `zeroedNow` by it; Cin ≤ 2 is left alone.
    case twoOfFour(layer: String, zeros: Int, weights: Int, zeroedNow: Int, smallCin: Bool)

    public var description: String {
        switch self {
        case .blocked(let layers, let channels, let reason):
            return "left alone: \(Self.names(layers)) (\(channels) channels): \(reason)"
        case .sharedWithUnpruned(let layers, let layer, let source):
            return "left alone: \(Self.names(layers)): '\(layer)' shares these channels and is not filter-pruned (\(source))"
        case .unchanged(let layers, let channels, let ratio, let ascend):
            let aligned = ascend ? " after 16-alignment" : ""
            return "unchanged: \(Self.names(layers)) (\(channels) channels; ratio \(ratio) keeps all\(aligned))"
        case .pruned(let layers, let channels, let remain, let ratio, let ascend):
            return "pruned: \(Self.names(layers)): \(channels) → \(remain) channels (ratio \(ratio)\(ascend ? ", ×16" : ""))"
        case .twoOfFour(let layer, let zeros, let weights, let zeroedNow, let smallCin):
            let left = smallCin ? "; Cin ≤ 2, left alone" : ""
            return "2:4: \(layer): \(zeros) of \(weights) weights are 0 (\(zeroedNow) zeroed now)\(left)"
        }
    }

    private static func names(_ layers: [String]) -> String { layers.joined(separator: ", ") }
}

/// What the record file says of a pruned layer.
public struct PruneRecord: Sendable, Equatable {
    /// The output channels filter pruning kept.
    public var keptChannels: [Int]?
    /// 2:4: the weights the mask zeroed, and the config's update_freq.
    public var twoOfFour: (zeroed: Int, updateFreq: UInt32)?

    public init(keptChannels: [Int]? = nil, twoOfFour: (zeroed: Int, updateFreq: UInt32)? = nil) {
        self.keptChannels = keptChannels
        self.twoOfFour = twoOfFour
    }

    public static func == (a: PruneRecord, b: PruneRecord) -> Bool {
        a.keptChannels == b.keptChannels && a.twoOfFour?.zeroed == b.twoOfFour?.zeroed
            && a.twoOfFour?.updateFreq == b.twoOfFour?.updateFreq
    }

    /// The record's fields, in the order they are written.
    var fields: [TextFormatWriter.Field] {
        var fields: [TextFormatWriter.Field] = []
        if let kept = keptChannels {
            fields.append(.init("kept_channels", .string(kept.map(String.init).joined(separator: ","))))
        }
        if let (zeroed, freq) = twoOfFour {
            fields.append(.init("two_of_four_zeroed", .int(Int64(zeroed))))
            fields.append(.init("update_freq", .int(Int64(freq))))
        }
        return fields
    }
}
