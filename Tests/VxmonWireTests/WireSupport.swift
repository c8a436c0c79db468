import Foundation
import Testing
import VxmonWire

// Helpers for the wire tests: annotated hex literals, decoding, and fixture packets read straight from
// the shared vectors (with a .vxrec parser written from the spec, independent of VxmonCore).

/// Bytes from annotated hex: `#` starts a comment that runs to the end of the line, whitespace is ignored.
func hex(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    var hi: UInt8?
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        for c in code.utf8 {
            let v: UInt8
            switch c {
            case 0x30...0x39: v = c - 0x30
            case 0x61...0x66: v = c - 0x61 + 10
            case 0x41...0x46: v = c - 0x41 + 10
            default: continue
            }
            if let h = hi {
                out.append(h << 4 | v)
                hi = nil
            } else {
                hi = v
            }
        }
    }
    return out
}

func decode(_ bytes: [UInt8], first: FirstLayer = .ethernet, tunnels: TunnelPorts = .standard) -> DecodedPacket {
    var packet = DecodedPacket()
    PacketDecoder(tunnelPorts: tunnels).decode(bytes.span.bytes, first: first, into: &packet)
    return packet
}

func kinds(_ p: DecodedPacket) -> [LayerKind] { p.layers.map(\.kind) }

enum WireFixtures {
    static let root: String = {
        let here = URL(fileURLWithPath: #filePath)
        return here.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures").path
    }()

    static func bytes(_ path: String) -> [UInt8] {
        FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? []
    }

    /// Sample bodies of a .vxrec file (kind 1), from the spec.
    static func samples(_ path: String) -> [[UInt8]] {
        let b = bytes(path)
        func le16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func le32(_ o: Int) -> Int { le16(o) | le16(o + 2) << 16 }
        guard b.count >= 16, Array(b[0..<8]) == Array("VXMONREC".utf8) else { return [] }
        var o = (le16(10) + 7) & ~7
        var out: [[UInt8]] = []
        while o + 24 <= b.count {
            let len = le32(o + 16)
            guard o + 24 + len <= b.count else { break }
            if le16(o) == 1 { out.append(Array(b[(o + 24)..<(o + 24 + len)])) }
            o += 24 + ((len + 7) & ~7)
        }
        return out
    }

    /// The captured packet of a Cilium 1.13 sample (header length by type and version, len_cap).
    static func packet(ofSample s: [UInt8]) -> (bytes: [UInt8], first: FirstLayer)? {
        guard s.count >= 16 else { return nil }
        let header: Int
        var first = FirstLayer.ethernet
        switch s[0] {
        case 1: header = 36
        case 3: header = 24
        case 4:
            guard s[14] <= 1 else { return nil }
            header = s[14] == 0 ? 32 : 48
            if s[27] & 0x02 != 0 { first = .ip }
        case 5: header = 32
        case 6: header = 24
        default: return nil
        }
        let cap = s[0] == 6 ? Int(s[16]) | Int(s[17]) << 8 : Int(s[12]) | Int(s[13]) << 8
        guard s.count >= header else { return nil }
        return (Array(s[header..<min(s.count, header + cap)]), first)
    }

    struct NamedPacket: Sendable, CustomStringConvertible {
        var name: String
        var bytes: [UInt8]
        var first: FirstLayer
        var description: String { name }
    }

    /// Every packet of the vectors, the first 200 bulk packets and every gopacket case.
    static let packets: [NamedPacket] = {
        var out: [NamedPacket] = []
        let dir = root + "/vectors"
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".vxrec") }.sorted()
        for f in files {
            for (i, s) in samples(dir + "/" + f).enumerated() where f != "bulk_2k.vxrec" || i < 200 {
                if let (p, first) = packet(ofSample: s), !p.isEmpty {
                    out.append(NamedPacket(name: "\(f)#\(i)", bytes: p, first: first))
                }
            }
        }
        if let data = FileManager.default.contents(atPath: root + "/gopacket-cases.txt") {
            var name = ""
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                if line.hasPrefix("### CASE ") { name = String(line.dropFirst(9)) }
                if line.hasPrefix("HEX ") { out.append(NamedPacket(name: name, bytes: hex(String(line.dropFirst(4))), first: .ethernet)) }
            }
        }
        return out
    }()
}
