import VxmonWire

/// What Cilium 1.13's gopacket-based dissector makes of one layer stack (the outer frame, or the frame
/// inside a tunnel): how many layers it prints, whether it flags truncation, and its error line.
struct CiliumView {
    /// Indexes into `DecodedPacket.layers` of the layers gopacket decodes, in order.
    var start = 0
    var count = 0
    var truncated = false
    var error: CiliumViewError?
}

enum CiliumViewError {
    /// `No decoder for layer type <name>`.
    case noDecoder(GoLayerType)
    /// A decode error of a layer gopacket does decode.
    case decode(StopDetail)
}

extension DecodedPacket {
    /// Emulates gopacket's DecodingLayerParser over the stack that starts at `start`.
    func ciliumView(from start: Int, inner: Bool) -> CiliumView {
        var view = CiliumView(start: start)
        var i = start
        func stopError() {
            if let stop, stop.isInner == inner, let layer = stop.layer, Self.goDecodes(layer) {
                view.error = .decode(stop.detail)
                view.truncated = view.truncated || stop.truncated
            }
        }
        guard i < layers.count, layers[i].isInner == inner else {
            stopError()
            return view
        }
        while true {
            let layer = layers[i]
            view.count += 1
            view.truncated = view.truncated || layer.truncated
            if layer.payloadLength == 0 { return view }
            switch layer.goNext {
            case .zero:
                return view
            case .other:
                view.error = .noDecoder(layer.goNext)
                return view
            default:
                let j = i + 1
                if j < layers.count, layers[j].isInner == inner, Self.matches(layer.goNext, layers[j].kind) {
                    i = j
                    continue
                }
                stopError()
                return view
            }
        }
    }

    static func goDecodes(_ kind: LayerKind) -> Bool {
        switch kind {
        case .ethernet, .ipv4, .ipv6, .tcp, .udp, .sctp, .icmpv4, .icmpv6: true
        default: false
        }
    }

    static func matches(_ go: GoLayerType, _ kind: LayerKind) -> Bool {
        switch (go, kind) {
        case (.ethernet, .ethernet), (.ipv4, .ipv4), (.ipv6, .ipv6), (.tcp, .tcp), (.udp, .udp), (.sctp, .sctp),
            (.icmpv4, .icmpv4), (.icmpv6, .icmpv6):
            true
        default: false
        }
    }

    /// gopacket reuses one struct per layer type, so a type decoded twice (IP-in-IP) shows its last
    /// instance everywhere, including the partial fields of a later failed decode of that type.
    /// Returns the layer whose values Cilium prints for position `i` of `view`.
    func ciliumLayer(_ i: Int, in view: CiliumView, inner: Bool) -> Layer {
        let kind = layers[i].kind
        if case .decode? = view.error, let stop, stop.isInner == inner, let p = stop.partial, p.kind == kind {
            return p
        }
        var last = i
        var j = i + 1
        while j < view.start + view.count {
            if layers[j].kind == kind { last = j }
            j += 1
        }
        return layers[last]
    }

    /// The tunnel layer and the start of the inner stack, when Cilium's outer view ends at the UDP
    /// layer that carries it.
    func tunnelAfter(_ outer: CiliumView) -> Int? {
        guard let t = tunnelIndex, outer.count > 0, outer.start + outer.count == t else { return nil }
        return t
    }
}

