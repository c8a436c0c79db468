import VxmonWire

/// gopacket's `LayerString` for the layers Cilium prints at `-vv`: `<Name>\t{Field=value ...}`, fields in
/// struct declaration order, byte slices longer than 4 as `[..N..]`, shorter ones as decimal lists.
struct LayerStrings {
    /// The packet bytes. Only valid inside the `withUnsafeBytes` call that created this value; every
    /// read goes through `Bytes`, which checks bounds explicitly (a miss reads as 0, never out of range).
    let bytes: Bytes
    let out: OutputBuffer

    init(_ buffer: UnsafeRawBufferPointer, out: OutputBuffer) {
        bytes = Bytes(buffer: buffer)
        self.out = out
    }

    struct Bytes {
        let buffer: UnsafeRawBufferPointer

        func has(_ count: Int, at offset: Int) -> Bool {
            offset >= 0 && count >= 0 && offset <= buffer.count && buffer.count - offset >= count
        }
        func u8(_ offset: Int) -> UInt8 { has(1, at: offset) ? buffer[offset] : 0 }
        func be16(_ offset: Int) -> UInt16 {
            has(2, at: offset) ? UInt16(buffer[offset]) << 8 | UInt16(buffer[offset + 1]) : 0
        }
        func be32(_ offset: Int) -> UInt32 {
            has(4, at: offset) ? UInt32(be16(offset)) << 16 | UInt32(be16(offset + 2)) : 0
        }
    }

    /// Opens a slice field as gopacket's layerString does: writes `[`, and `..N..` when it holds more
    /// than four elements. Returns true when the elements themselves are to be written.
    func openList(_ count: Int) -> Bool {
        out.append(byte: UInt8(ascii: "["))
        guard count > 4 else { return true }
        out.append("..")
        out.decimal(count)
        out.append("..")
        return false
    }

    /// A `[]byte` field: `[..N..]` above 4 bytes, else `[b0, b1]` in decimal.
    func slice(_ offset: Int, _ count: Int) {
        if openList(count), count > 0, bytes.has(count, at: offset) {
            for k in 0..<count {
                if k > 0 { out.append(", ") }
                out.unsignedDecimal(UInt64(bytes.u8(offset + k)))
            }
        }
        out.append(byte: UInt8(ascii: "]"))
    }

    /// Go `%v` of a `[]byte`: `[1 2 3]`.
    func goBytes(_ offset: Int, _ count: Int) {
        out.append(byte: UInt8(ascii: "["))
        if bytes.has(count, at: offset) {
            for k in 0..<count {
                if k > 0 { out.append(byte: UInt8(ascii: " ")) }
                out.unsignedDecimal(UInt64(bytes.u8(offset + k)))
            }
        }
        out.append(byte: UInt8(ascii: "]"))
    }

    func base(_ name: StaticString, _ layer: Layer) {
        out.append(name)
        out.append("\t{Contents=")
        slice(layer.offset, layer.headerLength)
        out.append(" Payload=")
        slice(layer.payloadOffset, layer.payloadLength)
    }

