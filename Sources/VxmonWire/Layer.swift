/// The protocol layers vxmon decodes. vxmon owns this set, so it is a closed enum.
public enum LayerKind: UInt8, Sendable, CaseIterable {
    case ethernet
    case vlan
    case arp
    case ipv4
    case ipv6
    case ipv6Extension
    case tcp
    case udp
    case sctp
    case icmpv4
    case icmpv6
    case vxlan
    case geneve

    /// The lowercase name used in JSON/YAML and diagnostics.
    public var name: StaticString {
        switch self {
        case .ethernet: "ethernet"
        case .vlan: "vlan"
        case .arp: "arp"
        case .ipv4: "ipv4"
        case .ipv6: "ipv6"
        case .ipv6Extension: "ipv6_extension"
        case .tcp: "tcp"
        case .udp: "udp"
        case .sctp: "sctp"
        case .icmpv4: "icmpv4"
        case .icmpv6: "icmpv6"
        case .vxlan: "vxlan"
        case .geneve: "geneve"
        }
    }
}

/// The header values of one decoded layer.
public enum LayerHeader: Sendable {
    case ethernet(EthernetHeader)
    case vlan(VLANHeader)
    case arp(ARPHeader)
    case ipv4(IPv4Header)
    case ipv6(IPv6Header)
    case ipv6Extension(IPv6ExtensionHeader)
    case tcp(TCPHeader)
    case udp(UDPHeader)
    case sctp(SCTPHeader)
    case icmpv4(ICMPv4Header)
    case icmpv6(ICMPv6Header)
    case vxlan(VXLANHeader)
    case geneve(GeneveHeader)
}

/// What gopacket v1.1.19 (the dissector of Cilium 1.13) would try to decode after a layer. Cilium's
/// parser only has decoders for the first eight cases; anything else ends its dissection with
/// `No decoder for layer type <name>`, and `zero` ends it silently.
public enum GoLayerType: Sendable, Equatable {
    case zero
    case ethernet, ipv4, ipv6, tcp, udp, sctp, icmpv4, icmpv6
    case other(GoLayerName)

    /// True for the layer types Cilium 1.13's DecodingLayerParser has a decoder for.
    public var ciliumDecodes: Bool {
        switch self {
        case .zero, .other: false
        default: true
        }
    }

    /// gopacket's LayerType name.
    public var name: StaticString {
        switch self {
        case .zero: "Unknown"
        case .ethernet: "Ethernet"
        case .ipv4: "IPv4"
        case .ipv6: "IPv6"
        case .tcp: "TCP"
        case .udp: "UDP"
        case .sctp: "SCTP"
        case .icmpv4: "ICMPv4"
        case .icmpv6: "ICMPv6"
        case .other(let n): n.name
        }
    }
}

/// Names of gopacket layer types that Cilium 1.13 cannot decode (printed after "No decoder for layer type").
public enum GoLayerName: UInt8, Sendable, Equatable {
    case payload, fragment, llc, arp, dot1q, ppp, pppoe, eapol, linkLayerDiscovery, ciscoDiscovery
    case ethernetCTP, mpls, erspan, nortelDiscovery, transparentEthernetBridging
    case dns, tls, modbusTCP, ntp, vxlan, dhcpv4, dhcpv6, sip, sflow, geneve, bfd, gtpv1u, rmcp, radius
    case gre, ipSecESP, ipSecAH, igmp, vrrp, etherIP, rudp, ospf, udpLite
    case ipv6HopByHop, ipv6Routing, ipv6Fragment, ipv6Destination
    case icmpv6Echo, icmpv6RouterSolicitation, icmpv6RouterAdvertisement, icmpv6NeighborSolicitation
    case icmpv6NeighborAdvertisement, icmpv6Redirect
    case mldv1MulticastListenerQuery, mldv2MulticastListenerQuery, mldv1MulticastListenerReport
    case mldv1MulticastListenerDone, mldv2MulticastListenerReport

