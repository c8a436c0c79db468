import VxmonWire

/// What identifies one packet wherever the datapath sees it: on both sides of a tunnel, before and
/// after encapsulation, on every node. The inner 5-tuple, and what tells the packet from the others of
/// its flow: the IPv4 identification (or IPv6 fragment ID), the transport checksum (it covers the
/// payload, and no hop of the overlay rewrites it), TCP's sequence and acknowledgment numbers, an ICMP
/// echo's identifier and sequence. None of these change between the pod's veth and the far pod's:
/// the TTL, the IP checksum and the MACs do, and are left out.
public struct PacketKey: Hashable, Sendable {
    public var source: IPAddress
    public var destination: IPAddress
    /// The IP protocol number (6 TCP, 17 UDP, 1 ICMP, ...; 0 for an IP header with nothing after it).
    public var ipProtocol: UInt8
    /// Source and destination port; for ICMP, type and code.
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// An ICMP echo's identifier and sequence; TCP's sequence number; else 0.
    public var sequence: UInt32
    /// TCP's acknowledgment number; else 0.
    public var acknowledgment: UInt32
    /// IPv4 identification, or the IPv6 fragment header's; 0 when the packet has none.
    public var ipID: UInt32
    /// IPv4 fragment offset (a fragment after the first carries no transport header).
    public var fragmentOffset: UInt16
    /// The transport header's checksum (0 when it is cut off).
    public var checksum: UInt16

    public init(
        source: IPAddress, destination: IPAddress, ipProtocol: UInt8, sourcePort: UInt16 = 0, destinationPort: UInt16 = 0,
        sequence: UInt32 = 0, acknowledgment: UInt32 = 0, ipID: UInt32 = 0, fragmentOffset: UInt16 = 0,
        checksum: UInt16 = 0
    ) {
        self.source = source
        self.destination = destination
        self.ipProtocol = ipProtocol
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequence = sequence
        self.acknowledgment = acknowledgment
        self.ipID = ipID
        self.fragmentOffset = fragmentOffset
        self.checksum = checksum
    }

    /// Four words into the hasher (the synthesized hash combined every field and address part alone:
    /// a fifth of journey building's time).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(Self.word(source) &* 0x9E37_79B9_7F4A_7C15 ^ Self.word(destination))
        hasher.combine(
            UInt64(ipProtocol) << 56 | UInt64(fragmentOffset) << 32 | UInt64(sourcePort) << 16 | UInt64(destinationPort))
        hasher.combine(UInt64(sequence) << 32 | UInt64(acknowledgment))
        hasher.combine(UInt64(ipID) << 16 | UInt64(checksum))
    }

    @inline(__always)
    static func word(_ a: IPAddress) -> UInt64 {
        switch a {
        case .v4(let v): UInt64(v.rawValue)
        case .v6(let v): v.high ^ (v.low &* 0xC2B2_AE3D_27D4_EB4F) ^ 0x1_0000_0000
        }
    }

    /// An ICMPv4 or ICMPv6 echo request.
    public var isEchoRequest: Bool {
        (ipProtocol == 1 && sourcePort >> 8 == 8) || (ipProtocol == 58 && sourcePort >> 8 == 128)
    }

    /// An ICMPv4 or ICMPv6 echo reply.
    public var isEchoReply: Bool {
        (ipProtocol == 1 && sourcePort >> 8 == 0) || (ipProtocol == 58 && sourcePort >> 8 == 129)
    }

    /// TCP, UDP or SCTP: a conversation of ports.
    public var hasPorts: Bool { ipProtocol == 6 || ipProtocol == 17 || ipProtocol == 132 }

    /// The exchange the packet belongs to, oriented from its source: a reply's is its request's
    /// `reversedExchange`.
    public var exchange: ExchangeKey {
        if ipProtocol == 1 || ipProtocol == 58 {
            // An echo and its reply share identifier and sequence.
            return ExchangeKey(
                source: source, destination: destination, ipProtocol: ipProtocol, a: UInt16(truncatingIfNeeded: sequence >> 16),
                b: UInt16(truncatingIfNeeded: sequence))
        }
        return ExchangeKey(source: source, destination: destination, ipProtocol: ipProtocol, a: sourcePort, b: destinationPort)
    }

    /// The exchange a reply to this packet belongs to.
    public var reversedExchange: ExchangeKey {
        if ipProtocol == 1 || ipProtocol == 58 {
            return ExchangeKey(
                source: destination, destination: source, ipProtocol: ipProtocol, a: UInt16(truncatingIfNeeded: sequence >> 16),
                b: UInt16(truncatingIfNeeded: sequence))
        }
        return ExchangeKey(source: destination, destination: source, ipProtocol: ipProtocol, a: destinationPort, b: sourcePort)
    }
}

