import Synchronization
import VxmonWire

/// What one sample counted in Hubble's families, remembered so that the next sample of the same flow
/// at the same point counts the same without being decoded again.
///
/// Packets of one flow differ from each other in a few fields that count things or check things:
/// the event's skb hash, IPv4's identification and header checksum, TCP's sequence and
/// acknowledgment numbers, window, checksum, urgent pointer and timestamp values, UDP's, SCTP's
/// and ICMP's checksums, ICMPv4's echo identifier and sequence (bytes 4-7), and the payload past the
/// last decoded header. No label reads them and the decoder makes no choice on them: it reads them
/// only to print them. Every other byte of the sample, from the notify header to the end of the last
/// decoded header (outer and tunnelled), is compared, and the sample's length must be the same.
///
/// So the decoder stays the one reading of a sample: a sample either is decoded and its flow counted
/// (`HubbleMetrics.count(_:node:)`), or equals one that was, in every byte the decoder's answer can
/// depend on. `SampleMemoTests` checks that claim against the decoder itself: filling exactly the
/// ignored bytes of every fixture and gopacket case (with zeros, with 0xFF, at random) never changes
/// a label, and a stream counted with the memo equals the same stream decoded event by event; the
/// decoder fuzz target does the differential on every input.
///
/// Remembered: samples of the types Hubble counts as flows (trace, drop, policy verdict, debug
/// capture) whose packet the decoder read to its payload without stopping (no cut, malformed,
/// fragment or unsupported header), with at most 256 compared bytes. 1024 entries in sets of 4; a
/// sample's set and tag come from its node, length, header and where its addresses and ports would
/// be (`tag`): a hint only, a wrong guess costs a decode. Before the tag, the entry this node's
/// last sample of the same type and subtype matched is tried (`recent`, after a raw check of the
/// first 16 bytes): a flood of one flow finds its entry there.
///
/// A sample is remembered the second time its tag is decoded (a doorkeeper of 4096 tags), so that
/// packets that never repeat cost a decode and no more.
///
/// A remembered sample's counts add up in its entry and reach the families' counters when the owner
/// calls `publish()` (the agent: about every 50 ms), or when the entry is taken for another sample.
/// Not remembered either: IPv6 with a hop-by-hop header (its options are read with the IPv6 header,
/// and gopacket's jumbogram quirk reads them where the transport header lies).
/// Writer thread only. A struct of pointers (no reference counting on the hot path): its owner
/// calls `deallocate()` once.
@usableFromInline
struct SampleMemo {
    @usableFromInline static let ways = 4
    /// Sets: 256 (1 for an owner that never uses the memo, which then costs nothing to make).
    @usableFromInline let sets: Int
    var entryCount: Int { sets * Self.ways }
    /// Compared bytes at most (16 chunks of 16): samples with longer headers are always decoded.
    @usableFromInline static let maxChunks = 16
    /// Counter additions one sample can make: a flow, a drop, three TCP flags, an ICMP type or a port.
    @usableFromInline static let maxAdds = 8

    @usableFromInline
    struct Entry {
        @usableFromInline var node: Int32 = -1
        @usableFromInline var length: Int32 = 0
        /// Compared bytes: [0, end), as `end / 16` whole chunks of 16 bytes and, if `end` is not a
        /// multiple of 16, the chunk that ends at `end`.
        @usableFromInline var end: Int16 = 0
        @usableFromInline var adds: Int16 = 0
        /// Samples counted from the entry since its counts were last added to the counters.
        @usableFromInline var pending: UInt32 = 0

        @usableFromInline
        init(node: Int32 = -1, length: Int32 = 0, end: Int16 = 0, adds: Int16 = 0) {
            self.node = node
            self.length = length
            self.end = end
            self.adds = adds
        }
    }

