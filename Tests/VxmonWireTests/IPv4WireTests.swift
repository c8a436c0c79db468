import Testing
import VxmonWire

// IPv4 (RFC 791), decoded with gopacket v1.1.19's checks, trimming and truncation flags.

/// Ethernet header carrying `etherType`.
func ether(_ etherType: UInt16 = 0x0800) -> [UInt8] {
    hex("86 2a a9 7c 33 0e  56 a1 2e f4 1b 7c") + [UInt8(etherType >> 8), UInt8(etherType & 0xff)]
}

@Suite("IPv4")
struct IPv4WireTests {
    static let packet = ether() + hex("""
        46                 # version 4, IHL 6 (24 bytes)
        c0                 # TOS
        00 20              # total length 32
        12 34              # identification
        40 00              # flags DF, fragment offset 0
        01                 # TTL
        11                 # protocol UDP
        ab cd              # checksum (not verified)
        0a 00 00 01        # source 10.0.0.1
        e0 00 00 16        # destination 224.0.0.22
        94 04 00 00        # option: router alert
        00 01 00 02 00 08 00 00   # UDP
        """)

    @Test("deconstruct every field")
    func deconstruct() throws {
        let p = decode(Self.packet)
        #expect(kinds(p) == [.ethernet, .ipv4, .udp])
        #expect(p.stop == nil)
        let l = p.layers[1]
        #expect(l.offset == 14)
        #expect(l.headerLength == 24)
        #expect(l.payloadOffset == 38)
        #expect(l.payloadLength == 8)
        #expect(!l.truncated)
        #expect(l.goNext == .udp)
        guard case .ipv4(let h) = l.header else { Issue.record("not ipv4"); return }
        #expect(h.version == 4)
        #expect(h.ihl == 6)
        #expect(h.tos == 0xc0)
        #expect(h.totalLength == 32)
        #expect(!h.totalLengthWasZero)
        #expect(h.identification == 0x1234)
        #expect(h.flags == 0x2)
        #expect(h.fragmentOffset == 0)
        #expect(h.ttl == 1)
        #expect(h.protocolNumber == 17)
        #expect(h.checksum == 0xabcd)
        #expect(h.source == IPv4Address(rawValue: 0x0a00_0001))
        #expect(h.destination == IPv4Address(rawValue: 0xe000_0016))
        #expect((0..<4).map { h.destination.octet($0) } == [224, 0, 0, 22])
        #expect(h.options == ByteRange(offset: 34, count: 4))
        #expect(h.padding == ByteRange.empty)
        #expect(!h.isFragment)
        #expect(p.layers[2].offset == 38)
    }

    @Test("NOP and end-of-options: the bytes after EOL are padding")
    func endOfOptions() throws {
        var b = Self.packet
        b[34...37] = [0x01, 0x00, 0x00, 0x00]
        guard case .ipv4(let h) = decode(b).layers[1].header else { Issue.record("not ipv4"); return }
        #expect(h.options == ByteRange(offset: 34, count: 2))
        #expect(h.padding == ByteRange(offset: 36, count: 2))
    }

    @Test("decoding can start at the IP header (L3 devices)")
    func ipFirst() {
        let p = decode(Array(Self.packet.dropFirst(14)), first: .ip)
        #expect(kinds(p) == [.ipv4, .udp])
        #expect(p.layers[0].offset == 0)
    }

    @Test("IHL < 5 is malformed", arguments: [0, 1, 3, 4])
    func ihlTooSmall(ihl: Int) throws {
        var b = Self.packet
        b[14] = 0x40 | UInt8(ihl)
        let p = decode(b)
        #expect(kinds(p) == [.ethernet])
        let stop = try #require(p.stop)
        #expect(stop.layer == .ipv4)
        #expect(stop.reason == .malformed)
        #expect(stop.detail == .ipv4IHLTooSmall(ihl: ihl))
        #expect(stop.offset == 14)
        #expect(!stop.truncated)
    }

    @Test("total length < 20 is malformed")
    func lengthTooSmall() throws {
        var b = Self.packet
        b[16...17] = [0x00, 0x0a]
        let stop = try #require(decode(b).stop)
        #expect(stop.reason == .malformed)
        #expect(stop.detail == .ipv4LengthTooSmall(length: 10))
    }

    @Test("IHL beyond the total length is malformed")
    func ihlBeyondLength() throws {
        var b = Self.packet
        b[14] = 0x4f
        b[16...17] = [0x00, 0x1e]
        let stop = try #require(decode(b).stop)
        #expect(stop.detail == .ipv4IHLExceedsLength(ihl: 15, length: 30))
    }

