import Foundation
import Testing
import VxmonCore

// `vxmon journey -o json|yaml` against docs/journey-schema.json and against the recordings it read.
// The oracle is Tests/scripts/validate_journey.py: jsonschema and PyYAML for the syntax and the schema,
// and Tests/scripts/vxrec_events.py (a reader of .vxrec written from spec/vxrec.md and
// spec/cilium-monitor-format.md, not from vxmon's) for the facts: every hop is an event of the
// recording at that node, point and time, the times and deltas are the events' own, the counts add
// up, the VNI is the source pod's identity. The facts of the samples asserted here come from how they
// were recorded (samples/README.md); those of the synthetic recordings from what they were built with.

/// Builders of synthetic recordings (the .vxrec container from CLISupport's `vxrec`).
private enum Synth {
    static let t0: UInt64 = 1_700_000_000_000_000_000
    static let podA: [UInt8] = [10, 0, 2, 10]  // worker2-pod1 in the samples' lab, identity 19773
    static let podB: [UInt8] = [10, 0, 1, 10]  // worker-pod1, identity 5487
    static let mac = hexBytes("862aa97c330e56a12ef41b7c")

    static func meta(_ text: String) -> Record { Record(kind: 4, body: Array(text.utf8)) }
    static func interface(_ ifindex: UInt32, _ name: String) -> Record {
        Record(kind: 3, body: leBytes(ifindex) + Array(name.utf8))
    }
    static func sample(_ body: [UInt8], at ns: UInt64) -> Record { Record(kind: 1, time: t0 + ns, body: body) }
    static func lost(_ count: UInt64, at ns: UInt64) -> Record {
        Record(kind: 2, cpu: 1, time: t0 + ns, body: leBytes(count))
    }
    static func pod(_ name: String, ip: String, identity: UInt32, node: String, namespace: String = "default")
        -> Record
    {
        meta("pod=name=\(name),namespace=\(namespace),ip=\(ip),identity=\(identity),node=\(node)")
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xffff)) }

    /// Trace v1: the 48-byte header (spec 3.1), then the packet.
    static func trace(
        _ packet: [UInt8], point: UInt8, ifindex: UInt32, source: UInt32 = 19773, destination: UInt32 = 5487
    ) -> [UInt8] {
        var h: [UInt8] = [4, point] + leBytes(UInt16(1277)) + leBytes(UInt32(0x1ee7_b1d5))
        h += leBytes(UInt32(packet.count)) + leBytes(UInt16(packet.count)) + leBytes(UInt16(1))
        h += leBytes(source) + leBytes(destination) + leBytes(UInt16(0)) + [0, 0] + leBytes(ifindex)
        h += [UInt8](repeating: 0, count: 16)
        return h + packet
    }

    /// Drop as Cilium 1.13 lays it out: the 36-byte header (spec 3.2), then the packet.
    static func drop(
        _ packet: [UInt8], reason: UInt8, ifindex: UInt32, source: UInt32 = 19773, destination: UInt32 = 5487
    ) -> [UInt8] {
        var h: [UInt8] = [1, reason] + leBytes(UInt16(12)) + leBytes(UInt32(7))
        h += leBytes(UInt32(packet.count)) + leBytes(UInt16(packet.count)) + leBytes(UInt16(1))
        h +=
            leBytes(source) + leBytes(destination) + leBytes(UInt32(0)) + leBytes(UInt16(42)) + [9, 0]
            + leBytes(ifindex)
        return h + packet
    }

    /// Policy verdict as Cilium 1.13 lays it out: the 32-byte header (spec 3.5), egress, then the packet.
    static func verdict(_ packet: [UInt8], verdict: Int32, remote: UInt32) -> [UInt8] {
        var h: [UInt8] = [5, 0] + leBytes(UInt16(1277)) + leBytes(UInt32(0))
        h += leBytes(UInt32(packet.count)) + leBytes(UInt16(packet.count)) + leBytes(UInt16(1))
        h +=
            leBytes(remote) + leBytes(UInt32(bitPattern: verdict)) + leBytes(UInt16(80)) + [6, 0x02]
            + leBytes(UInt32(0))
        return h + packet
    }

    static func ethernet(_ payload: [UInt8], type: UInt16 = 0x0800) -> [UInt8] { mac + be16(type) + payload }

    static func ipv4(_ source: [UInt8], _ destination: [UInt8], proto: UInt8, id: UInt16, _ payload: [UInt8])
        -> [UInt8]
    {
        let header: [UInt8] = [0x45, 0] + be16(UInt16(20 + payload.count)) + be16(id) + [0x40, 0, 64, proto, 0, 0]
        return header + source + destination + payload
    }

    static func icmp(type: UInt8, id: UInt16, seq: UInt16) -> [UInt8] {
        [type, 0, 0, 0] + be16(id) + be16(seq) + Array("payload!".utf8)
    }

    static func ping(
        _ source: [UInt8], _ destination: [UInt8], type: UInt8 = 8, id: UInt16, seq: UInt16 = 1, ipID: UInt16
    ) -> [UInt8] {
        ethernet(ipv4(source, destination, proto: 1, id: ipID, icmp(type: type, id: id, seq: seq)))
    }

    /// One recording that reaches the schema's rarer branches: samples lost (a lost journey), ARP (an
    /// event of no journey), 40 events of one packet (32 hops and 8 past the limit), a denying policy
    /// verdict then its drop, IP protocol 47, an ICMPv6 echo seen only at to-endpoint (a missing hop),
    /// a Geneve underlay trace (the VNI from the header), and journeys left open for the timeout (6 s
    /// later) or the end of the run.
    static func branches() -> [UInt8] {
        var r: [Record] = [
            pod("worker2-pod1", ip: "10.0.2.10", identity: 19773, node: "nodeA"),
            pod("worker-pod1", ip: "10.0.1.10", identity: 5487, node: "nodeB"),
            // nodeB's first event with an IP packet comes first (a node-to-node ping delivered to its
            // stack), so every journey knows nodeB as its destination pod's node (see destinationNodeBeforeItsFirstEvent).
            meta("node=nodeB"),
            sample(
                trace(
                    ping([172, 18, 0, 4], [172, 18, 0, 3], id: 1, ipID: 50), point: 3, ifindex: 2, source: 6,
                    destination: 1), at: 500),
            meta("node=nodeA"),
            interface(4, "lxcA"),
            interface(3, "cilium_vxlan"),
        ]
        // Everything after the lost record comes 2 s later: samples lost up to 1 s before a journey's
        // first hop count as its own (JourneyBuilder.lostLookback), and only p1's should.
        let later: UInt64 = 2_000_000_000
        let p1 = ping(podA, podB, id: 7, ipID: 100)
        r += [
            sample(trace(p1, point: 5, ifindex: 4), at: 1000), sample(trace(p1, point: 4, ifindex: 3), at: 2000),
            lost(3, at: 2500),
        ]
        let arp = ethernet(
            hexBytes("0001080006040001") + Array(mac.suffix(6)) + podA + [0, 0, 0, 0, 0, 0] + podB, type: 0x0806)
        r.append(sample(trace(arp, point: 5, ifindex: 4), at: later + 3000))
        let udp = ethernet(
            ipv4(podA, podB, proto: 17, id: 300, be16(5000) + be16(53) + be16(12) + [0, 0] + Array("abcd".utf8)))
        // At 40 places: 10 points that end nothing, on 4 nodes (a place seen again would be another
        // packet: a new journey).
        let points: [UInt8] = [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
        for i in 0..<40 {
            if i % 10 == 0 { r.append(meta("node=u\(i / 10)")) }
            r.append(sample(trace(udp, point: points[i % 10], ifindex: 4), at: later + 4000 + UInt64(i)))
        }
        r.append(meta("node=nodeA"))
        let syn = ethernet(
            ipv4(
                podA, podB, proto: 6, id: 400,
                be16(40000) + be16(80) + be32(1000) + be32(0) + [0x50, 0x02] + be16(65535) + [0, 0, 0, 0]))
        r += [
            sample(verdict(syn, verdict: -133, remote: 5487), at: later + 5000),
            sample(drop(syn, reason: 133, ifindex: 4), at: later + 5100),
        ]
        r.append(
            sample(trace(ethernet(ipv4(podA, podB, proto: 47, id: 500, [0, 0, 8, 0])), point: 5, ifindex: 4), at: later + 6000))
        let v6 =
            be32(0x6000_0000) + be16(16) + [58, 64] + hexBytes("20010db8000000000000000000000001")
            + hexBytes("20010db8000000000000000000000002")
        r.append(
            sample(
                trace(
                    ethernet(v6 + [128, 0, 0, 0] + be16(9) + be16(1) + Array("yyyyyyyy".utf8), type: 0x86dd), point: 0,
                    ifindex: 4), at: later + 7000))
        r += [meta("node=nodeB"), interface(2, "eth0")]
        let inner = ping(podA, podB, id: 8, ipID: 700)
        let geneve =
            be16(12345) + be16(6081) + be16(UInt16(16 + inner.count)) + [0, 0] + hexBytes("00006558004d3d00") + inner
        let outer = ethernet(ipv4([172, 18, 0, 4], [172, 18, 0, 3], proto: 17, id: 9, geneve))
        r += [
            sample(trace(outer, point: 10, ifindex: 2, source: 0, destination: 0), at: later + 8000),
            sample(trace(inner, point: 9, ifindex: 3), at: later + 8100), sample(trace(inner, point: 0, ifindex: 5), at: later + 8200),
        ]
        let late = ping(podB, podA, id: 9, ipID: 800)
        r += [
            sample(trace(late, point: 5, ifindex: 5, source: 5487, destination: 19773), at: later + 6_000_000_000),
            sample(trace(late, point: 4, ifindex: 3, source: 5487, destination: 19773), at: later + 6_000_001_000),
        ]
        return vxrec(r)
    }

    /// A cross-node ping and its reply whose names (a node, a pod, a namespace, an interface) hold
    /// terminal escapes, C1 controls and bidi overrides; the reply is dropped there.
    static let hostileNode = "evil\u{1b}[31m\u{202e}node\u{7}"
    static func hostile() -> [UInt8] {
        var r: [Record] = [
            pod(
                "pod\u{1b}]0;title\u{7}\u{2066}A", ip: "10.0.2.10", identity: 19773, node: hostileNode,
                namespace: "ns\u{9b}1m"),
            pod("worker-pod1", ip: "10.0.1.10", identity: 5487, node: "nodeB"),
            meta("node=" + hostileNode), interface(4, "lxc\u{1b}[2J\u{202d}"), interface(3, "cilium_vxlan"),
        ]
        let request = ping(podA, podB, id: 7, ipID: 100)
        r += [
            sample(trace(request, point: 5, ifindex: 4), at: 1000),
            sample(trace(request, point: 4, ifindex: 3), at: 2000),
        ]
        r += [
            meta("node=nodeB"), sample(trace(request, point: 9, ifindex: 3), at: 3000),
            sample(trace(request, point: 0, ifindex: 4), at: 4000),
        ]
        let reply = ping(podB, podA, type: 0, id: 7, ipID: 200)
        r += [
            sample(trace(reply, point: 5, ifindex: 4, source: 5487, destination: 19773), at: 5000),
            sample(trace(reply, point: 4, ifindex: 3, source: 5487, destination: 19773), at: 6000),
            meta("node=" + hostileNode),
            sample(trace(reply, point: 9, ifindex: 3, source: 5487, destination: 19773), at: 7000),
            sample(drop(reply, reason: 133, ifindex: 4, source: 5487, destination: 19773), at: 8000),
        ]
        return vxrec(r)
    }
}

