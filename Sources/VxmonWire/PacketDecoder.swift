/// A decoded packet: the layers in wire order (outer, then the tunnelled frame), and where decoding
/// stopped if it did not reach the application payload.
public struct DecodedPacket: Sendable {
    public var layers: [Layer] = []
    /// Index in `layers` of the VXLAN/Geneve layer, when the packet is a tunnel packet.
    public var tunnelIndex: Int?
    public var stop: DecodeStop?
    /// Number of packet bytes that were decoded from (the captured length).
    public var length: Int = 0

    public init() {
        layers.reserveCapacity(16)
    }

    /// Clears the packet for reuse without giving back its storage.
    public mutating func reset() {
        layers.removeAll(keepingCapacity: true)
        tunnelIndex = nil
        stop = nil
        length = 0
    }
}

/// UDP destination ports that mark a tunnel. Cilium's VXLAN default is 8472, the IANA port 4789;
/// Geneve is 6081.
public struct TunnelPorts: Sendable {
    public var vxlan: [UInt16]
    public var geneve: [UInt16]
    public init(vxlan: [UInt16] = [8472, 4789], geneve: [UInt16] = [6081]) {
        self.vxlan = vxlan
        self.geneve = geneve
    }
    public static let standard = TunnelPorts()
    /// Decode no tunnels (the outer UDP payload stays opaque).
    public static let none = TunnelPorts(vxlan: [], geneve: [])
}

/// The first layer of a capture.
public enum FirstLayer: Sendable {
    case ethernet
    /// An L3 device capture: the packet starts at the IP header (version nibble picks v4/v6).
    case ip
}

/// Decodes packets layer by layer. For the layers Cilium 1.13's gopacket-based dissector also decodes
/// (Ethernet, IPv4, IPv6, TCP, UDP, SCTP, ICMPv4, ICMPv6) the checks, their order, the payload
/// trimming and the truncation flags follow gopacket v1.1.19 exactly, so that a renderer can reproduce
/// Cilium's output from the result. Every read is preceded by a length check: any byte sequence
/// decodes without trapping.
public struct PacketDecoder: Sendable {
    public var tunnelPorts: TunnelPorts
    /// Upper bound on layers per packet, a guard against pathological stacks of tags and headers.
    public static let maxLayers = 24

    public init(tunnelPorts: TunnelPorts = .standard) {
        self.tunnelPorts = tunnelPorts
    }

    private enum Next {
        case ethernet, vlan, arp, ipv4, ipv6, ipv6Extension(UInt8), tcp, udp, sctp, icmpv4, icmpv6, vxlan, geneve
    }

    /// The outcome of a protocol-number lookup: a layer to decode next, or why decoding ends there.
    private enum Step {
        case next(Next)
        case stop(StopDetail)
    }