/// A request/reply exchange: addresses, protocol, and the ports (or an echo's identifier and
/// sequence), oriented from the request's source.
public struct ExchangeKey: Hashable, Sendable {
    public var source: IPAddress
    public var destination: IPAddress
    public var ipProtocol: UInt8
    public var a: UInt16
    public var b: UInt16
}

extension PacketKey {
    /// The key of the packet in `event` (the inner packet of a tunnelled one), nil when it has no IP
    /// header: ARP, socket traces, events without a packet. `record` is the event's raw sample.
    public init?(_ event: borrowing Event, record: RawSpan) {
        guard let key = Self.read(event, record: record) else { return nil }
        self = key
    }

    private static func read(_ event: borrowing Event, record: RawSpan) -> PacketKey? {
        let inner = event.flow.primaryIsInner
        let layers = event.packet.layers
        guard event.packetLength > 0, !layers.isEmpty else { return nil }
        let base = event.packetOffset
        let end = base &+ event.packetLength
        guard base >= 0, end <= record.byteCount, base <= end else { return nil }
        let bytes = record.extracting(base..<end)
        var i = 0
        // The first IP header of the stack the flow names.
        while i < layers.count {
            let l = layers[i]
            if l.isInner == inner && (l.kind == .ipv4 || l.kind == .ipv6) { break }
            i += 1
        }
        guard i < layers.count else { return nil }
        let ip = layers[i]
        let o = ip.offset
        var key: PacketKey
        var transportAt: Int? = nil
        if ip.kind == .ipv4 {
            guard bytes.has(20, at: o) else { return nil }
            key = PacketKey(source: .v4(bytes.ipv4(o &+ 12)), destination: .v4(bytes.ipv4(o &+ 16)), ipProtocol: bytes.u8(o &+ 9))
            key.ipID = UInt32(bytes.be16(o &+ 4))
            key.fragmentOffset = bytes.be16(o &+ 6) & 0x1fff
            let ihl = Int(bytes.u8(o) & 0x0f) &* 4
            if key.fragmentOffset == 0 && ihl >= 20 { transportAt = o &+ ihl }
        } else {
            guard bytes.has(40, at: o) else { return nil }
            key = PacketKey(source: .v6(bytes.ipv6(o &+ 8)), destination: .v6(bytes.ipv6(o &+ 24)), ipProtocol: 0)
            // The transport follows the extension headers the decoder walked (hop-by-hop, fragment, ...).
            var next = bytes.u8(o &+ 6)
            var at = o &+ 40
            var walked = 0
            while walked < 8 {
                walked += 1
                switch next {
                case 0, 43, 60:  // hop-by-hop, routing, destination options
                    guard bytes.has(2, at: at) else { return key }
                    next = bytes.u8(at)
                    at = at &+ (Int(bytes.u8(at &+ 1)) &+ 1) &* 8
                    continue
                case 44:  // fragment
                    guard bytes.has(8, at: at) else { return key }
                    key.ipID = bytes.be32(at &+ 4)
                    key.fragmentOffset = bytes.be16(at &+ 2) >> 3
                    next = bytes.u8(at)
                    at = at &+ 8
                    if key.fragmentOffset != 0 {
                        key.ipProtocol = next
                        return key
                    }
                    continue
                default:
                    break
                }
                break
            }
            key.ipProtocol = next
            transportAt = at
        }
        guard let t = transportAt else { return key }
        switch key.ipProtocol {
        case 6:
            guard bytes.has(18, at: t) else { break }
            key.sourcePort = bytes.be16(t)
            key.destinationPort = bytes.be16(t &+ 2)
            key.sequence = bytes.be32(t &+ 4)
            key.acknowledgment = bytes.be32(t &+ 8)
            key.checksum = bytes.be16(t &+ 16)
        case 17:
            guard bytes.has(8, at: t) else { break }
            key.sourcePort = bytes.be16(t)
            key.destinationPort = bytes.be16(t &+ 2)
            key.checksum = bytes.be16(t &+ 6)
        case 132:
            guard bytes.has(12, at: t) else { break }
            key.sourcePort = bytes.be16(t)
            key.destinationPort = bytes.be16(t &+ 2)
            key.sequence = bytes.be32(t &+ 4)  // verification tag
            key.acknowledgment = bytes.be32(t &+ 8)  // CRC32c
        case 1, 58:
            guard bytes.has(4, at: t) else { break }
            key.sourcePort = bytes.be16(t)  // type and code
            key.checksum = bytes.be16(t &+ 2)
            if bytes.has(8, at: t) { key.sequence = bytes.be32(t &+ 4) }  // echo: identifier, sequence
        default:
            break
        }
        return key
    }
}
