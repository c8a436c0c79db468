import Foundation
import Testing
import VxmonLab
import VxmonLive

/// The lab's Hubble observer servers (vxmon-hubble), checked by an independent client: Python
/// grpcio with stubs that grpcio-tools generates from proto/ (Tests/scripts/hubble_check.py and
/// hubble_peers.py hold the checks and say what each compares against).
@Suite(.serialized)
struct HubbleServerTests {
    static let proto = GoOracle.packageRoot + "/proto"
    static let scripts = GoOracle.packageRoot + "/Tests/scripts"

    @Test("every node serves Observer, Peer and Health on <node ip>:4244; a cross-node ping's flows, follow, number/first/since/until, every filter, refusals")
    func observersOnALiveLab() throws {
        try LabGate.check()
        let lab = LabNames.make("hs")
        let paths = LabPaths(lab: lab)
        defer { _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false) }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab, "--trace-underlay"], check: false)
        try #require(up.status == 0, "\(up.output) \(up.errorOutput)")
        #expect(up.output.contains("peer service 172.18.0.2:4244"), "\(up.output)")
        let hubble = try #require(HubbleDaemon.running(paths), "vxmon-hubble runs after lab up: \(up.errorOutput)")
        let status = try Shell.run([FaultTests.vxmon, "lab", "status", "--lab", lab], check: false)
        #expect(status.output.contains("hubble: pid \(hubble)"), "\(status.output)")

        let check = try inNamespace(
            "\(lab)-control-plane", ["python3", Self.scripts + "/hubble_check.py", Self.proto, paths.stateFile])
        print(check.output, terminator: "")
        #expect(check.status == 0, "\(check.output) \(check.errorOutput)")
        #expect(check.output.contains("all checks passed"))

        // Killed, it is started again by the next `lab up` (and nothing else is touched).
        kill(hubble, SIGKILL)
        #expect(LabAgentTests.waitFor(3) { HubbleDaemon.running(paths) == nil })
        let again = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab], check: false)
        #expect(again.status == 0 && again.output.contains("Hubble observers were not running"), "\(again.output)")
        let restarted = try #require(HubbleDaemon.running(paths))
        #expect(restarted != hubble)
    }

    @Test("each CLI flow filter and its FlowFilter twin select the same flows live: vxmon replay of the agent's recording against GetFlows on every node, through grpcio")
    func cliAndGRPCTwinsOnALiveLab() throws {
        try LabGate.check()
        let lab = LabNames.make("tw")
        let paths = LabPaths(lab: lab)
        let dir = NSTemporaryDirectory() + "vxmon-twins-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var recorder: Process?
        defer {
            if let recorder, recorder.isRunning { recorder.terminate() }
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab, "--trace-underlay"], check: false)
        try #require(up.status == 0, "\(up.errorOutput)")
        try #require(HubbleDaemon.running(paths) != nil, "vxmon-hubble runs after lab up")
        let topology = try #require(Lab(name: lab).recordedTopology())
        func pod(_ node: String, _ n: Int) throws -> LabTopology.Pod {
            try #require(topology.pods.filter { $0.node == node }.dropFirst(n).first)
        }
        let a = try pod("worker2", 0), b = try pod("worker", 0), c = try pod("worker", 1)
        let deny = try Shell.run(
            [FaultTests.vxmon, "policy", "add", "--lab", lab, "--from", a.name, "--to", c.name, "--proto", "icmp", "--deny"], check: false)
        try #require(deny.status == 0, "\(deny.errorOutput)")
        for p in [b, c] { _ = try inNamespace(a.namespace, ["ping", "-c", "1", "-W", "1", p.ip]) }

        let recording = dir + "/all.vxrec"
        recorder = try LabAgentTests.vxmon(["record", "--lab", lab, "-w", recording, "--duration", "6"], stderr: dir + "/rec.err")
        try #require(LabAgentTests.waitFor(10) { (AgentStatus.read(paths)?.clients.count ?? 0) >= 2 }, "the recorder connected")
        usleep(300_000)
        let start = rfc3339Now()
        let serverProcess = try startEchoServer(in: b, dir: dir)
        defer { if serverProcess.isRunning { serverProcess.terminate() } }
        _ = try inNamespace(a.namespace, ["ping", "-c", "2", "-i", "0.2", "-W", "1", b.ip])
        _ = try inNamespace(a.namespace, ["ping", "-c", "1", "-W", "1", c.ip])
        let exchange = try echoExchange(from: a, to: b.ip)
        #expect(exchange.status == 0, "\(exchange.errorOutput)")
        usleep(200_000)
        let end = rfc3339Now()
        recorder?.waitUntilExit()
        #expect(recorder?.terminationStatus == 0, "\(LabAgentTests.text(dir + "/rec.err"))")

        // (CLI flags, whitelist, blacklist): the FlowFilters in protobuf JSON.
        let twins: [(cli: [String], whitelist: [[String: Any]], blacklist: [[String: Any]])] = [
            (["--from-ip", a.ip], [["source_ip": [a.ip]]], []),
            (["--to-ip", b.ip], [["destination_ip": [b.ip]]], []),
            (["--from-pod", a.name], [["source_pod": ["default/" + a.name]]], []),
            (["--to-pod", b.name], [["destination_pod": [b.name]]], []),
            (["--from-identity", "\(a.identity)"], [["source_identity": [a.identity]]], []),
            (["--to-identity", "\(b.identity)"], [["destination_identity": [b.identity]]], []),
            (["--from-port", "8080"], [["source_port": ["8080"]]], []),
            (["--to-port", "5000"], [["destination_port": ["5000"]]], []),
            (["--protocol", "tcp"], [["protocol": ["tcp"]]], []),
            (["--protocol", "icmp"], [["protocol": ["icmp"]]], []),
            (["--not", "--protocol", "icmp"], [], [["protocol": ["icmp"]]]),
            (["--verdict", "dropped"], [["verdict": ["DROPPED"]]], []),
            (["--drop-reason", "133"], [["drop_reason_desc": ["POLICY_DENIED"]]], []),
            (["--node", "worker"], [["node_name": ["worker"]]], []),
            (["--not", "--node", "worker"], [], [["node_name": ["worker"]]]),
            (["--tcp-flags", "SYN"], [["tcp_flags": [["SYN": true]]]], []),
            // Drops carry an ifindex the monitor's `--interface` reads; Hubble's parser gives drops no
            // interface (README, "Hubble's reading"): the twin of Hubble's filter leaves drops out.
            (["--interface", "cilium_vxlan", "--not", "--verdict", "dropped"], [["interface": [["name": "cilium_vxlan"]]]], []),
            (["--protocol", "udp", "--node", "worker2"], [["protocol": ["udp"], "node_name": ["worker2"]]], []),
        ]
        let json = try JSONSerialization.data(
            withJSONObject: twins.map { ["cli": $0.cli, "whitelist": $0.whitelist, "blacklist": $0.blacklist] })
        try json.write(to: URL(fileURLWithPath: dir + "/twins.json"))
        let check = try inNamespace(
            "\(lab)-control-plane",
            ["python3", Self.scripts + "/hubble_twins.py", Self.proto, paths.stateFile, FaultTests.vxmon, recording, start, end,
             dir + "/twins.json"])
        print(check.output, terminator: "")
        #expect(check.status == 0, "\(check.output) \(check.errorOutput)")
        #expect(check.output.contains("all twins agree"))
    }

    @Test("peer.Peer/Notify lists the three nodes, then tells PEER_DELETED for each when the lab goes down, and ends the stream")
    func peersFollowTheLab() throws {
        try LabGate.check()
        let lab = LabNames.make("hp")
        let paths = LabPaths(lab: lab)
        let dir = NSTemporaryDirectory() + "vxmon-peers-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer {
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab], check: false)
        try #require(up.status == 0, "\(up.errorOutput)")
        let hubble = try #require(HubbleDaemon.running(paths))
        let peers = Process()
        peers.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        if !FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") { peers.executableURL = URL(fileURLWithPath: "/sbin/ip") }
        peers.arguments = [
            "netns", "exec", "\(lab)-control-plane", "python3", Self.scripts + "/hubble_peers.py", Self.proto,
            "172.18.0.2:4244", dir + "/ready",
        ]
        _ = FileManager.default.createFile(atPath: dir + "/out", contents: nil)
        peers.standardOutput = FileHandle(forWritingAtPath: dir + "/out")
        peers.standardError = FileHandle(forWritingAtPath: dir + "/out")
        try peers.run()
        defer { if peers.isRunning { peers.terminate() } }
        try #require(LabAgentTests.waitFor(20) { access(dir + "/ready", F_OK) == 0 }, "\(LabAgentTests.text(dir + "/out"))")

        let down = try Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
        #expect(down.status == 0, "\(down.errorOutput)")
        #expect(LabAgentTests.waitFor(10) { !peers.isRunning })
        let lines = LabAgentTests.text(dir + "/out").split(separator: "\n").map(String.init)
        let nodes = [("control-plane", "172.18.0.2"), ("worker", "172.18.0.3"), ("worker2", "172.18.0.4")]
        #expect(
            lines == nodes.map { "PEER_ADDED \($0.0) \($0.1):4244" } + nodes.map { "PEER_DELETED \($0.0) \($0.1):4244" }
                + ["END OK"], "\(lines)")
        #expect(kill(hubble, 0) != 0, "vxmon-hubble is gone after lab down")
    }
}

