// Decoded header values. Each is a small copy of the fields of one header; payloads are never copied.
// Variable parts (IPv4/TCP options, Geneve options, padding) are kept as ranges into the packet so a
// renderer that needs their bytes reads them from the same span.

/// A byte range inside the packet: `offset` from the packet start, `count` bytes.
public struct ByteRange: Hashable, Sendable {
    // Stored as 32 bits (captures are far smaller) to keep decoded layers small: they are copied
    // several times per event on the render path.
    private var _offset: Int32
    private var _count: Int32
    public var offset: Int {
        get { Int(_offset) }
        set { _offset = Int32(truncatingIfNeeded: newValue) }
    }
    public var count: Int {
        get { Int(_count) }
        set { _count = Int32(truncatingIfNeeded: newValue) }
    }
    public init(offset: Int, count: Int) {
        _offset = Int32(truncatingIfNeeded: offset)
        _count = Int32(truncatingIfNeeded: count)
    }
    public static let empty = ByteRange(offset: 0, count: 0)
}

/// Ethernet II / IEEE 802.3 header (IEEE 802.3 clause 3).
///
///     0                   6                   12      14
///     | destination MAC   | source MAC        | type  |
public struct EthernetHeader: Sendable {
    public var destination: MACAddress
    public var source: MACAddress
    /// The type/length field as on the wire (values below 0x0600 are an 802.3 length).
    public var typeOrLength: UInt16
    /// The EtherType, or nil for an 802.3 length frame (LLC follows).
    public var etherType: UInt16? { typeOrLength >= 0x0600 ? typeOrLength : nil }
}

/// IEEE 802.1Q (and 802.1ad) VLAN tag: the 4 bytes after the 0x8100/0x88a8 EtherType.
public struct VLANHeader: Sendable {
    public var priority: UInt8
    public var dropEligible: Bool
    public var vlanID: UInt16
    /// The EtherType of what follows the tag.
    public var etherType: UInt16
}

/// ARP (RFC 826) for any hardware/protocol address sizes; addresses are ranges into the packet.
public struct ARPHeader: Sendable {
    public var hardwareType: UInt16
    public var protocolType: UInt16
    public var hardwareLength: UInt8
    public var protocolLength: UInt8
    /// 1 request, 2 reply, others as on the wire.
    public var operation: UInt16
    public var senderHardware: ByteRange
    public var senderProtocol: ByteRange
    public var targetHardware: ByteRange
    public var targetProtocol: ByteRange
}

/// IPv4 header (RFC 791).
///
///     0       4       8              16      19              31
///     |Version|  IHL  |     TOS      |        Total Length     |
///     |        Identification        |Flags|  Fragment Offset  |
///     |  TTL          |   Protocol   |     Header Checksum     |
///     |                    Source Address                      |
///     |                  Destination Address                   |
public struct IPv4Header: Sendable {
    public var version: UInt8
    /// Header length in 32-bit words.
    public var ihl: UInt8
    public var tos: UInt8
    /// Total length in octets, as gopacket reports it (a zero on the wire becomes the bytes available).
    public var totalLength: UInt16
    /// True when the wire value was 0 (TSO) and `totalLength` was filled from the capture.
    public var totalLengthWasZero: Bool
    public var identification: UInt16
    /// The three flag bits: 0x4 reserved ("evil"), 0x2 DF, 0x1 MF.
    public var flags: UInt8
    /// Fragment offset in 8-octet units.
    public var fragmentOffset: UInt16
    public var ttl: UInt8
    public var protocolNumber: UInt8
    public var checksum: UInt16
    public var source: IPv4Address
    public var destination: IPv4Address
    /// Option bytes (between byte 20 and IHL*4), for renderers that list options.
    public var options: ByteRange
    /// Bytes after an End-of-Options option, if any.
    public var padding: ByteRange

    public var isFragment: Bool { flags & 0x1 != 0 || fragmentOffset != 0 }
}

/// IPv6 hop-by-hop options header carried inline in the IPv6 layer (as gopacket does).
public struct IPv6HopByHop: Sendable {
    public var nextHeader: UInt8
    /// Header Ext Len: 8-octet units, not counting the first 8 octets.
    public var headerLength: UInt8
    /// Total length of the extension header in octets.
    public var actualLength: Int
    /// The options area (after the first two octets).
    public var options: ByteRange
}

