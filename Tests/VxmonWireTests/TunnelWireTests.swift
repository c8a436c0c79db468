import Testing
import VxmonWire

// VXLAN (RFC 7348, with the group-based policy extension) and Geneve (RFC 8926).

@Suite("VXLAN and Geneve")
struct TunnelWireTests {
    /// The packet of vector trace_v1_from_network_vxlan (120 bytes).
    static let vxlan = hex("""
        02 00 00 00 00 02  02 00 00 00 00 01  08 00                  # outer Ethernet
        45 00 00 6a 12 34 40 00 40 11 36 e7 c0 a8 38 0b c0 a8 38 0c  # outer IPv4 192.168.56.11 -> .12
        ee 48 21 18 00 56 00 00                                      # UDP 61000 -> 8472, length 86
        08 00 00 00 00 20 5f 00                                      # VXLAN I, VNI 8287
        86 2a a9 7c 33 0e  56 a1 2e f4 1b 7c  08 00                  # inner Ethernet
        45 00 00 38 12 34 40 00 40 06 10 c5 0a 00 02 20 0a 00 01 a8  # inner IPv4 10.0.2.32 -> 10.0.1.168
        9c 40 1f 90 00 00 00 07 00 00 00 09 50 18 fa f0 00 00 00 00  # TCP 40000 -> 8080 PSH ACK
        47 45 54 20 2f 20 48 54 54 50 2f 31 2e 31 0d 0a              # GET / HTTP/1.1
        """)

    @Test("deconstruct a VXLAN packet on 8472")
    func deconstruct() throws {
        #expect(Self.vxlan.count == 120)
        let p = decode(Self.vxlan)
        #expect(kinds(p) == [.ethernet, .ipv4, .udp, .vxlan, .ethernet, .ipv4, .tcp])
        #expect(p.tunnelIndex == 3)
        #expect(p.stop == nil)
        #expect(p.layers.map(\.isInner) == [false, false, false, false, true, true, true])
        #expect(p.layers.map(\.offset) == [0, 14, 34, 42, 50, 64, 84])
        #expect(p.layers[2].goNext == .other(.payload))  // gopacket: 8472 is not a VXLAN port
        let l = p.layers[3]
        #expect(l.headerLength == 8)
        #expect(l.payloadOffset == 50)
        #expect(l.payloadLength == 70)
        #expect(l.goNext == .ethernet)
        guard case .vxlan(let v) = l.header else { Issue.record("not vxlan"); return }
        #expect(v.flags == 0x08)
        #expect(v.validID)
        #expect(!v.gbpExtension)
        #expect(v.secondOctet == 0)
        #expect(!v.gbpDontLearn)
        #expect(!v.gbpApplied)
        #expect(!v.gbpAppliedGopacket)
        #expect(v.groupPolicyID == 0)
        #expect(v.vni == 8287)
        guard case .tcp(let t) = p.layers[6].header else { Issue.record("not tcp"); return }
        #expect(t.sourcePort == 40000)
        #expect(t.destinationPort == 8080)
        #expect(p.layers[6].payloadLength == 16)
    }

    @Test("VXLAN on the IANA port 4789")
    func iana() {
        var b = Self.vxlan
        b[36...37] = [0x12, 0xb5]
        let p = decode(b)
        #expect(p.tunnelIndex == 3)
        #expect(p.layers[2].goNext == .other(.vxlan))
    }

    @Test("group-based policy bits")
    func gbp() throws {
        var b = Self.vxlan
        b[42...45] = [0x88, 0xc8, 0x12, 0x34]
        guard case .vxlan(let v) = decode(b).layers[3].header else { Issue.record("not vxlan"); return }
        #expect(v.gbpExtension)
        #expect(v.validID)
        #expect(v.secondOctet == 0xc8)
        #expect(v.gbpDontLearn)
        #expect(v.gbpApplied)
        #expect(v.gbpAppliedGopacket)
        #expect(v.groupPolicyID == 0x1234)
    }

    @Test("VXLAN with the I bit clear: VNI and inner frame still decoded (as Wireshark and gopacket do)")
    func noValidID() throws {
        var b = Self.vxlan
        b[42] = 0x00
        let p = decode(b)
        #expect(kinds(p) == [.ethernet, .ipv4, .udp, .vxlan, .ethernet, .ipv4, .tcp])
        #expect(p.tunnelIndex == 3)
        #expect(p.stop == nil)
        guard case .vxlan(let v) = p.layers[3].header else { Issue.record("not vxlan"); return }
        #expect(v.flags == 0x00)
        #expect(!v.validID)
        #expect(v.vni == 8287)
        #expect(p.layers[3].payloadLength == 70)
    }

    @Test("tunnel decoding can be turned off")
    func noTunnels() {
        let p = decode(Self.vxlan, tunnels: .none)
        #expect(kinds(p) == [.ethernet, .ipv4, .udp])
        #expect(p.tunnelIndex == nil)
        #expect(p.stop == nil)
        let custom = decode(Self.vxlan, tunnels: TunnelPorts(vxlan: [9999], geneve: []))
        #expect(custom.tunnelIndex == nil)
    }

