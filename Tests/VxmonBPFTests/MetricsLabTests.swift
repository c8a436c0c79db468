import Foundation
import Testing
import VxmonLab
import VxmonLive

#if canImport(Glibc)
    import Glibc
#endif

/// The agent's /metrics on a live lab. Oracles: ping's own counts (N requests and N replies, 4 trace
/// events each without underlay tracing: 8N forwarded flows; a denied ping is 3 forwarded traces and
/// 1 drop), the same run's recording counted by a reader written from the .vxrec spec
/// (Tests/scripts/vxrec_count.py), the datagrams a Python sender counts, Prometheus's Python client
/// (urllib scrapes, its parsers), promtool, and raw-socket attackers (metrics_hostile.py).
@Suite("agent /metrics on a live lab (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct MetricsLabTests {
    static let scripts = GoOracle.packageRoot + "/Tests/scripts"

    /// A loopback port nothing listens on now.
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &sa) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 ? getsockname(fd, $0, &length) : -1 }
        }
        try #require(rc == 0, "bind 127.0.0.1:0")
        return UInt16(bigEndian: sa.sin_port)
    }

    /// A scrape through urllib, parsed by prometheus_client: family -> samples.
    static func scrape(_ port: UInt16, openMetrics: Bool = false, saveTo: String? = nil) throws
        -> [String: [(name: String, labels: [String: String], value: Double)]]
    {
        var arguments = [scripts + "/metrics_parse.py", "url", "http://127.0.0.1:\(port)/metrics", openMetrics ? "openmetrics" : "text"]
        if let saveTo { arguments.append(saveTo) }
        let r = try Shell.run(["python3"] + arguments, check: false)
        try #require(r.status == 0, "scrape: \(r.errorOutput)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any])
        var result: [String: [(name: String, labels: [String: String], value: Double)]] = [:]
        for family in object["families"] as? [[String: Any]] ?? [] {
            result[family["name"] as? String ?? ""] = (family["samples"] as? [[String: Any]] ?? []).map {
                (name: $0["name"] as? String ?? "", labels: $0["labels"] as? [String: String] ?? [:],
                 value: ($0["value"] as? NSNumber)?.doubleValue ?? .nan)
            }
        }
        return result
    }

    /// The sum of a family's samples whose labels include `match`.
    static func sum(
        _ families: [String: [(name: String, labels: [String: String], value: Double)]], _ family: String,
        _ match: [String: String] = [:]
    ) -> Double {
        (families[family] ?? []).filter { s in match.allSatisfy { s.labels[$0.key] == $0.value } }.reduce(0) { $0 + $1.value }
    }

    /// ping's "T packets transmitted, R received".
    static func pingCounts(_ output: String) -> (Int, Int)? {
        guard let line = output.split(separator: "\n").first(where: { $0.contains("packets transmitted") }) else { return nil }
        let words = line.split(separator: " ")
        guard words.count > 3, let t = Int(words[0]), let r = Int(words[3]) else { return nil }
        return (t, r)
    }

    /// Samples per node and message type in a recording (the spec-level Python reader).
    static func recorded(_ path: String) throws -> (samples: [String: [String: Int]], lost: Int) {
        let r = try Shell.run(["python3", scripts + "/vxrec_count.py", path], check: false)
        try #require(r.status == 0, "\(r.errorOutput)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any])
        let lost = (object["lost"] as? [String: Int] ?? [:]).values.reduce(0, +)
        return (object["samples"] as? [String: [String: Int]] ?? [:], lost)
    }

    @Test("lab up --metrics: N cross-node pings are 8N forwarded flows, a denied ping a Policy denied drop, as ping and the same run's recording say; promtool accepts the real scrape; hostile HTTP during the run costs the recorder nothing; a restarted agent serves again")
    func countsOnALiveLab() throws {
        try LabGate.check()
        let lab = LabNames.make("mx")
        let paths = LabPaths(lab: lab)
        let dir = NSTemporaryDirectory() + "vxmon-metrics-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var recorder: Process?
        defer {
            if let recorder, recorder.isRunning { recorder.terminate() }
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let port = try Self.freePort()
        let up = try Shell.run(
            [FaultTests.vxmon, "lab", "up", "--lab", lab, "--no-hubble", "--metrics", "127.0.0.1:\(port)"], check: false)
        try #require(up.status == 0, "\(up.output) \(up.errorOutput)")
        let args = (try? String(contentsOfFile: paths.agentArguments, encoding: .utf8)) ?? ""
        #expect(args.contains("--metrics\n127.0.0.1:\(port)\n"), "agent.args keeps the metrics address: \(args)")
        let topology = try #require(Lab(name: lab).recordedTopology())
        func pod(_ node: String, _ n: Int) throws -> LabTopology.Pod {
            try #require(topology.pods.filter { $0.node == node }.dropFirst(n).first)
        }
        let a = try pod("worker2", 0), b = try pod("worker", 0), c = try pod("worker", 1)

        // The same run recorded by a client of the agent.
        let recording = dir + "/run.vxrec"
        recorder = try LabAgentTests.vxmon(["record", "--lab", lab, "-w", recording, "--duration", "30"], stderr: dir + "/rec.err")
        try #require(LabAgentTests.waitFor(10) { (AgentStatus.read(paths)?.clients.count ?? 0) >= 1 }, "the recorder connected")
        usleep(300_000)
        let before = try Self.scrape(port)
        #expect(Self.sum(before, "vxmon_agent_clients") == 1)

        // N cross-node pings: 8N forwarded flows (from-endpoint, to-overlay, from-overlay, to-endpoint,
        // for the request and the reply).
        let n = 5
        let ping = try inNamespace(a.namespace, ["ping", "-c", "\(n)", "-i", "0.2", "-W", "1", b.ip])
        let (sent, received) = try #require(Self.pingCounts(ping.output), "\(ping.output)")
        #expect(sent == n && received == n, "\(ping.output)")
        let forwarded = Double(4 * sent + 4 * received)
        var afterPings = before
        _ = LabAgentTests.waitFor(5) {
            afterPings = (try? Self.scrape(port)) ?? afterPings
            return Self.sum(afterPings, "hubble_flows_processed", ["verdict": "FORWARDED"])
                - Self.sum(before, "hubble_flows_processed", ["verdict": "FORWARDED"]) >= forwarded
        }
        func delta(_ family: String, _ match: [String: String] = [:]) -> Double {
            Self.sum(afterPings, family, match) - Self.sum(before, family, match)
        }
        #expect(delta("hubble_flows_processed", ["verdict": "FORWARDED"]) == forwarded, "8N forwarded flows")
        #expect(delta("hubble_flows_processed", ["verdict": "FORWARDED", "type": "Trace", "protocol": "ICMPv4"]) == forwarded)
        for point in ["from-endpoint", "to-overlay", "from-overlay", "to-endpoint"] {
            #expect(delta("hubble_flows_processed", ["subtype": point]) == Double(sent + received), "\(point)")
        }
        #expect(delta("hubble_icmp", ["type": "EchoRequest", "family": "IPv4"]) == Double(4 * sent))
        #expect(delta("hubble_icmp", ["type": "EchoReply"]) == Double(4 * received))
        // Requests are not replies: 4 per request at port 0; the replies are not counted.
        #expect(delta("hubble_port_distribution", ["protocol": "ICMPv4", "port": "0"]) == Double(4 * sent))
        #expect(delta("hubble_flows_processed", ["node": "worker2"]) == forwarded / 2)
        #expect(delta("hubble_drop") == 0)

        // A denied ping: 3 forwarded traces up to worker's overlay, then a Policy denied drop on worker.
        let deny = try Shell.run(
            [FaultTests.vxmon, "policy", "add", "--lab", lab, "--from", a.name, "--to", c.name, "--proto", "icmp", "--deny"],
            check: false)
        try #require(deny.status == 0, "\(deny.errorOutput)")
        let denied = try inNamespace(a.namespace, ["ping", "-c", "2", "-i", "0.3", "-W", "1", c.ip])
        let (deniedSent, deniedReceived) = try #require(Self.pingCounts(denied.output), "\(denied.output)")
        #expect(deniedReceived == 0)
        var afterDrop = afterPings
        _ = LabAgentTests.waitFor(5) {
            afterDrop = (try? Self.scrape(port)) ?? afterDrop
            return Self.sum(afterDrop, "hubble_drop") - Self.sum(afterPings, "hubble_drop") >= Double(deniedSent)
        }
        let drops = afterDrop["hubble_drop"] ?? []
        #expect(drops.count == 1, "\(drops)")
        #expect(drops.first?.labels == ["node": "worker", "protocol": "ICMPv4", "reason": "Policy denied"])
        #expect(Self.sum(afterDrop, "hubble_drop") - Self.sum(afterPings, "hubble_drop") == Double(deniedSent))
        #expect(
            Self.sum(afterDrop, "hubble_flows_processed", ["type": "Drop", "verdict": "DROPPED", "node": "worker"])
                - Self.sum(afterPings, "hubble_flows_processed", ["type": "Drop"]) == Double(deniedSent))
        #expect(
            Self.sum(afterDrop, "hubble_flows_processed", ["verdict": "FORWARDED"])
                - Self.sum(afterPings, "hubble_flows_processed", ["verdict": "FORWARDED"]) == Double(3 * deniedSent))

        // promtool on the real scrape (text format), and the strict OpenMetrics parser on an OpenMetrics one.
        let text = dir + "/scrape.txt"
        _ = try Self.scrape(port, saveTo: text)
        let lint = try Shell.run(["sh", "-c", "promtool check metrics < '\(text)'"], check: false)
        #expect(lint.status == 0 && lint.output.isEmpty && lint.errorOutput.isEmpty, "promtool: \(lint.output) \(lint.errorOutput)")
        let om = try Self.scrape(port, openMetrics: true)
        #expect(Self.sum(om, "hubble_drop") == Double(deniedSent))

        // Hostile HTTP while pings go on: the recorder loses nothing and gets every event.
        let agent = try #require(AgentStatus.runningAgent(paths))
        let attacker = Process()
        attacker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        attacker.arguments = ["python3", Self.scripts + "/metrics_hostile.py", "127.0.0.1", "\(port)", "6"]
        FileManager.default.createFile(atPath: dir + "/hostile.json", contents: nil)
        attacker.standardOutput = FileHandle(forWritingAtPath: dir + "/hostile.json")
        try attacker.run()
        usleep(500_000)
        let duringAttack = try inNamespace(a.namespace, ["ping", "-c", "10", "-i", "0.3", "-W", "1", b.ip])
        attacker.waitUntilExit()
        let (attackSent, attackReceived) = try #require(Self.pingCounts(duringAttack.output))
        #expect(attackSent == 10 && attackReceived == 10, "\(duringAttack.output)")
        let hostile = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/hostile.json"))) as? [String: Any])
        Self.checkHostile(hostile)
        #expect(AgentStatus.runningAgent(paths) == agent, "the agent survived")

        // The recording: every event the metrics counted, nothing lost, from the spec-level reader.
        let final = try Self.scrape(port)
        recorder?.terminate()
        recorder?.waitUntilExit()
        let (samples, recordedLost) = try Self.recorded(recording)
        let traces = samples.values.reduce(0) { $0 + ($1["4"] ?? 0) }
        let dropSamples = samples.values.reduce(0) { $0 + ($1["1"] ?? 0) }
        let allSamples = samples.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        #expect(recordedLost == 0)
        #expect(traces == 4 * (sent + received) + 3 * deniedSent + 4 * (attackSent + attackReceived), "\(samples)")
        #expect(dropSamples == deniedSent)
        #expect(
            Double(traces) == Self.sum(final, "hubble_flows_processed", ["type": "Trace"]) - Self.sum(before, "hubble_flows_processed", ["type": "Trace"]),
            "the recording and the metrics saw the same traces")
        // The recorder's own counters: its events, none lost (published when it left).
        var gone = final
        _ = LabAgentTests.waitFor(3) {
            gone = (try? Self.scrape(port)) ?? gone
            return Self.sum(gone, "vxmon_agent_clients") == 0
        }
        #expect(Self.sum(gone, "vxmon_agent_client_events_sent", ["client": "recorder-0"]) == Double(allSamples))
        #expect(Self.sum(gone, "vxmon_agent_client_events_lost", ["client": "recorder-0"]) == 0)
        #expect((gone["vxmon_agent_client_queue_bytes"] ?? []).isEmpty, "no gauge for a client that is gone")
        #expect(Self.sum(gone, "vxmon_events_read") >= Double(allSamples))
        #expect(Self.sum(gone, "vxmon_events_lost") == 0)
        #expect(Self.sum(gone, "process_resident_memory_bytes") > 0)

        // Restarted by `lab up` (no --metrics given): it serves metrics again, from agent.args.
        AgentDaemon.stop(paths)
        let again = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab, "--no-hubble"], check: false)
        #expect(again.status == 0 && again.output.contains("restarted"), "\(again.output) \(again.errorOutput)")
        #expect(LabAgentTests.waitFor(5) { (try? Self.scrape(port)) != nil })
    }

    @Test("a flood of UDP datagrams to random ports: every one counted in hubble_port_distribution_total, at most 128 ports with their own series, the rest `other`; the exposition stays under its documented size and promtool accepts it")
    func randomPortFlood() throws {
        try LabGate.check()
        let lab = LabNames.make("mp")
        let dir = NSTemporaryDirectory() + "vxmon-metrics-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer {
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let port = try Self.freePort()
        let up = try Shell.run(
            [FaultTests.vxmon, "lab", "up", "--lab", lab, "--no-hubble", "--metrics", "127.0.0.1:\(port)"], check: false)
        try #require(up.status == 0, "\(up.output) \(up.errorOutput)")
        let topology = try #require(Lab(name: lab).recordedTopology())
        let a = try #require(topology.pods.first { $0.node == "worker2" })
        let b = try #require(topology.pods.first { $0.node == "worker" })
        let before = try Self.scrape(port)
        // 2000 datagrams to distinct random ports (paced: the buffers must not lose any), counted by the sender.
        let sender = """
            import random, socket, sys, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            ports = random.sample(range(1024, 65536), 2000)
            for i, p in enumerate(ports):
                s.sendto(b"x", (sys.argv[1], p))
                if i % 100 == 99:
                    time.sleep(0.02)
            print(len(ports))
            """
        let flood = try inNamespace(a.namespace, ["python3", "-c", sender, b.ip])
        let count = try #require(Int(flood.output.trimmingCharacters(in: .whitespacesAndNewlines)), "\(flood.output) \(flood.errorOutput)")
        var after = before
        _ = LabAgentTests.waitFor(10) {
            after = (try? Self.scrape(port)) ?? after
            return Self.sum(after, "hubble_port_distribution", ["protocol": "UDP"]) >= Double(4 * count)
        }
        // Every datagram is a new flow: 4 non-reply forwarded traces each.
        #expect(Self.sum(after, "hubble_port_distribution", ["protocol": "UDP"]) == Double(4 * count))
        #expect(Self.sum(after, "vxmon_events_lost") == 0)
        let udp = (after["hubble_port_distribution"] ?? []).filter { $0.labels["protocol"] == "UDP" }
        let ports = Set(udp.map { $0.labels["port"] ?? "" })
        #expect(ports.contains("other"))
        #expect(ports.count <= 129, "128 ports and other: \(ports.count)")
        let text = dir + "/scrape.txt"
        _ = try Self.scrape(port, saveTo: text)
        let size = (try? FileManager.default.attributesOfItem(atPath: text)[.size] as? Int) ?? Int.max
        #expect(size <= AgentMetrics.maxExpositionBytes, "\(size) bytes")
        print("exposition after a flood of \(count) random ports: \(size) bytes")
        let lint = try Shell.run(["sh", "-c", "promtool check metrics < '\(text)'"], check: false)
        #expect(lint.status == 0 && lint.output.isEmpty && lint.errorOutput.isEmpty, "promtool: \(lint.output) \(lint.errorOutput)")
    }

    /// What every hostile check must have got (as MetricsServerTests.checkHostile, against the agent).
    static func checkHostile(_ results: [String: Any]) {
        #expect(results["garbage"] as? String == "HTTP/1.1 400 Bad Request")
        #expect(results["post"] as? String == "HTTP/1.1 405 Method Not Allowed")
        #expect(results["other_path"] as? String == "HTTP/1.1 404 Not Found")
        #expect(results["http2_line"] as? String == "HTTP/1.1 505 HTTP Version Not Supported")
        let huge = results["huge_header"] as? String
        #expect(huge == "HTTP/1.1 431 Request Header Fields Too Large" || huge == "", "\(huge ?? "nil")")
        let scrapes = results["scrapes_under_attack"] as? [[String: Any]] ?? []
        #expect(!scrapes.isEmpty)
        for s in scrapes { #expect(s["status"] as? Int == 200 && (s["families"] as? Int ?? 0) > 5, "\(s)") }
        #expect((results["scrape_after"] as? [String: Any])?["status"] as? Int == 200)
    }
}
