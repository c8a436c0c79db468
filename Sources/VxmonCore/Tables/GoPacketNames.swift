import VxmonWire

/// gopacket v1.1.19's String() tables, which Cilium 1.13's layer lines and summaries print.
public enum GoPacketNames {
    /// `EthernetType.String()`; values below 0x0600 are 802.3 lengths, which gopacket shows as `LLC`.
    public static func etherType(_ v: UInt16) -> StaticString {
        switch v {
        case ..<0x0600: "LLC"
        case 0x0800: "IPv4"
        case 0x0806: "ARP"
        case 0x2000: "CiscoDiscovery"
        case 0x6558: "TransparentEthernetBridging"
        case 0x8100: "Dot1Q"
        case 0x86dd: "IPv6"
        case 0x880b: "PPP"
        case 0x8847: "MPLSUnicast"
        case 0x8848: "MPLSMulticast"
        case 0x8863: "PPPoEDiscovery"
        case 0x8864: "PPPoESession"
        case 0x888e: "EAPOL"
        case 0x88a8: "Dot1Q"
        case 0x88be: "ERSPAN Type II"
        case 0x88cc: "LinkLayerDiscovery"
        case 0x9000: "EthernetCTP"
        default: "UnknownEthernetType"
        }
    }


    /// `IPProtocol.String()`.
    public static func ipProtocol(_ v: UInt8) -> StaticString {
        switch v {
        case 0: "IPv6HopByHop"
        case 1: "ICMPv4"
        case 2: "IGMP"
        case 4: "IPv4"
        case 6: "TCP"
        case 17: "UDP"
        case 27: "RUDP"
        case 41: "IPv6"
        case 43: "IPv6Routing"
        case 44: "IPv6Fragment"
        case 47: "GRE"
        case 50: "IPSecESP"
        case 51: "IPSecAH"
        case 58: "ICMPv6"
        case 59: "NoNextHeader"
        case 60: "IPv6Destination"
        case 89: "OSPF"
        case 94: "IPv4"
        case 97: "EtherIP"
        case 112: "VRRP"
        case 132: "SCTP"
        case 136: "UDPLite"
        case 137: "MPLS"
        default: "UnknownIPProtocol"
        }
    }

    /// `TCPOptionKind.String()`; nil for kinds that print as `Unknown(n)`.
    public static func tcpOptionKind(_ v: UInt8) -> StaticString? {
        switch v {
        case 0: "EndList"
        case 1: "NOP"
        case 2: "MSS"
        case 3: "WindowScale"
        case 4: "SACKPermitted"
        case 5: "SACK"
        case 6: "Echo"
        case 7: "EchoReply"
        case 8: "Timestamps"
        case 9: "PartialOrderConnectionPermitted"
        case 10: "PartialOrderServiceProfile"
        case 11: "CC"
        case 12: "CCNew"
        case 13: "CCEcho"
        case 14: "AltChecksum"
        case 15: "AltChecksumData"
        default: nil
        }
    }

    /// ICMPv4 type name and whether the type has a code table.
    static func icmpv4Type(_ t: UInt8) -> (StaticString, Bool)? {
        switch t {
        case 0: ("EchoReply", false)
        case 3: ("DestinationUnreachable", true)
        case 4: ("SourceQuench", false)
        case 5: ("Redirect", true)
        case 8: ("EchoRequest", false)
        case 9: ("RouterAdvertisement", false)
        case 10: ("RouterSolicitation", false)
        case 11: ("TimeExceeded", true)
        case 12: ("ParameterProblem", true)
        case 13: ("TimestampRequest", false)
        case 14: ("TimestampReply", false)
        case 15: ("InfoRequest", false)
        case 16: ("InfoReply", false)
        case 17: ("AddressMaskRequest", false)
        case 18: ("AddressMaskReply", false)
        default: nil
        }
    }

