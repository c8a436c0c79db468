/// ifindex -> interface name, per node (ifindexes are per network namespace, so two nodes can both
/// have an ifindex 3). Replay fills it from recording records, the live monitor from each node's netns.
public final class InterfaceNames: @unchecked Sendable {
    /// Rendering looks a name up for nearly every event, so everything it touches is a flat array of
    /// plain values (no reference counting on the way): the bytes to print, sanitized once when the
    /// name is set, live in `pool`; `direct` holds, per node, `directLimit` (offset, length) slots
    /// indexed by ifindex (namespaces hand out small ifindexes); larger ones, and every node after
    /// the first `directNodes` (a recording can name any number), go to `indirect`.
    static let directLimit = 4096
    static let directNodes = 16
    /// Bounds whatever a recording says: names (of distinct node/ifindex pairs), nodes, and bytes per
    /// name (Linux names are at most 15 bytes). Names past a bound are not kept (`dropped` counts
    /// them) and render as the number, as an unknown ifindex does.
    public static let maxEntries = 65536
    public static let maxNodes = 4096
    public static let maxNameBytes = 255
    /// Names not kept because a bound was reached.
    public private(set) var dropped = 0
    /// Pool bytes no slot points at any more (renamed interfaces); compacted when they dominate.
    private var deadBytes = 0
    private typealias Slot = (offset: Int32, length: Int32)
    private static let empty: Slot = (0, -1)

    /// Node names (nil: events without a node); a node's slots start at index * directLimit.
    private var nodes: [String?] = []
    /// Index of every node after the first `directNodes`.
    private var moreNodes: [String?: Int] = [:]
    /// `directNodes * directLimit` slots and the byte pool, in memory this class owns: reading
    /// them per event must not retain and release an array buffer.
    private let direct: UnsafeMutablePointer<Slot>
    private var pool: UnsafeMutablePointer<UInt8>
    private var poolCount = 0
    private var poolCapacity = 1024
    private var indirect: [UInt64: Slot] = [:]
    private var strings: [UInt64: String] = [:]

    public init() {
        direct = .allocate(capacity: Self.directNodes * Self.directLimit)
        pool = .allocate(capacity: poolCapacity)
    }

    deinit {
        direct.deallocate()
        pool.deallocate()
    }

    /// A lab has a handful of nodes: a linear scan of their (short) names beats hashing them.
    @inline(__always)
    private func nodeIndex(_ node: String?) -> Int? {
        var i = 0
        let scanned = min(nodes.count, Self.directNodes)
        while i < scanned {
            if nodes[i] == node { return i }
            i += 1
        }
        return nodes.count > scanned ? moreNodes[node] : nil
    }

    @inline(__always)
    private func directIndex(_ node: Int, _ ifindex: UInt32) -> Int? {
        node < Self.directNodes && Int(ifindex) < Self.directLimit ? node * Self.directLimit + Int(ifindex) : nil
    }

    /// Records `name` for `ifindex` on `node` (nil: events without a node). A later entry wins.
    public func set(_ ifindex: UInt32, _ name: String, node: String? = nil) {
        let n: Int
        if let found = nodeIndex(node) {
            n = found
        } else {
            guard nodes.count < Self.maxNodes else {
                dropped += 1
                return
            }
            n = nodes.count
            nodes.append(node)
            if n < Self.directNodes {
                (direct + n * Self.directLimit).initialize(repeating: Self.empty, count: Self.directLimit)
            } else {
                moreNodes[node] = n
            }
        }
        let key = UInt64(n) << 32 | UInt64(ifindex)
        let name = Self.capped(name)
        let previous = strings[key]
        if previous == name { return }  // recordings repeat names: keep the pool from growing
        if previous == nil && strings.count >= Self.maxEntries {
            dropped += 1
            return
        }
        strings[key] = name
        let scratch = OutputBuffer(capacity: 64)
        scratch.appendSanitized(name)
        let d = directIndex(n, ifindex)
        let old = d.map { direct[$0] } ?? indirect[key] ?? Self.empty
        let slot: Slot
        if old.length >= Int32(scratch.count) {
            // A rename that fits where the old name was: overwrite it.
            slot = (old.offset, Int32(scratch.count))
            deadBytes += Int(old.length) - scratch.count
        } else {
            if old.length > 0 { deadBytes += Int(old.length) }
            slot = (Int32(poolCount), Int32(scratch.count))
            reservePool(scratch.count)
            poolCount += scratch.count
        }
        if let base = scratch.bytes.baseAddress { (pool + Int(slot.offset)).update(from: base, count: scratch.count) }
        if let d {
            direct[d] = slot
        } else {
            indirect[key] = slot
        }
        if deadBytes > 65536 && deadBytes > poolCount / 2 { compact() }
    }

