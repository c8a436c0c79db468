import VxmonWire

/// What identifies one packet wherever the datapath sees it: on both sides of a tunnel, before and
/// after encapsulation, on every node. Its addresses, protocol and ports (or ICMP type and code) are the
/// event's `Flow`'s (the stack it names: the inner packet of a tunnelled one); what tells the packet
/// from the others of its flow is read from its headers: the IPv4 identification (or the IPv6 fragment
/// header's), the IP payload length, TCP's sequence and acknowledgment numbers and flags, an ICMP echo's
/// identifier and sequence (and ICMP's checksum, which the sending stack computes whole), the first
/// bytes of a UDP datagram's payload. None of these change between the pod's veth and the far pod's.
/// The TTL, the IP checksum and the MACs do; and TCP's and UDP's checksums are left out too: with
/// checksum offload the sender's datapath sees a partial sum, which the NIC completes on the wire.
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
    /// The IP payload length (IPv4 total length less its header; IPv6 payload length).
    public var length: UInt16
    /// TCP's flags; the first 4 bytes of a UDP payload (as far as captured); ICMP's checksum; else 0.
    public var extra: UInt32

    public init(
        source: IPAddress, destination: IPAddress, ipProtocol: UInt8, sourcePort: UInt16 = 0, destinationPort: UInt16 = 0,
        sequence: UInt32 = 0, acknowledgment: UInt32 = 0, ipID: UInt32 = 0, fragmentOffset: UInt16 = 0, length: UInt16 = 0,
        extra: UInt32 = 0
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
        self.length = length
        self.extra = extra
    }

    /// Four words into the hasher (the synthesized hash combined every field and address part alone:
    /// a fifth of journey building's time).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(Self.word(source) &* 0x9E37_79B9_7F4A_7C15 ^ Self.word(destination))
        hasher.combine(
            UInt64(ipProtocol) << 56 | UInt64(fragmentOffset) << 32 | UInt64(sourcePort) << 16 | UInt64(destinationPort))
        hasher.combine(UInt64(sequence) << 32 | UInt64(acknowledgment))
        hasher.combine(UInt64(ipID) << 32 | UInt64(length) << 16 ^ UInt64(extra) &* 0x9E37_79B9)
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
        // Addresses, protocol and ports: the Flow's (its primary stack).
        let inner = event.flow.primaryIsInner
        guard event.flow.hasPacketFlow, let source = event.flow.primary.source,
            let destination = event.flow.primary.destination
        else { return nil }
        let l = event.flow.primary
        var key = PacketKey(source: source, destination: destination, ipProtocol: l.ipProtocol ?? 0)
        switch l.transport {
        case .tcp, .udp, .sctp:
            key.sourcePort = l.sourcePort
            key.destinationPort = l.destinationPort
        case .icmpv4, .icmpv6:
            key.sourcePort = UInt16(l.icmpType) << 8 | UInt16(l.icmpCode)
        case .none:
            break
        }
        // What tells the packet apart, from its headers: the stack's last IP header (the one the Flow
        // names) and the transport header after it.
        let layers = event.packet.layers
        let base = event.packetOffset
        let end = base &+ event.packetLength
        guard event.packetLength > 0, base >= 0, end <= record.byteCount, base <= end else { return key }
        let bytes = record.extracting(base..<end)
        var ipAt = -1
        var transportAt = -1
        for i in layers.indices where layers[i].isInner == inner {
            switch layers[i].kind {
            case .ipv4, .ipv6:
                ipAt = i
                transportAt = -1
            case .tcp, .udp, .sctp, .icmpv4, .icmpv6:
                if ipAt >= 0 && transportAt < 0 { transportAt = i }
            default:
                break
            }
        }
        guard ipAt >= 0 else { return key }
        let o = layers[ipAt].offset
        if layers[ipAt].kind == .ipv4 {
            guard bytes.has(20, at: o) else { return key }
            if key.ipProtocol == 0 { key.ipProtocol = bytes.u8(o &+ 9) }
            key.ipID = UInt32(bytes.be16(o &+ 4))
            key.fragmentOffset = bytes.be16(o &+ 6) & 0x1fff
            let total = bytes.be16(o &+ 2)
            let ihl = UInt16(bytes.u8(o) & 0x0f) &* 4
            key.length = total >= ihl ? total &- ihl : 0
        } else {
            guard bytes.has(40, at: o) else { return key }
            key.length = bytes.be16(o &+ 4)
            // The fragment header, if the decoder walked one.
            var k = ipAt + 1
            while k < layers.count && layers[k].isInner == inner && layers[k].kind == .ipv6Extension {
                let e = layers[k].offset
                if case .ipv6Extension(let x) = layers[k].header, x.headerType == 44, bytes.has(8, at: e) {
                    key.ipID = bytes.be32(e &+ 4)
                    key.fragmentOffset = bytes.be16(e &+ 2) >> 3
                }
                k += 1
            }
            if key.ipProtocol == 0, case .ipv6(let h) = layers[ipAt].header { key.ipProtocol = h.upperNextHeader }
        }
        guard transportAt >= 0 else { return key }
        let t = layers[transportAt].offset
        switch layers[transportAt].kind {
        case .tcp:
            guard bytes.has(14, at: t) else { break }
            key.sequence = bytes.be32(t &+ 4)
            key.acknowledgment = bytes.be32(t &+ 8)
            key.extra = UInt32(l.tcpFlags)
        case .udp:
            // The payload's first bytes, as far as captured (a DNS query's ID, ...).
            var prefix: UInt32 = 0
            for k in 0..<4 where bytes.has(9 &+ k, at: t) { prefix |= UInt32(bytes.u8(t &+ 8 &+ k)) << UInt32(24 - 8 * k) }
            key.extra = prefix
        case .sctp:
            if bytes.has(8, at: t) { key.sequence = bytes.be32(t &+ 4) }  // verification tag
        case .icmpv4, .icmpv6:
            if bytes.has(4, at: t) { key.extra = UInt32(bytes.be16(t &+ 2)) }
            if bytes.has(8, at: t) { key.sequence = bytes.be32(t &+ 4) }  // echo: identifier, sequence
        default:
            break
        }
        return key
    }
}
