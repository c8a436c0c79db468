import Foundation
import Testing
import VxmonCore
import VxmonWire

// Every vector of Tests/Fixtures/vectors (copied from the shared vectors; see its README.md) rendered
// through the library and compared byte for byte with what Cilium 1.13's `cilium monitor` printed,
// after applying vxmon's four documented differences:
//   (1) -vv: the `CPU NN: MARK ...` header of trace/drop moves to right after its separator;
//   (2) VXLAN/Geneve: vxmon decodes the inner frame (prefix rule + tunnel summary; full output pinned
//       by reviewed goldens in Tests/Fixtures/vxmon-goldens);
//   (3) decode errors go to diagnostics, never stdout (trace_unknown_version renders nothing);
//   (4) kernel padding is not decoded (the kernelpad vector renders as trace_v1_to_overlay_icmp).

/// The two vectors whose packet is a VXLAN tunnel packet, and the inner flow / VNI decoded by hand from
/// their hex (see Tests/Fixtures/vxmon-goldens/README.md for the byte-by-byte decoding).
let tunnelVectors: [String: (innerFlow: String, vni: UInt32)] = [
    "trace_v1_from_network_vxlan": ("10.0.2.32:40000 -> 10.0.1.168:8080 tcp ACK", 8287),
    "trace_v1_from_overlay_vxlan4789": ("10.0.2.32:40000 -> 10.0.1.168:8080 tcp ACK", 8287),
]

/// Splits a one-line summary into the part before the packet summary and the packet summary.
func splitSummary(_ line: String) -> (prefix: String, flow: String)? {
    guard let r = line.range(of: ": ", options: .backwards) else { return nil }
    return (String(line[..<r.upperBound]), String(line[r.upperBound...]))
}

/// Difference (2) for a one-line (default/-v/-n) rendering: the outer flow `A:p -> B:q udp` is
/// replaced by the inner flow and ` [tunnel A:p -> B:q vxlan vni N]` is appended.
func expectedTunnelSummary(_ ciliumLine: String, innerFlow: String, vni: UInt32) -> String? {
    guard let (prefix, outer) = splitSummary(ciliumLine), outer.hasSuffix(" udp") else { return nil }
    let outerEndpoints = String(outer.dropLast(" udp".count))
    return "\(prefix)\(innerFlow) [tunnel \(outerEndpoints) vxlan vni \(vni)]"
}

/// Difference (2) for a -vv block (separator, header, layer lines...): the expected block's header and
/// its outer layer lines (everything but the `  Packet has been truncated` / `  Failed to decode
/// layer` trailer) must be a prefix of vxmon's block, followed by the tunnel (VXLAN or Geneve) layer line.
func checkTunnelBlock(
    expected: [String], actual: [String], _ context: String, tunnelLayer: String = "VXLAN",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let outer = expected.filter { !$0.hasPrefix("  ") }
    guard actual.count > outer.count else {
        Issue.record("\(context): vxmon printed \(actual.count) lines, expected more than \(outer.count)", sourceLocation: sourceLocation)
        return
    }
    #expect(Array(actual.prefix(outer.count)) == outer, "\(context): outer lines", sourceLocation: sourceLocation)
    #expect(actual[outer.count].hasPrefix(tunnelLayer + "\t{"), "\(context): line after the outer layers: \(actual[outer.count])", sourceLocation: sourceLocation)
    if expected.contains("  Packet has been truncated") {
        #expect(actual.contains("  Packet has been truncated"), "\(context): truncation line", sourceLocation: sourceLocation)
    }
    #expect(!actual.contains { $0.hasPrefix("Error while parsing") }, sourceLocation: sourceLocation)
}

@Suite("Cilium 1.13 vectors")
struct VectorTests {
    @Test("fixtures are all present")
    func fixturesPresent() {
        #expect(Fixtures.vectorNames.count == 35)
        for name in Fixtures.vectorNames {
            for mode in RenderMode.textModes {
                #expect(Fixtures.text("\(Fixtures.vectors)/\(name).\(mode.name).txt") != nil, "\(name).\(mode.name).txt")
            }
        }
    }

