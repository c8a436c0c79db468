import Foundation
import Testing
import VxmonCore

// vxmon's JSON and YAML against its schema (docs/event-schema.json): every vector, bulk_2k, synthetic
// events that reach the rarer branches (Geneve, ARP, 802.1Q, IPv6 extension headers, trace v2, drop v3,
// the latest Cilium layouts, interface names, node metadata, record times, lost records) and a
// deterministic batch of mutated samples are rendered through the library into a temporary directory;
// Tests/scripts/validate_structured.py then checks every JSON line against the schema, parses the
// files with jq and PyYAML, and cross-checks the fields Cilium's own `-j` output carries.

/// Trace v1 (48-byte header) around `packet`.
func trace(_ packet: [UInt8], point: UInt8 = 4, version: UInt8 = 1, flags: UInt8 = 0, ifindex: UInt32 = 3) -> [UInt8] {
    var h: [UInt8] = [4, point] + leBytes(UInt16(1277)) + leBytes(UInt32(0x1ee7_b1d5))
    h += leBytes(UInt32(packet.count)) + leBytes(UInt16(packet.count)) + [version, 0]
    h += leBytes(UInt32(8287)) + leBytes(UInt32(2)) + leBytes(UInt16(15001)) + [0x81, flags] + leBytes(ifindex)
    if version >= 1 { h += [10, 0, 2, 99] + Array(repeating: 0, count: 12) }
    if version >= 2 { h += leBytes(UInt64(0x0102_0304_0506_0708)) }
    return h + packet
}

/// Drop v3 (48-byte header) around `packet`.
func drop(_ packet: [UInt8], reason: UInt8 = 133, ext: Int8 = -3) -> [UInt8] {
    var h: [UInt8] = [1, reason] + leBytes(UInt16(12)) + leBytes(UInt32(7))
    h += leBytes(UInt32(packet.count)) + leBytes(UInt16(packet.count)) + [3, 0]
    h += leBytes(UInt32(2)) + leBytes(UInt32(65530)) + leBytes(UInt32(1277)) + leBytes(UInt16(42)) + [9, UInt8(bitPattern: ext)]
    h += leBytes(UInt32(17)) + [0x01, 0, 0, 0] + leBytes(UInt64(99))
    return h + packet
}

enum Packets {
    static let eth = "862aa97c330e56a12ef41b7c"
    static let geneve = hexBytes(
        "0200000000020200000000010800" + "450000460001000040110000c0a8380bc0a8380c" + "c00117c100320000"
            + "0240655800002a00" + "01020301aabbccdd" + eth + "0800" + "4500001c0001000040110000" + "0a0000010a000002"
            + "0001000200080000")
    static let arp = hexBytes("ffffffffffff0200000000010806" + "000108000604000102000000000" + "10a000001000000000000" + "0a000002")
    static let arpOdd = hexBytes("ffffffffffff0200000000010806" + "00060800080400020102030405060708" + "0a000001" + "1112131415161718" + "0a000002")
    static let vlan = hexBytes("ffffffffffff020000000001" + "8100b064" + "0800" + "4500001c00010000401166ce0a0000010a000002" + "0001000200080000")
    static let ipv6Frag = hexBytes(
        eth + "86dd" + "6000000000102c40" + "20010db8000000000000000000000001" + "20010db8000000000000000000000002"
            + "1100000000000005" + "0001000200080000")
    static let ipv6Routing = hexBytes(
        eth + "86dd" + "6000000000102b40" + "20010db8000000000000000000000001" + "20010db8000000000000000000000002"
            + "1100000000000000" + "0001000200080000")
    static let tcpOptions = hexBytes(
        eth + "0800" + "4500003c00010000400666b90a0000010a000002" + "9c401f90000003e800000001a012faf000000000"
            + "020405b40402080a000000010000000203030700")
    static let llc = hexBytes("0180c2000000020000000001000642420300000" + "0eeee")
    static let vxlanGBP = hexBytes(
        "0200000000020200000000010800" + "4500006a12344000401136e7c0a8380bc0a8380c" + "ee48211800560000" + "88c8123400205f00"
            + eth + "0800" + "4500003812344000400610c50a0000200a0001a8" + "9c401f90000000070000000950180000faf00000"
            + "474554202f20485454502f312e310d0a")
}