    /// Decodes `bytes` into `packet` (which is reset first).
    public func decode(_ bytes: RawSpan, first: FirstLayer = .ethernet, into packet: inout DecodedPacket) {
        packet.reset()
        packet.length = bytes.byteCount
        var offset = 0
        var end = bytes.byteCount
        var inner = false
        var next: Next?
        switch first {
        case .ethernet: next = .ethernet
        case .ip:
            if bytes.has(1, at: 0) && bytes.u8(0) >> 4 == 6 { next = .ipv6 } else { next = .ipv4 }
        }

        func stop(
            _ layer: LayerKind?, _ reason: StopReason, _ detail: StopDetail, truncated: Bool = false,
            at: Int? = nil
        ) {
            packet.stop = DecodeStop(
                layer: layer, offset: at ?? offset, reason: reason, detail: detail, truncated: truncated,
                isInner: inner, partial: nil)
        }

        func push(
            _ kind: LayerKind, header: Int, payload: Int, _ value: LayerHeader, truncated: Bool = false,
            goNext: GoLayerType
        ) {
            packet.layers.append(
                Layer(
                    kind: kind, offset: offset, headerLength: header, payloadOffset: offset &+ header,
                    payloadLength: payload, header: value,
                    truncated: truncated, goNext: goNext, isInner: inner))
        }

        // A header announced a next layer (by EtherType, protocol or port) but no byte of it was
        // captured: say so. gopacket stops silently here, and so does the Cilium view (it ends at an
        // empty payload before looking at the stop).
        func missing(_ s: Step) {
            if case .next(let n) = s {
                stop(Self.kind(n), .truncated, .headerTooShort(needed: Self.minimumLength(n), available: 0))
            }
        }

        while let current = next {
            next = nil
            if packet.layers.count >= Self.maxLayers {
                stop(nil, .unsupported, .layerLimit)
                return
            }
            // `end` never exceeds byteCount and offset never exceeds end (checked as layers advance).
            let avail = end &- offset
            switch current {
            case .ethernet:
                guard avail >= 14 else {
                    stop(.ethernet, .truncated, .ethernetTooSmall)
                    return
                }
                let eth = EthernetHeader(
                    destination: bytes.mac(offset), source: bytes.mac(offset &+ 6), typeOrLength: bytes.be16(offset &+ 12))
                var payload = avail &- 14
                var truncated = false
                if eth.typeOrLength < 0x0600 {
                    let length = Int(eth.typeOrLength)
                    if payload < length { truncated = true } else { payload = length }
                }
                let go = Self.goEtherType(eth.typeOrLength)
                push(.ethernet, header: 14, payload: payload, .ethernet(eth), truncated: truncated, goNext: go)
                offset &+= 14
                end = offset &+ payload
                if payload == 0 {
                    missing(etherNext(eth.typeOrLength))
                    return
                }
                switch etherNext(eth.typeOrLength) {
                case .next(let n): next = n
                case .stop(let d):
                    stop(nil, .unsupported, d)
                    return
                }
            case .vlan:
                guard avail >= 4 else {
                    stop(.vlan, .truncated, .headerTooShort(needed: 4, available: avail))
                    return
                }
                let tci = bytes.be16(offset)
                let tag = VLANHeader(
                    priority: UInt8(truncatingIfNeeded: tci >> 13), dropEligible: tci & 0x1000 != 0,
                    vlanID: tci & 0x0fff, etherType: bytes.be16(offset &+ 2))
                push(.vlan, header: 4, payload: avail &- 4, .vlan(tag), goNext: Self.goEtherType(tag.etherType))
                offset &+= 4
                if offset == end {
                    missing(etherNext(tag.etherType))
                    return
                }
                switch etherNext(tag.etherType) {
                case .next(let n): next = n
                case .stop(let d):
                    stop(nil, .unsupported, d)
                    return
                }
            case .arp:
                guard avail >= 8 else {
                    stop(.arp, .truncated, .headerTooShort(needed: 8, available: avail))
                    return
                }
                let hlen = Int(bytes.u8(offset &+ 4))
                let plen = Int(bytes.u8(offset &+ 5))
                let need = 8 &+ 2 &* (hlen &+ plen)  // at most 8 + 2*510: no overflow
                guard avail >= need else {
                    stop(.arp, .truncated, .headerTooShort(needed: need, available: avail))
                    return
                }
                let base = offset &+ 8
                let arp = ARPHeader(
                    hardwareType: bytes.be16(offset), protocolType: bytes.be16(offset &+ 2),
                    hardwareLength: UInt8(hlen), protocolLength: UInt8(plen), operation: bytes.be16(offset &+ 6),
                    senderHardware: ByteRange(offset: base, count: hlen),
                    senderProtocol: ByteRange(offset: base &+ hlen, count: plen),
                    targetHardware: ByteRange(offset: base &+ hlen &+ plen, count: hlen),
                    targetProtocol: ByteRange(offset: base &+ 2 &* hlen &+ plen, count: plen))
                push(.arp, header: need, payload: avail &- need, .arp(arp), goNext: .other(.payload))
                return
            case .ipv4:
                if !decodeIPv4(bytes, &offset, &end, &next, &packet, inner: inner) { return }
            case .ipv6:
                if !decodeIPv6(bytes, &offset, &end, &next, &packet, inner: inner) { return }
            case .ipv6Extension(let type):
                // Generic extension header: next header, length; fragment headers carry offset/M flag.
                guard avail >= 8 else {
                    stop(.ipv6Extension, .truncated, .headerTooShort(needed: 8, available: avail))
                    return
                }
                let nextHeader = bytes.u8(offset)
                let length: Int
                if type == 44 {
                    length = 8
                } else if type == 51 {
                    length = (Int(bytes.u8(offset &+ 1)) &+ 2) &* 4
                } else {
                    length = (Int(bytes.u8(offset &+ 1)) &+ 1) &* 8
                }
                guard avail >= length else {
                    stop(.ipv6Extension, .truncated, .headerTooShort(needed: length, available: avail))
                    return
                }
                var ext = IPv6ExtensionHeader(
                    headerType: type, nextHeader: nextHeader, length: length, fragmentOffset: 0,
                    moreFragments: false, identification: 0)
                if type == 44 {
                    let word = bytes.be16(offset &+ 2)
                    ext.fragmentOffset = word >> 3
                    ext.moreFragments = word & 1 != 0
                    ext.identification = bytes.be32(offset &+ 4)
                }
                push(
                    .ipv6Extension, header: length, payload: avail &- length, .ipv6Extension(ext),
                    goNext: Self.goIPProtocol(nextHeader))
                offset &+= length
                if offset == end {
                    missing(ipNext(nextHeader))
                    return
                }
                if type == 44 && (ext.fragmentOffset != 0 || ext.moreFragments) {
                    stop(
                        nil, .fragment,
                        .ipv6Fragment(offset: Int(ext.fragmentOffset), moreFragments: ext.moreFragments))
                    return
                }
                switch ipNext(nextHeader) {
                case .next(let n): next = n
                case .stop(let d):
                    stop(nil, .unsupported, d)
                    return
                }
            case .tcp:
                if !decodeTCP(bytes, &offset, end, &packet, inner: inner) { return }
                return
            case .udp:
                guard avail >= 8 else {
                    stop(.udp, .truncated, .udpHeaderTooShort(available: avail), truncated: true)
                    return
                }
                let udp = UDPHeader(
                    sourcePort: bytes.be16(offset), destinationPort: bytes.be16(offset &+ 2),
                    length: bytes.be16(offset &+ 4), checksum: bytes.be16(offset &+ 6))
                var payload: Int
                var truncated = false
                if udp.length >= 8 {
                    var hlen = Int(udp.length)
                    if hlen > avail {
                        truncated = true
                        hlen = avail
                    }
                    payload = hlen &- 8
                } else if udp.length == 0 {
                    payload = avail &- 8
                } else {
                    stop(.udp, .malformed, .udpLengthTooSmall(length: Int(udp.length)))
                    return
                }
                var go = Self.goUDPPort(udp.destinationPort)
                if go == .other(.payload) { go = Self.goUDPPort(udp.sourcePort) }
                push(.udp, header: 8, payload: payload, .udp(udp), truncated: truncated, goNext: go)
                offset &+= 8
                end = offset &+ payload
                if inner { return }
                if tunnelPorts.vxlan.contains(udp.destinationPort) {
                    next = .vxlan
                } else if tunnelPorts.geneve.contains(udp.destinationPort) {
                    next = .geneve
                }
                if payload == 0 {
                    if let n = next { missing(.next(n)) }
                    return
                }
            case .sctp:
                guard avail >= 12 else {
                    stop(.sctp, .truncated, .sctpHeaderTooShort)
                    return
                }
                let sctp = SCTPHeader(
                    sourcePort: bytes.be16(offset), destinationPort: bytes.be16(offset &+ 2),
                    verificationTag: bytes.be32(offset &+ 4), checksum: bytes.be32(offset &+ 8))
                push(.sctp, header: 12, payload: avail &- 12, .sctp(sctp), goNext: .other(.payload))
                return
            case .icmpv4:
                guard avail >= 8 else {
                    stop(.icmpv4, .truncated, .icmpv4TooShort, truncated: true)
                    return
                }
                let icmp = ICMPv4Header(
                    type: bytes.u8(offset), code: bytes.u8(offset &+ 1), checksum: bytes.be16(offset &+ 2),
                    identifier: bytes.be16(offset &+ 4), sequence: bytes.be16(offset &+ 6))
                push(.icmpv4, header: 8, payload: avail &- 8, .icmpv4(icmp), goNext: .other(.payload))
                return
            case .icmpv6:
                guard avail >= 4 else {
                    stop(.icmpv6, .truncated, .icmpv6TooShort, truncated: true)
                    return
                }
                let icmp = ICMPv6Header(
                    type: bytes.u8(offset), code: bytes.u8(offset &+ 1), checksum: bytes.be16(offset &+ 2))
                let payload = avail &- 4
                push(
                    .icmpv6, header: 4, payload: payload, .icmpv6(icmp),
                    goNext: Self.goICMPv6(icmp.type, payloadLength: payload))
                return
            case .vxlan:
                guard avail >= 8 else {
                    stop(.vxlan, .truncated, .headerTooShort(needed: 8, available: avail))
                    return
                }
                let flags = bytes.u8(offset)
                let second = bytes.u8(offset &+ 1)
                let vx = VXLANHeader(
                    flags: flags, secondOctet: second,
                    groupPolicyID: bytes.be16(offset &+ 2), vni: bytes.be32(offset &+ 4) >> 8)
                // A clear I flag (`validID`) says the VNI is not valid, not that no frame follows:
                // gopacket and Wireshark read the VNI field and decode the inner Ethernet frame anyway.
                push(.vxlan, header: 8, payload: avail &- 8, .vxlan(vx), goNext: .ethernet)
                packet.tunnelIndex = packet.layers.count &- 1
                offset &+= 8
                inner = true
                if offset == end {
                    missing(.next(.ethernet))
                    return
                }
                next = .ethernet
            case .geneve:
                guard avail >= 8 else {
                    stop(.geneve, .truncated, .headerTooShort(needed: 8, available: avail))
                    return
                }
                let b0 = bytes.u8(offset)
                let b1 = bytes.u8(offset &+ 1)
                let optionsLength = Int(b0 & 0x3f) &* 4
                let header = 8 &+ optionsLength
                guard avail >= header else {
                    stop(.geneve, .truncated, .headerTooShort(needed: header, available: avail))
                    return
                }
                let gv = GeneveHeader(
                    version: b0 >> 6, optionsLength: optionsLength, oam: b1 & 0x80 != 0, critical: b1 & 0x40 != 0,
                    protocolType: bytes.be16(offset &+ 2), vni: bytes.be32(offset &+ 4) >> 8,
                    options: ByteRange(offset: offset &+ 8, count: optionsLength))
                push(.geneve, header: header, payload: avail &- header, .geneve(gv), goNext: Self.goEtherType(gv.protocolType))
                packet.tunnelIndex = packet.layers.count &- 1
                offset &+= header
                inner = true
                // The protocol type is an EtherType (0x6558 = Ethernet); like gopacket and Wireshark,
                // decode whatever the Ethernet layer would, whatever the version and O/C bits say.
                if offset == end {
                    missing(etherNext(gv.protocolType))
                    return
                }
                switch etherNext(gv.protocolType) {
                case .next(let n): next = n
                case .stop:
                    stop(nil, .unsupported, .geneveUnsupportedProtocol(protocolType: Int(gv.protocolType)))
                    return
                }
            }
        }
    }

