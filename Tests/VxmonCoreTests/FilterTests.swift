import Foundation
import Testing
import VxmonCore
import VxmonLive
import VxmonWire

#if canImport(Glibc)
import Glibc
#endif

// Every filter flag, with expected counts from oracles that are not vxmon: Cilium 1.13's own JSON of
// the 2000 bulk events (addresses, ports, protocols, identities, endpoints, observation points), Cilium's
// text of the vectors (drops, verdicts, drop reasons, IPv6), tshark's decode of the lab samples (inner
// and outer addresses, VNI) and what the lab scenarios did (samples/record.sh).

/// Replays `path` through a filtered pipeline; returns (matched, filtered, stats).
func replayFiltered(_ path: String, _ arguments: [String], pods: [PodInfo] = []) throws -> PipelineStats {
    let filter = try FilterParser.parse(arguments)
    let pipeline = EventPipeline(format: .none, filter: filter, diagnostics: { _ in })
    for pod in pods { pipeline.learn(pod) }
    let fd = open(path, O_RDONLY)
    try #require(fd >= 0, "cannot open \(path)")
    defer { close(fd) }
    var consumer = pipeline
    try VxrecReader(fd: fd).run(&consumer)
    return pipeline.stats
}

/// Cilium 1.13's `-j` objects of bulk_2k (one per event, in order).
nonisolated(unsafe) let ciliumBulk: [[String: Any]] = {
    (Fixtures.text("\(Fixtures.vectors)/bulk_2k.j.txt") ?? "").split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}()

extension Dictionary where Key == String, Value == Any {
    var summaryObject: [String: Any] { self["summary"] as? [String: Any] ?? [:] }
    func l3(_ k: String) -> String? { (summaryObject["l3"] as? [String: Any])?[k] as? String }
    func l4(_ k: String) -> String? { (summaryObject["l4"] as? [String: Any])?[k] as? String }
    func int(_ k: String) -> Int? { self[k] as? Int }
    var protocolLayer: String? { ["tcp", "udp", "icmpv4", "sctp", "icmpv6"].first { summaryObject[$0] != nil } }
    /// A gopacket TCP flag from Cilium's layer string (`SYN=true`).
    func tcpFlag(_ name: String) -> Bool { (summaryObject["tcp"] as? String)?.contains(" \(name)=true") ?? false }
}

/// An IPv4 address in a CIDR, by text.
func inCIDR(_ ip: String?, _ prefix: String, _ bits: Int) -> Bool {
    func value(_ s: String) -> UInt32 { s.split(separator: ".").reduce(0) { $0 << 8 | UInt32($1)! } }
    guard let ip else { return false }
    let mask: UInt32 = bits == 0 ? 0 : ~0 << (32 - UInt32(bits))
    return value(ip) & mask == value(prefix) & mask
}

@Suite("Filters")
struct FilterTests {
    static let bulk = "\(Fixtures.vectors)/bulk_2k.vxrec"

