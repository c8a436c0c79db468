/// ifindex -> interface name, per node (ifindexes are per network namespace, so two nodes can both
/// have an ifindex 3). Replay fills it from recording records, the live monitor from each node's netns.
public final class InterfaceNames: @unchecked Sendable {
    /// One node's names. Rendering looks a name up for nearly every event, so the bytes to print
    /// (sanitized once, when the name is set) are kept in one pool, found through a table indexed
    /// by ifindex for the small ifindexes a namespace hands out, and a dictionary above that.
    final class Table {
        static let directLimit: UInt32 = 4096
        var strings: [UInt32: String] = [:]
        /// (offset, length) into `pool`; length -1: unknown.
        var direct: [(offset: Int32, length: Int32)] = []
        var indirect: [UInt32: (offset: Int32, length: Int32)] = [:]
        var pool: [UInt8] = []

        func set(_ ifindex: UInt32, _ name: String) {
            strings[ifindex] = name
            let scratch = OutputBuffer(capacity: 64)
            scratch.appendSanitized(name)
            let entry = (offset: Int32(pool.count), length: Int32(scratch.count))
            pool.append(contentsOf: scratch.bytes)
            if ifindex < Table.directLimit {
                if direct.count <= Int(ifindex) {
                    direct.append(
                        contentsOf: repeatElement((offset: Int32(0), length: Int32(-1)), count: Int(ifindex) + 1 - direct.count))
                }
                direct[Int(ifindex)] = entry
            } else {
                indirect[ifindex] = entry
            }
        }

        @inline(__always)
        func entry(_ ifindex: UInt32) -> (offset: Int32, length: Int32)? {
            if ifindex < UInt32(direct.count) {
                let e = direct[Int(ifindex)]
                return e.length >= 0 ? e : nil
            }
            return ifindex < Table.directLimit ? nil : indirect[ifindex]
        }
    }

    /// Per node (nil: events without a node). A lab has a handful of nodes, and a linear scan of
    /// short node names beats hashing them for every event.
    private var tables: [(node: String?, table: Table)] = []

    public init() {}

    private func table(_ node: String?) -> Table? {
        for entry in tables where entry.node == node { return entry.table }
        return nil
    }

    /// Records `name` for `ifindex` on `node` (nil: events without a node). A later entry wins.
    public func set(_ ifindex: UInt32, _ name: String, node: String? = nil) {
        if let t = table(node) {
            t.set(ifindex, name)
        } else {
            let t = Table()
            t.set(ifindex, name)
            tables.append((node, t))
        }
    }

    public func name(_ ifindex: UInt32, node: String?) -> String? {
        table(node)?.strings[ifindex]
    }

    /// Appends the name, or the decimal ifindex when unknown (as Cilium's link cache does on a miss).
    public func append(ifindex: UInt32, node: String?, to out: OutputBuffer) {
        guard let t = table(node), let e = t.entry(ifindex) else {
            out.decimal(ifindex)
            return
        }
        t.pool.withUnsafeBufferPointer {
            out.append(bytes: UnsafeBufferPointer(rebasing: $0[Int(e.offset)..<Int(e.offset + e.length)]))
        }
    }

    public var isEmpty: Bool { tables.isEmpty }
}

extension OutputBuffer {
    /// Appends text that came from outside (interface names, node names) with control characters
    /// replaced, so nothing from a recording can drive a terminal.
    public func appendSanitized(_ s: String) {
        for scalar in s.unicodeScalars {
            let v = scalar.value
            if v < 0x20 || (v >= 0x7f && v <= 0x9f) {
                append(byte: UInt8(ascii: "?"))  // C0, DEL and C1 controls (ESC, CSI) never reach a terminal
            } else if v < 0x80 {
                append(byte: UInt8(v))
            } else {
                for b in String(scalar).utf8 { append(byte: b) }
            }
        }
    }
}