    /// The layer after an EtherType.
    private func etherNext(_ type: UInt16) -> Step {
        switch type {
        case 0x0800: .next(.ipv4)
        case 0x86dd: .next(.ipv6)
        case 0x0806: .next(.arp)
        case 0x8100, 0x88a8: .next(.vlan)
        case 0x6558: .next(.ethernet)
        case ..<0x0600: .stop(.llcFrame)
        default: .stop(.unknownEtherType(Int(type)))
        }
    }

    /// The layer after an IP protocol number.
    private func ipNext(_ proto: UInt8) -> Step {
        switch proto {
        case 6: .next(.tcp)
        case 17: .next(.udp)
        case 1: .next(.icmpv4)
        case 58: .next(.icmpv6)
        case 132: .next(.sctp)
        case 4, 94: .next(.ipv4)
        case 41: .next(.ipv6)
        case 0, 43, 44, 60, 51: .next(.ipv6Extension(proto))
        default: .stop(.unknownIPProtocol(Int(proto)))
        }
    }

    /// IPv4 exactly as gopacket v1.1.19 decodes it (check order, errors, trimming, options).
    private func decodeIPv4(
        _ bytes: RawSpan, _ offset: inout Int, _ end: inout Int, _ next: inout Next?, _ packet: inout DecodedPacket,
        inner: Bool
    ) -> Bool {
        let start = offset
        let avail = end &- start
        func fail(
            _ reason: StopReason, _ detail: StopDetail, truncated: Bool, partial: Layer? = nil
        ) -> Bool {
            packet.stop = DecodeStop(
                layer: .ipv4, offset: start, reason: reason, detail: detail, truncated: truncated, isInner: inner,
                partial: partial)
            return false
        }
        guard avail >= 20 else { return fail(.truncated, .ipv4HeaderTooShort(available: avail), truncated: true) }
        let flagsFrag = bytes.be16(start &+ 6)
        let versionIHL = bytes.u8(start)
        var h = IPv4Header(
            version: versionIHL >> 4, ihl: versionIHL & 0x0f, tos: bytes.u8(start &+ 1),
            totalLength: bytes.be16(start &+ 2), totalLengthWasZero: false, identification: bytes.be16(start &+ 4),
            flags: UInt8(truncatingIfNeeded: flagsFrag >> 13), fragmentOffset: flagsFrag & 0x1fff,
            ttl: bytes.u8(start &+ 8), protocolNumber: bytes.u8(start &+ 9), checksum: bytes.be16(start &+ 10),
            source: bytes.ipv4(start &+ 12), destination: bytes.ipv4(start &+ 16), options: .empty, padding: .empty)
        if h.totalLength == 0 {
            // gopacket: a zero length (TSO) means "the bytes available", truncated to 16 bits as Go does.
            h.totalLength = UInt16(truncatingIfNeeded: avail)
            h.totalLengthWasZero = true
        }
        let length = Int(h.totalLength)
        let headerLength = Int(h.ihl) &* 4
        // gopacket has assigned every fixed field by now (with Contents = all the data, no payload), so a
        // failure from here on leaves that state in its reused IPv4 struct: `partial` records it.
        func partial(contents: Int, payload: Int, options: ByteRange = .empty) -> Layer {
            var p = h
            p.options = options
            p.padding = .empty
            return Layer(
                kind: .ipv4, offset: start, headerLength: contents, payloadOffset: start &+ contents,
                payloadLength: payload, header: .ipv4(p), truncated: false, goNext: .zero, isInner: inner)
        }
        if length < 20 {
            return fail(
                .malformed, .ipv4LengthTooSmall(length: length), truncated: false,
                partial: partial(contents: avail, payload: 0))
        }
        if h.ihl < 5 {
            return fail(
                .malformed, .ipv4IHLTooSmall(ihl: Int(h.ihl)), truncated: false,
                partial: partial(contents: avail, payload: 0))
        }
        if headerLength > length {
            return fail(
                .malformed, .ipv4IHLExceedsLength(ihl: Int(h.ihl), length: length), truncated: false,
                partial: partial(contents: avail, payload: 0))
        }
        var truncated = false
        var dataEnd = end
        if avail > length {
            dataEnd = start &+ length
        } else if avail < length {
            truncated = true
            if headerLength > avail {
                return fail(
                    .truncated, .ipv4HeaderNotAvailable, truncated: true, partial: partial(contents: avail, payload: 0))
            }
        }
        // Options: bytes 20 ..< headerLength.
        var o = start &+ 20
        let optionsEnd = start &+ headerLength
        h.options = ByteRange(offset: o, count: optionsEnd &- o)
        // On an option error gopacket keeps Contents/Payload and the options parsed before it.
        func optionPartial() -> Layer {
            partial(
                contents: headerLength, payload: dataEnd &- start &- headerLength,
                options: ByteRange(offset: start &+ 20, count: o &- start &- 20))
        }
        while o < optionsEnd {
            let type = bytes.u8(o)
            if type == 0 {
                h.padding = ByteRange(offset: o &+ 1, count: optionsEnd &- o &- 1)
                h.options.count = o &+ 1 &- h.options.offset
                break
            } else if type == 1 {
                o &+= 1
            } else {
                let remaining = optionsEnd &- o
                if remaining < 2 {
                    return fail(
                        .truncated, .ipv4OptionLengthShort(remaining: remaining), truncated: true,
                        partial: optionPartial())
                }
                let optLength = Int(bytes.u8(o &+ 1))
                if remaining < optLength {
                    return fail(
                        .truncated, .ipv4OptionExceedsHeader(type: Int(type), length: optLength), truncated: true,
                        partial: optionPartial())
                }
                if optLength <= 2 {
                    return fail(
                        .malformed, .ipv4OptionTooSmall(type: Int(type), length: optLength), truncated: truncated,
                        partial: optionPartial())
                }
                o &+= optLength
            }
        }
        let payload = dataEnd &- start &- headerLength
        let go: GoLayerType = h.isFragment ? .other(.fragment) : Self.goIPProtocol(h.protocolNumber)
        packet.layers.append(
            Layer(
                kind: .ipv4, offset: start, headerLength: headerLength, payloadOffset: start &+ headerLength,
                payloadLength: payload, header: .ipv4(h),
                truncated: truncated, goNext: go, isInner: inner))
        offset = start &+ headerLength
        end = dataEnd
        if payload == 0 {
            if !h.isFragment { announceMissing(ipNext(h.protocolNumber), &packet, at: offset, inner: inner) }
            return false
        }
        if h.isFragment {
            packet.stop = DecodeStop(
                layer: nil, offset: offset, reason: .fragment,
                detail: .ipv4Fragment(offset: Int(h.fragmentOffset), moreFragments: h.flags & 1 != 0),
                truncated: false, isInner: inner, partial: nil)
            return false
        }
        return step(ipNext(h.protocolNumber), &next, &packet, at: offset, inner: inner)
    }