    /// (flags, Cilium-JSON predicate) over bulk_2k; values picked from the data so none is vacuous.
    /// Cilium 1.13 does not decode VXLAN inner frames, so its addresses, ports and protocols are the
    /// outer headers: those cases use --outer (the inner ones are checked against tshark below).
    nonisolated(unsafe) static let bulkCases: [(String, [String], ([String: Any]) -> Bool)] = {
        let first = ciliumBulk[0]
        let src = first.l3("src")!
        let sourcePort = first.l4("src")!
        let dst = first.l3("dst")!
        let srcLabel = first.int("srcLabel")!
        let dstLabel = first.int("dstLabel")!
        let source = first.int("source")!
        let dstID = first.int("dstID")!
        return [
            ("ip", ["--outer", "--ip", src], { $0.l3("src") == src || $0.l3("dst") == src }),
            ("from-ip", ["--outer", "--from-ip", src], { $0.l3("src") == src }),
            ("to-ip", ["--outer", "--to-ip", dst], { $0.l3("dst") == dst }),
            ("ip CIDR", ["--outer", "--ip", "10.0.1.0/24"], { inCIDR($0.l3("src"), "10.0.1.0", 24) || inCIDR($0.l3("dst"), "10.0.1.0", 24) }),
            ("from-ip CIDR /16", ["--outer", "--from-ip", "10.0.0.0/16"], { inCIDR($0.l3("src"), "10.0.0.0", 16) }),
            ("two ips: OR", ["--outer", "--ip", src, "--ip", dst], { [src, dst].contains($0.l3("src") ?? "") || [src, dst].contains($0.l3("dst") ?? "") }),
            ("port", ["--outer", "--port", "123"], { $0.l4("src") == "123" || $0.l4("dst") == "123" }),
            ("from-port", ["--outer", "--from-port", sourcePort], { $0.l4("src") == sourcePort }),
            ("to-port", ["--outer", "--to-port", "8080"], { $0.l4("dst") == "8080" }),
            ("protocol tcp", ["--outer", "--protocol", "tcp"], { $0.protocolLayer == "tcp" }),
            ("protocol udp", ["--outer", "--protocol", "UDP"], { $0.protocolLayer == "udp" }),
            ("protocol icmp", ["--outer", "--protocol", "icmp"], { $0.protocolLayer == "icmpv4" }),
            ("protocol icmpv4", ["--outer", "--protocol", "icmpv4"], { $0.protocolLayer == "icmpv4" }),
            ("protocol tcp AND to-port", ["--outer", "--protocol", "tcp", "--to-port", "8080"], { $0.protocolLayer == "tcp" && $0.l4("dst") == "8080" }),
            ("not protocol udp", ["--outer", "--not", "--protocol", "udp"], { $0.protocolLayer != "udp" }),
            ("not two ports", ["--outer", "--not", "--port", "123", "--not", "--port", "53"], { !["123", "53"].contains($0.l4("src") ?? "") && !["123", "53"].contains($0.l4("dst") ?? "") }),
            ("identity number", ["--identity", "\(srcLabel)"], { $0.int("srcLabel") == srcLabel || $0.int("dstLabel") == srcLabel }),
            ("identity reserved name", ["--identity", "world"], { $0.int("srcLabel") == 2 || $0.int("dstLabel") == 2 }),
            ("from-identity reserved:host", ["--from-identity", "reserved:host"], { $0.int("srcLabel") == 1 }),
            ("to-identity", ["--to-identity", "\(dstLabel)"], { $0.int("dstLabel") == dstLabel }),
            ("observation point (Cilium's name)", ["--observation-point", "to-overlay"], { $0["observationPoint"] as? String == "to-overlay" }),
            ("observation point (Hubble's name)", ["--observation-point", "FROM_NETWORK"], { $0["observationPoint"] as? String == "from-network" }),
            ("verdict forwarded", ["--verdict", "forwarded"], { _ in true }),
            ("type trace", ["-t", "trace"], { _ in true }),
            ("type drop", ["--type", "drop"], { _ in false }),
            ("from endpoint", ["--from", "\(source)"], { $0.int("source") == source }),
            ("to endpoint", ["--to", "\(dstID)"], { $0.int("dstID") == dstID }),
            ("related-to", ["--related-to", "\(source)"], { $0.int("source") == source || $0.int("dstID") == source }),
            ("interface index", ["--interface", "3"], { $0["ifindex"] as? String == "3" }),
            ("tcp-flags SYN", ["--outer", "--tcp-flags", "SYN"], { $0.tcpFlag("SYN") }),
            ("tcp-flags SYN,!ACK", ["--outer", "--tcp-flags", "SYN,!ACK"], { $0.tcpFlag("SYN") && !$0.tcpFlag("ACK") }),
            ("tcp-flags ACK or FIN", ["--outer", "--tcp-flags", "ACK", "--tcp-flags", "FIN"], { $0.tcpFlag("ACK") || $0.tcpFlag("FIN") }),
        ]
    }()

