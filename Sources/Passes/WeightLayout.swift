import Graph
import Kernels

/// How a layer's weight splits into output channels for quantization, and the `axis` a per-channel
/// DequantizeLinear uses (nil when the channels are not one axis: a grouped ConvTranspose).
public struct WeightLayout: Sendable, Equatable {
    public var layout: ChannelLayout
    public var axis: Int?

    /// Output channel is axis 0 for Conv and Gemm(transB=1); axis 1 for MatMul, Gemm(transB=0) and ConvTranspose
    /// (Cin, Cout/g, …), which is regrouped so Cout leads when g > 1.
    /// `weightShape` is the weight as it is now (pruning may have changed it since the layer was found).
    public init(layer: Layer, weightShape: [Int64], transB: Bool, channelWise: Bool) {
        let shape = weightShape.map(Int.init)
        let count = shape.reduce(1, *)
        guard channelWise else {
            layout = .perTensor(count)
            axis = nil
            return
        }
        switch layer.op {
        case .conv:
            layout = ChannelLayout(outer: 1, channelsPerGroup: shape[0], inner: count / shape[0])
            axis = 0
        case .gemm where transB:
            layout = ChannelLayout(outer: 1, channelsPerGroup: shape[0], inner: shape[1])
            axis = 0
        case .gemm, .matMul:
            layout = ChannelLayout(outer: shape[0], channelsPerGroup: shape[1], inner: 1)
            axis = 1
        case .convTranspose:
            let g = layer.group
            layout = ChannelLayout(groups: g, outer: shape[0] / g, channelsPerGroup: shape[1], inner: count / (shape[0] * shape[1]))
            axis = g == 1 ? 1 : nil
        }
    }
}