    @Test("VXLAN header cut short", arguments: 1..<8)
    func vxlanTruncated(n: Int) throws {
        let p = decode(Array(Self.vxlan.prefix(42 + n)))
        let stop = try #require(p.stop)
        #expect(stop.layer == .vxlan)
        #expect(stop.reason == .truncated)
        #expect(stop.detail == .headerTooShort(needed: 8, available: n))
    }

    @Test("inner frame cut short: the stop is marked inner")
    func innerTruncated() throws {
        let p = decode(Array(Self.vxlan.prefix(50 + 14 + 10)))
        #expect(kinds(p) == [.ethernet, .ipv4, .udp, .vxlan, .ethernet])
        let stop = try #require(p.stop)
        #expect(stop.layer == .ipv4)
        #expect(stop.isInner)
        #expect(stop.detail == .ipv4HeaderTooShort(available: 10))
    }

    /// Geneve on 6081: 8-byte header, 8 bytes of options, Ethernet payload.
    static let geneve = ether() + hex("""
        45 00 00 46 00 01 00 00 40 11 00 00 c0 a8 38 0b c0 a8 38 0c  # IPv4, total 70
        c0 01 17 c1 00 32 00 00                                      # UDP 49153 -> 6081, length 50
        02                                                           # version 0, options 2 words
        40                                                           # C (critical)
        65 58                                                        # protocol: Ethernet
        00 00 2a 00                                                  # VNI 42
        01 02 03 01 aa bb cc dd                                      # option: class 0x0102, type 3, 4 bytes
        86 2a a9 7c 33 0e  56 a1 2e f4 1b 7c  08 00                  # inner Ethernet
        45 00 00 0c 00 01 00 00 40 11 00 00 0a 00 00 01              # inner IPv4, cut (truncated capture)
        """)

    @Test("deconstruct a Geneve packet on 6081")
    func geneveDeconstruct() throws {
        let p = decode(Self.geneve)
        #expect(Array(kinds(p).prefix(5)) == [.ethernet, .ipv4, .udp, .geneve, .ethernet])
        #expect(p.tunnelIndex == 3)
        let l = p.layers[3]
        #expect(l.offset == 42)
        #expect(l.headerLength == 16)
        #expect(l.payloadOffset == 58)
        #expect(l.goNext == .ethernet)
        guard case .geneve(let g) = l.header else { Issue.record("not geneve"); return }
        #expect(g.version == 0)
        #expect(g.optionsLength == 8)
        #expect(!g.oam)
        #expect(g.critical)
        #expect(g.protocolType == 0x6558)
        #expect(g.vni == 42)
        #expect(g.options == ByteRange(offset: 50, count: 8))
        #expect(p.layers[4].isInner)
        #expect(p.stop?.isInner == true)
    }

    @Test("Geneve carrying IPv4 directly, and an unknown protocol type")
    func geneveProtocols() throws {
        var b = Self.geneve
        b[44...45] = [0x08, 0x00]
        let ip = decode(b)
        #expect(ip.layers[3].goNext == .ipv4)
        #expect(ip.layers.count > 4 ? ip.layers[4].kind == .ethernet || ip.layers[4].kind == .ipv4 : ip.stop != nil)
        // Any EtherType the Ethernet layer decodes is decoded after Geneve too (gopacket:
        // Geneve.NextLayerType is Protocol.LayerType()): ARP here.
        var arp = Array(Self.geneve.prefix(58))
        arp[44...45] = [0x08, 0x06]
        arp[16...17] = [0x00, 72]  // IPv4 total length
        arp[38...39] = [0x00, 52]  // UDP length
        arp += hex("00 01 08 00 06 04 00 01  02 00 00 00 00 01 0a 00 00 01  00 00 00 00 00 00 0a 00 00 02")
        let a = decode(arp)
        #expect(kinds(a) == [.ethernet, .ipv4, .udp, .geneve, .arp])
        #expect(a.layers[4].isInner)
        #expect(a.stop == nil)
        b[44...45] = [0x12, 0x34]
        let other = decode(b)
        #expect(kinds(other) == [.ethernet, .ipv4, .udp, .geneve])
        #expect(other.stop?.reason == .unsupported)
        #expect(other.stop?.detail == .geneveUnsupportedProtocol(protocolType: 0x1234))
    }

    @Test("Geneve version 1 with the O and C bits: decoded on (Wireshark warns and goes on)")
    func geneveVersionAndBits() throws {
        var b = Self.geneve
        b[42] = 0x42  // version 1, 2 option words
        b[43] = 0xc0  // O and C
        let p = decode(b)
        #expect(Array(kinds(p).prefix(5)) == [.ethernet, .ipv4, .udp, .geneve, .ethernet])
        guard case .geneve(let g) = p.layers[3].header else { Issue.record("not geneve"); return }
        #expect(g.version == 1)
        #expect(g.oam)
        #expect(g.critical)
    }

    @Test("Geneve options longer than the capture")
    func geneveTruncated() throws {
        let p = decode(Array(Self.geneve.prefix(42 + 12)))
        let stop = try #require(p.stop)
        #expect(stop.layer == .geneve)
        #expect(stop.detail == .headerTooShort(needed: 16, available: 12))
    }
}
