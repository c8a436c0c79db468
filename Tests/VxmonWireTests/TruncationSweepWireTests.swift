import Testing
import VxmonWire

// For every packet of the vectors (the first 200 of bulk_2k) and every gopacket case: decode every
// prefix 0..<n. Nothing may trap; every layer must lie inside the prefix; and whenever the prefix yields
// fewer layers than the whole packet, `stop` must say where and why decoding ended.

@Suite("Truncation sweep (PacketDecoder)")
struct TruncationSweepWireTests {
    @Test("fixture packets are all there")
    func count() {
        #expect(WireFixtures.packets.count >= 103 + 200 + 20)
    }

    @Test("every prefix decodes without trapping, within bounds, as a prefix of the full decode",
          arguments: WireFixtures.packets)
    func sweep(_ packet: WireFixtures.NamedPacket) {
        let full = decode(packet.bytes, first: packet.first)
        var packetForReuse = DecodedPacket()
        let decoder = PacketDecoder()
        for n in 0..<packet.bytes.count {
            let prefix = Array(packet.bytes.prefix(n))
            decoder.decode(prefix.span.bytes, first: packet.first, into: &packetForReuse)
            let p = packetForReuse
            #expect(p.length == n)
            for l in p.layers {
                if !(l.offset >= 0 && l.offset + l.headerLength <= n && l.payloadOffset >= l.offset
                    && l.payloadOffset + l.payloadLength <= n && l.payloadLength >= 0)
                {
                    Issue.record("\(packet.name) prefix \(n): layer \(l.kind) out of bounds (\(l.offset)+\(l.headerLength), payload \(l.payloadOffset)+\(l.payloadLength))")
                }
            }
            if let s = p.stop, !(s.offset >= 0 && s.offset <= n) {
                Issue.record("\(packet.name) prefix \(n): stop offset \(s.offset) out of bounds")
            }
            // A decode of a prefix never yields more layers than the whole packet, and its layers are
            // the whole packet's layers.
            #expect(p.layers.count <= full.layers.count, "\(packet.name) prefix \(n)")
            #expect(kinds(p) == Array(kinds(full).prefix(p.layers.count)), "\(packet.name) prefix \(n)")
        }
    }

    /// Whenever a prefix yields fewer layers than the whole packet, `stop` must say where and why
    /// decoding ended (STYLE 2.9: "expect .truncated at the right layer"). One aggregated issue, so a
    /// systematic failure reads as one finding.
    @Test("a prefix with fewer layers than the full decode has a stop")
    func stopWhenLayersMissing() {
        var missing: [String] = []
        var count = 0
        for packet in WireFixtures.packets {
            let full = decode(packet.bytes, first: packet.first)
            var lengths: [Int] = []
            for n in 0..<packet.bytes.count {
                let p = decode(Array(packet.bytes.prefix(n)), first: packet.first)
                if p.layers.count < full.layers.count && p.stop == nil {
                    lengths.append(n)
                    count += 1
                }
            }
            if !lengths.isEmpty { missing.append("\(packet.name) at \(lengths)") }
        }
        if !missing.isEmpty {
            Issue.record(
                """
                \(count) prefixes in \(missing.count) of \(WireFixtures.packets.count) packets yield fewer layers than the full \
                decode but no DecodeStop (every one ends exactly where the next header would start, i.e. a \
                layer whose payload is empty although its EtherType/protocol/port announces another header):
                \(missing.prefix(25).joined(separator: "\n"))
                """)
        }
    }

    @Test("a reused DecodedPacket is reset between decodes")
    func reuse() {
        var p = DecodedPacket()
        let decoder = PacketDecoder()
        let vx = TunnelWireTests.vxlan
        decoder.decode(vx.span.bytes, into: &p)
        #expect(p.tunnelIndex == 3)
        let short: [UInt8] = [1, 2, 3]
        decoder.decode(short.span.bytes, into: &p)
        #expect(p.layers.isEmpty)
        #expect(p.tunnelIndex == nil)
        #expect(p.length == 3)
        #expect(p.stop?.detail == .ethernetTooSmall)
    }

    @Test("20,000 random byte strings decode without trapping")
    func randomBytes() {
        var state: UInt64 = 0x1234_5678_9abc_def1
        func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 0x2545_f491_4f6c_dd1d
        }
        let decoder = PacketDecoder()
        var p = DecodedPacket()
        let seeds = WireFixtures.packets.map(\.bytes)
        for i in 0..<20_000 {
            var b: [UInt8]
            if i % 2 == 0 {
                b = (0..<Int(next() % 160)).map { _ in UInt8(truncatingIfNeeded: next()) }
                if b.count > 13 && next() % 2 == 0 { b[12] = 0x08; b[13] = next() % 2 == 0 ? 0x00 : 0xdd; if b[13] == 0xdd { b[12] = 0x86 } }
            } else {
                b = seeds[Int(next() % UInt64(seeds.count))]
                for _ in 0..<(1 + next() % 6) where !b.isEmpty { b[Int(next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: next()) }
            }
            let first: FirstLayer = next() % 5 == 0 ? .ip : .ethernet
            decoder.decode(b.span.bytes, first: first, into: &p)
            #expect(p.layers.count <= PacketDecoder.maxLayers)
            for l in p.layers where l.payloadOffset + l.payloadLength > b.count || l.offset + l.headerLength > b.count {
                Issue.record("layer out of bounds in \(b)")
            }
        }
    }
}