    /// Records that an announced next layer has no captured bytes (see `missing` in `decode`).
    private func announceMissing(_ s: Step, _ packet: inout DecodedPacket, at offset: Int, inner: Bool) {
        if case .next(let n) = s {
            packet.stop = DecodeStop(
                layer: Self.kind(n), offset: offset, reason: .truncated,
                detail: .headerTooShort(needed: Self.minimumLength(n), available: 0), truncated: false,
                isInner: inner)
        }
    }

    private static func kind(_ n: Next) -> LayerKind {
        switch n {
        case .ethernet: .ethernet
        case .vlan: .vlan
        case .arp: .arp
        case .ipv4: .ipv4
        case .ipv6: .ipv6
        case .ipv6Extension: .ipv6Extension
        case .tcp: .tcp
        case .udp: .udp
        case .sctp: .sctp
        case .icmpv4: .icmpv4
        case .icmpv6: .icmpv6
        case .vxlan: .vxlan
        case .geneve: .geneve
        }
    }

    /// Bytes the fixed part of a header needs.
    private static func minimumLength(_ n: Next) -> Int {
        switch n {
        case .ethernet: 14
        case .vlan: 4
        case .arp: 8
        case .ipv4: 20
        case .ipv6: 40
        case .ipv6Extension: 8
        case .tcp: 20
        case .udp: 8
        case .sctp: 12
        case .icmpv4: 8
        case .icmpv6: 4
        case .vxlan: 8
        case .geneve: 8
        }
    }