    func line(_ layer: Layer) {
        switch layer.header {
        case .ethernet(let h):
            base("Ethernet", layer)
            out.append(" SrcMAC=")
            out.mac(h.source)
            out.append(" DstMAC=")
            out.mac(h.destination)
            out.append(" EthernetType=")
            out.append(GoPacketNames.etherType(h.typeOrLength))
            out.append(" Length=")
            out.decimal(h.typeOrLength < 0x0600 ? h.typeOrLength : 0)
        case .ipv4(let h):
            base("IPv4", layer)
            out.append(" Version=")
            out.decimal(h.version)
            out.append(" IHL=")
            out.decimal(h.ihl)
            out.append(" TOS=")
            out.decimal(h.tos)
            out.append(" Length=")
            out.decimal(h.totalLength)
            out.append(" Id=")
            out.decimal(h.identification)
            out.append(" Flags=")
            ipv4Flags(h.flags)
            out.append(" FragOffset=")
            out.decimal(h.fragmentOffset)
            out.append(" TTL=")
            out.decimal(h.ttl)
            out.append(" Protocol=")
            out.append(GoPacketNames.ipProtocol(h.protocolNumber))
            out.append(" Checksum=")
            out.decimal(h.checksum)
            out.append(" SrcIP=")
            out.ipv4(h.source)
            out.append(" DstIP=")
            out.ipv4(h.destination)
            out.append(" Options=")
            ipv4Options(h.options)
            out.append(" Padding=")
            slice(h.padding.offset, h.padding.count)
        case .ipv6(let h):
            base("IPv6", layer)
            out.append(" Version=")
            out.decimal(h.version)
            out.append(" TrafficClass=")
            out.decimal(h.trafficClass)
            out.append(" FlowLabel=")
            out.decimal(h.flowLabel)
            out.append(" Length=")
            out.decimal(h.payloadLength)
            out.append(" NextHeader=")
            out.append(GoPacketNames.ipProtocol(h.nextHeader))
            out.append(" HopLimit=")
            out.decimal(h.hopLimit)
            out.append(" SrcIP=")
            out.ipv6(h.source)
            out.append(" DstIP=")
            out.ipv6(h.destination)
            out.append(" HopByHop=")
            if let hbh = h.hopByHop {
                hopByHop(hbh, at: layer.offset + 40, payload: h.hopByHopPayloadLength)
            } else {
                out.append("nil")
            }
        case .tcp(let h):
            base("TCP", layer)
            out.append(" SrcPort=")
            out.port(h.sourcePort, .tcp)
            out.append(" DstPort=")
            out.port(h.destinationPort, .tcp)
            out.append(" Seq=")
            out.decimal(h.sequence)
            out.append(" Ack=")
            out.decimal(h.acknowledgment)
            out.append(" DataOffset=")
            out.decimal(h.dataOffset)
            out.append(" FIN=")
            out.bool(h.flags & TCPHeader.fin != 0)
            out.append(" SYN=")
            out.bool(h.flags & TCPHeader.syn != 0)
            out.append(" RST=")
            out.bool(h.flags & TCPHeader.rst != 0)
            out.append(" PSH=")
            out.bool(h.flags & TCPHeader.psh != 0)
            out.append(" ACK=")
            out.bool(h.flags & TCPHeader.ack != 0)
            out.append(" URG=")
            out.bool(h.flags & TCPHeader.urg != 0)
            out.append(" ECE=")
            out.bool(h.flags & TCPHeader.ece != 0)
            out.append(" CWR=")
            out.bool(h.flags & TCPHeader.cwr != 0)
            out.append(" NS=")
            out.bool(h.flags & TCPHeader.ns != 0)
            out.append(" Window=")
            out.decimal(h.window)
            out.append(" Checksum=")
            out.decimal(h.checksum)
            out.append(" Urgent=")
            out.decimal(h.urgent)
            out.append(" Options=")
            tcpOptions(h.options)
            out.append(" Padding=")
            slice(h.padding.offset, h.padding.count)
        case .udp(let h):
            base("UDP", layer)
            out.append(" SrcPort=")
            out.port(h.sourcePort, .udp)
            out.append(" DstPort=")
            out.port(h.destinationPort, .udp)
            out.append(" Length=")
            out.decimal(h.length)
            out.append(" Checksum=")
            out.decimal(h.checksum)
        case .sctp(let h):
            base("SCTP", layer)
            out.append(" SrcPort=")
            out.port(h.sourcePort, .sctp)
            out.append(" DstPort=")
            out.port(h.destinationPort, .sctp)
            out.append(" VerificationTag=")
            out.decimal(h.verificationTag)
            out.append(" Checksum=")
            out.decimal(h.checksum)
        case .icmpv4(let h):
            base("ICMPv4", layer)
            out.append(" TypeCode=")
            out.icmpTypeCode(v6: false, type: h.type, code: h.code)
            out.append(" Checksum=")
            out.decimal(h.checksum)
            out.append(" Id=")
            out.decimal(h.identifier)
            out.append(" Seq=")
            out.decimal(h.sequence)
        case .icmpv6(let h):
            base("ICMPv6", layer)
            out.append(" TypeCode=")
            out.icmpTypeCode(v6: true, type: h.type, code: h.code)
            out.append(" Checksum=")
            out.decimal(h.checksum)
            out.append(" TypeBytes=[]")
        case .vxlan(let h):
            // Not in Cilium 1.13; the field list of gopacket's VXLAN layer (printed by newer Cilium).
            base("VXLAN", layer)
            out.append(" ValidIDFlag=")
            out.bool(h.validID)
            out.append(" VNI=")
            out.decimal(h.vni)
            out.append(" GBPExtension=")
            out.bool(h.gbpExtension)
            out.append(" GBPDontLearn=")
            out.bool(h.gbpDontLearn)
            out.append(" GBPApplied=")
            out.bool(h.gbpAppliedGopacket)
            out.append(" GBPGroupPolicyID=")
            out.decimal(h.groupPolicyID)
        case .geneve(let h):
            base("Geneve", layer)
            out.append(" Version=")
            out.decimal(h.version)
            out.append(" OptionsLength=")
            out.decimal(h.optionsLength)
            out.append(" OAMPacket=")
            out.bool(h.oam)
            out.append(" CriticalOption=")
            out.bool(h.critical)
            out.append(" Protocol=")
            out.append(GoPacketNames.etherType(h.protocolType))
            out.append(" VNI=")
            out.decimal(h.vni)
            out.append(" Options=")
            geneveOptions(h.options)
        case .vlan(let h):
            base("Dot1Q", layer)
            out.append(" Priority=")
            out.decimal(h.priority)
            out.append(" DropEligible=")
            out.bool(h.dropEligible)
            out.append(" VLANIdentifier=")
            out.decimal(h.vlanID)
            out.append(" Type=")
            out.append(GoPacketNames.etherType(h.etherType))
        case .arp(let h):
            base("ARP", layer)
            out.append(" AddrType=")
            if h.hardwareType == 1 { out.append("Ethernet") } else { out.decimal(h.hardwareType) }
            out.append(" Protocol=")
            out.append(GoPacketNames.etherType(h.protocolType))
            out.append(" HwAddressSize=")
            out.decimal(h.hardwareLength)
            out.append(" ProtAddressSize=")
            out.decimal(h.protocolLength)
            out.append(" Operation=")
            out.decimal(h.operation)
            out.append(" SourceHwAddress=")
            slice(h.senderHardware.offset, h.senderHardware.count)
            out.append(" SourceProtAddress=")
            slice(h.senderProtocol.offset, h.senderProtocol.count)
            out.append(" DstHwAddress=")
            slice(h.targetHardware.offset, h.targetHardware.count)
            out.append(" DstProtAddress=")
            slice(h.targetProtocol.offset, h.targetProtocol.count)
        case .ipv6Extension(let h):
            out.append(GoPacketNames.ipProtocol(h.headerType))
            out.append("\t{Contents=")
            slice(layer.offset, layer.headerLength)
            out.append(" Payload=")
            slice(layer.payloadOffset, layer.payloadLength)
            out.append(" NextHeader=")
            out.append(GoPacketNames.ipProtocol(h.nextHeader))
        }
        out.append("}\n")
    }

