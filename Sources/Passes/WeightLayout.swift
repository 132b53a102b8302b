import Graph
import Kernels

/// How a layer's weight splits into output channels for quantization, and the `axis` a per-channel
/// DequantizeLinear uses (nil when the channels are not one axis: a grouped ConvTranspose).
public struct WeightLayout: Sendable, Equatable {
    public var layout: ChannelLayout
    public var axis: Int?

    /// The channels run along the layer's `outputChannelAxis` (Layer.channelAxes); a grouped ConvTranspose
    /// (Cin, Cout/g, …) is regrouped so Cout leads. `weightShape` is the weight as it is now (pruning may have changed
    /// it since the layer was found).
    public init(layer: Layer, weightShape: [Int64], channelWise: Bool) {
        let shape = weightShape.map(Int.init)
        let count = shape.reduce(1, *)
        let channelAxis = layer.outputChannelAxis
        guard channelWise, channelAxis < shape.count else {
            layout = .perTensor(count)
            axis = nil
            return
        }
        let groups = layer.op == .convTranspose ? layer.group : 1
        let outer = shape[..<channelAxis].reduce(1, *), inner = shape[(channelAxis + 1)...].reduce(1, *)
        layout = ChannelLayout(groups: groups, outer: outer / groups, channelsPerGroup: shape[channelAxis], inner: inner)
        axis = groups == 1 ? channelAxis : nil
    }
}