    /// Applies a protocol-number lookup: sets `next`, or records an `.unsupported` stop and returns false.
    private func step(_ s: Step, _ next: inout Next?, _ packet: inout DecodedPacket, at offset: Int, inner: Bool) -> Bool {
        switch s {
        case .next(let n):
            next = n
            return true
        case .stop(let d):
            packet.stop = DecodeStop(
                layer: nil, offset: offset, reason: .unsupported, detail: d, truncated: false, isInner: inner,
                partial: nil)
            return false
        }
    }

    /// IPv6 exactly as gopacket v1.1.19 decodes it, including the inline hop-by-hop header.
    private func decodeIPv6(
        _ bytes: RawSpan, _ offset: inout Int, _ end: inout Int, _ next: inout Next?, _ packet: inout DecodedPacket,
        inner: Bool
    ) -> Bool {
        let start = offset
        let avail = end &- start
        guard avail >= 40 else {
            packet.stop = DecodeStop(
                layer: .ipv6, offset: start, reason: .truncated, detail: .ipv6HeaderTooShort(available: avail),
                truncated: true, isInner: inner)
            return false
        }
        let word = bytes.be32(start)
        var h = IPv6Header(
            version: UInt8(truncatingIfNeeded: word >> 28), trafficClass: UInt8(truncatingIfNeeded: word >> 20),
            flowLabel: word & 0x000f_ffff, payloadLength: bytes.be16(start &+ 4), nextHeader: bytes.u8(start &+ 6),
            hopLimit: bytes.u8(start &+ 7), source: bytes.ipv6(start &+ 8), destination: bytes.ipv6(start &+ 24),
            hopByHop: nil)
        var hopByHopSet = false
        func fail(_ reason: StopReason, _ detail: StopDetail, truncated: Bool) -> Bool {
            // Past the length check gopacket has filled its reused IPv6 struct (Payload = all after the
            // fixed header; HopByHop only once that header decoded): keep that state as `partial`.
            var partial: Layer?
            if avail >= 40 {
                var p = h
                if !hopByHopSet { p.hopByHop = nil }
                partial = Layer(
                    kind: .ipv6, offset: start, headerLength: 40, payloadOffset: start &+ 40, payloadLength: avail &- 40,
                    header: .ipv6(p), truncated: false, goNext: .zero, isInner: inner)
            }
            packet.stop = DecodeStop(
                layer: .ipv6, offset: start, reason: reason, detail: detail, truncated: truncated, isInner: inner,
                partial: partial)
            return false
        }
        var payloadStart = start &+ 40
        var payloadEnd = end
        var truncated = false
        var hopByHopPayload = 0
        var jumboPayload = false
        if h.nextHeader == 0 {
            // gopacket decodes the hop-by-hop header inline, walking its TLVs over the whole remaining
            // payload (an option may run past the header), and only then looks for a jumbo option.
            let hbhStart = payloadStart
            let rem = payloadEnd &- hbhStart
            guard rem >= 2 else {
                return fail(.truncated, .ipv6ExtensionTooShort(available: rem), truncated: true)
            }
            let hdrLen = bytes.u8(hbhStart &+ 1)
            let actual = Int(hdrLen) &* 8 &+ 8
            guard rem >= actual else {
                return fail(
                    .truncated, .ipv6ExtensionShorterThanSpecified(available: rem, length: actual), truncated: false)
            }
            var o = 2
            var jumboAt: Int?
            while o < actual {
                let r = rem &- o
                if r < 2 { return fail(.truncated, .ipv6OptionTooSmall, truncated: true) }
                let t = bytes.u8(hbhStart &+ o)
                if t == 0 {
                    o &+= 1
                    continue
                }
                let al = Int(bytes.u8(hbhStart &+ o &+ 1)) &+ 2
                if r < al { return fail(.truncated, .ipv6TLVOptionTooSmall, truncated: true) }
                if t == 0xc2 && jumboAt == nil { jumboAt = hbhStart &+ o }
                o &+= al
            }
            h.hopByHop = IPv6HopByHop(
                nextHeader: bytes.u8(hbhStart), headerLength: hdrLen, actualLength: actual,
                options: ByteRange(offset: hbhStart &+ 2, count: actual &- 2))
            hopByHopPayload = rem &- actual
            h.hopByHopPayloadLength = hopByHopPayload
            hopByHopSet = true
            var jumbo: UInt32?
            if let at = jumboAt {
                guard bytes.u8(at &+ 1) == 4 else { return fail(.malformed, .ipv6JumboDataLength, truncated: false) }
                let v = bytes.be32(at &+ 2)
                guard v > 65535 else { return fail(.malformed, .ipv6JumboTooSmall, truncated: false) }
                jumbo = v
            }
            if let jumbo, h.payloadLength == 0 {
                // gopacket quirk: the payload keeps starting at the hop-by-hop header.
                var pEnd = Int(jumbo)
                if pEnd > rem {
                    truncated = true
                    pEnd = rem
                }
                payloadEnd = hbhStart &+ pEnd
                jumboPayload = true
            } else if jumbo != nil {
                return fail(.malformed, .ipv6JumboWithLength, truncated: false)
            } else if h.payloadLength == 0 {
                return fail(.malformed, .ipv6ZeroLengthNoJumbo, truncated: false)
            } else {
                payloadStart &+= actual
            }
        }
        if !jumboPayload {
            if h.payloadLength == 0 {
                return fail(.malformed, .ipv6ZeroLength(nextHeader: Int(h.nextHeader)), truncated: false)
            }
            var pEnd = Int(h.payloadLength)
            if pEnd > payloadEnd &- payloadStart {
                truncated = true
                pEnd = payloadEnd &- payloadStart
            }
            payloadEnd = payloadStart &+ pEnd
        }
        h.hopByHopPayloadLength = hopByHopPayload
        let upper = h.upperNextHeader
        let payload = payloadEnd &- payloadStart
        packet.layers.append(
            Layer(
                kind: .ipv6, offset: start, headerLength: 40, payloadOffset: payloadStart, payloadLength: payload,
                header: .ipv6(h), truncated: truncated, goNext: Self.goIPProtocol(upper), isInner: inner))
        offset = payloadStart
        end = payloadEnd
        if payload == 0 {
            announceMissing(ipNext(upper), &packet, at: offset, inner: inner)
            return false
        }
        return step(ipNext(upper), &next, &packet, at: offset, inner: inner)
    }

