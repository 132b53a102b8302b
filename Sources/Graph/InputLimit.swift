import Foundation

/// The most memory one input (a calibration file, an array in it) may make amct-pipe allocate. Sizes that a file
/// declares (zip headers, .npy shapes) are checked against the file itself and against this before any allocation.
/// `AMCT_PIPE_MAX_INPUT_BYTES` sets it (bytes, or with a K/M/G/T suffix); the default is 75% of physical memory.
public enum InputLimit {
    public static let environmentVariable = "AMCT_PIPE_MAX_INPUT_BYTES"

    public static var bytes: Int {
        if let text = ProcessInfo.processInfo.environment[environmentVariable], let value = parse(text) { return value }
        return defaultBytes
    }

    public static var defaultBytes: Int {
        let physical = ProcessInfo.processInfo.physicalMemory
        return Int(min(physical / 4 * 3, UInt64(Int.max)))
    }

    /// "123", "64K", "512M", "2G", "1T" (powers of 1024); nil when not a positive size.
    public static func parse(_ text: String) -> Int? {
        var digits = text.trimmingCharacters(in: .whitespaces)
        var scale = 1
        if let last = digits.last?.uppercased(), let shift = ["K": 10, "M": 20, "G": 30, "T": 40][last] {
            scale = 1 << shift
            digits.removeLast()
        }
        guard let value = Int(digits), value > 0 else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : product
    }

    /// The message for a declared size over the limit.
    public static func exceeded(_ bytes: Int, what: String) -> String {
        "\(what) needs \(bytes) bytes, over the input limit of \(self.bytes) bytes (raise it with "
            + "\(environmentVariable)=<bytes>; the default is 75% of physical memory)"
    }
}
