import Testing
import VxmonWire

// IPv6 (RFC 8200) with gopacket v1.1.19's inline hop-by-hop header, extension headers and ICMPv6.

@Suite("IPv6")
struct IPv6WireTests {
    static let fixed = hex("""
        6a b1 23 45                      # version 6, traffic class 0xab, flow label 0x12345
        00 0c                            # payload length 12
        3a                               # next header ICMPv6
        40                               # hop limit 64
        20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01   # 2001:db8::1
        20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02   # 2001:db8::2
        """)
    static let echo = hex("80 00 12 34  00 01 00 01  61 62 63 64")  // ICMPv6 echo request
    static let packet = ether(0x86dd) + fixed + echo

    @Test("deconstruct every field")
    func deconstruct() throws {
        let p = decode(Self.packet)
        #expect(kinds(p) == [.ethernet, .ipv6, .icmpv6])
        #expect(p.stop == nil)
        #expect(p.layers[0].goNext == .ipv6)
        let l = p.layers[1]
        #expect(l.offset == 14)
        #expect(l.headerLength == 40)
        #expect(l.payloadOffset == 54)
        #expect(l.payloadLength == 12)
        #expect(!l.truncated)
        #expect(l.goNext == .icmpv6)
        guard case .ipv6(let h) = l.header else { Issue.record("not ipv6"); return }
        #expect(h.version == 6)
        #expect(h.trafficClass == 0xab)
        #expect(h.flowLabel == 0x12345)
        #expect(h.payloadLength == 12)
        #expect(h.nextHeader == 58)
        #expect(h.hopLimit == 64)
        #expect(h.source == IPv6Address(high: 0x2001_0db8_0000_0000, low: 1))
        #expect(h.destination == IPv6Address(high: 0x2001_0db8_0000_0000, low: 2))
        #expect((0..<8).map { h.source.group($0) } == [0x2001, 0x0db8, 0, 0, 0, 0, 0, 1])
        #expect(h.source.mappedIPv4 == nil)
        #expect(h.hopByHop == nil)
        #expect(h.upperNextHeader == 58)

        let i = p.layers[2]
        #expect(i.offset == 54)
        #expect(i.headerLength == 4)
        #expect(i.payloadLength == 8)
        #expect(i.goNext == .other(.icmpv6Echo))
        guard case .icmpv6(let icmp) = i.header else { Issue.record("not icmpv6"); return }
        #expect(icmp.type == 128)
        #expect(icmp.code == 0)
        #expect(icmp.checksum == 0x1234)
    }

    @Test("IPv4-mapped addresses")
    func mapped() {
        let a = IPv6Address(high: 0, low: 0x0000_ffff_0a00_0001)
        #expect(a.mappedIPv4 == IPv4Address(rawValue: 0x0a00_0001))
    }

    @Test("payload length beyond the capture: truncated flag, payload is what is there")
    func payloadBeyondCapture() {
        var b = Self.packet
        b[18...19] = [0x00, 0x64]
        let p = decode(b)
        #expect(p.layers[1].truncated)
        #expect(p.layers[1].payloadLength == 12)
        #expect(kinds(p) == [.ethernet, .ipv6, .icmpv6])
    }

    @Test("bytes after the payload length are not IPv6 payload")
    func trailer() {
        let p = decode(Self.packet + [0, 0, 0, 0])
        #expect(p.layers[1].payloadLength == 12)
        #expect(p.layers[2].payloadLength == 8)
    }

    @Test("fewer than 40 bytes: truncated", arguments: [1, 8, 30, 39])
    func headerTooShort(n: Int) throws {
        let stop = try #require(decode(Array(Self.packet.prefix(14 + n))).stop)
        #expect(stop.layer == .ipv6)
        #expect(stop.reason == .truncated)
        #expect(stop.detail == .ipv6HeaderTooShort(available: n))
    }

    @Test("payload length 0 without a jumbo option is malformed")
    func zeroLength() throws {
        var b = Self.packet
        b[18...19] = [0, 0]
        let stop = try #require(decode(b).stop)
        #expect(stop.reason == .malformed)
        #expect(stop.detail == .ipv6ZeroLength(nextHeader: 58))
    }

    static func withNext(_ next: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var f = fixed
        f[4] = UInt8(payload.count >> 8)
        f[5] = UInt8(payload.count & 0xff)
        f[6] = next
        return ether(0x86dd) + f + payload
    }

    static let udp = hex("00 01 00 02 00 08 00 00")