func synthetic() -> [Record] {
    var rs: [Record] = [
        Record(kind: 4, body: Array("node=worker2".utf8)),
        Record(kind: 3, body: leBytes(UInt32(3)) + Array("cilium_vxlan".utf8)),
        Record(kind: 3, body: leBytes(UInt32(17)) + Array("lxc\"quoted\"\u{1}".utf8)),
    ]
    let packets = [Packets.geneve, Packets.arp, Packets.arpOdd, Packets.vlan, Packets.ipv6Frag, Packets.ipv6Routing,
                   Packets.tcpOptions, Packets.llc, Packets.vxlanGBP]
    for (i, p) in packets.enumerated() {
        rs.append(Record(kind: 1, cpu: UInt32(i), time: 1_700_000_000_123_456_789 + UInt64(i), body: trace(p, point: UInt8(i % 14))))
        rs.append(Record(kind: 1, cpu: UInt32(i), body: trace(p, version: 2, ifindex: 17)))
        rs.append(Record(kind: 1, cpu: UInt32(i), body: drop(p)))
    }
    rs.append(Record(kind: 1, body: trace(Array(Packets.ipv6Frag.dropFirst(14)), flags: 0x03)))  // L3 device, IPv6
    rs.append(Record(kind: 1, body: drop(Packets.arp, reason: 250, ext: 0)))
    rs.append(Record(kind: 2, cpu: 7, time: 1_700_000_000_000_000_000, body: leBytes(UInt64(12345))))
    rs.append(Record(kind: 1, body: [9, 0, 1, 2, 3]))
    rs.append(Record(kind: 4, body: Array("node=".utf8)))
    rs.append(Record(kind: 2, cpu: 1, body: leBytes(UInt64.max)))
    return rs
}

/// Layout-sensitive records for `--cilium latest`: policy verdict with auth type and cookie, trace-sock.
func syntheticLatest() -> [Record] {
    let ping = hexBytes(Packets.eth + "0800" + "450000544d2e40004001d5b30a0000200a0001a8" + "0800320f0d1b0001")
    var pv: [UInt8] = [5, 0] + leBytes(UInt16(1277)) + leBytes(UInt32(5)) + leBytes(UInt32(ping.count)) + leBytes(UInt16(ping.count))
    pv += [1, 0] + leBytes(UInt32(2)) + leBytes(Int32(-133)) + leBytes(UInt16(80)) + [6, 0x11] + [1, 0, 0, 0] + leBytes(UInt32(77))
    pv += [0, 0, 0, 0]
    var pv2 = pv
    pv2[28] = 200  // unknown auth type: a number
    pv2[20...23] = [0x99, 0x3a, 0, 0]  // redirect to 15001
    var sock: [UInt8] = [7, 4, 2, 1] + leBytes(UInt16(8080)) + [0, 0] + leBytes(UInt64.max) + leBytes(UInt64(7))
    sock += hexBytes("fd000000000000000000000000000010")
    return [Record(kind: 1, body: pv + ping), Record(kind: 1, body: pv2 + ping), Record(kind: 1, body: sock),
            Record(kind: 1, body: trace(ping, point: 13))]
}