    static func icmpv4Code(_ t: UInt8, _ c: UInt8) -> StaticString? {
        switch (t, c) {
        case (3, 0): "Net"
        case (3, 1): "Host"
        case (3, 2): "Protocol"
        case (3, 3): "Port"
        case (3, 4): "FragmentationNeeded"
        case (3, 5): "SourceRoutingFailed"
        case (3, 6): "NetUnknown"
        case (3, 7): "HostUnknown"
        case (3, 8): "SourceIsolated"
        case (3, 9): "NetAdminProhibited"
        case (3, 10): "HostAdminProhibited"
        case (3, 11): "NetTOS"
        case (3, 12): "HostTOS"
        case (3, 13): "CommAdminProhibited"
        case (3, 14): "HostPrecedence"
        case (3, 15): "PrecedenceCutoff"
        case (5, 0): "Net"
        case (5, 1): "Host"
        case (5, 2): "TOS+Net"
        case (5, 3): "TOS+Host"
        case (11, 0): "TTLExceeded"
        case (11, 1): "FragmentReassemblyTimeExceeded"
        case (12, 0): "PointerIndicatesError"
        case (12, 1): "MissingOption"
        case (12, 2): "BadLength"
        default: nil
        }
    }

    static func icmpv6Type(_ t: UInt8) -> (StaticString, Bool)? {
        switch t {
        case 1: ("DestinationUnreachable", true)
        case 2: ("PacketTooBig", false)
        case 3: ("TimeExceeded", true)
        case 4: ("ParameterProblem", true)
        case 128: ("EchoRequest", false)
        case 129: ("EchoReply", false)
        case 133: ("RouterSolicitation", false)
        case 134: ("RouterAdvertisement", false)
        case 135: ("NeighborSolicitation", false)
        case 136: ("NeighborAdvertisement", false)
        case 137: ("Redirect", false)
        default: nil
        }
    }

    static func icmpv6Code(_ t: UInt8, _ c: UInt8) -> StaticString? {
        switch (t, c) {
        case (1, 0): "NoRouteToDst"
        case (1, 1): "AdminProhibited"
        case (1, 2): "BeyondScopeOfSrc"
        case (1, 3): "AddressUnreachable"
        case (1, 4): "PortUnreachable"
        case (1, 5): "SrcAddressFailedPolicy"
        case (1, 6): "RejectRouteToDst"
        case (3, 0): "HopLimitExceeded"
        case (3, 1): "FragmentReassemblyTimeExceeded"
        case (4, 0): "ErroneousHeaderField"
        case (4, 1): "UnrecognizedNextHeader"
        case (4, 2): "UnrecognizedIPv6Option"
        default: nil
        }
    }

    /// The type name alone (nil for types gopacket has no name for).
    public static func icmpTypeName(v6: Bool, _ t: UInt8) -> StaticString? {
        (v6 ? icmpv6Type(t) : icmpv4Type(t))?.0
    }
}

extension OutputBuffer {
    /// gopacket's `ICMPv4TypeCode.String()` / `ICMPv6TypeCode.String()`.
    public func icmpTypeCode(v6: Bool, type t: UInt8, code c: UInt8) {
        guard let (name, hasCodes) = v6 ? GoPacketNames.icmpv6Type(t) : GoPacketNames.icmpv4Type(t) else {
            unsignedDecimal(UInt64(t))
            append(byte: UInt8(ascii: "("))
            unsignedDecimal(UInt64(c))
            append(byte: UInt8(ascii: ")"))
            return
        }
        append(name)
        if !hasCodes && c == 0 { return }
        if hasCodes, let codeName = v6 ? GoPacketNames.icmpv6Code(t, c) : GoPacketNames.icmpv4Code(t, c) {
            append(byte: UInt8(ascii: "("))
            append(codeName)
            append(byte: UInt8(ascii: ")"))
            return
        }
        append("(Code: ")
        unsignedDecimal(UInt64(c))
        append(byte: UInt8(ascii: ")"))
    }
}