    @Test("bulk_2k: each filter keeps exactly the events Cilium's own JSON says match", arguments: 0..<bulkCases.count)
    func bulkAgainstCiliumJSON(_ i: Int) throws {
        let (name, arguments, predicate) = Self.bulkCases[i]
        #expect(ciliumBulk.count == 2000)
        let expected = ciliumBulk.filter(predicate).count
        let stats = try replayFiltered(Self.bulk, arguments)
        #expect(stats.events == 2000)
        #expect(stats.matched == expected, "\(name): \(arguments)")
        #expect(stats.matched + stats.filtered == 2000)
        // A filter that names a value from the data must match something (no vacuous case), and one
        // that cannot match nothing; "not" cases must drop something.
        if !["type drop"].contains(name) { #expect(expected > 0, "\(name) matches nothing: a vacuous case") }
    }

    // MARK: Vectors, with Cilium's text as the oracle

    /// Counts the Cilium text lines (of every vector's `-v` output, where every event but a capture
    /// without a prefix has one line) that satisfy `predicate`.
    static func ciliumLines(_ predicate: (String) -> Bool) -> Int {
        Fixtures.vectorNames.filter { !$0.hasPrefix("agent-socket") }.reduce(0) { n, name in
            n + lines(Fixtures.text("\(Fixtures.vectors)/\(name).v.txt") ?? "").filter(predicate).count
        }
    }

    static func replayVectors(_ arguments: [String]) throws -> Int {
        try Fixtures.vectorNames.filter { !$0.hasPrefix("agent-socket") }.reduce(0) { n, name in
            n + (try replayFiltered("\(Fixtures.vectors)/\(name).vxrec", arguments).matched)
        }
    }

    nonisolated(unsafe) static let vectorCases: [(String, [String], (String) -> Bool)] = [
        // Cilium's --type does not filter events of unknown types, nor socket traces (nor lost records).
        ("type drop", ["-t", "drop"], { $0.hasPrefix("xx drop") || $0.contains(" Unknown event: ") || $0.contains("] cgroup_id: ") }),
        ("type policy-verdict", ["-t", "policy-verdict"], { $0.hasPrefix("Policy verdict log") || $0.contains(" Unknown event: ") || $0.contains("] cgroup_id: ") }),
        ("verdict dropped", ["--verdict", "dropped"], { $0.hasPrefix("xx drop") || $0.contains(", action deny,") }),
        ("drop reason by code", ["-t", "drop", "--drop-reason", "133"], { $0.hasPrefix("xx drop (Policy denied)") }),
        ("drop reason by text", ["-t", "drop", "--drop-reason", "Policy denied"], { $0.hasPrefix("xx drop (Policy denied)") }),
        ("drop reason by Hubble name", ["-t", "drop", "--drop-reason", "POLICY_DENIED"], { $0.hasPrefix("xx drop (Policy denied)") }),
        ("IPv6 address", ["--ip", "f00d::a00:1a8"], { $0.contains("f00d::a00:1a8 ") }),
        ("IPv6 CIDR", ["--from-ip", "f00d::/16", "-t", "trace"], { $0.contains(": f00d::") }),
        ("protocol icmpv6", ["--protocol", "icmpv6", "-t", "trace"], { $0.contains("f00d::") && $0.contains("EchoRequest") }),
        ("identity kube-apiserver", ["--identity", "kube-apiserver"], { $0.contains("kube-apiserver") }),
        ("observation point to-proxy", ["--observation-point", "TO_PROXY"], { $0.hasPrefix("-> proxy port") && $0.contains("flow ") }),
    ]

    /// `--verdict` is Hubble's reading (a policy verdict's redirect or denial before its audit flag,
    /// where Cilium's text says `action audit`): the oracle is Hubble 1.13's own reading of the vectors.
    @Test("vectors: --verdict keeps the events Hubble 1.13's parser gives that verdict", arguments: ["FORWARDED", "DROPPED", "REDIRECTED", "AUDIT", "TRACED", "TRANSLATED"])
    func verdictAgainstHubble(_ verdict: String) throws {
        let expected = Fixtures.vectorNames.filter { $0 != "bulk_2k" && !$0.hasPrefix("agent-socket") }.reduce(0) { n, name in
            n + lines(Fixtures.text("\(Fixtures.vectors)/hubble-1.13/\(name).jsonpb") ?? "")
                .filter { $0.contains("\"verdict\":\"\(verdict)\"") }.count
        }
        let got = try Fixtures.vectorNames.filter { $0 != "bulk_2k" && !$0.hasPrefix("agent-socket") }.reduce(0) { n, name in
            n + (try replayFiltered("\(Fixtures.vectors)/\(name).vxrec", ["--verdict", verdict]).matched)
        }
        #expect(got == expected, "--verdict \(verdict)")
        if verdict != "AUDIT" && verdict != "TRACED" && verdict != "TRANSLATED" { #expect(expected > 0) }
    }

    @Test("vectors: each filter keeps the events Cilium's own text shows as matching", arguments: 0..<vectorCases.count)
    func vectorsAgainstCiliumText(_ i: Int) throws {
        let (name, arguments, predicate) = Self.vectorCases[i]
        let expected = Self.ciliumLines(predicate)
        #expect(expected > 0, "\(name): the oracle finds nothing")
        #expect(try Self.replayVectors(arguments) == expected, "\(name): \(arguments)")
    }

    // MARK: Lab samples: tshark for inner and outer headers, the scenarios for the rest

    static func sample(_ name: String) -> String { "\(Oracle.samples)/\(name).vxrec" }

    static let pods = [
        PodInfo(name: "worker2-pod1", ip: .v4(IPv4Address(rawValue: 0x0a00_020a)), identity: 19773, node: "worker2"),
        PodInfo(name: "worker-pod1", ip: .v4(IPv4Address(rawValue: 0x0a00_010a)), identity: 5487, node: "worker"),
    ]

    @Test("inner by default, outer with --outer: counts from tshark's decode of the same packets")
    func innerAndOuter() throws {
        let path = Self.sample("cross_node_ping")
        let (flows, pcap) = try Oracle.export(path)
        defer { unlink(pcap) }
        let packets = try Oracle.decode(pcap)
        try #require(packets.count == flows.count && packets.count == 20)
        // tshark lists the outer header first: the last address is the innermost one.
        func count(_ test: ([String: [String]]) -> Bool) -> Int { packets.filter(test).count }
        let underlay = "172.18.0.4"
        let outerHits = count { ($0["ip.src"]?.first == underlay || $0["ip.dst"]?.first == underlay) }
        let innerHits = count { ($0["ip.src"]?.last == underlay || $0["ip.dst"]?.last == underlay) }
        #expect(outerHits > 0 && innerHits == 0)
        #expect(try replayFiltered(path, ["--ip", underlay]).matched == innerHits)
        #expect(try replayFiltered(path, ["--outer", "--ip", underlay]).matched == outerHits)
        let pod = "10.0.2.10"
        #expect(try replayFiltered(path, ["--from-ip", pod]).matched == count { $0["ip.src"]?.last == pod })
        #expect(try replayFiltered(path, ["--outer", "--from-ip", pod]).matched == count { $0["ip.src"]?.first == pod })
        #expect(try replayFiltered(path, ["--outer", "--protocol", "udp"]).matched == count { $0["udp.srcport"] != nil })
        #expect(try replayFiltered(path, ["--protocol", "udp"]).matched == 0)
        #expect(try replayFiltered(path, ["--outer", "--to-port", "8472"]).matched == count { $0["udp.dstport"]?.first == "8472" })
        #expect(try replayFiltered(path, ["--protocol", "icmpv4"]).matched == count { $0["icmp.type"] != nil })
        for vni in ["19773", "5487"] {
            let expected = count { $0["vxlan.vni"] == [vni] }
            #expect(expected > 0)
            #expect(try replayFiltered(path, ["--vni", vni]).matched == expected)
        }
    }

    @Test("nodes, interfaces, pods, drops: what the lab scenarios did (samples/record.sh)")
    func scenarios() throws {
        let ping = Self.sample("cross_node_ping")
        // Two echo requests worker2-pod1 -> worker-pod1, underlay traced: each round trip is seen at
        // five points on each node (from/to endpoint, to/from overlay, from-network).
        #expect(try replayFiltered(ping, ["--node", "worker"]).matched == 10)
        #expect(try replayFiltered(ping, ["--node", "worker2", "--node", "worker"]).matched == 20)
        #expect(try replayFiltered(ping, ["--not", "--node", "worker2"]).matched == 10)
        // The source pod's lxc sees the requests leave and the replies arrive.
        #expect(try replayFiltered(ping, ["--interface", "lxc839726d5"]).matched == 4)
        #expect(try replayFiltered(ping, ["--node", "worker2", "--interface", "cilium_vxlan"]).matched == 4)
        #expect(try replayFiltered(ping, ["--observation-point", "from-network"]).matched == 4)
        // Pods: every event is between the two pods; requests come from worker2-pod1.
        #expect(try replayFiltered(ping, ["--pod", "worker2-pod1"], pods: Self.pods).matched == 20)
        #expect(try replayFiltered(ping, ["--from-pod", "worker2-pod1"], pods: Self.pods).matched == 10)
        #expect(try replayFiltered(ping, ["--from-pod", "default/worker-pod1"], pods: Self.pods).matched == 10)
        #expect(try replayFiltered(ping, ["--not", "--pod", "worker-pod1"], pods: Self.pods).matched == 0)
        // The recording names its pods (pod metadata records): --pod works on replay alone.
        #expect(try replayFiltered(ping, ["--from-pod", "worker2-pod1"]).matched == 10)
        #expect(try replayFiltered("\(Fixtures.vectors)/bulk_2k.vxrec", ["--pod", "worker2-pod1"]).matched == 0, "a pod no recording names matches nothing")
        // The request's VNI is the source pod's identity.
        #expect(try replayFiltered(ping, ["--vni", "19773", "--from-ip", "10.0.2.10"]).matched == 2)
        // no_tunnel: one drop 160 on worker2; policy_denied: one drop 133 on worker.
        let noTunnel = Self.sample("no_tunnel")
        #expect(try replayFiltered(noTunnel, ["--verdict", "dropped"]).matched == 1)
        #expect(try replayFiltered(noTunnel, ["--drop-reason", "160", "--node", "worker2"]).matched == 1)
        let denied = Self.sample("policy_denied")
        #expect(try replayFiltered(denied, ["--drop-reason", "POLICY_DENIED", "--node", "worker"]).matched == 1)
        #expect(try replayFiltered(denied, ["--not", "--verdict", "dropped", "-t", "drop"]).matched == 0)
    }

    // MARK: Bad values

    @Test(
        "a bad value names the flag and the accepted forms",
        arguments: [
            ["--ip", "10.0.0.256"], ["--ip", "10.0.0.0/33"], ["--ip", "fe80::1::2"], ["--port", "0"], ["--port", ""],
            ["--port", "70000"], ["--protocol", "gre"], ["--identity", "nobody"], ["--vni", "16777216"],
            ["--observation-point", "sideways"], ["--verdict", "maybe"], ["--drop-reason", "Not a reason"],
            ["--tcp-flags", "SYN,!SYN"], ["--tcp-flags", "SYNACK"], ["-t", "drop,trace"], ["--from", "-1"],
            ["--not"], ["--not", "--outer"], ["--ip"], ["--ip", "10.0.0.0/+8"], ["--ip", "10.0.0.0/-0"],
            ["--ip", "010.0.1.10"], ["--ip", "10.0.0.0/"], ["--interface", "4294967296"], ["--interface", "0"],
            ["--port", "-1"],
        ])
    func badValues(_ arguments: [String]) {
        do {
            _ = try FilterParser.parse(arguments)
            Issue.record("\(arguments) was accepted")
        } catch {
            let flag = arguments.first { $0.hasPrefix("-") && $0 != "--not" } ?? "--not"
            #expect(error.flag == (arguments == ["--not", "--outer"] || arguments == ["--not"] ? "--not" : flag == "-t" ? "--type" : flag))
            #expect(!error.message.isEmpty)
        }
    }

    @Test("addresses parse as written: v4, v6 with :: and an IPv4 tail, CIDRs")
    func addresses() throws {
        let cases: [(String, String)] = [
            ("10.0.2.10", "10.0.2.10"), ("::", "::"), ("::1", "::1"), ("fe80::", "fe80::"),
            ("f00d::a00:1a8", "f00d::a00:1a8"), ("::ffff:10.0.0.1", "10.0.0.1"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ]
        for (text, printed) in cases {
            let ip = try #require(FilterParser.parseIP(Substring(text)), "\(text)")
            let out = OutputBuffer(capacity: 64)
            out.ip(ip)
            #expect(out.string == printed)
        }
        let prefix = try #require(FilterParser.parsePrefix("10.0.2.0/23"))
        #expect(prefix.contains(.v4(IPv4Address(rawValue: 0x0a00_03ff))))
        #expect(!prefix.contains(.v4(IPv4Address(rawValue: 0x0a00_0400))))
        let v6 = try #require(FilterParser.parsePrefix("f00d::/70"))
        #expect(v6.contains(.v6(IPv6Address(high: 0xf00d_0000_0000_0000, low: 0x03ff_ffff_ffff_ffff))))
        #expect(!v6.contains(.v6(IPv6Address(high: 0xf00d_0000_0000_0000, low: 0x0400_0000_0000_0000))))
    }

    // MARK: Summary

    @Test("--summary's total saturates: lost counts near 2^64 from a recording never make it smaller than what was shown")
    func summaryTotalSaturates() {
        var stats = PipelineStats()
        stats.events = 1_130_000
        stats.lostSamples = UInt64.max - 1
        let line = FlowCounters().table(stats).split(separator: "\n").first.map(String.init) ?? ""
        #expect(line.hasPrefix("vxmon summary: \(UInt64.max) records: 1130000 shown"), "\(line)")
        // The JSON summary's total too (Foundation's parser reads it back).
        let out = OutputBuffer(capacity: 4096)
        FlowCounters().renderJSON(stats, into: out)
        let json = (try? JSONSerialization.jsonObject(with: Data(out.string.utf8))) as? [String: Any]
        #expect((json?["records"] as? NSNumber)?.uint64Value == UInt64.max, "\(out.string.prefix(200))")
    }

    @Test("parallel workers' lost counts near 2^64 merge without wrapping (lost samples by CPU and their total)")
    func mergeSaturates() throws {
        let a = FlowCounters(), b = FlowCounters()
        a.count(LostSamples(cpu: 3, count: UInt64.max - 5, timeNanoseconds: 0, node: nil))
        b.count(LostSamples(cpu: 3, count: 10, timeNanoseconds: 0, node: nil))
        a.merge(b)
        #expect(a.lostSamples == UInt64.max && a.lostByCPU[3] == UInt64.max)
    }

    @Test("the busiest flows: 60,000 distinct flows of one event each (all tied) give the 10 first in address order, and only those 10 get text")
    func topFlowsCost() throws {
        // Trace events of distinct UDP flows 10.x.y.z:1000 -> 10.0.0.1:53, in descending address order,
        // so the winners come last; plus one flow with two events, which must come first.
        let counters = FlowCounters()
        let pipeline = EventPipeline(format: .none, diagnostics: { _ in })
        pipeline.counters = counters
        func udp(_ source: UInt32) -> [UInt8] {
            var ip: [UInt8] = [0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0]
            ip += withUnsafeBytes(of: source.bigEndian, Array.init) + [10, 0, 0, 1]
            let frame: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00] + ip + [0x03, 0xe8, 0, 53, 0, 8, 0, 0]
            var header: [UInt8] = [4, 0, 0, 0, 0, 0, 0, 0, UInt8(frame.count), 0, 0, 0, UInt8(frame.count), 0, 0, 0]
            header += [UInt8](repeating: 0, count: 16)
            return header + frame
        }
        let base: UInt32 = 0x0a00_0000
        for i in (1...60_000).reversed() { pipeline.sample(udp(base + UInt32(i)).span.bytes, cpu: 0, timeNanoseconds: 0, index: 1, offset: 0) }
        for _ in 0..<2 { pipeline.sample(udp(base + 99_999).span.bytes, cpu: 0, timeNanoseconds: 0, index: 1, offset: 0) }
        let table = counters.table(pipeline.stats)
        let section = table.split(separator: "\n").drop { !$0.contains("TOP FLOWS") }.dropFirst().prefix(10)
        // The oracle: addresses written out by hand from the input's construction.
        let want = ["10.1.134.159"] + (1...9).map { "10.0.0.\($0)" }
        #expect(section.count == 10, "\(table)")
        for (line, address) in zip(section, want) { #expect(line.contains(address + ":1000"), "\(line) / \(address)") }
        #expect(counters.describedFlows <= 10, "\(counters.describedFlows) flow texts made")
    }

    @Test("--summary totals: records shown + filtered out + lost = every record, on replay")
    func summaryTotals() throws {
        for (path, arguments) in [
            (Self.bulk, ["--protocol", "tcp"]), ("\(Fixtures.vectors)/lost_events.vxrec", []),
            (Self.sample("cross_node_ping"), ["--node", "worker"]),
        ] {
            let filter = try FilterParser.parse(arguments)
            let pipeline = EventPipeline(format: .json, filter: filter, diagnostics: { _ in })
            pipeline.learn(Self.pods[0])
            pipeline.counters = FlowCounters()
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            var consumer = pipeline
            try VxrecReader(fd: fd).run(&consumer)
            let out = OutputBuffer(capacity: 4096)
            pipeline.counters!.renderJSON(pipeline.stats, into: out)
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(out.string.utf8)) as? [String: Any])
            // The records in the file, counted independently of the pipeline.
            let records = parseVxrec(Fixtures.bytes(path))
            let samples = records.filter { $0.kind == 1 }.count
            let lost = records.filter { $0.kind == 2 }.reduce(UInt64(0)) { $0 + le64($1.body, 0) }
            let rendered = lines(pipeline.out.string).filter { !$0.contains("\"type\":\"lost\"") }.count
            #expect(summary["matched"] as? Int == rendered)
            #expect((summary["matched"] as! Int) + (summary["filtered"] as! Int) == samples)
            #expect(summary["lost_samples"] as? UInt64 ?? UInt64(summary["lost_samples"] as! Int) == lost)
            #expect(summary["records"] as? Int == samples + Int(lost))
            let byType = (summary["by_type"] as! [[String: Any]]).reduce(0) { $0 + ($1["count"] as! Int) }
            #expect(byType == rendered)
        }
    }
}
