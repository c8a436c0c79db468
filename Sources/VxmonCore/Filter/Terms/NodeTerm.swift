/// `--node` (Hubble: `node_name`): the node's name, exact, or a pattern where `*` stands for any run
/// of characters (`worker*`).
enum NodeTerm {
    static func matches(_ pattern: String, _ flow: UnsafePointer<Flow>) -> Bool {
        guard let node = flow.pointee.node else { return false }
        return matches(node, pattern: pattern)
    }

    /// Wildcard match over bytes, with one backtrack point (the last `*`): linear in practice and
    /// at most names × pattern steps, whatever a request sends.
    static func matches(_ name: String, pattern: String) -> Bool {
        let star = UInt8(ascii: "*")
        guard pattern.utf8.contains(star) else { return name == pattern }
        let n = Array(name.utf8)
        let p = Array(pattern.utf8)
        var i = 0
        var j = 0
        var starAt = -1
        var resume = 0
        while i < n.count {
            if j < p.count && p[j] != star && p[j] == n[i] {
                i += 1
                j += 1
            } else if j < p.count && p[j] == star {
                starAt = j
                resume = i
                j += 1
            } else if starAt >= 0 {
                j = starAt + 1
                resume += 1
                i = resume
            } else {
                return false
            }
        }
        while j < p.count && p[j] == star { j += 1 }
        return j == p.count
    }
}
