import Testing
import VxmonWire

// TCP (RFC 9293), UDP (RFC 768), SCTP common header (RFC 9260), ICMPv4 (RFC 792).

/// Ethernet + IPv4 (IHL 5, total length = 20 + payload) carrying `proto`.
func ipv4Frame(_ proto: UInt8, _ payload: [UInt8]) -> [UInt8] {
    let total = 20 + payload.count
    return ether() + [0x45, 0x00, UInt8(total >> 8), UInt8(total & 0xff), 0x00, 0x01, 0x00, 0x00, 0x40, proto, 0x00, 0x00,
        0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02] + payload
}

@Suite("TCP")
struct TCPWireTests {
    static let segment = hex("""
        9c 40  1f 90         # ports 40000 -> 8080
        00 00 03 e8          # sequence 1000
        00 00 00 01          # acknowledgment 1
        71                   # data offset 7, NS
        d2                   # CWR ECE ACK SYN
        fa f0                # window 64240
        12 34                # checksum
        00 07                # urgent pointer
        02 04 05 b4          # MSS 1460
        01                   # NOP
        00                   # end of options
        00 00                # padding
        68 69                # data "hi"
        """)

    @Test("deconstruct every field")
    func deconstruct() throws {
        let p = decode(ipv4Frame(6, Self.segment))
        #expect(kinds(p) == [.ethernet, .ipv4, .tcp])
        #expect(p.stop == nil)
        let l = p.layers[2]
        #expect(l.offset == 34)
        #expect(l.headerLength == 28)
        #expect(l.payloadOffset == 62)
        #expect(l.payloadLength == 2)
        #expect(l.goNext == .other(.payload))
        guard case .tcp(let t) = l.header else { Issue.record("not tcp"); return }
        #expect(t.sourcePort == 40000)
        #expect(t.destinationPort == 8080)
        #expect(t.sequence == 1000)
        #expect(t.acknowledgment == 1)
        #expect(t.dataOffset == 7)
        #expect(t.flags == 0x1d2)
        #expect(t.flags & TCPHeader.ns != 0)
        #expect(t.flags & TCPHeader.cwr != 0)
        #expect(t.flags & TCPHeader.ece != 0)
        #expect(t.flags & TCPHeader.ack != 0)
        #expect(t.flags & TCPHeader.syn != 0)
        #expect(t.flags & (TCPHeader.fin | TCPHeader.rst | TCPHeader.psh | TCPHeader.urg) == 0)
        #expect(t.window == 64240)
        #expect(t.checksum == 0x1234)
        #expect(t.urgent == 7)
        #expect(t.options == ByteRange(offset: 54, count: 6))
        #expect(t.padding == ByteRange(offset: 60, count: 2))
    }

    @Test("well-known ports pick gopacket's next layer", arguments: [
        (UInt16(443), GoLayerType.other(.tls)), (53, .other(.dns)), (502, .other(.modbusTCP)), (8080, .other(.payload)),
    ])
    func nextLayer(port: UInt16, go: GoLayerType) {
        #expect(PacketDecoder.goTCPPort(port) == go)
        var s = Self.segment
        s[0] = 0x9c
        s[2] = UInt8(port >> 8)
        s[3] = UInt8(port & 0xff)
        #expect(decode(ipv4Frame(6, s)).layers[2].goNext == go)
    }

    @Test("data offset < 5 is malformed", arguments: [0, 3, 4])
    func dataOffsetTooSmall(offset: Int) throws {
        var s = Self.segment
        s[12] = UInt8(offset << 4)
        let stop = try #require(decode(ipv4Frame(6, s)).stop)
        #expect(stop.layer == .tcp)
        #expect(stop.reason == .malformed)
        #expect(stop.detail == .tcpDataOffsetTooSmall(dataOffset: offset))
        #expect(stop.offset == 34)
    }

    @Test("data offset beyond the segment is truncation")
    func dataOffsetBeyond() throws {
        var s = Array(Self.segment.prefix(20))
        s[12] = 0x80
        let stop = try #require(decode(ipv4Frame(6, s)).stop)
        #expect(stop.reason == .truncated)
        #expect(stop.detail == .tcpDataOffsetBeyondPacket)
    }

    @Test("header shorter than 20 bytes")
    func headerTooShort() throws {
        let stop = try #require(decode(ipv4Frame(6, [0, 80, 0, 80])).stop)
        #expect(stop.detail == .tcpHeaderTooShort(available: 4))
        #expect(stop.truncated)
    }

    @Test("bad options", arguments: [
        ([UInt8](arrayLiteral: 0x02, 0x01, 0x00, 0x00), StopDetail.tcpOptionLengthTooSmall(length: 1)),
        ([0x01, 0x01, 0x02, 0x08], .tcpOptionLengthExceeds(length: 8, remaining: 2)),
        ([0x01, 0x01, 0x01, 0x02], .tcpOptionLengthShort(remaining: 1)),
    ])
    func badOptions(options: [UInt8], detail: StopDetail) throws {
        var s = Array(Self.segment.prefix(20)) + options
        s[12] = 0x60
        let stop = try #require(decode(ipv4Frame(6, s)).stop)
        #expect(stop.layer == .tcp)
        #expect(stop.detail == detail)
    }
}