    /// Bytes the name pool holds (live and dead), for tests of the bounds.
    public var poolBytes: Int { poolCount }

    /// A name cut to `maxNameBytes` at a character boundary.
    static func capped(_ name: String) -> String {
        guard name.utf8.count > maxNameBytes else { return name }
        var out = ""
        var bytes = 0
        for scalar in name.unicodeScalars {
            let n = String(scalar).utf8.count
            if bytes + n > maxNameBytes { break }
            out.unicodeScalars.append(scalar)
            bytes += n
        }
        return out
    }

    private func reservePool(_ count: Int) {
        guard poolCount + count > poolCapacity else { return }
        while poolCount + count > poolCapacity { poolCapacity *= 2 }
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: poolCapacity)
        grown.initialize(from: pool, count: poolCount)
        pool.deallocate()
        pool = grown
    }

    /// Rewrites the pool with only the names slots point at.
    private func compact() {
        let fresh = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1024, poolCount - deadBytes))
        var used = 0
        func move(_ slot: inout Slot) {
            guard slot.length > 0 else { return }
            (fresh + used).initialize(from: pool + Int(slot.offset), count: Int(slot.length))
            slot.offset = Int32(used)
            used += Int(slot.length)
        }
        for i in 0..<(min(nodes.count, Self.directNodes) * Self.directLimit) { move(&direct[i]) }
        for key in indirect.keys { move(&indirect[key]!) }
        pool.deallocate()
        pool = fresh
        poolCapacity = max(1024, poolCount - deadBytes)
        poolCount = used
        deadBytes = 0
    }

    public func name(_ ifindex: UInt32, node: String?) -> String? {
        guard let n = nodeIndex(node) else { return nil }
        return strings[UInt64(n) << 32 | UInt64(ifindex)]
    }

    /// Appends the name, or the decimal ifindex when unknown (as Cilium's link cache does on a miss).
    public func append(ifindex: UInt32, node: String?, to out: OutputBuffer) {
        if let n = nodeIndex(node) {
            let slot =
                directIndex(n, ifindex).map { direct[$0] } ?? indirect[UInt64(n) << 32 | UInt64(ifindex)] ?? Self.empty
            if slot.length >= 0 {
                out.append(bytes: UnsafeBufferPointer(start: pool + Int(slot.offset), count: Int(slot.length)))
                return
            }
        }
        out.decimal(ifindex)
    }

    public var isEmpty: Bool { nodes.isEmpty }
}

extension OutputBuffer {
    /// Appends text that came from outside (interface names, node names) with control characters
    /// replaced, so nothing from a recording can drive a terminal.
    public func appendSanitized(_ s: String) {
        for scalar in s.unicodeScalars {
            let v = scalar.value
            if v < 0x20 || (v >= 0x7f && v <= 0x9f) || OutputBuffer.isBidiControl(v) {
                // C0, DEL and C1 controls (ESC, CSI) and bidi/format controls never reach a terminal.
                append(byte: UInt8(ascii: "?"))
            } else if v < 0x80 {
                append(byte: UInt8(v))
            } else {
                for b in String(scalar).utf8 { append(byte: b) }
            }
        }
    }

    /// Unicode bidi and invisible format controls that can reorder or hide what a terminal shows:
    /// ALM, LRM/RLM, the embeddings and overrides, the isolates, zero-width and BOM.
    @inline(__always)
    public static func isBidiControl(_ v: UInt32) -> Bool {
        switch v {
        case 0x061C, 0x200B...0x200F, 0x202A...0x202E, 0x2060...0x2069, 0xFEFF: true
        default: false
        }
    }
}
