import Foundation
import Testing
import VxmonCore

// `-o jsonpb` with `--cilium 1.13` (the default) against what Cilium 1.13's own Hubble parser made of
// every vector (Tests/Fixtures/vectors/hubble-1.13, see its README section): field for field, except
// `time` and `node_name` (the parser was given neither) and the one difference the README lists:
// reserved identities carry their `reserved:` label, as a node's identity cache gives them (the
// vectors were made without one).

/// A JSON object with the fields the comparison leaves out removed.
func comparable(_ value: Any, key: String? = nil) -> Any {
    if var object = value as? [String: Any] {
        object["time"] = nil
        object["node_name"] = nil
        if key == "source" || key == "destination", let labels = object["labels"] as? [String],
            let identity = object["identity"] as? Int, (1...8).contains(identity),
            labels.count == 1, labels[0].hasPrefix("reserved:")
        {
            object["labels"] = nil
        }
        return object.mapValues { $0 }.reduce(into: [String: Any]()) { $0[$1.key] = comparable($1.value, key: $1.key) }
    }
    if let array = value as? [Any] { return array.map { comparable($0) } }
    return value
}

@Suite("Hubble 1.13's own reading of the vectors")
struct HubbleVectorTests {
    static let directory = CLIFixtures.vectors + "/hubble-1.13"
    static let names: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
        .filter { $0.hasSuffix(".jsonpb") }.map { String($0.dropLast(7)) }.sorted()

    @Test("every vector has Hubble 1.13's reading")
    func present() {
        #expect(Self.names.count == 36)
    }

    @Test("-o jsonpb (--cilium 1.13) says what Hubble 1.13's parser says, field for field", arguments: names)
    func vector(name: String) throws {
        let want = try lines(try #require(CLIFixtures.text("\(Self.directory)/\(name).jsonpb")))
            .map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            .filter { $0["skipped"] == nil }
        let r = try run(Binary.vxmon, ["replay", "\(CLIFixtures.vectors)/\(name).vxrec", "-o", "jsonpb"])
        #expect(r.status == 0 || name == "trace_unknown_version", "\(r.stderr)")
        let got = try lines(r.stdout)
            .map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            .filter { $0["lost_events"] == nil }
        try #require(got.count == want.count, "\(name): \(got.count) flows, Hubble has \(want.count)")
        for (i, (g, w)) in zip(got, want).enumerated() {
            let (a, b) = (comparable(g) as! [String: Any], comparable(w) as! [String: Any])
            #expect(NSDictionary(dictionary: a).isEqual(to: b), "\(name) line \(i + 1):\n vxmon  \(a)\n hubble \(b)")
        }
    }
}

extension HubbleVectorTests {
    static let proto113 = CLIFixtures.packageRoot + "/Tests/Fixtures/proto-1.13"

    /// check_jsonpb.py with the 1.13 API: strict parse and round trip of every line.
    func check113(_ text: String) throws -> ProcessResult {
        let python = try #require(which("python3"))
        return try run(python, [HubbleJSONTests.script, Self.proto113], stdin: Array(text.utf8))
    }

    @Test("the Hubble CLI of the 1.13 era accepts every line: strict parse against 1.13's flow API, for every vector, sample and bulk_2k")
    func strict113() throws {
        var files = try FileManager.default.contentsOfDirectory(atPath: CLIFixtures.vectors).filter { $0.hasSuffix(".vxrec") }
            .map { "\(CLIFixtures.vectors)/\($0)" }
        files += try FileManager.default.contentsOfDirectory(atPath: FlowCLITests.samples).filter { $0.hasSuffix(".vxrec") }
            .map { "\(FlowCLITests.samples)/\($0)" }
        var all = ""
        for file in files {
            all += try run(Binary.vxmon, ["replay", file, "-o", "jsonpb"]).stdout
        }
        // The oracle itself: Hubble 1.13's own lines parse, and latest's (trace_reason, tunnel) do not.
        var hubble = ""
        for name in Self.names {
            hubble += lines(CLIFixtures.text("\(Self.directory)/\(name).jsonpb") ?? "").filter { !$0.contains("\"skipped\"") }
                .map { $0 + "\n" }.joined()
        }
        let theirs = try check113(hubble)
        #expect(theirs.status == 0, "\(theirs.stdout)")
        let ours = try check113(all)
        #expect(ours.status == 0, "\(ours.stdout) \(ours.stderr)")
        #expect(ours.stdout.contains(" lines parse and round-trip"), "\(ours.stdout)")
        let latest = try run(Binary.vxmon, ["replay", "\(FlowCLITests.samples)/cross_node_ping.vxrec", "-o", "jsonpb", "--cilium", "latest"])
        let refused = try check113(latest.stdout)
        #expect(refused.status != 0 && (refused.stdout.contains("trace_reason") || refused.stdout.contains("tunnel")), "\(refused.stdout)")
    }
}

extension HubbleVectorTests {
    /// Hubble's parser drops an event whose packet it cannot decode (a header of the layers it decodes
    /// cut short: gopacket's DecodingLayerParser fails, and the parser returns that error); Cilium's
    /// monitor prints what it decoded. The vector's SYN (Ethernet 14, IPv4 20, TCP 28 bytes) is cut
    /// inside its TCP header and inside its IP header.
    @Test("a packet cut inside a header Hubble decodes gives no flow; cut after its headers it does", arguments: [44, 24, 62])
    func undecodable(captured: Int) throws {
        var recs = records(CLIFixtures.bytes("\(CLIFixtures.vectors)/drop_policy_denied_tcp.vxrec"))
        let i = try #require(recs.firstIndex { $0.kind == 1 })
        // Drop header: 36 bytes in 1.13, len_cap (u16) at 12.
        recs[i].body = Array(recs[i].body.prefix(36 + captured))
        recs[i].body[12] = UInt8(captured)
        recs[i].body[13] = 0
        let path = NSTemporaryDirectory() + "/vxmon-cut-\(UUID().uuidString).vxrec"
        try Data(vxrec(recs)).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = try run(Binary.vxmon, ["replay", path])
        #expect(text.stdout.hasPrefix("xx drop (Policy denied)"), "\(text.stdout)")
        for cilium in ["1.13", "latest"] {
            let pb = try run(Binary.vxmon, ["replay", path, "-o", "jsonpb", "--cilium", cilium])
            #expect(pb.stdout.isEmpty == (captured < 62), "\(captured) bytes, \(cilium): \(pb.stdout)")
        }
    }
}

private func lines(_ s: String) -> [String] { s.split(separator: "\n").map(String.init) }
