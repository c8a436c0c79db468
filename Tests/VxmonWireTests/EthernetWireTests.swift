import Testing
import VxmonWire

// Ethernet II / IEEE 802.3 (IEEE 802.3 clause 3), 802.1Q/802.1ad tags and ARP (RFC 826).

@Suite("Ethernet, 802.1Q, ARP")
struct EthernetWireTests {
    static let frame = hex("""
        86 2a a9 7c 33 0e                                # destination MAC
        56 a1 2e f4 1b 7c                                # source MAC
        08 00                                            # EtherType IPv4
        45 00 00 1c 00 01 00 00 40 11 66 ce              # IPv4, 28 bytes total
        0a 00 00 01 0a 00 00 02
        00 01 00 02 00 08 00 00                          # UDP 1 -> 2, length 8
        """)

    @Test("deconstruct an Ethernet II frame")
    func deconstruct() throws {
        let p = decode(Self.frame)
        #expect(p.length == 42)
        #expect(p.stop == nil)
        #expect(p.tunnelIndex == nil)
        #expect(kinds(p) == [.ethernet, .ipv4, .udp])
        let l = p.layers[0]
        #expect(l.kind == .ethernet)
        #expect(l.offset == 0)
        #expect(l.headerLength == 14)
        #expect(l.payloadOffset == 14)
        #expect(l.payloadLength == 28)
        #expect(!l.truncated)
        #expect(!l.isInner)
        #expect(l.goNext == .ipv4)
        guard case .ethernet(let h) = l.header else { Issue.record("not ethernet"); return }
        #expect(h.destination == MACAddress(rawValue: 0x862a_a97c_330e))
        #expect(h.source == MACAddress(rawValue: 0x56a1_2ef4_1b7c))
        #expect((0..<6).map { h.destination.octet($0) } == [0x86, 0x2a, 0xa9, 0x7c, 0x33, 0x0e])
        #expect((0..<6).map { h.source.octet($0) } == [0x56, 0xa1, 0x2e, 0xf4, 0x1b, 0x7c])
        #expect(h.typeOrLength == 0x0800)
        #expect(h.etherType == 0x0800)
        #expect(LayerKind.ethernet.name.description == "ethernet")
    }

    @Test("MACAddress keeps only 48 bits")
    func macMask() {
        #expect(MACAddress(rawValue: 0xffff_0102_0304_0506).rawValue == 0x0102_0304_0506)
    }

    @Test("fewer than 14 bytes: truncated Ethernet", arguments: 0..<14)
    func tooShort(n: Int) throws {
        let p = decode(Array(Self.frame.prefix(n)))
        #expect(p.layers.isEmpty)
        let stop = try #require(p.stop)
        #expect(stop.layer == .ethernet)
        #expect(stop.reason == .truncated)
        #expect(stop.detail == .ethernetTooSmall)
        #expect(stop.offset == 0)
    }

    @Test("trailing bytes after the IP datagram stay in the Ethernet payload, not in IP")
    func trailer() {
        let p = decode(Self.frame + [0, 0, 0, 0, 0, 0])
        #expect(p.layers[0].payloadLength == 34)
        #expect(p.layers[1].payloadLength == 8)
        #expect(p.stop == nil)
    }

    @Test("802.3 length frame: payload trimmed to the length, LLC not decoded")
    func llc() throws {
        let frame = hex("01 80 c2 00 00 00  02 00 00 00 00 01  00 06  42 42 03 00 00 00  ee ee")
        let p = decode(frame)
        #expect(kinds(p) == [.ethernet])
        guard case .ethernet(let h) = p.layers[0].header else { Issue.record("not ethernet"); return }
        #expect(h.etherType == nil)
        #expect(h.typeOrLength == 6)
        #expect(p.layers[0].payloadLength == 6)
        #expect(!p.layers[0].truncated)
        #expect(p.layers[0].goNext == .other(.llc))
        let stop = try #require(p.stop)
        #expect(stop.reason == .unsupported)
        #expect(stop.detail == .llcFrame)
        #expect(stop.layer == nil)
        #expect(stop.offset == 14)
    }

    @Test("802.3 length beyond the capture: truncated flag, payload is what is there")
    func llcTruncated() {
        let p = decode(hex("ff ff ff ff ff ff  02 00 00 00 00 01  00 30  42 42 03"))
        #expect(p.layers[0].truncated)
        #expect(p.layers[0].payloadLength == 3)
    }

    @Test("unknown EtherType round-trips as a number")
    func unknownEtherType() throws {
        let p = decode(hex("ff ff ff ff ff ff  02 00 00 00 00 01  88 b5  61 62 63 64 65 66"))
        #expect(kinds(p) == [.ethernet])
        guard case .ethernet(let h) = p.layers[0].header else { Issue.record("not ethernet"); return }
        #expect(h.typeOrLength == 0x88b5)
        #expect(h.etherType == 0x88b5)
        #expect(p.layers[0].goNext == .zero)
        #expect(p.stop?.detail == .unknownEtherType(0x88b5))
        #expect(p.stop?.reason == .unsupported)
        #expect(PacketDecoder.goEtherType(0x88b5) == .zero)
        #expect(PacketDecoder.goEtherType(0x88be) == .other(.erspan))
        #expect(PacketDecoder.goEtherType(0x05dc) == .other(.llc))
    }

