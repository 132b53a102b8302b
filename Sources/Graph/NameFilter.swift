// A Bloom filter over value names, so that asking whether a fresh name is taken rarely touches the graph's large
// name tables: looking up a name that is absent is the costly kind (it compares against every entry on its probe
// path, each a string elsewhere in memory), and `Graph.uniqueValueName` asks mostly about absent names.
//
// It answers "never entered" (certain) or "maybe" (then the caller looks the name up for real). Names are only ever
// added, so a name that left the tables still answers "maybe", which is never wrong. Each level keeps about 12 bits
// per name (3 probes, about 1% false "maybe"); a full level is followed by one twice its size (a scalable Bloom
// filter), so it never needs the names again.

struct NameFilter: Sendable {
    private struct Level: Sendable {
        var words: [UInt64]
        var entered = 0
        var capacity: Int { words.count * 64 / 12 }

        init(names: Int) {
            var count = 16
            while count * 64 / 12 < names { count *= 2 }
            words = [UInt64](repeating: 0, count: count)
        }

        func contains(_ h: (UInt64, UInt64)) -> Bool {
            let mask = UInt64(words.count * 64 - 1)
            for i in 0..<3 {
                let bit = (h.0 &+ UInt64(i) &* h.1) & mask
                if words[Int(bit >> 6)] & (UInt64(1) << (bit & 63)) == 0 { return false }
            }
            return true
        }

        mutating func insert(_ h: (UInt64, UInt64)) {
            let mask = UInt64(words.count * 64 - 1)
            for i in 0..<3 {
                let bit = (h.0 &+ UInt64(i) &* h.1) & mask
                words[Int(bit >> 6)] |= UInt64(1) << (bit & 63)
            }
            entered += 1
        }
    }

    private var levels = [Level(names: 0)]

    /// Makes room for `names` more names in the newest level (a level of that size follows when it has not).
    mutating func reserve(_ names: Int) {
        let last = levels[levels.count - 1]
        if last.capacity - last.entered < names { levels.append(Level(names: names)) }
    }

    /// Enters `name` into the newest level (unless that level has it: a name entered again, as every reader of a
    /// value enters it, costs one check).
    mutating func insert(_ name: String) {
        let h = NameFilter.hashes(name)
        let last = levels.count - 1
        if levels[last].contains(h) { return }
        if levels[last].entered >= levels[last].capacity { levels.append(Level(names: 2 * levels[last].capacity)) }
        levels[levels.count - 1].insert(h)
    }

    func mightContain(_ name: String) -> Bool {
        let h = NameFilter.hashes(name)
        return levels.contains { $0.contains(h) }
    }

    /// Two 64-bit hashes of the UTF-8 bytes, eight bytes at a time. Not seeded: a crafted set of names can only make
    /// the filter answer "maybe" more often, which costs lookups, never correctness.
    private static func hashes(_ name: String) -> (UInt64, UInt64) {
        var copy = name
        let h = copy.withUTF8 { bytes -> UInt64 in
            let raw = UnsafeRawBufferPointer(bytes)
            var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(raw.count)
            var i = 0
            while i + 8 <= raw.count {
                h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
                h ^= h >> 29
                i += 8
            }
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < raw.count {
                tail |= UInt64(raw[i]) << shift
                shift += 8
                i += 1
            }
            h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
            return h ^ (h >> 32)
        }
        return (h, ((h &* 0x9E37_79B9_7F4A_7C15) >> 7) | 1)  // the step is odd, so the three probes differ
    }
}