    public var name: StaticString {
        switch self {
        case .payload: "Payload"
        case .fragment: "Fragment"
        case .llc: "LLC"
        case .arp: "ARP"
        case .dot1q: "Dot1Q"
        case .ppp: "PPP"
        case .pppoe: "PPPoE"
        case .eapol: "EAPOL"
        case .linkLayerDiscovery: "LinkLayerDiscovery"
        case .ciscoDiscovery: "CiscoDiscovery"
        case .ethernetCTP: "EthernetCTP"
        case .mpls: "MPLS"
        case .erspan: "ERSPAN Type II"
        case .nortelDiscovery: "NortelDiscovery"
        case .transparentEthernetBridging: "Ethernet"
        case .dns: "DNS"
        case .tls: "TLS"
        case .modbusTCP: "ModbusTCP"
        case .ntp: "NTP"
        case .vxlan: "VXLAN"
        case .dhcpv4: "DHCPv4"
        case .dhcpv6: "DHCPv6"
        case .sip: "SIP"
        case .sflow: "SFlow"
        case .geneve: "Geneve"
        case .bfd: "BFD"
        case .gtpv1u: "GTPv1U"
        case .rmcp: "RMCP"
        case .radius: "RADIUS"
        case .gre: "GRE"
        case .ipSecESP: "IPSecESP"
        case .ipSecAH: "IPSecAH"
        case .igmp: "IGMP"
        case .vrrp: "VRRP"
        case .etherIP: "EtherIP"
        case .rudp: "RUDP"
        case .ospf: "OSPF"
        case .udpLite: "UDPLite"
        case .ipv6HopByHop: "IPv6HopByHop"
        case .ipv6Routing: "IPv6Routing"
        case .ipv6Fragment: "IPv6Fragment"
        case .ipv6Destination: "IPv6Destination"
        case .icmpv6Echo: "ICMPv6Echo"
        case .icmpv6RouterSolicitation: "ICMPv6RouterSolicitation"
        case .icmpv6RouterAdvertisement: "ICMPv6RouterAdvertisement"
        case .icmpv6NeighborSolicitation: "ICMPv6NeighborSolicitation"
        case .icmpv6NeighborAdvertisement: "ICMPv6NeighborAdvertisement"
        case .icmpv6Redirect: "ICMPv6Redirect"
        case .mldv1MulticastListenerQuery: "MLDv1MulticastListenerQuery"
        case .mldv2MulticastListenerQuery: "MLDv2MulticastListenerQuery"
        case .mldv1MulticastListenerReport: "MLDv1MulticastListenerReport"
        case .mldv1MulticastListenerDone: "MLDv1MulticastListenerDone"
        case .mldv2MulticastListenerReport: "MLDv2MulticastListenerReport"
        }
    }
}

/// One decoded layer: where it sits in the packet and its header values.
public struct Layer: Sendable {
    public var kind: LayerKind
    // Positions are stored as 32 bits (captures are far smaller) to keep layers small.
    private var _offset: Int32
    private var _headerLength: Int32
    private var _payloadOffset: Int32
    private var _payloadLength: Int32
    /// Offset of the layer's first byte from the start of the packet.
    public var offset: Int { Int(_offset) }
    /// Header length in octets (gopacket's `Contents`).
    public var headerLength: Int { Int(_headerLength) }
    /// Offset of the layer's payload (usually `offset + headerLength`; IPv6 skips its hop-by-hop header).
    public var payloadOffset: Int { Int(_payloadOffset) }
    /// Payload length in octets after the layer's own trimming (gopacket's `Payload`).
    public var payloadLength: Int { Int(_payloadLength) }
    public var header: LayerHeader
    /// True when this layer found fewer bytes than it announces (gopacket's `SetTruncated`).
    public var truncated: Bool
    /// The layer type gopacket v1.1.19 would decode next (see `GoLayerType`).
    public var goNext: GoLayerType
    /// True for layers that belong to the frame inside a VXLAN/Geneve tunnel.
    public var isInner: Bool

