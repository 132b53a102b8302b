// What a caller of the library needs besides the passes: the IR, model files, npz arrays and errors of `Graph`
// (Model, ModelFile, Graph, Node, Tensor, NumpyArchive, GraphError, ...). A Swift user imports `Passes` alone, as the
// CLI does.
@_exported import Graph
