/// `OperatorSetIdProto`.
public struct OpsetImport: Sendable, Equatable {
    public var domain: String?
    public var version: Int64?
    public var unknownFields: UnknownFields
    public init(domain: String?, version: Int64?, unknownFields: UnknownFields = UnknownFields()) {
        self.domain = domain
        self.version = version
        self.unknownFields = unknownFields
    }
}

/// `ModelProto`: the graph and what surrounds it. Functions, training info and device configurations are
/// carried unchanged (`PreservedMessage`); no pass rewrites them.
public struct Model: Sendable {
    public var irVersion: Int64?
    public var opsetImports: [OpsetImport]
    public var producerName: String?
    public var producerVersion: String?
    public var domain: String?
    public var modelVersion: Int64?
    public var docString: String?
    public var graph: Graph
    public var metadataProps: [StringPair]
    public var trainingInfo: [PreservedMessage]
    public var functions: [PreservedMessage]
    public var configuration: [PreservedMessage]
    public var unknownFields: UnknownFields
    /// Where the model was loaded from (not part of the file); saving refuses to write over it.
    public var sourcePath: String?
    /// Other files the model was read from (a Caffe net's caffemodel); saving refuses to write over them too.
    public var companionPaths: [String] = []

    public init(
        graph: Graph, irVersion: Int64? = 8, opsetImports: [OpsetImport] = [OpsetImport(domain: "", version: 13)],
        producerName: String? = nil, producerVersion: String? = nil, domain: String? = nil,
        modelVersion: Int64? = nil, docString: String? = nil, metadataProps: [StringPair] = [],
        trainingInfo: [PreservedMessage] = [], functions: [PreservedMessage] = [],
        configuration: [PreservedMessage] = [], unknownFields: UnknownFields = UnknownFields()
    ) {
        self.graph = graph
        self.irVersion = irVersion
        self.opsetImports = opsetImports
        self.producerName = producerName
        self.producerVersion = producerVersion
        self.domain = domain
        self.modelVersion = modelVersion
        self.docString = docString
        self.metadataProps = metadataProps
        self.trainingInfo = trainingInfo
        self.functions = functions
        self.configuration = configuration
        self.unknownFields = unknownFields
    }

    /// The opset version imported for a domain ("" and "ai.onnx" are the default domain).
    public func opsetVersion(domain: String = "") -> Int64? { opsetImports.version(domain: domain) }
}

extension [OpsetImport] {
    /// Where the import of `domain` is; "" and "ai.onnx" both name the default domain (the one place that rule lives).
    public func index(domain: String = "") -> Int? {
        let isDefault = domain.isEmpty || domain == "ai.onnx"
        return firstIndex { isDefault ? ($0.domain ?? "").isEmpty || $0.domain == "ai.onnx" : $0.domain == domain }
    }

    /// The opset version imported for `domain` (the default domain when empty).
    public func version(domain: String = "") -> Int64? { index(domain: domain).flatMap { self[$0].version } }
}