/// IPv6 fixed header (RFC 8200).
public struct IPv6Header: Sendable {
    public var version: UInt8
    public var trafficClass: UInt8
    public var flowLabel: UInt32
    /// Payload length in octets (extension headers included).
    public var payloadLength: UInt16
    public var nextHeader: UInt8
    public var hopLimit: UInt8
    public var source: IPv6Address
    public var destination: IPv6Address
    public var hopByHop: IPv6HopByHop?
    /// Bytes after the hop-by-hop header up to the end of the data (gopacket's HopByHop.Payload).
    public var hopByHopPayloadLength: Int = 0

    /// The protocol that follows the fixed header and the inline hop-by-hop header.
    public var upperNextHeader: UInt8 { hopByHop?.nextHeader ?? nextHeader }
}

/// An IPv6 extension header after the fixed header (routing, fragment, destination options, AH).
public struct IPv6ExtensionHeader: Sendable {
    /// The protocol number that identified this header (43 routing, 44 fragment, 60 destination, 51 AH, 0 HBH).
    public var headerType: UInt8
    public var nextHeader: UInt8
    /// Total length of this header in octets.
    public var length: Int
    /// Fragment header fields (only for headerType 44).
    public var fragmentOffset: UInt16
    public var moreFragments: Bool
    public var identification: UInt32
}

/// TCP header (RFC 9293).
public struct TCPHeader: Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequence: UInt32
    public var acknowledgment: UInt32
    /// Header length in 32-bit words.
    public var dataOffset: UInt8
    /// Flag bits: 0x001 FIN, 0x002 SYN, 0x004 RST, 0x008 PSH, 0x010 ACK, 0x020 URG, 0x040 ECE, 0x080 CWR, 0x100 NS.
    public var flags: UInt16
    public var window: UInt16
    public var checksum: UInt16
    public var urgent: UInt16
    /// Option bytes (between byte 20 and the data offset).
    public var options: ByteRange
    /// Bytes after an End-of-Options option.
    public var padding: ByteRange

    public static let fin: UInt16 = 0x001
    public static let syn: UInt16 = 0x002
    public static let rst: UInt16 = 0x004
    public static let psh: UInt16 = 0x008
    public static let ack: UInt16 = 0x010
    public static let urg: UInt16 = 0x020
    public static let ece: UInt16 = 0x040
    public static let cwr: UInt16 = 0x080
    public static let ns: UInt16 = 0x100
}

/// UDP header (RFC 768).
public struct UDPHeader: Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// Length of header plus data in octets, as on the wire.
    public var length: UInt16
    public var checksum: UInt16
}

/// SCTP common header (RFC 9260).
public struct SCTPHeader: Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var verificationTag: UInt32
    public var checksum: UInt32
}

/// ICMPv4 header (RFC 792): type, code, checksum and the echo id/sequence words.
public struct ICMPv4Header: Sendable {
    public var type: UInt8
    public var code: UInt8
    public var checksum: UInt16
    public var identifier: UInt16
    public var sequence: UInt16
}

/// ICMPv6 header (RFC 4443): type, code, checksum.
public struct ICMPv6Header: Sendable {
    public var type: UInt8
    public var code: UInt8
    public var checksum: UInt16
}

/// VXLAN header (RFC 7348), with the group-based policy extension bits.
///
///     |R|R|R|R|I|R|R|R|  reserved (or G/D/A GBP bits) |  group policy ID  |
///     |                VXLAN Network Identifier (VNI)   |   reserved      |
public struct VXLANHeader: Sendable {
    /// The first octet: 0x08 = I (valid VNI), 0x80 = G (GBP extension).
    public var flags: UInt8
    public var validID: Bool { flags & 0x08 != 0 }
    public var gbpExtension: Bool { flags & 0x80 != 0 }
    /// The second octet, which carries the GBP D (0x40) and A (0x08) bits.
    public var secondOctet: UInt8
    /// GBP "don't learn" bit (octet 1, 0x40).
    public var gbpDontLearn: Bool { secondOctet & 0x40 != 0 }
    /// GBP "policy applied" bit as the VXLAN-GBP draft defines it (octet 1, 0x08).
    public var gbpApplied: Bool { secondOctet & 0x08 != 0 }
    /// The same bit as gopacket reads it (octet 1, 0x80), for Cilium-compatible layer lines.
    public var gbpAppliedGopacket: Bool { secondOctet & 0x80 != 0 }
    public var groupPolicyID: UInt16
    /// The 24-bit VNI.
    public var vni: UInt32
}

/// Geneve header (RFC 8926).
public struct GeneveHeader: Sendable {
    public var version: UInt8
    /// Options length in octets (the wire field counts 4-octet words).
    public var optionsLength: Int
    public var oam: Bool
    public var critical: Bool
    /// Protocol type of the payload (0x6558 = Ethernet).
    public var protocolType: UInt16
    public var vni: UInt32
    public var options: ByteRange
}