    static let ipv4FlagNames: [(UInt8, StaticString)] = [(4, "Evil"), (2, "DF"), (1, "MF")]

    func ipv4Flags(_ flags: UInt8) {
        var first = true
        for (bit, name) in Self.ipv4FlagNames where flags & bit != 0 {
            if !first { out.append(byte: UInt8(ascii: "|")) }
            out.append(name)
            first = false
        }
    }

    /// `[IPv4Option(type:[data]), ...]`, or `[..N..]` for more than four options.
    func ipv4Options(_ r: ByteRange) {
        var count = 0
        walkOptions(r, singleByte: { _ in count += 1 }, withData: { _, _, _ in count += 1 })
        if openList(count) {
            var k = 0
            walkOptions(
                r,
                singleByte: { type in
                    if k > 0 { out.append(", ") }
                    k += 1
                    out.append("IPv4Option(")
                    out.decimal(type)
                    out.append(":[])")
                },
                withData: { type, dataOffset, dataCount in
                    if k > 0 { out.append(", ") }
                    k += 1
                    out.append("IPv4Option(")
                    out.decimal(type)
                    out.append(byte: UInt8(ascii: ":"))
                    goBytes(dataOffset, dataCount)
                    out.append(byte: UInt8(ascii: ")"))
                })
        }
        out.append(byte: UInt8(ascii: "]"))
    }

    /// Walks IPv4/TCP-style options (kind 0 ends, kind 1 is one byte, others TLV). The decoder has
    /// already validated the option area, so every TLV fits.
    func walkOptions(
        _ r: ByteRange, singleByte: (UInt8) -> Void, withData: (UInt8, Int, Int) -> Void
    ) {
        var o = r.offset
        let end = r.offset + r.count
        while o < end, bytes.has(1, at: o) {
            let kind = bytes.u8(o)
            if kind == 0 || kind == 1 {
                singleByte(kind)
                if kind == 0 { return }
                o += 1
                continue
            }
            guard bytes.has(2, at: o) else { return }
            let length = Int(bytes.u8(o + 1))
            guard length >= 2, o + length <= end else { return }
            withData(kind, o + 2, length - 2)
            o += length
        }
    }