    /// TCP exactly as gopacket v1.1.19 decodes it.
    private func decodeTCP(
        _ bytes: RawSpan, _ offset: inout Int, _ end: Int, _ packet: inout DecodedPacket, inner: Bool
    ) -> Bool {
        let start = offset
        let avail = end &- start
        func fail(_ reason: StopReason, _ detail: StopDetail, truncated: Bool) -> Bool {
            packet.stop = DecodeStop(
                layer: .tcp, offset: start, reason: reason, detail: detail, truncated: truncated, isInner: inner,
                partial: nil)
            return false
        }
        guard avail >= 20 else { return fail(.truncated, .tcpHeaderTooShort(available: avail), truncated: true) }
        let b12 = bytes.u8(start &+ 12)
        var h = TCPHeader(
            sourcePort: bytes.be16(start), destinationPort: bytes.be16(start &+ 2), sequence: bytes.be32(start &+ 4),
            acknowledgment: bytes.be32(start &+ 8), dataOffset: b12 >> 4,
            flags: UInt16(bytes.u8(start &+ 13)) | (UInt16(b12 & 1) << 8), window: bytes.be16(start &+ 14),
            checksum: bytes.be16(start &+ 16), urgent: bytes.be16(start &+ 18), options: .empty, padding: .empty)
        if h.dataOffset < 5 {
            return fail(.malformed, .tcpDataOffsetTooSmall(dataOffset: Int(h.dataOffset)), truncated: false)
        }
        let dataStart = Int(h.dataOffset) &* 4
        if dataStart > avail { return fail(.truncated, .tcpDataOffsetBeyondPacket, truncated: true) }
        var o = start &+ 20
        let optionsEnd = start &+ dataStart
        h.options = ByteRange(offset: o, count: optionsEnd &- o)
        while o < optionsEnd {
            let kind = bytes.u8(o)
            if kind == 0 {
                h.padding = ByteRange(offset: o &+ 1, count: optionsEnd &- o &- 1)
                h.options.count = o &+ 1 &- h.options.offset
                break
            } else if kind == 1 {
                o &+= 1
            } else {
                let remaining = optionsEnd &- o
                if remaining < 2 {
                    return fail(.truncated, .tcpOptionLengthShort(remaining: remaining), truncated: true)
                }
                let l = Int(bytes.u8(o &+ 1))
                if l < 2 { return fail(.malformed, .tcpOptionLengthTooSmall(length: l), truncated: false) }
                if l > remaining {
                    return fail(.truncated, .tcpOptionLengthExceeds(length: l, remaining: remaining), truncated: true)
                }
                o &+= l
            }
        }
        var go = Self.goTCPPort(h.destinationPort)
        if go == .other(.payload) { go = Self.goTCPPort(h.sourcePort) }
        packet.layers.append(
            Layer(
                kind: .tcp, offset: start, headerLength: dataStart, payloadOffset: start &+ dataStart,
                payloadLength: avail &- dataStart, header: .tcp(h),
                truncated: false, goNext: go, isInner: inner))
        offset = start &+ dataStart
        return true
    }