    @usableFromInline let release: CiliumRelease
    /// Per entry (set by set), its tag (0: empty).
    @usableFromInline let tags: UnsafeMutablePointer<UInt64>
    @usableFromInline let entries: UnsafeMutablePointer<Entry>
    /// Per entry, `maxChunks` (mask, masked value) pairs.
    @usableFromInline let chunks: UnsafeMutablePointer<SIMD2<UInt64>>
    /// Per entry, `maxAdds` counters its samples add 1 to.
    @usableFromInline let counters: UnsafeMutablePointer<UnsafeMutablePointer<Atomic<UInt64>>?>
    /// Tags of samples decoded lately (direct-mapped): a sample is remembered the second time its tag
    /// comes.
    private let doorkeeper: UnsafeMutablePointer<UInt64>
    static let doorkeeperSize = 4096
    /// Per node, type and subtype (256 slots): the entry its last sample matched or was remembered in
    /// (-1: none). A hint: the entry is compared like any other.
    @usableFromInline let recent: UnsafeMutablePointer<Int16>
    /// Per entry, the first 16 bytes of the sample it remembers, unmasked (the check before `recent`'s
    /// entry is compared).
    @usableFromInline let heads: UnsafeMutablePointer<SIMD2<UInt64>>
    /// Per set, the way the next new entry takes.
    private let next: UnsafeMutablePointer<UInt8>
    /// Scratch for `remember`: which bytes are compared (0xFF) or ignored (0).
    private let mask = UnsafeMutableRawPointer.allocate(byteCount: maxChunks * 16, alignment: 16)
    /// Samples looked for and not found [0] (tests and benchmarks: every other sample looked for was
    /// counted from an entry).
    @usableFromInline let statistics: UnsafeMutablePointer<UInt64>
    var misses: UInt64 { statistics[0] }

    init(release: CiliumRelease, sets: Int = 256) {
        precondition(sets > 0 && sets & (sets - 1) == 0 && sets <= 256, "sets: a power of two up to 256")
        self.release = release
        self.sets = sets
        let n = sets * Self.ways
        statistics = .allocate(capacity: 1)
        statistics.initialize(to: 0)
        tags = .allocate(capacity: n)
        tags.initialize(repeating: 0, count: n)
        entries = .allocate(capacity: n)
        entries.initialize(repeating: Entry(), count: n)
        chunks = .allocate(capacity: n * Self.maxChunks * 2)
        chunks.initialize(repeating: .zero, count: n * Self.maxChunks * 2)
        counters = .allocate(capacity: n * Self.maxAdds)
        counters.initialize(repeating: nil, count: n * Self.maxAdds)
        doorkeeper = .allocate(capacity: Self.doorkeeperSize)
        doorkeeper.initialize(repeating: 0, count: Self.doorkeeperSize)
        next = .allocate(capacity: sets)
        next.initialize(repeating: 0, count: sets)
        recent = .allocate(capacity: 256)
        recent.initialize(repeating: -1, count: 256)
        heads = .allocate(capacity: n)
        heads.initialize(repeating: .zero, count: n)
    }

    func deallocate() {
        statistics.deallocate()
        tags.deallocate()
        entries.deallocate()
        chunks.deallocate()
        counters.deallocate()
        next.deallocate()
        recent.deallocate()
        heads.deallocate()
        doorkeeper.deallocate()
        mask.deallocate()
    }