    /// `[TCPOption(MSS:1460 0x05b4), ...]`, or `[..N..]` for more than four options.
    func tcpOptions(_ r: ByteRange) {
        var count = 0
        walkOptions(r, singleByte: { _ in count += 1 }, withData: { _, _, _ in count += 1 })
        if openList(count) {
            var k = 0
            let emit: (UInt8, Int, Int) -> Void = { kind, dataOffset, dataCount in
                if k > 0 { out.append(", ") }
                k += 1
                out.append("TCPOption(")
                if let name = GoPacketNames.tcpOptionKind(kind) {
                    out.append(name)
                } else {
                    out.append("Unknown(")
                    out.decimal(kind)
                    out.append(byte: UInt8(ascii: ")"))
                }
                out.append(byte: UInt8(ascii: ":"))
                if kind == 2 && dataCount >= 2 {
                    out.decimal(bytes.be16(dataOffset))
                } else if kind == 8 && dataCount == 8 {
                    out.decimal(bytes.be32(dataOffset))
                    out.append(byte: UInt8(ascii: "/"))
                    out.decimal(bytes.be32(dataOffset + 4))
                }
                if dataCount > 0 {
                    out.append(" 0x")
                    for b in 0..<dataCount { out.hexByte(bytes.u8(dataOffset + b)) }
                }
                out.append(byte: UInt8(ascii: ")"))
            }
            walkOptions(r, singleByte: { emit($0, 0, 0) }, withData: emit)
        }
        out.append(byte: UInt8(ascii: "]"))
    }

    /// gopacket prints the hop-by-hop header as a nested struct (with its leading-space quirk).
    func hopByHop(_ h: IPv6HopByHop, at start: Int, payload: Int) {
        out.append("{ Contents=")
        slice(start, h.actualLength)
        out.append(" Payload=")
        slice(start + h.actualLength, payload)
        out.append(" NextHeader=")
        out.append(GoPacketNames.ipProtocol(h.nextHeader))
        out.append(" HeaderLength=")
        out.decimal(h.headerLength)
        out.append(" ActualLength=")
        out.decimal(h.actualLength)
        out.append(" Options=")
        // TLVs from byte 2 while inside the header; an option's data may extend past it (gopacket).
        var count = 0
        var o = 2
        while o < h.actualLength, bytes.has(2, at: start + o) || bytes.has(1, at: start + o) {
            let t = bytes.u8(start + o)
            count += 1
            if t == 0 {
                o += 1
                continue
            }
            guard bytes.has(2, at: start + o) else { break }
            o += Int(bytes.u8(start + o + 1)) + 2
        }
        if openList(count) {
            o = 2
            var k = 0
            while k < count {
                if k > 0 { out.append(", ") }
                k += 1
                let t = bytes.u8(start + o)
                if t == 0 {
                    out.append("{OptionType=0 OptionLength=0 ActualLength=1 OptionData=[] OptionAlignment=[0 0]}")
                    o += 1
                    continue
                }
                let length = Int(bytes.u8(start + o + 1))
                out.append("{OptionType=")
                out.decimal(t)
                out.append(" OptionLength=")
                out.decimal(length)
                out.append(" ActualLength=")
                out.decimal(length + 2)
                out.append(" OptionData=")
                slice(start + o + 2, length)
                out.append(" OptionAlignment=[0 0]}")
                o += length + 2
            }
        }
        out.append("]}")
    }

    func geneveOptions(_ r: ByteRange) {
        var count = 0
        var o = r.offset
        let end = r.offset + r.count
        while o + 4 <= end {
            count += 1
            o += Int(bytes.u8(o + 3) & 0x1f) * 4 + 4
        }
        if openList(count) {
            o = r.offset
            for k in 0..<count {
                if k > 0 { out.append(", ") }
                let length = Int(bytes.u8(o + 3) & 0x1f) * 4 + 4
                out.append("{Class=")
                out.decimal(bytes.be16(o))
                out.append(" Type=")
                out.decimal(bytes.u8(o + 2))
                out.append(" Flags=")
                out.decimal(bytes.u8(o + 3) >> 5)
                out.append(" Length=")
                out.decimal(length)
                out.append(" Data=")
                slice(o + 4, min(length - 4, max(end - o - 4, 0)))
                out.append(byte: UInt8(ascii: "}"))
                o += length
            }
        }
        out.append(byte: UInt8(ascii: "]"))
    }
}

/// Go `encoding/hex.Dump` of `bytes`.
func appendHexDump(_ bytes: RawSpan, to out: OutputBuffer) {
    let n = bytes.byteCount
    var line = 0
    while line < n {
        var shift = 28  // the offset: 8 lowercase hex digits
        while shift >= 0 {
            out.append(byte: out.hexDigit(UInt8(truncatingIfNeeded: (line >> shift) & 0xf)))
            shift -= 4
        }
        out.append("  ")
        for k in 0..<16 {
            if line + k < n {
                out.hexByte(bytes.u8(line + k))
                out.append(byte: 32)
            } else {
                out.append("   ")
            }
            if k == 7 { out.append(byte: 32) }
        }
        out.append(" |")
        for k in 0..<min(16, n - line) {
            let b = bytes.u8(line + k)
            out.append(byte: b >= 0x20 && b <= 0x7e ? b : UInt8(ascii: "."))
        }
        out.append("|\n")
        line += 16
    }
}