    @Test("fewer than 20 bytes: truncated", arguments: 0..<20)
    func headerTooShort(n: Int) throws {
        let p = decode(Array(Self.packet.prefix(14 + n)))
        if n == 0 {
            // An Ethernet frame with an empty payload.
            #expect(kinds(p) == [.ethernet])
            return
        }
        let stop = try #require(p.stop)
        #expect(stop.layer == .ipv4)
        #expect(stop.reason == .truncated)
        #expect(stop.truncated)
        #expect(stop.detail == .ipv4HeaderTooShort(available: n))
    }

    @Test("header with options cut short: not all header bytes available")
    func optionsTruncated() throws {
        let stop = try #require(decode(Array(Self.packet.prefix(14 + 22))).stop)
        #expect(stop.detail == .ipv4HeaderNotAvailable)
        #expect(stop.reason == .truncated)
    }

    @Test("total length beyond the capture: truncated flag, payload is what is there")
    func lengthBeyondCapture() {
        var b = Self.packet
        b[16...17] = [0x00, 0x64]
        let p = decode(b)
        #expect(p.layers[1].truncated)
        #expect(p.layers[1].payloadLength == 8)
        #expect(kinds(p) == [.ethernet, .ipv4, .udp])
    }

    @Test("total length 0 (TSO): the bytes available")
    func zeroLength() {
        var b = Self.packet
        b[16...17] = [0x00, 0x00]
        let p = decode(b)
        guard case .ipv4(let h) = p.layers[1].header else { Issue.record("not ipv4"); return }
        #expect(h.totalLengthWasZero)
        #expect(h.totalLength == 32)
        #expect(kinds(p) == [.ethernet, .ipv4, .udp])
    }

    @Test("bad options", arguments: [
        ([UInt8](arrayLiteral: 0x07, 0x01, 0x00, 0x00), StopDetail.ipv4OptionTooSmall(type: 7, length: 1)),
        ([0x01, 0x07, 0x09, 0x00], .ipv4OptionExceedsHeader(type: 7, length: 9)),
        ([0x01, 0x01, 0x01, 0x07], .ipv4OptionLengthShort(remaining: 1)),
    ])
    func badOptions(options: [UInt8], detail: StopDetail) throws {
        var b = Self.packet
        b[34...37] = options[...]
        let stop = try #require(decode(b).stop)
        #expect(stop.layer == .ipv4)
        #expect(stop.detail == detail)
    }

    @Test("fragments are not reassembled")
    func fragments() throws {
        var mf = Self.packet
        mf[20...21] = [0x20, 0x00]  // MF
        let p = decode(mf)
        #expect(kinds(p) == [.ethernet, .ipv4])
        guard case .ipv4(let h) = p.layers[1].header else { Issue.record("not ipv4"); return }
        #expect(h.isFragment)
        #expect(h.flags == 1)
        #expect(p.layers[1].goNext == .other(.fragment))
        #expect(p.stop?.reason == .fragment)
        #expect(p.stop?.detail == .ipv4Fragment(offset: 0, moreFragments: true))

        var off = Self.packet
        off[20...21] = [0x00, 0x03]
        #expect(decode(off).stop?.detail == .ipv4Fragment(offset: 3, moreFragments: false))
    }

    @Test("unknown IP protocol round-trips as a number")
    func unknownProtocol() throws {
        var b = Self.packet
        b[23] = 200
        let p = decode(b)
        #expect(kinds(p) == [.ethernet, .ipv4])
        guard case .ipv4(let h) = p.layers[1].header else { Issue.record("not ipv4"); return }
        #expect(h.protocolNumber == 200)
        #expect(p.layers[1].goNext == .zero)
        #expect(p.stop?.reason == .unsupported)
        #expect(p.stop?.detail == .unknownIPProtocol(200))
        #expect(p.stop?.offset == 38)
        b[23] = 47
        #expect(decode(b).layers[1].goNext == .other(.gre))
        #expect(decode(b).stop?.detail == .unknownIPProtocol(47))
    }

    @Test("IP in IP decodes both headers")
    func ipInIP() {
        let inner = hex("45 00 00 1c 00 01 00 00 40 11 66 ce 0a 00 00 03 0a 00 00 04  00 01 00 02 00 08 00 00")
        let outer = hex("45 00 00 30 00 01 00 00 40 04 00 00 0a 00 00 01 0a 00 00 02")
        let p = decode(ether() + outer + inner)
        #expect(kinds(p) == [.ethernet, .ipv4, .ipv4, .udp])
        #expect(p.layers[1].goNext == .ipv4)
        #expect(p.layers[2].offset == 34)
    }
}