    /// The tag of a sample of `n >= 16` bytes (never 0); its top 8 bits pick the set. From the node,
    /// the length, the first 16 bytes but the original length (type, subtype, source, the flow's skb
    /// hash, captured length, version), and where the packet would start, the bytes an Ethernet frame
    /// holds its IPv4 addresses (an IPv6 source's middle) and source port (ICMP's type and code) at.
    @inlinable @inline(__always)
    func tag(_ p: UnsafeRawPointer, _ n: Int, node: Int) -> UInt64 {
        let a = p.loadUnaligned(as: UInt64.self)
        let b = UInt64(p.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        var k = (a ^ (b | UInt64(truncatingIfNeeded: n) << 32) &* 0xC2B2_AE3D_27D4_EB4F) ^ UInt64(truncatingIfNeeded: node)
        var h = 0
        switch a & 0xFF {
        case 4:  // trace: 1.13's u16 version, latest's u8
            let v = b >> 16 & 0xFF
            h = v == 0 ? 32 : v == 1 ? 48 : 56
        case 1: h = release == .v1_13 ? 36 : EventLayout.Drop.headerLength(version: UInt8(truncatingIfNeeded: b >> 16)) ?? 0
        case 5: h = EventLayout.PolicyVerdict.headerLength(release)
        case 3: h = EventLayout.DebugCapture.headerLength
        default: break
        }
        // Only over an Ethernet frame of IPv4 or IPv6 (else those bytes may change with every packet).
        if h > 0 && h &+ 36 <= n,
            case let type = p.loadUnaligned(fromByteOffset: h &+ 12, as: UInt16.self), type == 0x0008 || type == 0xdd86
        {
            k ^= p.loadUnaligned(fromByteOffset: h &+ 26, as: UInt64.self) &* 0x1656_67B1_9E37_79F9
            k ^= UInt64(p.loadUnaligned(fromByteOffset: h &+ 34, as: UInt16.self)) << 48
        }
        return (k &* 0x9E37_79B9_7F4A_7C15) | 1
    }

    /// Whether entry `i` holds a sample equal to the one at `p` (`n` bytes, node `node`) in every
    /// compared byte.
    @inlinable @inline(__always)
    func matches(_ i: Int, _ p: UnsafeRawPointer, _ n: Int, node: Int, from first: Int = 0) -> Bool {
        let e = entries[i]
        guard Int(e.length) == n, Int(e.node) == node else { return false }
        let end = Int(e.end)
        // 16 <= end <= length == n: every load is inside the sample.
        let w = chunks + i &* (Self.maxChunks &* 2)
        var diff = SIMD2<UInt64>.zero
        let whole = end >> 4
        var k = first
        while k < whole {
            diff |= (p.loadUnaligned(fromByteOffset: k &<< 4, as: SIMD2<UInt64>.self) & w[k &<< 1]) ^ w[k &<< 1 &+ 1]
            k &+= 1
        }
        if end & 15 != 0 {
            diff |= (p.loadUnaligned(fromByteOffset: end &- 16, as: SIMD2<UInt64>.self) & w[whole &<< 1]) ^ w[whole &<< 1 &+ 1]
        }
        return diff[0] | diff[1] == 0
    }

    /// Counts `sample` of node `node` if it matches a remembered one; false if it must be decoded.
    @inlinable @inline(__always)
    func replay(_ sample: RawSpan, node: Int) -> Bool {
        let n = sample.byteCount
        guard n >= 16 else { return false }
        return sample.withUnsafeBytes { raw -> Bool in
            guard let p = raw.baseAddress else { return false }
            // The entry this node's last sample of the type and subtype matched: a flood of one flow
            // finds its entry here, without the tag.
            let r = Self.recentSlot(p, node: node)
            let last = Int(recent[r])
            // Its first 16 bytes as they were, the flow's skb hash among them: another flow at that
            // point is told apart there, without the rest.
            // (Equal raw, they are equal masked: the compare starts at the second chunk.)
            if last >= 0 && heads[last] == p.loadUnaligned(as: SIMD2<UInt64>.self) && matches(last, p, n, node: node, from: 1) {
                hit(last)
                return true
            }
            let t = tag(p, n, node: node)
            let first = (Int(truncatingIfNeeded: t >> 56) & (sets &- 1)) &* Self.ways
            for i in first..<(first &+ Self.ways) where tags[i] == t && matches(i, p, n, node: node) {
                hit(i)
                recent[r] = Int16(truncatingIfNeeded: i)
                return true
            }
            statistics[0] &+= 1
            return false
        }
    }

    /// A sample counted from entry `i`.
    @inlinable @inline(__always)
    func hit(_ i: Int) {
        entries[i].pending &+= 1
        // Before the count could wrap (4 billion samples of one flow within one publish).
        if entries[i].pending == UInt32.max { flush(i) }
    }

    /// The slot in `recent` of a sample's node, type and subtype.
    @inlinable @inline(__always)
    static func recentSlot(_ p: UnsafeRawPointer, node: Int) -> Int {
        let k = UInt32(p.loadUnaligned(as: UInt16.self)) ^ UInt32(truncatingIfNeeded: node) << 16
        return Int((k &* 0x9E37_79B1) >> 24)
    }

    /// Adds entry `i`'s pending samples to its counters.
    @inlinable @inline(__always)
    func flush(_ i: Int) {
        let pending = UInt64(entries[i].pending)
        guard pending > 0 else { return }
        let c = counters + i &* Self.maxAdds
        for a in 0..<Int(entries[i].adds) {
            let v = c[a].unsafelyUnwrapped
            v.pointee.store(v.pointee.load(ordering: .relaxed) &+ pending, ordering: .relaxed)
        }
        entries[i].pending = 0
    }

    /// Adds every entry's pending samples to the counters.
    func publish() {
        for i in 0..<entryCount where entries[i].pending > 0 { flush(i) }
    }

    /// Which bytes of `sample` (decoded into `event`) a remembered sample is compared on: fills `mask`
    /// (at least `maxChunks * 16` bytes) with 0xFF for a compared byte and 0 for an ignored one, up to
    /// the end it returns; nil when the memo does not remember the sample's kind.
    static func buildMask(_ sample: RawSpan, event: UnsafePointer<Event>, into mask: UnsafeMutableRawPointer) -> Int? {
        guard sample.byteCount >= 16, let end = comparedEnd(event), end >= 16, end <= sample.byteCount else { return nil }
        // All compared, then the ignored fields cleared (a few bytes each: byte stores, no memset).
        let ones = SIMD2<UInt64>(repeating: UInt64.max)
        for k in 0..<((end &+ 15) >> 4) { mask.storeBytes(of: ones, toByteOffset: k &<< 4, as: SIMD2<UInt64>.self) }
        func ignore(_ from: Int, _ count: Int) {
            var b = max(from, 0)
            let to = min(from &+ count, end)
            while b < to {
                mask.storeBytes(of: 0, toByteOffset: b, as: UInt8.self)
                b &+= 1
            }
        }
        // The notify header's skb hash (bytes 4-7) of every remembered type.
        ignore(4, 4)
        let base = event.pointee.packetOffset
        event.pointee.packet.layers.withUnsafeBufferPointer { layers in
        for l in layers.indices {
            let o = base &+ layers[l].offset
            switch layers[l].kind {
            case .ipv4:
                ignore(o &+ 4, 2)  // identification
                ignore(o &+ 10, 2)  // header checksum
            case .tcp:
                ignore(o &+ 4, 8)  // sequence, acknowledgment
                ignore(o &+ 14, 6)  // window, checksum, urgent pointer
                // Timestamp values (option 8, length 10); the options' kinds and lengths stay compared.
                var at = o &+ 20
                let optionsEnd = min(o &+ layers[l].headerLength, end)
                while at < optionsEnd {
                    let kind = sample.u8(at)
                    if kind == 0 { break }
                    if kind == 1 {
                        at &+= 1
                        continue
                    }
                    guard at &+ 1 < optionsEnd else { break }
                    let length = Int(sample.u8(at &+ 1))
                    guard length >= 2, at &+ length <= optionsEnd else { break }
                    if kind == 8 && length == 10 { ignore(at &+ 2, 8) }
                    at &+= length
                }
            case .udp:
                ignore(o &+ 6, 2)  // checksum
            case .sctp:
                ignore(o &+ 8, 4)  // checksum
            case .icmpv4:
                ignore(o &+ 2, 6)  // checksum, and the rest of the header (echo identifier, sequence)
            case .icmpv6:
                ignore(o &+ 2, 2)  // checksum
            default:
                break
            }
        }
        }
        return end
    }

    /// `buildMask` as an array (tests): true for a compared byte, over the whole sample.
    static func comparedBytes(_ sample: RawSpan, event: UnsafePointer<Event>) -> [Bool]? {
        let mask = UnsafeMutableRawPointer.allocate(byteCount: maxChunks * 16, alignment: 16)
        defer { mask.deallocate() }
        guard let end = buildMask(sample, event: event, into: mask) else { return nil }
        return (0..<sample.byteCount).map { $0 < end && mask.load(fromByteOffset: $0, as: UInt8.self) != 0 }
    }

    /// Remembers what `sample`, just decoded into `event` and counted with `adds`, counted, if its
    /// kind is one the memo can vouch for (see the type's comment).
    func remember(
        _ sample: RawSpan, node: Int, event: UnsafePointer<Event>, adds: UnsafeBufferPointer<UnsafeMutablePointer<Atomic<UInt64>>>
    ) {
        let n = sample.byteCount
        // Lengths and nodes are kept in 32 bits: a sample or node beyond them is never remembered.
        guard n >= 16, n <= Int(Int32.max), node >= 0, node <= Int(Int32.max), adds.count <= Self.maxAdds else { return }
        let t = sample.withUnsafeBytes { tag($0.baseAddress!, n, node: node) }
        // Only a tag seen before gets an entry: a flood of packets that never repeat (random ports)
        // costs a decode each, not an entry each too.
        // (The tag's high bits: its low bits come from the header's alone.)
        let d = Int(truncatingIfNeeded: t >> 40) & (Self.doorkeeperSize &- 1)
        guard doorkeeper[d] == t else {
            doorkeeper[d] = t
            return
        }
        guard let end = Self.buildMask(sample, event: event, into: mask) else { return }
        let set = Int(truncatingIfNeeded: t >> 56) & (sets &- 1)
        // A sample that matched no entry of its tag replaces the set's oldest, whose counts go first.
        let i = set &* Self.ways &+ Int(next[set])
        next[set] = (next[set] &+ 1) % UInt8(Self.ways)
        flush(i)
        let w = chunks + i &* (Self.maxChunks &* 2)
        sample.withUnsafeBytes { raw in
            let p = raw.baseAddress!
            let whole = end >> 4
            for k in 0..<whole {
                let m = mask.loadUnaligned(fromByteOffset: k &<< 4, as: SIMD2<UInt64>.self)
                w[k &<< 1] = m
                w[k &<< 1 &+ 1] = p.loadUnaligned(fromByteOffset: k &<< 4, as: SIMD2<UInt64>.self) & m
            }
            if end & 15 != 0 {
                let m = mask.loadUnaligned(fromByteOffset: end &- 16, as: SIMD2<UInt64>.self)
                w[whole &<< 1] = m
                w[whole &<< 1 &+ 1] = p.loadUnaligned(fromByteOffset: end &- 16, as: SIMD2<UInt64>.self) & m
            }
        }
        let c = counters + i &* Self.maxAdds
        for (a, counter) in adds.enumerated() { c[a] = counter }
        tags[i] = t
        sample.withUnsafeBytes { raw in
            recent[Self.recentSlot(raw.baseAddress!, node: node)] = Int16(truncatingIfNeeded: i)
            heads[i] = raw.baseAddress!.loadUnaligned(as: SIMD2<UInt64>.self)
        }
        entries[i] = Entry(node: Int32(node), length: Int32(n), end: Int16(end), adds: Int16(adds.count))
    }

    /// Where the compared bytes end for `event`, or nil when the memo does not remember its kind.
    static func comparedEnd(_ event: UnsafePointer<Event>) -> Int? {
        switch event.pointee.flow.type {
        case MessageType.trace, MessageType.drop, MessageType.policyVerdict, MessageType.capture: break
        default: return nil
        }
        guard event.pointee.packet.stop == nil, !event.pointee.packet.layers.isEmpty else { return nil }
        let base = event.pointee.packetOffset
        var end = base
        var hopByHop = false
        event.pointee.packet.layers.withUnsafeBufferPointer { layers in
            for l in layers.indices {
                end = max(end, base &+ max(layers[l].offset &+ layers[l].headerLength, layers[l].payloadOffset))
                // A hop-by-hop header is read with the IPv6 header, and gopacket's jumbogram quirk
                // reads its options where the transport header lies: not remembered.
                if case .ipv6(let h) = layers[l].header, h.hopByHop != nil { hopByHop = true }
            }
        }
        return end <= maxChunks * 16 && !hopByHop ? end : nil
    }
}