/// Deterministically mutated vector samples (xorshift64*, fixed seed).
func mutated() -> [Record] {
    var state: UInt64 = 0xfeed_beef_1234_5678
    func next() -> Int {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return Int(truncatingIfNeeded: (state &* 0x2545_f491_4f6c_dd1d) >> 1)
    }
    let corpus = CLIFixtures.vectorNames.filter { $0 != "bulk_2k" }
        .flatMap { records(CLIFixtures.bytes("\(CLIFixtures.vectors)/\($0).vxrec")) }.filter { $0.kind == 1 }.map(\.body)
    var out: [Record] = []
    for _ in 0..<1000 {
        var b = corpus[next() % corpus.count]
        for _ in 0..<(1 + next() % 6) where !b.isEmpty { b[next() % b.count] = UInt8(truncatingIfNeeded: next()) }
        if next() % 4 == 0 { b = Array(b.prefix(next() % (b.count + 1))) }
        out.append(Record(kind: 1, cpu: UInt32(next() % 64), body: b))
    }
    return out
}

@Suite("Structured output against docs/event-schema.json")
struct StructuredOutputTests {
    @Test("JSON and YAML of every vector, bulk_2k and synthetic events validate")
    func validate() throws {
        let python = try #require(which("python3"), "python3 is not on PATH")
        let dir = NSTemporaryDirectory() + "/vxmon-structured-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        func emit(_ name: String, _ file: [UInt8], release: CiliumRelease = .v1_13) throws {
            // Also with -v and with -vv --hex (`monitor` lines, `packet.data`), under their own names.
            for (prefix, verbosity, hex) in [("", Verbosity.info, false), ("v_", .debug, false), ("vvhex_", .verbose, true)] {
                for format in [OutputFormat.json, .yaml] {
                    let (out, _) = try render(file, format, release: release, verbosity: verbosity, hex: hex)
                    try Data(out.utf8).write(
                        to: URL(fileURLWithPath: "\(dir)/\(prefix)\(name).\(format == .json ? "json" : "yaml")"))
                }
            }
        }
        let names = CLIFixtures.vectorNames
        #expect(names.count == 36)
        for name in names { try emit(name, CLIFixtures.bytes("\(CLIFixtures.vectors)/\(name).vxrec")) }
        try emit("synthetic", vxrec(synthetic()))
        // Trace v2, drop v3 and the L3-device flag are latest layouts (1.13 rejects the first and reads
        // the others as a 36-byte drop / an Ethernet capture): render the same records as latest too.
        try emit("synthetic_as_latest", vxrec(synthetic()), release: .latest)
        let derived = CLIFixtures.fixtures + "/vectors-1.13-derived"
        let derivedNames = ((try? FileManager.default.contentsOfDirectory(atPath: derived)) ?? [])
            .filter { $0.hasSuffix(".vxrec") }.map { String($0.dropLast(6)) }.sorted()
        #expect(derivedNames.count >= 12)
        for name in derivedNames { try emit("derived_" + name, CLIFixtures.bytes("\(derived)/\(name).vxrec")) }
        try emit("synthetic_latest", vxrec(syntheticLatest()), release: .latest)
        try emit("mutated", vxrec(mutated()))
        try emit("mutated_latest", vxrec(mutated()), release: .latest)

        let script = CLIFixtures.packageRoot + "/Tests/scripts/validate_structured.py"
        let schema = CLIFixtures.packageRoot + "/docs/event-schema.json"
        let r = try run(python, [script, dir, "--schema", schema, "--cilium", CLIFixtures.vectors])
        print(r.stdout + r.stderr)
        #expect(r.status == 0, "validate_structured.py failed:\n\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("all structured output valid"))
    }

    @Test("JSON keys come in the documented order, type first")
    func keyOrder() throws {
        let (out, _) = try render(CLIFixtures.bytes("\(CLIFixtures.vectors)/drop_policy_denied_tcp.vxrec"), .json)
        #expect(out.hasPrefix("{\"type\":\"drop\",\"subtype\":\"Policy denied\",\"event_type\":{\"type\":1,\"sub_type\":133},\"cpu\":1,"))
        #expect(out.hasSuffix("}\n"))
    }
}