    public init(
        kind: LayerKind, offset: Int, headerLength: Int, payloadOffset: Int, payloadLength: Int,
        header: LayerHeader, truncated: Bool, goNext: GoLayerType, isInner: Bool
    ) {
        self.kind = kind
        _offset = Int32(truncatingIfNeeded: offset)
        _headerLength = Int32(truncatingIfNeeded: headerLength)
        _payloadOffset = Int32(truncatingIfNeeded: payloadOffset)
        _payloadLength = Int32(truncatingIfNeeded: payloadLength)
        self.header = header
        self.truncated = truncated
        self.goNext = goNext
        self.isInner = isInner
    }
}

/// Why decoding stopped before the end of the captured bytes.
public enum StopReason: Sendable, Equatable {
    /// Fewer bytes were captured than the header needs.
    case truncated
    /// The header is present but invalid.
    case malformed
    /// A protocol vxmon does not decode (the payload is kept, not interpreted).
    case unsupported
    /// A non-first IP fragment, or a fragment whose upper layer is not reassembled.
    case fragment
}

/// Where and why decoding stopped.
public struct DecodeStop: Sendable {
    /// The layer that could not be decoded (for `.unsupported`, the last decoded layer's successor).
    public var layer: LayerKind?
    /// Byte offset in the packet where the failed layer starts.
    public var offset: Int
    public var reason: StopReason
    /// The detailed cause.
    public var detail: StopDetail
    /// gopacket's truncation flag for the failed decode.
    public var truncated: Bool
    public var isInner: Bool
    /// For an IPv4/IPv6 header that failed after gopacket had filled in its fields: those partial
    /// values. gopacket reuses one struct per layer type, so in IP-in-IP packets Cilium prints them in
    /// place of the outer header of the same type.
    public var partial: Layer?

    public init(
        layer: LayerKind?, offset: Int, reason: StopReason, detail: StopDetail, truncated: Bool, isInner: Bool,
        partial: Layer? = nil
    ) {
        self.layer = layer
        self.offset = offset
        self.reason = reason
        self.detail = detail
        self.truncated = truncated
        self.isInner = isInner
        self.partial = partial
    }
}

/// The detailed cause of a stop. For the layers Cilium 1.13's dissector also decodes, each case maps to
/// the exact gopacket error text (see `goMessage`).
public enum StopDetail: Sendable, Equatable {
    case ethernetTooSmall
    case ipv4HeaderTooShort(available: Int)
    case ipv4LengthTooSmall(length: Int)
    case ipv4IHLTooSmall(ihl: Int)
    case ipv4IHLExceedsLength(ihl: Int, length: Int)
    case ipv4HeaderNotAvailable
    case ipv4OptionLengthShort(remaining: Int)
    case ipv4OptionExceedsHeader(type: Int, length: Int)
    case ipv4OptionTooSmall(type: Int, length: Int)
    case ipv6HeaderTooShort(available: Int)
    case ipv6ExtensionTooShort(available: Int)
    case ipv6ExtensionShorterThanSpecified(available: Int, length: Int)
    case ipv6OptionTooSmall
    case ipv6TLVOptionTooSmall
    case ipv6JumboDataLength
    case ipv6JumboTooSmall
    case ipv6JumboWithLength
    case ipv6ZeroLengthNoJumbo
    case ipv6ZeroLength(nextHeader: Int)
    case tcpHeaderTooShort(available: Int)
    case tcpDataOffsetTooSmall(dataOffset: Int)
    case tcpDataOffsetBeyondPacket
    case tcpOptionLengthShort(remaining: Int)
    case tcpOptionLengthTooSmall(length: Int)
    case tcpOptionLengthExceeds(length: Int, remaining: Int)
    case udpHeaderTooShort(available: Int)
    case udpLengthTooSmall(length: Int)
    case sctpHeaderTooShort
    case icmpv4TooShort
    case icmpv6TooShort
    // Layers Cilium 1.13 does not decode (vxmon's own messages).
    case headerTooShort(needed: Int, available: Int)
    case geneveUnsupportedProtocol(protocolType: Int)
    case llcFrame
    case unknownEtherType(Int)
    case unknownIPProtocol(Int)
    case ipv4Fragment(offset: Int, moreFragments: Bool)
    case ipv6Fragment(offset: Int, moreFragments: Bool)
    case layerLimit
}
