import Foundation
import Testing
import VxmonCore

// One reading of a policy verdict's verdict everywhere. Cilium's monitor reads the audit flag first
// (its text says `action audit`: Cilium's own rendering of policy_verdict_ingress_redirect_audit);
// Hubble reads a denial, then a redirect, then the audit flag (Hubble 1.13's own reading of that vector
// is REDIRECTED). vxmon keeps both, named: the text and JSON `action` are the monitor's; `hubble_verdict`
// in JSON, the counters, `--verdict`, `-o jsonpb` and the Hubble servers (VxmonHubbleTests) are Hubble's.

/// The audit vectors: Cilium's redirect with the audit flag, and the same event patched to an allow
/// and to a denial (verdict -133), each with the audit flag. (monitor action, Hubble verdict)
let auditCases: [(name: String, verdict: Int32?, action: String, hubble: String)] = [
    ("redirect+audit", nil, "audit", "REDIRECTED"),
    ("allow+audit", 0, "audit", "AUDIT"),
    ("deny+audit", -133, "audit", "DROPPED"),
]

/// The vector's recording, with the policy verdict's i32 verdict (header offset 20) replaced.
func auditRecording(verdict: Int32?) -> [UInt8] {
    var recs = records(CLIFixtures.bytes("\(CLIFixtures.vectors)/policy_verdict_ingress_redirect_audit.vxrec"))
    if let verdict, let i = recs.firstIndex(where: { $0.kind == 1 }) {
        let v = UInt32(bitPattern: verdict)
        for k in 0..<4 { recs[i].body[20 + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
    }
    return vxrec(recs)
}

@Suite("one verdict reading: text, JSON, counters, --verdict and jsonpb")
struct VerdictReadingTests {
    @Test("the oracles: Cilium's text says action audit, Hubble 1.13 says REDIRECTED, for the vector")
    func oracles() throws {
        let text = try #require(CLIFixtures.text("\(CLIFixtures.vectors)/policy_verdict_ingress_redirect_audit.default.txt"))
        #expect(text.contains(", action audit,"))
        let hubble = try #require(CLIFixtures.text("\(CLIFixtures.vectors)/hubble-1.13/policy_verdict_ingress_redirect_audit.jsonpb"))
        #expect(hubble.contains(#""verdict":"REDIRECTED""#))
        // The vector's verdict field is a redirect (to port 15001), with the audit flag.
        let body = try #require(records(CLIFixtures.bytes("\(CLIFixtures.vectors)/policy_verdict_ingress_redirect_audit.vxrec")).first?.body)
        #expect(Int32(bitPattern: UInt32(body[20]) | UInt32(body[21]) << 8 | UInt32(body[22]) << 16 | UInt32(body[23]) << 24) == 15001)
        #expect(body[27] & 0x40 != 0)  // flags: ingress, match all, audit
    }

    @Test("every output reads the same verdict", arguments: 0..<auditCases.count)
    func consistent(_ i: Int) throws {
        let c = auditCases[i]
        let path = NSTemporaryDirectory() + "/vxmon-audit-\(UUID().uuidString).vxrec"
        try Data(auditRecording(verdict: c.verdict)).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }

        let text = try run(Binary.vxmon, ["replay", path])
        #expect(text.stdout.contains(", action \(c.action),"), "\(c.name): \(text.stdout)")

        let json = try run(Binary.vxmon, ["replay", path, "-o", "json"])
        let record = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(record["action"] as? String == c.action, "\(c.name)")
        #expect(record["hubble_verdict"] as? String == c.hubble, "\(c.name)")

        let stats = try run(Binary.vxmon, ["stats", path, "-o", "json"])
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        let byVerdict = (summary["by_verdict"] as? [[String: Any]]) ?? []
        #expect(byVerdict.count == 1 && byVerdict.first?["name"] as? String == c.hubble && byVerdict.first?["count"] as? Int == 1,
                "\(c.name): \(byVerdict)")

        for verdict in ["forwarded", "dropped", "audit", "redirected"] {
            let r = try run(Binary.vxmon, ["replay", path, "--verdict", verdict, "-o", "json"])
            let shown = r.stdout.split(separator: "\n").count
            #expect(shown == (verdict.uppercased() == c.hubble ? 1 : 0), "\(c.name): --verdict \(verdict) shows \(shown)")
        }

        for cilium in ["1.13", "latest"] {
            let pb = try run(Binary.vxmon, ["replay", path, "-o", "jsonpb", "--cilium", cilium])
            #expect(pb.stdout.contains(#""verdict":"\#(c.hubble)""#), "\(c.name) \(cilium): \(pb.stdout)")
        }
    }
}