    @Test("vector renders as cilium monitor (with vxmon's documented differences)",
          arguments: Fixtures.vectorNames, RenderMode.textModes)
    func vector(name: String, mode: RenderMode) throws {
        let result = renderVector(name, mode)
        #expect(result.error == nil, "reader error: \(String(describing: result.error))")
        let vv = mode.verbosity == .verbose

        switch name {
        case "trace_unknown_version":
            // Difference (3): nothing on stdout, the decode error goes to diagnostics.
            #expect(result.output == "")
            #expect(result.diagnostics.contains { $0.contains("Unrecognized trace event (version 7)") }, "\(result.diagnostics)")
            #expect(result.stats.decodeErrors == 1)
            return
        case let n where tunnelVectors[n] != nil:
            let (innerFlow, vni) = tunnelVectors[n]!
            var expected = try #require(Fixtures.text("\(Fixtures.vectors)/\(name).\(mode.name).txt"))
            if vv { expected = moveHeadersAfterSeparator(expected) }
            if mode.hex {
                // The hex dump replaces the layers: identical to Cilium apart from difference (1).
                #expect(result.output == expected)
            } else if vv {
                checkTunnelBlock(expected: lines(expected), actual: lines(result.output), name)
            } else {
                let exp = lines(expected)
                try #require(exp.count == 1)
                let want = try #require(expectedTunnelSummary(exp[0], innerFlow: innerFlow, vni: vni))
                #expect(result.output == want + "\n")
            }
            #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
            return
        default:
            break
        }

        // Difference (4): the kernel-padded sample renders what the unpadded one expects.
        let expectedName = name == "trace_v1_to_overlay_icmp_kernelpad" ? "trace_v1_to_overlay_icmp" : name
        var expected = try #require(Fixtures.text("\(Fixtures.vectors)/\(expectedName).\(mode.name).txt"))
        if vv { expected = moveHeadersAfterSeparator(expected) }
        #expect(result.output == expected)
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
    }

    @Test("a broken event prints nothing in JSON/YAML either", arguments: [RenderMode.json, RenderMode.yaml])
    func unknownVersionStructured(mode: RenderMode) {
        let result = renderVector("trace_unknown_version", mode)
        #expect(result.output == "")
        #expect(result.diagnostics.count == 1)
        #expect(result.diagnostics.first?.contains("Unrecognized trace event (version 7)") == true)
    }

    /// The full vxmon output for the tunnel vectors, against goldens reviewed by hand.
    @Test("tunnel vectors match their reviewed vxmon goldens",
          arguments: Array(tunnelVectors.keys).sorted(), RenderMode.textModes)
    func tunnelGolden(name: String, mode: RenderMode) throws {
        let golden = try #require(Fixtures.text("\(Fixtures.goldens)/\(name).\(mode.name).txt"), "missing golden")
        #expect(renderVector(name, mode).output == golden)
    }

