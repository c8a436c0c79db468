import Foundation
import Testing
import VxmonCore
import VxmonWire

// The 103 packets of Tests/Fixtures/gopacket-cases.txt, each with the summary and the exact `-vv`
// dissection lines produced by real gopacket v1.1.19 running Cilium 1.13's dissect logic (see
// Tests/Fixtures/README.md). Each packet is wrapped in a trace v1 event and rendered through the library.

struct GopacketCase: Sendable, CustomStringConvertible {
    var name: String
    var packet: [UInt8]
    var summary: String
    var lines: [String]
    var description: String { name }

    /// VXLAN on 4789 / Geneve on 6081: vxmon decodes the tunnelled frame (difference 2).
    var isTunnel: Bool {
        let p = packet
        guard p.count >= 42, p[12] == 0x08, p[13] == 0x00, p[14] >> 4 == 4, p[23] == 17 else { return false }
        let l4 = 14 + Int(p[14] & 0x0f) * 4
        guard p.count >= l4 + 8 else { return false }
        let dport = Int(p[l4 + 2]) << 8 | Int(p[l4 + 3])
        return dport == 4789 || dport == 6081 || dport == 8472
    }

    static let all: [GopacketCase] = load("gopacket-cases.txt")

    /// Parses a case file of Tests/Fixtures (`### CASE`, `HEX`, `SUMMARY:`, then the layer lines).
    static func load(_ file: String) -> [GopacketCase] {
        guard let text = Fixtures.text(Fixtures.root + "/" + file) else { return [] }
        var cases: [GopacketCase] = []
        for line in text.components(separatedBy: "\n") {
            if line.hasPrefix("### CASE ") {
                cases.append(GopacketCase(name: String(line.dropFirst("### CASE ".count)), packet: [], summary: "", lines: []))
            } else if line.hasPrefix("HEX ") {
                cases[cases.count - 1].packet = hexBytes(String(line.dropFirst(4)))
            } else if line.hasPrefix("SUMMARY: ") {
                var s = String(line.dropFirst("SUMMARY: ".count))
                if s.hasPrefix("\"") && s.hasSuffix("\"") && s.count >= 2 { s = String(s.dropFirst().dropLast()) }
                cases[cases.count - 1].summary = s
            } else if !line.isEmpty, !cases.isEmpty {
                cases[cases.count - 1].lines.append(line)
            }
        }
        return cases
    }
}

@Suite("gopacket v1.1.19 / Cilium 1.13 dissection cases")
struct CiliumDissectCaseTests {
    @Test("the case file holds 103 cases")
    func caseCount() {
        #expect(GopacketCase.all.count == 103)
        #expect(GopacketCase.all.allSatisfy { !$0.packet.isEmpty && !$0.summary.isEmpty })
        #expect(GopacketCase.all.filter(\.isTunnel).map(\.name) == ["udp_vxlan"])
    }

    @Test("default summary", arguments: GopacketCase.all)
    func summary(_ c: GopacketCase) throws {
        let result = renderSample(traceV1(c.packet), .textDefault)
        let out = lines(result.output)
        try #require(out.count == 1, "\(result.output)")
        let prefix = "-> overlay flow 0x0 , identity unknown->unknown state new ifindex 0 orig-ip 0.0.0.0: "
        #expect(out[0].hasPrefix(prefix))
        if c.isTunnel {
            // Difference (2): the summary is the inner flow followed by the tunnel endpoints.
            let (_, outer) = try #require(splitSummary(prefix + c.summary))
            let endpoints = String(outer.dropLast(" udp".count))
            #expect(out[0].contains(" [tunnel \(endpoints) vxlan vni "), "\(out[0])")
        } else {
            #expect(out[0] == prefix + c.summary)
        }
        #expect(result.diagnostics.isEmpty)
    }

    @Test("-vv dissection lines", arguments: GopacketCase.all)
    func dissection(_ c: GopacketCase) throws {
        let result = renderSample(traceV1(c.packet), .textVV)
        let out = lines(result.output)
        try #require(out.count >= 2, "\(result.output)")
        #expect(out[0] == separatorLine)
        let n = c.packet.count
        #expect(out[1] == "CPU 00: MARK 0x0 FROM 0 to-overlay: \(n) bytes (\(n) captured), state new, orig-ip 0.0.0.0")
        let body = Array(out.dropFirst(2))
        if c.isTunnel {
            checkTunnelBlock(expected: c.lines, actual: body, c.name)
        } else {
            #expect(body == c.lines)
        }
    }

    /// With `--hex` the hex dump replaces the dissection: 16 bytes a line, two groups of 8, ASCII column.
    @Test("-vv --hex dump", arguments: GopacketCase.all)
    func hexDump(_ c: GopacketCase) throws {
        let out = lines(renderSample(traceV1(c.packet), .textVVHex).output)
        #expect(Array(out.dropFirst(2)) == goHexDump(c.packet))
    }
}

/// Go's `hex.Dump`, written from its documented format.
func goHexDump(_ b: [UInt8]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < b.count {
        let chunk = Array(b[i..<min(i + 16, b.count)])
        var line = String(format: "%08x", i)
        for k in 0..<16 {
            if k == 0 || k == 8 { line += " " }
            line += k < chunk.count ? String(format: " %02x", chunk[k]) : "   "
        }
        line += "  |"
        for c in chunk { line += (c >= 0x20 && c <= 0x7e) ? String(UnicodeScalar(c)) : "." }
        line += "|"
        out.append(line)
        i += 16
    }
    return out
}