    // MARK: gopacket v1.1.19 layer-type tables

    /// gopacket's `EthernetType.LayerType()`.
    public static func goEtherType(_ type: UInt16) -> GoLayerType {
        switch type {
        case ..<0x0600: .other(.llc)
        case 0x0800: .ipv4
        case 0x86dd: .ipv6
        case 0x0806: .other(.arp)
        case 0x8100, 0x88a8: .other(.dot1q)
        case 0x6558: .ethernet
        case 0x880b: .other(.ppp)
        case 0x8863, 0x8864: .other(.pppoe)
        case 0x888e: .other(.eapol)
        case 0x88cc: .other(.linkLayerDiscovery)
        case 0x2000: .other(.ciscoDiscovery)
        case 0x9000: .other(.ethernetCTP)
        case 0x8847, 0x8848: .other(.mpls)
        case 0x88be: .other(.erspan)
        default: .zero
        }
    }

    /// gopacket's `IPProtocol.LayerType()`.
    public static func goIPProtocol(_ proto: UInt8) -> GoLayerType {
        switch proto {
        case 0: .other(.ipv6HopByHop)
        case 1: .icmpv4
        case 2: .other(.igmp)
        case 4, 94: .ipv4
        case 6: .tcp
        case 17: .udp
        case 27: .other(.rudp)
        case 41: .ipv6
        case 43: .other(.ipv6Routing)
        case 44: .other(.ipv6Fragment)
        case 47: .other(.gre)
        case 50: .other(.ipSecESP)
        case 51: .other(.ipSecAH)
        case 58: .icmpv6
        case 59: .other(.payload)
        case 60: .other(.ipv6Destination)
        case 89: .other(.ospf)
        case 97: .other(.etherIP)
        case 112: .other(.vrrp)
        case 132: .sctp
        case 136: .other(.udpLite)
        case 137: .other(.mpls)
        default: .zero
        }
    }