    @Test("gopacket's LayerType names for EtherTypes Cilium 1.13 cannot decode")
    func goLayerNames() {
        // The names gopacket v1.1.19 registers for these layer types (layers/layertypes.go), as printed
        // after `No decoder for layer type` (see Tests/Fixtures/gopacket-cases.txt, eth_* cases).
        #expect(GoLayerType.other(.dot1q).name.description == "Dot1Q")
        #expect(GoLayerType.other(.llc).name.description == "LLC")
        #expect(GoLayerType.other(.arp).name.description == "ARP")
        #expect(GoLayerType.other(.linkLayerDiscovery).name.description == "LinkLayerDiscovery")
        #expect(GoLayerType.other(.mpls).name.description == "MPLS")
        #expect(GoLayerType.other(.erspan).name.description == "ERSPAN Type II")
    }

    static let tagged = hex("""
        ff ff ff ff ff ff  02 00 00 00 00 01
        81 00                                            # 802.1Q
        b0 64                                            # PCP 5, DEI 1, VID 100
        08 00                                            # EtherType IPv4
        45 00 00 1c 00 01 00 00 40 11 66 ce 0a 00 00 01 0a 00 00 02
        00 01 00 02 00 08 00 00
        """)

    @Test("deconstruct an 802.1Q tag")
    func vlan() throws {
        let p = decode(Self.tagged)
        #expect(kinds(p) == [.ethernet, .vlan, .ipv4, .udp])
        #expect(p.stop == nil)
        #expect(p.layers[0].goNext == .other(.dot1q))
        let l = p.layers[1]
        #expect(l.offset == 14)
        #expect(l.headerLength == 4)
        #expect(l.payloadOffset == 18)
        #expect(l.payloadLength == 28)
        #expect(l.goNext == .ipv4)
        guard case .vlan(let v) = l.header else { Issue.record("not vlan"); return }
        #expect(v.priority == 5)
        #expect(v.dropEligible)
        #expect(v.vlanID == 100)
        #expect(v.etherType == 0x0800)
        #expect(p.layers[2].offset == 18)
    }

    @Test("802.1ad (QinQ) outer tag")
    func qinq() {
        var f = Self.tagged
        f[12] = 0x88
        f[13] = 0xa8
        #expect(kinds(decode(f)) == [.ethernet, .vlan, .ipv4, .udp])
    }

    @Test("truncated 802.1Q tag", arguments: 15..<18)
    func vlanTruncated(n: Int) throws {
        let p = decode(Array(Self.tagged.prefix(n)))
        #expect(kinds(p) == [.ethernet])
        let stop = try #require(p.stop)
        #expect(stop.layer == .vlan)
        #expect(stop.reason == .truncated)
        #expect(stop.detail == .headerTooShort(needed: 4, available: n - 14))
    }

    @Test("stacked tags stop at the layer limit instead of recursing forever")
    func layerLimit() throws {
        var f = hex("ff ff ff ff ff ff  02 00 00 00 00 01  81 00")
        for _ in 0..<40 { f += [0x00, 0x01, 0x81, 0x00] }
        f += [0x00, 0x01, 0x08, 0x00]
        let p = decode(f)
        #expect(p.layers.count == PacketDecoder.maxLayers)
        #expect(p.stop?.detail == .layerLimit)
        #expect(p.stop?.reason == .unsupported)
    }

    static let arp = hex("""
        ff ff ff ff ff ff  02 00 00 00 00 01  08 06
        00 01  08 00  06  04  00 01                      # Ethernet/IPv4, request
        02 00 00 00 00 01  0a 00 00 01                   # sender
        00 00 00 00 00 00  0a 00 00 02                   # target
        00 00 00 00                                      # frame padding
        """)

    @Test("deconstruct an ARP request")
    func arp() throws {
        let p = decode(Self.arp)
        #expect(kinds(p) == [.ethernet, .arp])
        #expect(p.stop == nil)
        #expect(p.layers[0].goNext == .other(.arp))
        let l = p.layers[1]
        #expect(l.offset == 14)
        #expect(l.headerLength == 28)
        #expect(l.payloadLength == 4)
        #expect(l.goNext == .other(.payload))
        guard case .arp(let a) = l.header else { Issue.record("not arp"); return }
        #expect(a.hardwareType == 1)
        #expect(a.protocolType == 0x0800)
        #expect(a.hardwareLength == 6)
        #expect(a.protocolLength == 4)
        #expect(a.operation == 1)
        #expect(a.senderHardware == ByteRange(offset: 22, count: 6))
        #expect(a.senderProtocol == ByteRange(offset: 28, count: 4))
        #expect(a.targetHardware == ByteRange(offset: 32, count: 6))
        #expect(a.targetProtocol == ByteRange(offset: 38, count: 4))
        #expect(Array(Self.arp[a.senderProtocol.offset..<(a.senderProtocol.offset + 4)]) == [10, 0, 0, 1])
    }

    @Test("ARP shorter than its address lengths announce")
    func arpTruncated() throws {
        let p = decode(Array(Self.arp.prefix(34)))
        let stop = try #require(p.stop)
        #expect(stop.layer == .arp)
        #expect(stop.reason == .truncated)
        #expect(stop.detail == .headerTooShort(needed: 28, available: 20))
        let tiny = decode(Array(Self.arp.prefix(18)))
        #expect(tiny.stop?.detail == .headerTooShort(needed: 8, available: 4))
    }
}
