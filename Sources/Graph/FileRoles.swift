import Foundation

/// The rule that no output replaces an input, in one place: every file a command will write is checked, before any
/// work, against every file it reads and against the other outputs. Files are compared by identity (device and inode),
/// so a symlink, a hard link or a `./x` spelling of an input is caught; an output that does not exist yet is compared
/// by its resolved folder and name.
public struct FileRoles: Sendable {
    public struct Role: Sendable {
        public var path: String
        /// What the file is to the command, as a user would name it: "the model", "--calib", "-o".
        public var what: String
    }
    public private(set) var inputs: [Role] = []
    public private(set) var outputs: [Role] = []

    public init() {}

    public mutating func input(_ path: String?, _ what: String) {
        if let path { inputs.append(Role(path: path, what: what)) }
    }
    public mutating func output(_ path: String?, _ what: String) {
        if let path { outputs.append(Role(path: path, what: what)) }
    }
    /// The model file and the external data files a loaded model was read from.
    public mutating func inputs(of model: Model, _ what: String = "the input model") {
        for (i, file) in ModelFile.inputFiles(of: model).enumerated() {
            input(file, i == 0 ? what : "external data of \(what)")
        }
    }

    /// Whether two paths name one file (by identity; see the type's note).
    public static func sameFile(_ a: String, _ b: String) -> Bool { FileIdentity(a) == FileIdentity(b) }

    /// Throws when an output is an input, or two outputs are one file.
    public func check() throws {
        let inputIDs = inputs.map { FileIdentity($0.path) }
        var seen: [(FileIdentity, Role)] = []
        for out in outputs {
            let id = FileIdentity(out.path)
            if let k = inputIDs.firstIndex(of: id) {
                throw FileRoleError(output: out, other: inputs[k], otherIsInput: true)
            }
            if let earlier = seen.first(where: { $0.0 == id }) {
                throw FileRoleError(output: out, other: earlier.1, otherIsInput: false)
            }
            seen.append((id, out))
        }
    }
}

/// A file as the system sees it: device and inode when it exists, else its resolved folder and name.
struct FileIdentity: Equatable {
    enum Key: Equatable {
        case inode(UInt64, UInt64)
        case path(String)
    }
    let key: Key

    init(_ path: String) {
        var st = stat()
        if stat(path, &st) == 0 {
            key = .inode(UInt64(st.st_dev), UInt64(st.st_ino))
            return
        }
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let folder = url.deletingLastPathComponent().path
        let resolved = realpath(folder, nil).map { p -> String in
            defer { free(p) }
            return String(cString: p)
        }
        key = .path((resolved ?? folder) + "/" + url.lastPathComponent)
    }
}