extension HubbleServerTests {
    static func statusKilobytes(_ pid: Int32, _ key: String) -> Int? {
        let text = LabAgentTests.text("/proc/\(pid)/status")
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }

    @Test("three followers during lab bench: flows delivered and lost are counted against the server's own count, and vxmon-hubble's memory stays within its rings' bound")
    func followersDuringBench() throws {
        try LabGate.check()
        let lab = LabNames.make("hf")
        let paths = LabPaths(lab: lab)
        let dir = NSTemporaryDirectory() + "vxmon-flood-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer {
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        try #require(try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab], check: false).status == 0)
        let hubble = try #require(HubbleDaemon.running(paths))
        let followers = Process()
        followers.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        followers.arguments = [
            "ip", "netns", "exec", "\(lab)-control-plane", "python3", Self.scripts + "/hubble_flood.py", Self.proto,
            paths.stateFile, "12", dir + "/flood.json", dir + "/ready",
        ]
        _ = FileManager.default.createFile(atPath: dir + "/out", contents: nil)
        followers.standardOutput = FileHandle(forWritingAtPath: dir + "/out")
        followers.standardError = FileHandle(forWritingAtPath: dir + "/out")
        try followers.run()
        defer { if followers.isRunning { followers.terminate() } }
        try #require(LabAgentTests.waitFor(20) { access(dir + "/ready", F_OK) == 0 }, "\(LabAgentTests.text(dir + "/out"))")
        let before = try #require(Self.statusKilobytes(hubble, "VmRSS"))

        // The bench stops the lab's agent and serves its sockets itself; the observers reconnect to it.
        let bench = try Shell.run(
            [FaultTests.vxmon, "lab", "bench", "--lab", lab, "--clients", "1", "--rounds", "1", "--seconds", "2"], check: false)
        #expect(bench.status == 0, "\(bench.output) \(bench.errorOutput)")
        let peak = try #require(Self.statusKilobytes(hubble, "VmHWM"))
        followers.waitUntilExit()
        let out = LabAgentTests.text(dir + "/out")
        print(out, terminator: "")
        #expect(followers.terminationStatus == 0, "\(out)")
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/flood.json"))) as? [String: [String: Any]])
        for node in ["worker", "worker2"] {
            let r = try #require(report[node])
            let flows = r["flows"] as? Int ?? -1
            let seen = r["seen_delta"] as? Int ?? -1
            let missed = (r["lost"] as? [String: Int])?["HUBBLE_RING_BUFFER"] ?? 0
            #expect(flows > 1000, "\(node): flows delivered during the flood: \(r)")
            // Every flow the server took in reached the follower or was told lost to it (the ring's
            // overwritten entries also include the agent's lost-events notices: hence <=).
            #expect(flows <= seen && seen <= flows + missed, "\(node): \(r)")
        }
        #expect((report["control-plane"]?["flows"] as? Int) == 0)
        // Three rings of 4095 entries, at most 4 KiB each (measured: about 1.9), over what it used idle.
        let bound = before + 3 * 4095 * 4
        print("vxmon-hubble RSS: \(before) kB before the flood, peak \(peak) kB (bound \(bound) kB)")
        #expect(peak <= bound, "peak RSS \(peak) kB over \(bound) kB")
    }
}
