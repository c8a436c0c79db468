import VxmonWire

/// The `ethernet`, `IP` and `l4` objects of a flow, with Hubble's key names: written by vxmon's JSON/YAML (every
/// field, flags as a list) and by the Hubble renderer (protobuf JSON: zero values left out, flags as
/// `TCPFlags` booleans, `encrypted` when set). One place for both, so the two cannot drift apart.
enum FlowLayersJSON {
    enum Style {
        /// vxmon's own JSON/YAML.
        case vxmon
        /// Hubble's protobuf JSON.
        case protobuf
    }

    static func ethernet<W: StructuredWriter>(_ w: inout W, _ f: borrowing FlowLayers) {
        guard f.hasEthernet else { return }
        let (source, destination) = (f.sourceMAC, f.destinationMAC)
        w.key("ethernet")
        w.beginObject()
        w.field("source", raw: { $0.mac(source) })
        w.field("destination", raw: { $0.mac(destination) })
        w.endObject()
    }

    /// `source` replaces the stack's source address (Hubble's original source of a translated packet).
    /// Protobuf JSON leaves an absent address out (a socket trace has one end only).
    static func ip<W: StructuredWriter>(
        _ w: inout W, _ f: borrowing FlowLayers, style: Style, encrypted: Bool = false, source: IPAddress? = nil
    ) {
        let (own, destination) = (f.source, f.destination)
        let source = source ?? own
        guard let version = source ?? destination else { return }
        if style == .vxmon && (source == nil || destination == nil) { return }
        w.key("IP")
        w.beginObject()
        if let source { w.field("source", raw: { $0.ip(source) }) }
        if let destination { w.field("destination", raw: { $0.ip(destination) }) }
        if case .v4 = version { w.field("ipVersion", string: "IPv4") } else { w.field("ipVersion", string: "IPv6") }
        if encrypted && style == .protobuf { w.field("encrypted", true) }
        w.endObject()
    }

    static func l4<W: StructuredWriter>(_ w: inout W, _ f: borrowing FlowLayers, style: Style) {
        let name: StaticString
        switch f.transport {
        case .none: return
        case .tcp: name = "TCP"
        case .udp: name = "UDP"
        case .sctp: name = "SCTP"
        case .icmpv4: name = "ICMPv4"
        case .icmpv6: name = "ICMPv6"
        }
        let all = style == .vxmon
        w.key("l4")
        w.beginObject()
        w.key(name)
        w.beginObject()
        // Copies: a borrowed parameter cannot be read inside `||`'s autoclosure.
        let (sourcePort, destinationPort, icmpType, icmpCode) = (f.sourcePort, f.destinationPort, f.icmpType, f.icmpCode)
        if f.transport.hasPorts {
            if all || sourcePort != 0 { w.field("source_port", sourcePort) }
            if all || destinationPort != 0 { w.field("destination_port", destinationPort) }
            if f.transport == .tcp { tcpFlags(&w, f.tcpFlags, style: style) }
        } else {
            if all || icmpType != 0 { w.field("type", icmpType) }
            if all || icmpCode != 0 { w.field("code", icmpCode) }
        }
        w.endObject()
        w.endObject()
    }

    /// TCP flag bits and names, in Hubble's `TCPFlags` field order.
    static let tcpFlagNames: [(UInt16, StaticString)] = [
        (TCPHeader.fin, "FIN"), (TCPHeader.syn, "SYN"), (TCPHeader.rst, "RST"), (TCPHeader.psh, "PSH"),
        (TCPHeader.ack, "ACK"), (TCPHeader.urg, "URG"), (TCPHeader.ece, "ECE"), (TCPHeader.cwr, "CWR"),
        (TCPHeader.ns, "NS"),
    ]

    /// vxmon: `"flags":["SYN","ACK"]` (always present); protobuf: `"flags":{"SYN":true,"ACK":true}`
    /// (left out without flags).
    static func tcpFlags<W: StructuredWriter>(_ w: inout W, _ flags: UInt16, style: Style) {
        switch style {
        case .vxmon:
            w.key("flags")
            w.beginArray()
            for (bit, name) in tcpFlagNames where flags & bit != 0 { w.string(name) }
            w.endArray()
        case .protobuf:
            guard tcpFlagNames.contains(where: { flags & $0.0 != 0 }) else { return }
            w.key("flags")
            w.beginObject()
            for (bit, name) in tcpFlagNames where flags & bit != 0 { w.field(name, true) }
            w.endObject()
        }
    }
}
