import Foundation
import Testing
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive

#if canImport(Glibc)
    import Glibc
#endif

// The `vxmon` executable live on a lab, as a user runs it (through the lab's agent): every flow filter
// under `--not`, live and on replay of a recording of the same traffic, against one predicate that
// this test implements itself over the recording's JSON fields (not vxmon's filter code); `-vv` into a
// file named `cni_monitor.yaml`, loaded by PyYAML; and the warning for filters that need underlay
// traces the lab does not make.

/// A field of a JSON record by path (`["l4", "TCP", "flags"]`).
private func field(_ r: [String: Any], _ path: String...) -> Any? {
    var v: Any? = r
    for key in path { v = (v as? [String: Any])?[key] }
    return v
}

/// The records' JSON lines, parsed (lost records left out: they always pass).
private func events(_ text: String) -> [(line: String, record: [String: Any])] {
    lines(text).compactMap { line in
        guard let r = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], r["type"] as? String != "lost"
        else { return nil }
        return (line, r)
    }
}

@Suite(
    "the vxmon executable live on a lab (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct LiveCLIFilterTests {
    @Test("every flow filter under --not selects the same events live and replayed as the test's own predicate; -vv > cni_monitor.yaml is YAML")
    func negatedFiltersLiveAndReplayed() throws {
        try LabGate.check()
        let lab = LabNames.make("not")
        let dir = NSTemporaryDirectory() + "/vxmon-not-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var clients: [Process] = []
        defer {
            for p in clients where p.isRunning { p.terminate() }
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab, "--trace-underlay", "--no-hubble"], check: false)
        try #require(up.status == 0, "\(up.errorOutput)")
        let topology = try #require(Lab(name: lab).recordedTopology())
        func pod(_ node: String, _ n: Int) throws -> LabTopology.Pod {
            try #require(topology.pods.filter { $0.node == node }.dropFirst(n).first)
        }
        let a = try pod("worker2", 0), d = try pod("worker2", 1), b = try pod("worker", 0), c = try pod("worker", 1)
        let worker = try #require(topology.node(named: "worker"))
        let deny = try Shell.run(
            [FaultTests.vxmon, "policy", "add", "--lab", lab, "--from", a.name, "--to", c.name, "--proto", "icmp", "--deny"], check: false)
        try #require(deny.status == 0, "\(deny.errorOutput)")
        // Neighbour entries first, so that the traffic below is all there is.
        for p in [b, c, d] { try inNamespace(a.namespace, ["ping", "-c", "1", "-W", "1", p.ip]) }

        // (flag words, the predicate the events they select must satisfy without --not)
        let ip = { (r: [String: Any], side: String?) -> [String] in
            let s = field(r, "IP", "source") as? String, t = field(r, "IP", "destination") as? String
            return (side == "to" ? [t] : side == "from" ? [s] : [s, t]).compactMap { $0 }
        }
        let ports = { (r: [String: Any], key: String) -> [Int] in
            ["TCP", "UDP"].compactMap { field(r, "l4", $0, key) as? Int }
        }
        let cases: [([String], ([String: Any]) -> Bool)] = [
            (["--ip", b.ip], { ip($0, nil).contains(b.ip) }),
            (["--from-ip", a.ip], { ip($0, "from").contains(a.ip) }),
            (["--to-ip", "10.0.1.0/24"], { ip($0, "to").contains { $0.hasPrefix("10.0.1.") } }),
            (["--port", "8080"], { ports($0, "source_port").contains(8080) || ports($0, "destination_port").contains(8080) }),
            (["--from-port", "8080"], { ports($0, "source_port").contains(8080) }),
            (["--to-port", "5000"], { ports($0, "destination_port").contains(5000) }),
            (["--protocol", "icmp"], { field($0, "l4", "ICMPv4") != nil || field($0, "l4", "ICMPv6") != nil }),
            (["--protocol", "udp"], { field($0, "l4", "UDP") != nil }),
            (["--identity", "\(a.identity)"], {
                field($0, "source", "identity") as? Int == Int(a.identity) || field($0, "destination", "identity") as? Int == Int(a.identity)
            }),
            (["--from-identity", "\(a.identity)"], { field($0, "source", "identity") as? Int == Int(a.identity) }),
            (["--to-identity", "\(b.identity)"], { field($0, "destination", "identity") as? Int == Int(b.identity) }),
            (["--pod", c.name], { ip($0, nil).contains(c.ip) }),
            (["--from-pod", b.name], { ip($0, "from").contains(b.ip) }),
            (["--to-pod", d.name], { ip($0, "to").contains(d.ip) }),
            (["--vni", "\(a.identity)"], { field($0, "tunnel", "vni") as? Int == Int(a.identity) }),
            (["--observation-point", "to-overlay"], { $0["trace_observation_point"] as? String == "TO_OVERLAY" }),
            (["--verdict", "dropped"], { $0["type"] as? String == "drop" }),
            (["--drop-reason", "133"], { $0["drop_reason"] as? Int == 133 }),
            (["--interface", "cilium_vxlan"], { field($0, "interface", "name") as? String == "cilium_vxlan" }),
            (["--node", "worker"], { $0["node_name"] as? String == "worker" }),
            (["--node", "worker2", "--node", "control-plane"], { $0["node_name"] as? String != "worker" }),
            (["--tcp-flags", "SYN"], { (field($0, "l4", "TCP", "flags") as? [String])?.contains("SYN") == true }),
            (["--outer", "--ip", worker.ip], {
                let outer = (field($0, "tunnel", "IP") ?? field($0, "IP")) as? [String: Any]
                return outer?["source"] as? String == worker.ip || outer?["destination"] as? String == worker.ip
            }),
        ]
        /// `--not` before the flag (after `--outer`, which is not a filter of its own).
        func negated(_ words: [String]) -> [String] {
            var out: [String] = []
            var i = 0
            while i < words.count {
                if words[i] == "--outer" {
                    out.append(words[i])
                    i += 1
                    continue
                }
                out += ["--not", words[i], words[i + 1]]
                i += 2
            }
            return out
        }

        let seconds = "7"
        let recording = dir + "/all.vxrec"
        clients.append(try LabAgentTests.vxmon(["record", "--lab", lab, "-w", recording, "--duration", seconds]))
        for (i, (words, _)) in cases.enumerated() {
            clients.append(
                try LabAgentTests.vxmon(
                    ["--lab", lab, "-o", "json", "--duration", seconds] + negated(words), stdout: "\(dir)/\(i).json",
                    stderr: "\(dir)/\(i).err"))
        }
        // The mission's own command, as a live client too.
        clients.append(
            try LabAgentTests.vxmon(
                ["--lab", lab, "-vv", "--duration", seconds], stdout: dir + "/cni_monitor.yaml", stderr: dir + "/yaml.err"))
        let paths = LabPaths(lab: lab)
        try #require(
            LabAgentTests.waitFor(10) { (AgentStatus.read(paths)?.clients.count ?? 0) >= clients.count },
            "every client connected: \(AgentStatus.read(paths)?.clients.count ?? 0) of \(clients.count)")
        usleep(300_000)
        let start = rfc3339Now()

        // Cross-node and same-node pings, one denied by policy, a TCP exchange and a UDP exchange.
        let serverProcess = try startEchoServer(in: b, dir: dir)
        defer { if serverProcess.isRunning { serverProcess.terminate() } }
        try inNamespace(a.namespace, ["ping", "-c", "2", "-i", "0.2", "-W", "1", b.ip])
        try inNamespace(a.namespace, ["ping", "-c", "1", "-W", "1", d.ip])
        try inNamespace(a.namespace, ["ping", "-c", "1", "-W", "1", c.ip])
        let exchange = try echoExchange(from: a, to: b.ip)
        #expect(exchange.status == 0, "\(exchange.errorOutput)")
        let end = rfc3339Now()
        for p in clients { p.waitUntilExit() }
        for (i, p) in clients.enumerated() {
            #expect(p.terminationStatus == 0, "client \(i): \(LabAgentTests.text("\(dir)/\(i).err"))")
        }

        // Only the traffic's own window: every client was reading then (and only then is that sure).
        // (vxmon's `time` is RFC 3339 in UTC with nine digits: such strings sort as their times do.)
        func inWindow(_ r: [String: Any]) -> Bool {
            guard let t = r["time"] as? String, t.count == start.count else { return false }
            return t >= start && t <= end
        }
        let replayAll = try Shell.run([FaultTests.vxmon, "replay", recording, "-o", "json"], check: false)
        try #require(replayAll.status == 0, "\(replayAll.errorOutput)")
        let all = events(replayAll.output).filter { inWindow($0.record) }
        #expect(all.count > 60, "the traffic's events: \(all.count)")
        #expect(all.contains { $0.record["type"] as? String == "drop" }, "a policy drop")

        for (i, (words, predicate)) in cases.enumerated() {
            let expected = all.filter { !predicate($0.record) }.map(\.line)
            #expect(expected.count > 0 && expected.count < all.count, "\(words): the traffic must hold events on both sides")
            let live = events(LabAgentTests.text("\(dir)/\(i).json")).filter { inWindow($0.record) }.map(\.line)
            #expect(live == expected, "live --not \(words.joined(separator: " ")): \(live.count) events, expected \(expected.count)")
            let replay = try Shell.run([FaultTests.vxmon, "replay", recording, "-o", "json"] + negated(words), check: false)
            #expect(replay.status == 0, "\(replay.errorOutput)")
            let replayed = events(replay.output).filter { inWindow($0.record) }.map(\.line)
            #expect(replayed == expected, "replayed --not \(words.joined(separator: " ")): \(replayed.count), expected \(expected.count)")
        }

        // -vv > cni_monitor.yaml: said once, and PyYAML loads one document per event, with the layers.
        let yamlErr = LabAgentTests.text(dir + "/yaml.err")
        #expect(yamlErr.contains("standard output is cni_monitor.yaml: writing YAML"), "\(yamlErr)")
        let python = try #require(which("python3"))
        let load = try Shell.run(
            [python, "-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
             dir + "/cni_monitor.yaml"], check: false)
        try #require(load.status == 0, "PyYAML: \(load.errorOutput)")
        let docs = try #require(try JSONSerialization.jsonObject(with: Data(load.output.utf8)) as? [[String: Any]])
        let windowDocs = docs.filter(inWindow)
        #expect(windowDocs.count == all.count, "one document per event")
        let traces = windowDocs.filter { $0["type"] as? String == "trace" }
        #expect(!traces.isEmpty)
        for doc in traces {
            let monitor = (doc["monitor"] as? [String]) ?? []
            #expect(monitor.first?.hasPrefix("CPU ") == true && monitor.contains { $0.hasPrefix("Ethernet\t{") }, "\(monitor)")
        }
    }

    @Test("a filter the lab cannot match says so at start: VNI and --outer without underlay traces, unknown nodes")
    func unmatchableFilters() throws {
        try LabGate.check()
        let lab = LabNames.make("um")
        defer { _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false) }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab, "--no-hubble"], check: false)
        try #require(up.status == 0, "\(up.errorOutput)")
        for words in [["--vni", "19773"], ["--outer", "--from-ip", "172.18.0.4"], ["--observation-point", "from-network"]] {
            let r = try Shell.run([FaultTests.vxmon, "--lab", lab, "--duration", "0.3"] + words, check: false)
            #expect(r.status == 0, "\(r.errorOutput)")
            #expect(r.errorOutput.contains("does not trace them: nothing will match"), "\(words): \(r.errorOutput)")
            #expect(r.errorOutput.contains("--trace-underlay"), "names the fix: \(r.errorOutput)")
        }
        // Negated, a VNI filter matches everything: no warning.
        let negatedVNI = try Shell.run([FaultTests.vxmon, "--lab", lab, "--duration", "0.3", "--not", "--vni", "1"], check: false)
        #expect(!negatedVNI.errorOutput.contains("nothing will match"), "\(negatedVNI.errorOutput)")
        // With underlay traces on, no warning either.
        let topology = try #require(Lab(name: lab).recordedTopology())
        for node in topology.nodes { try NodeMaps(paths: LabPaths(lab: lab), node: node.name).setTraceUnderlay(true) }
        let traced = try Shell.run([FaultTests.vxmon, "--lab", lab, "--duration", "0.3", "--vni", "1"], check: false)
        #expect(traced.status == 0 && !traced.errorOutput.contains("nothing will match"), "\(traced.errorOutput)")
        // A node the lab does not have, negated or not: a usage error naming the nodes it has.
        for words in [["--node", "wrker"], ["--not", "--node", "wrker"]] {
            let r = try Shell.run([FaultTests.vxmon, "--lab", lab, "--duration", "0.3"] + words, check: false)
            #expect(r.status == 64, "\(words): \(r.status) \(r.errorOutput)")
            #expect(r.errorOutput.contains("has no node wrker") && r.errorOutput.contains("worker2"), "\(r.errorOutput)")
        }
    }
}

/// Now as RFC 3339 in UTC with nanoseconds (`2026-12-05T19:07:12.123456789Z`), from CLOCK_REALTIME.
func rfc3339Now() -> String {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    var t = ts.tv_sec
    var tm = tm()
    gmtime_r(&t, &tm)
    return String(
        format: "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
        Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), ts.tv_nsec)
}