    @Test("inline hop-by-hop header")
    func hopByHop() throws {
        let b = Self.withNext(0, hex("11 00  01 04 00 00 00 00") + Self.udp)
        let p = decode(b)
        #expect(kinds(p) == [.ethernet, .ipv6, .udp])
        let l = p.layers[1]
        #expect(l.headerLength == 40)
        #expect(l.payloadOffset == 62)
        #expect(l.payloadLength == 8)
        #expect(l.goNext == .udp)
        guard case .ipv6(let h) = l.header else { Issue.record("not ipv6"); return }
        let hbh = try #require(h.hopByHop)
        #expect(hbh.nextHeader == 17)
        #expect(hbh.headerLength == 0)
        #expect(hbh.actualLength == 8)
        #expect(hbh.options == ByteRange(offset: 56, count: 6))
        #expect(h.upperNextHeader == 17)
        #expect(h.hopByHopPayloadLength == 8)
        #expect(p.layers[2].offset == 62)
    }

    @Test("hop-by-hop header shorter than announced")
    func hopByHopTooShort() throws {
        let stop = try #require(decode(Self.withNext(0, hex("11 01 00 00 00 00 00 00"))).stop)
        #expect(stop.layer == .ipv6)
        #expect(stop.detail == .ipv6ExtensionShorterThanSpecified(available: 8, length: 16))
    }

    @Test("routing extension header, then UDP")
    func routing() throws {
        let p = decode(Self.withNext(43, hex("11 00 00 00 00 00 00 00") + Self.udp))
        #expect(kinds(p) == [.ethernet, .ipv6, .ipv6Extension, .udp])
        #expect(p.layers[1].goNext == .other(.ipv6Routing))
        let l = p.layers[2]
        #expect(l.offset == 54)
        #expect(l.headerLength == 8)
        guard case .ipv6Extension(let e) = l.header else { Issue.record("not an extension"); return }
        #expect(e.headerType == 43)
        #expect(e.nextHeader == 17)
        #expect(e.length == 8)
    }

    @Test("fragment header: a fragment is not reassembled, an atomic fragment is decoded")
    func fragment() throws {
        let p = decode(Self.withNext(44, hex("11 00 00 01 de ad be ef") + Self.udp))
        #expect(kinds(p) == [.ethernet, .ipv6, .ipv6Extension])
        guard case .ipv6Extension(let e) = p.layers[2].header else { Issue.record("not an extension"); return }
        #expect(e.headerType == 44)
        #expect(e.fragmentOffset == 0)
        #expect(e.moreFragments)
        #expect(e.identification == 0xdead_beef)
        #expect(p.stop?.reason == .fragment)
        #expect(p.stop?.detail == .ipv6Fragment(offset: 0, moreFragments: true))

        let atomic = decode(Self.withNext(44, hex("11 00 00 00 de ad be ef") + Self.udp))
        #expect(kinds(atomic) == [.ethernet, .ipv6, .ipv6Extension, .udp])
    }

    @Test("unknown next header round-trips as a number")
    func unknownNextHeader() throws {
        let p = decode(Self.withNext(253, [0x61, 0x62, 0x63]))
        #expect(kinds(p) == [.ethernet, .ipv6])
        guard case .ipv6(let h) = p.layers[1].header else { Issue.record("not ipv6"); return }
        #expect(h.nextHeader == 253)
        #expect(p.layers[1].goNext == .zero)
        #expect(p.stop?.detail == .unknownIPProtocol(253))
    }

    @Test("IPv6 first (L3 device)")
    func ipFirst() {
        #expect(kinds(decode(Self.fixed + Self.echo, first: .ip)) == [.ipv6, .icmpv6])
    }

    @Test("ICMPv6 shorter than 4 bytes")
    func icmpv6Short() throws {
        let stop = try #require(decode(Self.withNext(58, [0x80, 0x00])).stop)
        #expect(stop.layer == .icmpv6)
        #expect(stop.detail == .icmpv6TooShort)
        #expect(stop.truncated)
    }

    @Test("ICMPv6 next layer types", arguments: [
        (UInt8(128), GoLayerType.other(.icmpv6Echo)), (129, .other(.icmpv6Echo)),
        (133, .other(.icmpv6RouterSolicitation)), (135, .other(.icmpv6NeighborSolicitation)),
        (143, .other(.mldv2MulticastListenerReport)), (1, .other(.payload)), (200, .other(.payload)),
    ])
    func icmpv6Next(type: UInt8, go: GoLayerType) {
        #expect(PacketDecoder.goICMPv6(type, payloadLength: 8) == go)
    }
}