    /// gopacket's `TCPPort.LayerType()`.
    public static func goTCPPort(_ port: UInt16) -> GoLayerType {
        switch port {
        case 53: .other(.dns)
        case 443, 636, 989, 990, 992, 993, 994, 995, 5061: .other(.tls)
        case 502: .other(.modbusTCP)
        default: .other(.payload)
        }
    }

    /// gopacket's `UDPPort.LayerType()`.
    public static func goUDPPort(_ port: UInt16) -> GoLayerType {
        switch port {
        case 53: .other(.dns)
        case 123: .other(.ntp)
        case 4789: .other(.vxlan)
        case 67, 68: .other(.dhcpv4)
        case 546, 547: .other(.dhcpv6)
        case 5060: .other(.sip)
        case 6343: .other(.sflow)
        case 6081: .other(.geneve)
        case 3784: .other(.bfd)
        case 2152: .other(.gtpv1u)
        case 623: .other(.rmcp)
        case 1812: .other(.radius)
        default: .other(.payload)
        }
    }

    /// gopacket's `ICMPv6.NextLayerType()`.
    public static func goICMPv6(_ type: UInt8, payloadLength: Int) -> GoLayerType {
        switch type {
        case 128, 129: .other(.icmpv6Echo)
        case 133: .other(.icmpv6RouterSolicitation)
        case 134: .other(.icmpv6RouterAdvertisement)
        case 135: .other(.icmpv6NeighborSolicitation)
        case 136: .other(.icmpv6NeighborAdvertisement)
        case 137: .other(.icmpv6Redirect)
        case 130: payloadLength > 20 ? .other(.mldv2MulticastListenerQuery) : .other(.mldv1MulticastListenerQuery)
        case 131: .other(.mldv1MulticastListenerReport)
        case 132: .other(.mldv1MulticastListenerDone)
        case 143: .other(.mldv2MulticastListenerReport)
        default: .other(.payload)
        }
    }
}