extension StopDetail {
    /// gopacket v1.1.19's error text for this failure (Cilium prints it after `Failed to decode layer: `).
    func appendGoMessage(to out: OutputBuffer) {
        switch self {
        case .ethernetTooSmall: out.append("Ethernet packet too small")
        case .ipv4HeaderTooShort(let n):
            out.append("Invalid ip4 header. Length ")
            out.decimal(n)
            out.append(" less than 20")
        case .ipv4LengthTooSmall(let n):
            out.append("Invalid (too small) IP length (")
            out.decimal(n)
            out.append(" < 20)")
        case .ipv4IHLTooSmall(let n):
            out.append("Invalid (too small) IP header length (")
            out.decimal(n)
            out.append(" < 5)")
        case .ipv4IHLExceedsLength(let ihl, let length):
            out.append("Invalid IP header length > IP length (")
            out.decimal(ihl)
            out.append(" > ")
            out.decimal(length)
            out.append(")")
        case .ipv4HeaderNotAvailable: out.append("Not all IP header bytes available")
        case .ipv4OptionLengthShort(let n):
            out.append("Invalid ip4 option length. Length ")
            out.decimal(n)
            out.append(" less than 2")
        case .ipv4OptionExceedsHeader(let type, let length):
            out.append("IP option length exceeds remaining IP header size, option type ")
            out.decimal(type)
            out.append(" length ")
            out.decimal(length)
        case .ipv4OptionTooSmall(let type, let length):
            out.append("Invalid IP option type ")
            out.decimal(type)
            out.append(" length ")
            out.decimal(length)
            out.append(". Must be greater than 2")
        case .ipv6HeaderTooShort(let n):
            out.append("Invalid ip6 header. Length ")
            out.decimal(n)
            out.append(" less than 40")
        case .ipv6ExtensionTooShort(let n):
            out.append("Invalid ip6-extension header. Length ")
            out.decimal(n)
            out.append(" less than 2")
        case .ipv6ExtensionShorterThanSpecified(let n, let length):
            out.append("Invalid ip6-extension header. Length ")
            out.decimal(n)
            out.append(" less than specified length ")
            out.decimal(length)
        case .ipv6OptionTooSmall: out.append("IPv6 header option too small")
        case .ipv6TLVOptionTooSmall: out.append("IPv6 header TLV option too small")
        case .ipv6JumboDataLength: out.append("Jumbo length TLV data must have length 4")
        case .ipv6JumboTooSmall: out.append("Jumbo length cannot be less than 65536")
        case .ipv6JumboWithLength: out.append("IPv6 has jumbo length and IPv6 length is not 0")
        case .ipv6ZeroLengthNoJumbo: out.append("IPv6 length 0, but HopByHop header does not have jumbogram option")
        case .ipv6ZeroLength(let next):
            out.append("IPv6 length 0, but next header is ")
            out.append(GoPacketNames.ipProtocol(UInt8(truncatingIfNeeded: next)))
            out.append(", not HopByHop")
        case .tcpHeaderTooShort(let n):
            out.append("Invalid TCP header. Length ")
            out.decimal(n)
            out.append(" less than 20")
        case .tcpDataOffsetTooSmall(let n):
            out.append("Invalid TCP data offset ")
            out.decimal(n)
            out.append(" < 5")
        case .tcpDataOffsetBeyondPacket: out.append("TCP data offset greater than packet length")
        case .tcpOptionLengthShort(let n):
            out.append("Invalid TCP option length. Length ")
            out.decimal(n)
            out.append(" less than 2")
        case .tcpOptionLengthTooSmall(let n):
            out.append("Invalid TCP option length ")
            out.decimal(n)
            out.append(" < 2")
        case .tcpOptionLengthExceeds(let length, let remaining):
            out.append("Invalid TCP option length ")
            out.decimal(length)
            out.append(" exceeds remaining ")
            out.decimal(remaining)
            out.append(" bytes")
        case .udpHeaderTooShort(let n):
            out.append("Invalid UDP header. Length ")
            out.decimal(n)
            out.append(" less than 8")
        case .udpLengthTooSmall(let n):
            out.append("UDP packet too small: ")
            out.decimal(n)
            out.append(" bytes")
        case .sctpHeaderTooShort: out.append("Invalid SCTP common header length")
        case .icmpv4TooShort: out.append("ICMP layer less then 8 bytes for ICMPv4 packet")
        case .icmpv6TooShort: out.append("ICMP layer less then 4 bytes for ICMPv6 packet")
        default: appendDescription(to: out)
        }
    }

    /// vxmon's own wording (structured output and diagnostics).
    func appendDescription(to out: OutputBuffer) {
        switch self {
        case .headerTooShort(let needed, let available):
            out.append("header needs ")
            out.decimal(needed)
            out.append(" bytes, ")
            out.decimal(available)
            out.append(" captured")
        case .geneveUnsupportedProtocol(let p):
            out.append("Geneve protocol type 0x")
            out.hex(UInt64(p))
            out.append(" not decoded")
        case .llcFrame: out.append("IEEE 802.3 length frame (LLC) not decoded")
        case .unknownEtherType(let t):
            out.append("EtherType 0x")
            out.hex(UInt64(t))
            out.append(" not decoded")
        case .unknownIPProtocol(let p):
            out.append("IP protocol ")
            out.decimal(p)
            out.append(" not decoded")
        case .ipv4Fragment(let offset, let more), .ipv6Fragment(let offset, let more):
            out.append("IP fragment (offset ")
            out.decimal(offset &* 8)
            out.append(more ? ", more fragments) not reassembled" : ") not reassembled")
        case .layerLimit: out.append("too many layers")
        default: appendGoMessage(to: out)
        }
    }
}