@Suite("vxmon journey: JSON/YAML against docs/journey-schema.json and the recording")
struct JourneyOutputTests {
    let samples = CLIFixtures.packageRoot + "/samples"

    func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "/vxmon-journey-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs `vxmon journey RECORDING -o FORMAT --summary ARGS` into DIR/NAME.FORMAT; returns the path.
    func journey(_ recording: String, _ format: String, _ arguments: [String] = [], into path: String) throws -> String
    {
        let r = try run(Binary.vxmon, ["journey", recording, "-o", format, "--summary"] + arguments, stdoutFile: path)
        #expect(r.status == 0, "vxmon journey \(recording) -o \(format) \(arguments): \(r.stderr)")
        return path
    }

    /// validate_journey.py on the JSON and YAML of `recording` (with `arguments` given to vxmon).
    func validate(_ recording: String, _ arguments: [String] = [], in dir: String, label: String) throws -> (
        json: String, stdout: String
    ) {
        let python = try #require(which("python3"), "python3 is the oracle's host")
        let json = try journey(recording, "json", arguments, into: "\(dir)/\(label).json")
        let yaml = try journey(recording, "yaml", arguments, into: "\(dir)/\(label).yaml")
        let script = CLIFixtures.packageRoot + "/Tests/scripts/validate_journey.py"
        let r = try run(python, [script, recording, "--json", json, "--yaml", yaml, "--summary"])
        #expect(
            r.status == 0 && r.stdout.contains("journey output valid"), "\(label) \(arguments):\n\(r.stdout)\(r.stderr)"
        )
        return (CLIFixtures.text(json) ?? "", r.stdout)
    }

    /// The records of a JSON output (Foundation's JSONSerialization reads them).
    func records(_ json: String) throws -> (journeys: [[String: Any]], summary: [String: Any]?) {
        var journeys: [[String: Any]] = []
        var summary: [String: Any]?
        for line in json.split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            if let j = object["journey"] as? [String: Any] { journeys.append(j) }
            if let s = object["journey_summary"] as? [String: Any] { summary = s }
        }
        return (journeys, summary)
    }

    func write(_ bytes: [UInt8], _ path: String) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("every sample: -o json --summary and -o yaml --summary validate against the schema and the recording")
    func samplesValidate() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: samples)) ?? []).filter {
            $0.hasSuffix(".vxrec")
        }.sorted()
        #expect(names.count >= 5, "samples: \(names)")
        for name in names {
            let (_, out) = try validate("\(samples)/\(name)", in: dir, label: String(name.dropLast(6)))
            // Not vacuous: hops were matched to the recording's events.
            #expect(out.contains("hops matched to events"), "\(name): \(out)")
        }
    }

    @Test("a synthetic recording of the rarer branches validates, also when journeys are evicted (--max-open)")
    func syntheticBranches() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = try write(Synth.branches(), "\(dir)/branches.vxrec")
        let (json, _) = try validate(file, in: dir, label: "default")
        let (journeys, summary) = try records(json)
        let s = try #require(summary)
        // What the recording was built with: 53 samples, 1 ARP, 40 events of one packet, 3 lost.
        #expect(s["events"] as? Int == 53)
        #expect(s["events_of_no_journey"] as? Int == 1)
        #expect(s["hops_past_limit"] as? Int == 8)
        #expect(s["lost_samples"] as? Int == 3 && s["lost_records"] as? Int == 1)
        let outcomes = journeys.map { $0["outcome"] as? String ?? "" }
        #expect(outcomes.filter { $0 == "lost" }.count == 1, "\(outcomes)")
        #expect(outcomes.filter { $0 == "dropped" }.count == 1, "\(outcomes)")
        #expect(journeys.contains { $0["protocol"] as? String == "IP-47" })
        #expect(journeys.contains { $0["vni_source"] as? String == "vxlan-header" && $0["vni"] as? Int == 19773 })
        #expect(
            journeys.contains {
                ($0["hops"] as? [[String: Any]])?.contains { $0["kind"] as? String == "policy-verdict" } == true
            })
        #expect(
            journeys.contains { ($0["missing"] as? [Any])?.isEmpty == false && $0["outcome"] as? String == "delivered" }
        )
        #expect(journeys.filter { $0["close_reason"] as? String == "timeout" }.count == s["timed_out"] as? Int)
        #expect((s["timed_out"] as? Int ?? 0) >= 1)
        for maxOpen in ["1", "2"] {
            let (evicted, _) = try validate(file, ["--max-open", maxOpen], in: dir, label: "max\(maxOpen)")
            let closed = try records(evicted).journeys.map { $0["close_reason"] as? String ?? "" }
            #expect(closed.contains("evicted"), "--max-open \(maxOpen): \(closed)")
        }
    }

    @Test("cross_node_ping: 2 requests and 2 replies, complete, 5 hops each, VNI 19773 out and 5487 back")
    func crossNodePing() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (json, _) = try validate("\(samples)/cross_node_ping.vxrec", in: dir, label: "ping")
        let (journeys, summary) = try records(json)
        // samples/README.md: `ping -c 2` from worker2-pod1 (10.0.2.10, identity 19773) to worker-pod1
        // (10.0.1.10, identity 5487), recorded with the underlay traced.
        #expect(journeys.map { $0["role"] as? String ?? "" } == ["request", "reply", "request", "reply"])
        let path = ["from-endpoint", "to-overlay", "from-network", "from-overlay", "to-endpoint"]
        for j in journeys {
            let request = j["role"] as? String == "request"
            #expect(j["complete"] as? Bool == true && j["outcome"] as? String == "delivered")
            let hops = try #require(j["hops"] as? [[String: Any]])
            #expect(hops.count == 5)
            #expect(hops.map { $0["point"] as? String ?? "" } == path)
            let (from, to) = request ? ("worker2", "worker") : ("worker", "worker2")
            #expect(hops.map { $0["node"] as? String ?? "" } == [from, from, to, to, to])
            #expect(j["source"] as? String == (request ? "10.0.2.10" : "10.0.1.10"))
            #expect(j["vni"] as? Int == (request ? 19773 : 5487))
            let vnis = try #require(j["vnis"] as? [String: Any])
            #expect(vnis["request"] as? Int == 19773 && vnis["reply"] as? Int == 5487)
        }
        #expect(journeys.compactMap { $0["icmp_seq"] as? Int } == [1, 1, 2, 2])
        let s = try #require(summary)
        #expect(s["journeys"] as? Int == 4 && s["complete"] as? Int == 4 && s["pairs"] as? Int == 2)
    }

    @Test("policy_denied: the journey ends at its drop on worker, Policy denied (133)")
    func policyDenied() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (json, _) = try validate("\(samples)/policy_denied.vxrec", in: dir, label: "denied")
        let (journeys, summary) = try records(json)
        #expect(journeys.count == 1)
        let j = try #require(journeys.first)
        #expect(j["outcome"] as? String == "dropped" && j["complete"] as? Bool == false)
        #expect(j["drop_reason_code"] as? Int == 133 && j["drop_reason"] as? String == "Policy denied")
        let last = try #require((j["hops"] as? [[String: Any]])?.last)
        #expect(
            last["kind"] as? String == "drop" && last["node"] as? String == "worker"
                && last["drop_reason_code"] as? Int == 133)
        #expect((j["stopped_at"] as? [String: Any])?["node"] as? String == "worker")
        #expect((summary?["outcomes"] as? [String: Any])?["dropped"] as? Int == 1)
    }

    @Test("a filter selects whole journeys: --node worker keeps all 5 hops; --ip 10.9.9.9 shows none, still counted")
    func filterSelectsJourneys() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ping = "\(samples)/cross_node_ping.vxrec"
        for node in ["worker", "worker2"] {
            let (json, _) = try validate(ping, ["--node", node], in: dir, label: "node_\(node)")
            let (journeys, summary) = try records(json)
            #expect(journeys.count == 4, "--node \(node)")
            for j in journeys {
                let nodes = Set((j["hops"] as? [[String: Any]] ?? []).compactMap { $0["node"] as? String })
                #expect((j["hops"] as? [Any])?.count == 5 && nodes == ["worker", "worker2"], "--node \(node): \(j)")
            }
            #expect(summary?["shown"] as? Int == 4 && summary?["journeys"] as? Int == 4)
        }
        let (json, _) = try validate(ping, ["--ip", "10.9.9.9"], in: dir, label: "ip")
        let (journeys, summary) = try records(json)
        #expect(journeys.isEmpty)
        let s = try #require(summary)
        #expect(
            s["shown"] as? Int == 0 && s["journeys"] as? Int == 4 && s["events"] as? Int == 20
                && s["hops"] as? Int == 20)
    }

    @Test("hostile node, pod and interface names: no control characters in the text and summary; JSON keeps them")
    func hostileNames() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = try write(Synth.hostile(), "\(dir)/hostile.vxrec")
        let r = try run(Binary.vxmon, ["journey", file, "--summary"])
        #expect(r.status == 0, "\(r.stderr)")
        // Not vacuous: the node's printable part and both journeys are there.
        #expect(r.stdout.contains("evil") && r.stdout.contains("#2 reply"), "\(r.stdout)")
        #expect(r.stderr.contains("evil"), "the summary names the paths: \(r.stderr)")
        for (stream, text) in [("stdout", r.stdout), ("stderr", r.stderr)] {
            let bad = text.unicodeScalars.filter { s in
                s != "\n" && (s.properties.generalCategory == .control || s.properties.generalCategory == .format)
            }
            #expect(
                bad.isEmpty,
                "\(stream) holds \(bad.map { String(format: "U+%04X", $0.value) }): \(text.debugDescription)")
        }
        // The validator matches hops to events by node name: the JSON and YAML keep the name exactly.
        let (json, _) = try validate(file, in: dir, label: "hostile")
        let (journeys, _) = try records(json)
        #expect(journeys.count == 2)
        #expect(
            journeys.first.flatMap { ($0["hops"] as? [[String: Any]])?.first?["node"] as? String } == Synth.hostileNode)
    }

    @Test("the oracle is not vacuous: validate_journey.py rejects a delta, a VNI or a time that is not the recording's")
    func oracleRejects() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let python = try #require(which("python3"))
        let recording = "\(samples)/cross_node_ping.vxrec"
        let json = try #require(CLIFixtures.text(try journey(recording, "json", into: "\(dir)/good.json")))
        let script = CLIFixtures.packageRoot + "/Tests/scripts/validate_journey.py"
        // Each mutation breaks one fact the recording decides (the first journey's third hop, from-network
        // on worker: delta 54191 ns, VNI 19773, time 1796148547630757475).
        let mutations: [(String, String, String)] = [
            ("\"delta_ns\":54191", "\"delta_ns\":54192", "delta_ns"),
            ("\"vni\":19773,\"outer_source\"", "\"vni\":19774,\"outer_source\"", "VNI"),
            (
                "\"time\":\"2026-12-01T18:09:07.630757475Z\",\"time_ns\":1796148547630757475,",
                "\"time\":\"2026-12-01T18:09:07.630757476Z\",\"time_ns\":1796148547630757476,", "no event"
            ),
        ]
        for (from, to, expected) in mutations {
            #expect(json.contains(from), "the sample's output changed: \(from) not found")
            let path = "\(dir)/bad.json"
            try Data(json.replacingOccurrences(of: from, with: to).utf8).write(to: URL(fileURLWithPath: path))
            let r = try run(python, [script, recording, "--json", path, "--summary"])
            #expect(r.status == 1 && r.stdout.contains("FAIL") && r.stdout.contains(expected), "\(to): \(r.stdout)")
        }
    }

    @Test("a journey closed before its destination pod's node sent an event still names that node as its path's end")
    func destinationNodeBeforeItsFirstEvent() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // nodeA's ping to a pod of nodeB is evicted (--max-open 1) by a second packet before nodeB's
        // first event; the pod records say from the start that the destination pod is on nodeB.
        let request = Synth.ping(Synth.podA, Synth.podB, id: 7, ipID: 100)
        let other = Synth.ping(Synth.podA, Synth.podB, id: 7, seq: 2, ipID: 101)
        let file = try write(
            vxrec([
                Synth.pod("worker2-pod1", ip: "10.0.2.10", identity: 19773, node: "nodeA"),
                Synth.pod("worker-pod1", ip: "10.0.1.10", identity: 5487, node: "nodeB"),
                Synth.meta("node=nodeA"),
                Synth.sample(Synth.trace(request, point: 5, ifindex: 4), at: 1000),
                Synth.sample(Synth.trace(request, point: 4, ifindex: 3), at: 2000),
                Synth.sample(Synth.trace(other, point: 5, ifindex: 4), at: 3000),
                Synth.meta("node=nodeB"),
                Synth.sample(Synth.trace(other, point: 9, ifindex: 3), at: 4000),
            ]), "\(dir)/late.vxrec")
        let whole = try records(CLIFixtures.text(try journey(file, "json", into: "\(dir)/whole.json")) ?? "")
        #expect(whole.journeys.first?["close_reason"] as? String == "end-of-run")
        #expect((whole.summary?["paths"] as? [[String: Any]])?.first?["destination_node"] as? String == "nodeB")
        let (journeys, summary) = try records(
            CLIFixtures.text(try journey(file, "json", ["--max-open", "1"], into: "\(dir)/late.json")) ?? "")
        #expect(journeys.first?["close_reason"] as? String == "evicted")
        let paths = (summary?["paths"] as? [[String: Any]]) ?? []
        // Without --max-open the same journey closes at the end of the run, after nodeB's event, and its
        // path ends at nodeB: the path must not depend on when the journey was closed.
        #expect(paths.first?["destination_node"] as? String == "nodeB", "\(paths)")
    }
}