@Suite("UDP")
struct UDPWireTests {
    static let datagram = hex("""
        14 e9  00 35         # ports 5353 -> 53
        00 14                # length 20
        ab cd                # checksum
        12 34 00 00 00 00 00 00 00 00 00 00   # 12 bytes of data
        """)

    @Test("deconstruct every field")
    func deconstruct() throws {
        let p = decode(ipv4Frame(17, Self.datagram))
        #expect(kinds(p) == [.ethernet, .ipv4, .udp])
        #expect(p.stop == nil)
        let l = p.layers[2]
        #expect(l.offset == 34)
        #expect(l.headerLength == 8)
        #expect(l.payloadOffset == 42)
        #expect(l.payloadLength == 12)
        #expect(!l.truncated)
        #expect(l.goNext == .other(.dns))
        guard case .udp(let u) = l.header else { Issue.record("not udp"); return }
        #expect(u.sourcePort == 5353)
        #expect(u.destinationPort == 53)
        #expect(u.length == 20)
        #expect(u.checksum == 0xabcd)
    }

    @Test("length < 8 (and not 0) is malformed", arguments: [1, 5, 7])
    func lengthTooSmall(length: Int) throws {
        var d = Self.datagram
        d[5] = UInt8(length)
        let stop = try #require(decode(ipv4Frame(17, d)).stop)
        #expect(stop.layer == .udp)
        #expect(stop.reason == .malformed)
        #expect(stop.detail == .udpLengthTooSmall(length: length))
    }

    @Test("length 0: the payload is everything after the header")
    func zeroLength() {
        var d = Self.datagram
        d[5] = 0
        let p = decode(ipv4Frame(17, d))
        #expect(p.layers[2].payloadLength == 12)
        #expect(!p.layers[2].truncated)
    }

    @Test("length beyond the capture: truncated flag")
    func lengthBeyond() {
        var d = Self.datagram
        d[5] = 0x40
        let p = decode(ipv4Frame(17, d))
        #expect(p.layers[2].truncated)
        #expect(p.layers[2].payloadLength == 12)
    }

    @Test("length shorter than the data: payload trimmed")
    func lengthShorter() {
        var d = Self.datagram
        d[5] = 10
        #expect(decode(ipv4Frame(17, d)).layers[2].payloadLength == 2)
    }

    @Test("header shorter than 8 bytes")
    func headerTooShort() throws {
        let stop = try #require(decode(ipv4Frame(17, [0, 1, 0, 2])).stop)
        #expect(stop.layer == .udp)
        #expect(stop.reason == .truncated)
        #expect(stop.detail == .udpHeaderTooShort(available: 4))
    }

    @Test("gopacket's UDP port table", arguments: [
        (UInt16(53), GoLayerType.other(.dns)), (123, .other(.ntp)), (4789, .other(.vxlan)), (6081, .other(.geneve)),
        (67, .other(.dhcpv4)), (547, .other(.dhcpv6)), (8472, .other(.payload)), (1, .other(.payload)),
    ])
    func ports(port: UInt16, go: GoLayerType) {
        #expect(PacketDecoder.goUDPPort(port) == go)
    }
}

@Suite("SCTP and ICMPv4")
struct SCTPICMPWireTests {
    @Test("deconstruct an SCTP common header")
    func sctp() throws {
        let p = decode(ipv4Frame(132, hex("13 88  96 0c  de ad be ef  00 00 12 34  01 00 00 04")))
        #expect(kinds(p) == [.ethernet, .ipv4, .sctp])
        #expect(p.layers[1].goNext == .sctp)
        let l = p.layers[2]
        #expect(l.headerLength == 12)
        #expect(l.payloadLength == 4)
        #expect(l.goNext == .other(.payload))
        guard case .sctp(let s) = l.header else { Issue.record("not sctp"); return }
        #expect(s.sourcePort == 5000)
        #expect(s.destinationPort == 38412)
        #expect(s.verificationTag == 0xdead_beef)
        #expect(s.checksum == 0x1234)
    }

    @Test("SCTP shorter than 12 bytes")
    func sctpShort() throws {
        let stop = try #require(decode(ipv4Frame(132, [0, 0, 0, 0, 0, 0, 0, 0])).stop)
        #expect(stop.layer == .sctp)
        #expect(stop.detail == .sctpHeaderTooShort)
    }

    @Test("deconstruct an ICMPv4 echo request")
    func icmp() throws {
        let p = decode(ipv4Frame(1, hex("08 00 32 0f  0d 1b 00 01  10 11 12 13")))
        #expect(kinds(p) == [.ethernet, .ipv4, .icmpv4])
        #expect(p.layers[1].goNext == .icmpv4)
        let l = p.layers[2]
        #expect(l.headerLength == 8)
        #expect(l.payloadLength == 4)
        #expect(l.goNext == .other(.payload))
        guard case .icmpv4(let i) = l.header else { Issue.record("not icmpv4"); return }
        #expect(i.type == 8)
        #expect(i.code == 0)
        #expect(i.checksum == 0x320f)
        #expect(i.identifier == 0x0d1b)
        #expect(i.sequence == 1)
    }

    @Test("ICMPv4 shorter than 8 bytes", arguments: 1..<8)
    func icmpShort(n: Int) throws {
        let stop = try #require(decode(ipv4Frame(1, Array(repeating: 8, count: n))).stop)
        #expect(stop.layer == .icmpv4)
        #expect(stop.detail == .icmpv4TooShort)
        #expect(stop.truncated)
    }
}
