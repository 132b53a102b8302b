// Editing a pipeline by pass name: insert a pass before or after one, replace one, remove one. A name is looked up in
// the main passes and in every branch (a pass after `upgrade-opset` in the AMCT layout goes into both branches).
//
//   var p = Pipeline.compress(format: .qdq)
//   try p.insert(KeepSmallLayersFloat(), after: "resolve-overrides")
//   print(p)    // pipeline compress (qdq): 1. validate-graph … 5. keep-small-layers-float …

extension Pipeline {
    /// Inserts `pass` right after every pass named `name`.
    public mutating func insert(_ pass: any Pass, after name: String) throws {
        try edit(name) { list, i in list.insert(pass, at: i + 1) }
    }

    /// Inserts `pass` right before every pass named `name`.
    public mutating func insert(_ pass: any Pass, before name: String) throws {
        try edit(name) { list, i in list.insert(pass, at: i) }
    }

    /// Replaces every pass named `name` with `pass`.
    public mutating func replace(_ name: String, with pass: any Pass) throws {
        try edit(name) { list, i in list[i] = pass }
    }

    /// Removes every pass named `name`.
    public mutating func remove(_ name: String) throws {
        try edit(name) { list, i in list.remove(at: i) }
    }

    /// Applies `change` at the last pass named `name` of the main list and of each branch (last first, so an
    /// insertion does not shift what is left to find); an error when no list has it.
    private mutating func edit(_ name: String, _ change: (inout [any Pass], Int) -> Void) throws {
        var found = false
        func apply(_ list: inout [any Pass]) {
            for i in list.indices.reversed() where list[i].name == name {
                change(&list, i)
                found = true
            }
        }
        apply(&passes)
        for b in branches.indices { apply(&branches[b].passes) }
        guard found else { throw PipelineEditError(name: name, passes: passNames) }
    }
}