    /// The goldens themselves honour difference (2) against Cilium's expected output.
    @Test("tunnel goldens satisfy the prefix rule", arguments: Array(tunnelVectors.keys).sorted())
    func tunnelGoldenPrefix(name: String) throws {
        let golden = try #require(Fixtures.text("\(Fixtures.goldens)/\(name).vv.txt"))
        let cilium = moveHeadersAfterSeparator(try #require(Fixtures.text("\(Fixtures.vectors)/\(name).vv.txt")))
        checkTunnelBlock(expected: lines(cilium), actual: lines(golden), name)
    }
}

// MARK: - bulk_2k

/// An independent decoder for the bulk workload's VXLAN packets (Ethernet / IPv4 / UDP 8472 / VXLAN /
/// Ethernet / IPv4 / TCP|UDP|ICMP, see gen_bulk.py): the inner flow as Cilium's summary prints it.
func bulkInnerFlow(_ p: [UInt8]) -> (flow: String, vni: UInt32)? {
    func be16(_ o: Int) -> Int { Int(p[o]) << 8 | Int(p[o + 1]) }
    func ip(_ o: Int) -> String { "\(p[o]).\(p[o + 1]).\(p[o + 2]).\(p[o + 3])" }
    guard p.count >= 50, be16(12) == 0x0800, p[14] == 0x45, p[23] == 17, be16(36) == 8472, p[42] & 0x08 != 0 else {
        return nil
    }
    let vni = UInt32(p[46]) << 16 | UInt32(p[47]) << 8 | UInt32(p[48])
    let i = 50
    guard p.count >= i + 34, be16(i + 12) == 0x0800 else { return nil }
    let ipo = i + 14
    let ihl = Int(p[ipo] & 0x0f) * 4
    let proto = p[ipo + 9]
    let src = ip(ipo + 12)
    let dst = ip(ipo + 16)
    let l4 = ipo + ihl
    switch proto {
    case 6:
        guard p.count >= l4 + 14 else { return nil }
        let f = p[l4 + 13]
        var names: [String] = []
        if f & 0x02 != 0 { names.append("SYN") }
        if f & 0x10 != 0 { names.append("ACK") }
        if f & 0x04 != 0 { names.append("RST") }
        if f & 0x01 != 0 { names.append("FIN") }
        return ("\(src):\(be16(l4)) -> \(dst):\(be16(l4 + 2)) tcp \(names.joined(separator: ", "))", vni)
    case 17:
        guard p.count >= l4 + 4 else { return nil }
        return ("\(src):\(be16(l4)) -> \(dst):\(be16(l4 + 2)) udp", vni)
    case 1:
        guard p.count >= l4 + 2 else { return nil }
        let name: String
        switch (p[l4], p[l4 + 1]) {
        case (8, 0): name = "EchoRequest"
        case (0, 0): name = "EchoReply"
        default: return nil
        }
        return ("\(src) -> \(dst) \(name)", vni)
    default:
        return nil
    }
}

/// The captured packet of a trace record (v0: 32-byte header, v1: 48).
func tracePacket(_ body: [UInt8]) -> [UInt8] {
    let version = body[14]
    let header = version == 0 ? 32 : 48
    let cap = Int(le16(body, 12))
    return Array(body[header..<min(body.count, header + cap)])
}

/// Splits -vv output into blocks, each starting with a separator line.
func vvBlocks(_ text: String) -> [[String]] {
    var blocks: [[String]] = []
    for line in lines(text) {
        if line == separatorLine || blocks.isEmpty {
            blocks.append([line])
        } else {
            blocks[blocks.count - 1].append(line)
        }
    }
    return blocks
}

@Suite("bulk_2k workload")
struct BulkTests {
    static let records = parseVxrec(Fixtures.bytes("\(Fixtures.vectors)/bulk_2k.vxrec"))

    @Test("the bulk recording holds 2000 trace samples")
    func recordCount() {
        #expect(Self.records.count == 2000)
        #expect(Self.records.allSatisfy { $0.kind == 1 && $0.body.first == 4 })
    }

    @Test("default output: non-tunnel events exact, tunnel events by the summary rule")
    func bulkDefault() throws {
        let result = renderRecording(Fixtures.bytes("\(Fixtures.vectors)/bulk_2k.vxrec"), .textDefault)
        #expect(result.error == nil)
        #expect(result.diagnostics.isEmpty)
        let expected = lines(try #require(Fixtures.text("\(Fixtures.vectors)/bulk_2k.default.txt")))
        let actual = lines(result.output)
        try #require(expected.count == 2000)
        try #require(actual.count == 2000)
        var tunnels = 0
        for (i, record) in Self.records.enumerated() {
            if let (flow, vni) = bulkInnerFlow(tracePacket(record.body)) {
                tunnels += 1
                let want = expectedTunnelSummary(expected[i], innerFlow: flow, vni: vni)
                #expect(actual[i] == want, "event \(i + 1)")
            } else {
                #expect(actual[i] == expected[i], "event \(i + 1)")
            }
        }
        #expect(tunnels > 500)
    }

    @Test("-vv output: non-tunnel events exact (header moved), tunnel events by the prefix rule")
    func bulkVerbose() throws {
        let result = renderRecording(Fixtures.bytes("\(Fixtures.vectors)/bulk_2k.vxrec"), .textVV)
        #expect(result.error == nil)
        let expected = vvBlocks(moveHeadersAfterSeparator(try #require(Fixtures.text("\(Fixtures.vectors)/bulk_2k.vv.txt"))))
        let actual = vvBlocks(result.output)
        try #require(expected.count == 2000)
        try #require(actual.count == 2000)
        for (i, record) in Self.records.enumerated() {
            if bulkInnerFlow(tracePacket(record.body)) != nil {
                checkTunnelBlock(expected: expected[i], actual: actual[i], "event \(i + 1)")
            } else {
                #expect(actual[i] == expected[i], "event \(i + 1)")
            }
        }
    }
}
