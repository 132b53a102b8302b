/// Where a Caffe layer stands: its name, its type and its place in the prototxt (or the caffemodel).
public struct CaffeLayerPlace: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var type: String
    /// The prototxt line:column of the layer, nil for a layer known only from the caffemodel.
    public var location: SourceLocation?
    public var file: String

    public var description: String {
        let at = location.map { "\($0): " } ?? "\(MessageText.name(file, limit: 4096)): "
        return "\(at)layer '\(MessageText.name(name))' (\(MessageText.name(type)))"
    }
}

/// What can be wrong with a Caffe net (prototxt and caffemodel). Problems in the prototxt's text itself (an unknown
/// field such as SSD's `norm_param`, a bad enum name) are `TextFormatErrors` with file:line:column.
public enum CaffeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The caffemodel's bytes do not parse as a NetParameter.
    case notANet(path: String)
    /// A layer type the table has no rule for.
    case unsupportedLayer(CaffeLayerPlace, supported: [String])
    /// A layer reads a blob that no earlier layer (nor an input) produces.
    case undefinedBottom(CaffeLayerPlace, bottom: String)
    /// A layer's parameters, blobs or shapes are wrong.
    case badLayer(CaffeLayerPlace, String)
    /// The net as a whole is wrong (no input, a legacy V0 net, ...).
    case badNet(path: String, String)

    public var description: String {
        switch self {
        case .notANet(let path):
            return "\(MessageText.name(path, limit: 4096)) is not a caffemodel: its bytes do not parse as a Caffe "
                + "NetParameter (truncated or another format?)"
        case .unsupportedLayer(let place, let supported):
            return "\(place): layer type '\(MessageText.name(place.type))' is not supported (supported: "
                + "\(supported.joined(separator: ", ")))"
        case .undefinedBottom(let place, let bottom):
            return "\(place): bottom '\(MessageText.name(bottom))' is not produced by any earlier layer or input"
        case .badLayer(let place, let detail): return "\(place): \(MessageText.message(detail))"
        case .badNet(let path, let detail):
            return "\(MessageText.name(path, limit: 4096)): \(MessageText.message(detail))"
        }
    }
}
