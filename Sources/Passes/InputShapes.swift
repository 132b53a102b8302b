import Graph

// Dimensions of graph inputs and value_info, and `--input-shape NAME:D0,D1,...`.
//
// Exporters write an unknown dimension as a symbol (`N`, `height`), as nothing, or as `dim_value: -1` (Paddle) or 0.
// The rule everywhere in the passes: a dimension is a size only when it is a positive number (`Dimension.size`);
// anything else is unknown. `--input-shape x:1,3,48,320` fixes the unknown dimensions of graph input `x`: the rank
// must match and a dimension the model fixes must agree.

extension Dimension {
    /// The dimension as a size: a positive number that fits in Int; nil when symbolic, unset, zero or negative.
    public var size: Int? {
        guard let v = knownValue, v > 0, v <= Int64(Int.max) else { return nil }
        return Int(v)
    }
}

extension Shape {
    /// Every dimension as a size, or nil when any is unknown (see `Dimension.size`).
    public var sizes: [Int]? {
        var result: [Int] = []
        for d in dims {
            guard let s = d.size else { return nil }
            result.append(s)
        }
        return result
    }
}

/// A shape given for one graph input (`--input-shape NAME:D0,D1,...`).
public struct InputShape: Sendable, Equatable {
    public var input: String
    public var dims: [Int]

    /// Parses `NAME:D0,D1,...` (the name may itself hold colons: the last one separates). Each D is a positive integer.
    public init(parsing text: String) throws {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex else {
            throw InputShapeError("--input-shape '\(text)': write NAME:D0,D1,... (e.g. x:1,3,224,224)")
        }
        input = String(text[..<colon])
        let list = text[text.index(after: colon)...]
        var dims: [Int] = []
        for part in list.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = String(part.filter { $0 != " " })
            guard let d = Int(trimmed), d > 0 else {
                throw InputShapeError("--input-shape '\(text)': dimension '\(trimmed)' is not a positive integer")
            }
            dims.append(d)
        }
        self.dims = dims
    }

    public init(input: String, dims: [Int]) {
        self.input = input
        self.dims = dims
    }

    /// Parses every `--input-shape` value; an input named twice is an error.
    public static func parseAll(_ texts: [String]) throws -> [InputShape] {
        let shapes = try texts.map(InputShape.init(parsing:))
        var seen = Set<String>()
        for s in shapes where !seen.insert(s.input).inserted {
            throw InputShapeError("--input-shape names input '\(s.input)' twice")
        }
        return shapes
    }

    /// Fixes the dimensions of the named graph inputs in `model` (rank must match; a fixed dimension must agree).
    public static func apply(_ shapes: [InputShape], to model: inout Model) throws {
        for shape in shapes { try shape.apply(to: &model.graph) }
    }

    /// Parses `--input-shape` values and applies them (what a command line does with its strings).
    public static func apply(parsing texts: [String], to model: inout Model) throws {
        try apply(parseAll(texts), to: &model)
    }

    /// A copy of `model` whose inputs have the shapes given (the model itself keeps its own declarations, so a
    /// compressed model keeps its dynamic dimensions; calibration and execution use the copy).
    public static func applied(parsing texts: [String], to model: Model) throws -> Model {
        try applied(parseAll(texts), to: model)
    }

    /// A copy of `model` with these input shapes.
    public static func applied(_ shapes: [InputShape], to model: Model) throws -> Model {
        var shaped = model
        try apply(shapes, to: &shaped)
        return shaped
    }

    func apply(to graph: inout Graph) throws {
        let realInputs = graph.inputs.indices.filter { graph.inputs[$0].name.map { graph.initializers[$0] == nil } ?? false }
        guard let i = realInputs.first(where: { graph.inputs[$0].name == input }) else {
            let names = realInputs.compactMap { graph.inputs[$0].name }.joined(separator: ", ")
            throw InputShapeError("--input-shape names '\(input)', which is not an input of the model (inputs: \(names))")
        }
        guard case .tensor(let elemType, let declared, let unknownFields)? = graph.inputs[i].type?.kind else {
            throw InputShapeError("--input-shape '\(input)': the input is not a tensor")
        }
        var shape = declared ?? Shape(dims.map { _ in Dimension(.unknown) })
        guard shape.dims.count == dims.count else {
            throw InputShapeError(
                "--input-shape '\(input)' gives \(dims.count) dimensions; the model's input has rank \(shape.dims.count) (\(describe(shape)))")
        }
        for (k, d) in dims.enumerated() {
            if let fixed = shape.dims[k].size, fixed != d {
                throw InputShapeError(
                    "--input-shape '\(input)' gives dimension \(k) = \(d); the model fixes it to \(fixed) (\(describe(shape)))")
            }
            shape.dims[k].value = .known(Int64(d))
        }
        graph.inputs[i].type?.kind = .tensor(elemType: elemType, shape: shape, unknownFields: unknownFields)
    }
}

/// A shape as a user reads it: `[N, 3, -1, 320]`.
func describe(_ shape: Shape) -> String {
    "[" + shape.dims.map { d -> String in
        switch d.value {
        case .known(let v): return String(v)
        case .symbolic(let s): return s
        case .unknown: return "?"
        }
    }.joined(separator: ", ") + "]"
}
