import Foundation
import Testing
import VxmonBPF
import VxmonCore

#if canImport(Glibc)
    import Glibc
#endif

// End-to-end tests of the lab and the live monitor (root, bpffs, BTF, the BPF object, iproute2 and
// tcpdump). They build namespaces, so they run one at a time; each builds its own lab under a
// unique name and removes it in a `defer`, also when it fails.

@Suite(
    "lab and live monitor (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct LabTests {
    @Test("cross-node ping worker2 -> worker: the seed's observations")
    func crossNodePing() throws {
        try withLab("ping") { lab, topology in
            let source = try #require(topology.pods.first { $0.node == "worker2" })
            let destination = try #require(topology.pods.first { $0.node == "worker" })
            let worker2 = try #require(topology.node(named: "worker2"))

            let collector = try JSONCollector(topology)
            let underlay = try Capture(
                namespace: topology.underlayNamespace, interface: "br0", filter: ["udp", "port", "8472"])
            let lxc = try Capture(namespace: worker2.namespace, interface: source.lxc, filter: ["icmp"])

            let ping = try inNamespace(source.namespace, ["ping", "-c", "1", "-W", "2", destination.ip])
            let underlayFrames = underlay.stop()
            let lxcFrames = lxc.stop()
            let records = try collector.finish()

            // The ping succeeds.
            #expect(ping.status == 0, "ping failed: \(ping.output)")

            // vxmon: from-endpoint and to-overlay on worker2, from-overlay and to-endpoint on worker,
            // with both identities.
            func seen(_ node: String, _ subtype: String) -> Bool {
                records.contains {
                    $0.node == node && $0.subtype == subtype && $0.sourceIdentity == Int(source.identity)
                        && $0.destinationIdentity == Int(destination.identity)
                }
            }
            #expect(seen("worker2", "from-endpoint"))
            #expect(seen("worker2", "to-overlay"))
            #expect(seen("worker", "from-overlay"))
            #expect(seen("worker", "to-endpoint"))
            // Interface names resolved inside each node.
            #expect(
                records.contains {
                    $0.node == "worker2" && $0.subtype == "to-overlay" && $0.interfaceName == "cilium_vxlan"
                })
            #expect(
                records.contains {
                    $0.node == "worker" && $0.subtype == "to-endpoint" && $0.interfaceName == destination.lxc
                })

            // Underlay: the request's VNI is the source identity, the reply's the destination's; the inner
            // frame keeps the sending pod's MAC as source and the sending node's lxc MAC as destination.
            let vxlan = underlayFrames.compactMap(VXLANFrame.init)
            let described = vxlan.map {
                "vni \($0.vni) \($0.innerSource) > \($0.innerDestination) icmp \($0.icmpType.map(String.init) ?? "-")"
            }
            let request = try #require(
                vxlan.first { $0.icmpType == 8 && $0.innerSource == source.ip },
                "underlay: \(underlayFrames.count) frames: \(described)")
            let reply = try #require(
                vxlan.first { $0.icmpType == 0 && $0.innerSource == destination.ip }, "underlay: \(described)")
            #expect(request.vni == source.identity)
            #expect(reply.vni == destination.identity)
            #expect(request.vni != reply.vni)
            #expect(request.innerSourceMAC == source.mac)
            #expect(request.innerDestinationMAC == source.lxcMAC)
            #expect(reply.innerSourceMAC == destination.mac)
            #expect(reply.innerDestinationMAC == destination.lxcMAC)

            // The source pod's lxc sees the request but not the reply (redirect_peer bypasses it).
            let icmp = lxcFrames.compactMap(icmpFrame)
            #expect(icmp.contains { $0.0 == source.ip && $0.1 == destination.ip && $0.2 == 8 })
            #expect(!icmp.contains { $0.2 == 0 })
            _ = lab
        }
    }

    @Test("no tunnel entry: drop 160; a denied flow: Policy denied (133), also through the ring buffer")
    func drops() throws {
        try withLab("drop") { lab, topology in
            let source = try #require(topology.pods.first { $0.node == "worker2" })
            let destination = try #require(topology.pods.first { $0.node == "worker" })
            // The rule `vxmon policy add --from <source> --to <destination> --proto icmp --deny` writes.
            try NodeMaps(paths: lab.paths, node: destination.node).setPolicy(
                source: source.identity, destination: destination.identity, proto: 1, port: 0, deny: true)

            for buffer in BufferKind.allCases {
                let collector = try JSONCollector(topology, buffer: buffer)
                let noTunnel = try inNamespace(source.namespace, ["ping", "-c", "1", "-W", "1", "10.0.9.1"])
                let denied = try inNamespace(source.namespace, ["ping", "-c", "1", "-W", "1", destination.ip])
                let records = try collector.finish()
                #expect(noTunnel.status != 0)
                #expect(denied.status != 0)
                #expect(
                    records.contains {
                        $0.type == "drop" && $0.dropReason == 160 && $0.node == "worker2"
                            && $0.summary.contains("10.0.9.1")
                    }, "no drop 160 (\(buffer))")
                #expect(
                    records.contains {
                        $0.type == "drop" && $0.dropReason == 133 && $0.node == "worker"
                            && $0.sourceIdentity == Int(source.identity)
                            && $0.destinationIdentity == Int(destination.identity)
                    }, "no drop 133 (\(buffer))")
            }
        }
    }

    @Test("both buffers give a ping's events in datapath order, with node and CPU; from-network only when traced")
    func orderAndUnderlay() throws {
        try withLab("order") { lab, topology in
            let source = try #require(topology.pods.first { $0.node == "worker2" })
            let destination = try #require(topology.pods.first { $0.node == "worker" })
            let request = "\(source.ip) -> \(destination.ip) EchoRequest"
            let reply = "\(destination.ip) -> \(source.ip) EchoReply"
            let path = [
                "worker2 from-endpoint \(request)", "worker2 to-overlay \(request)",
                "worker from-overlay \(request)", "worker to-endpoint \(request)",
                "worker from-endpoint \(reply)", "worker to-overlay \(reply)",
                "worker2 from-overlay \(reply)", "worker2 to-endpoint \(reply)",
            ]
            // The same path with the underlay traced: from-network before each from-overlay. Its
            // summary is the inner flow followed by the tunnel.
            var traced = path
            traced.insert("worker from-network \(request)", at: 2)
            traced.insert("worker2 from-network \(reply)", at: 7)

            for (underlay, expected) in [(false, path), (true, traced)] {
                for node in topology.nodes {
                    try NodeMaps(paths: lab.paths, node: node.name).setTraceUnderlay(underlay)
                }
                for buffer in BufferKind.allCases {
                    let collector = try JSONCollector(topology, buffer: buffer)
                    let ping = try inNamespace(source.namespace, ["ping", "-c", "1", "-W", "2", destination.ip])
                    let records = try collector.finish()
                    #expect(ping.status == 0, "ping failed: \(ping.output)")
                    let icmp = records.filter { $0.summary.contains("Echo") }
                    let seen = icmp.map {
                        "\($0.node ?? "?") \($0.subtype ?? "?") "
                            + ($0.summary.split(separator: " [tunnel").first.map(String.init) ?? "")
                    }
                    #expect(seen == expected, "\(buffer), underlay traced: \(underlay)")
                    #expect(
                        icmp.allSatisfy { ($0.cpu ?? -1) >= 0 && ($0.cpu ?? .max) < Libbpf.possibleCPUs },
                        "CPU out of range (\(buffer)): \(icmp.map { $0.cpu ?? -1 })")
                }
            }

            // A datapath of another vxmon version is refused with what to do, not misread.
            let maps = try NodeMaps(paths: lab.paths, node: "worker")
            var config = maps.readConfig()
            config.abi_version = 1
            try maps.writeConfig(config)
            let error = #expect(throws: VxmonError.self) {
                _ = try LiveSession(
                    topology: topology, options: LiveOptions(),
                    sink: PipelineSink(
                        pipeline: EventPipeline(format: .json, fd: -1, diagnostics: { _ in }),
                        nodeNames: topology.nodes.map(\.name)))
            }
            #expect("\(error.map { "\($0)" } ?? "")".contains("vxmon lab down --lab \(lab.name)"))
        }
    }

    @Test("a second monitor is refused while one runs; events go off when the first ends")
    func secondMonitorRefused() throws {
        try withLab("lock") { lab, topology in
            let first = try JSONCollector(topology)
            #expect(NodeMaps.eventsMode(lab, "worker") == Int(LiveOptions().buffer.eventsMode))
            var message = ""
            do {
                _ = try LiveSession(
                    topology: topology, options: LiveOptions(),
                    sink: PipelineSink(pipeline: EventPipeline(format: .json, fd: -1), nodeNames: ["x", "y", "z"]))
                Issue.record("the second session was not refused")
            } catch {
                message = "\(error)"
            }
            #expect(message.contains("already reading"))
            #expect(MonitorLock.holder(paths: lab.paths) == getpid())
            _ = try first.finish()
            #expect(NodeMaps.eventsMode(lab, "worker") == 0)
            #expect(MonitorLock.holder(paths: lab.paths) == nil)
            // The lock is free again.
            _ = try JSONCollector(topology).finish()
        }
    }

    @Test("the vxmon binary: `vxmon -vv | head` ends promptly and cleanly; one-line errors")
    func binary() throws {
        try LabGate.check()
        let vxmon = try #require(VxmonBinary.path, "vxmon is not built next to the test bundle")
        // One-line errors that say what to do.
        let name = LabNames.make("bin")
        let notUp = try Shell.run([vxmon, "-vv", "--lab", name], check: false)
        #expect(notUp.status == 1)
        #expect(notUp.errorOutput == "Error: lab '\(name)' is not up: run `vxmon lab up --lab \(name)` first\n")
        let noObject = try Shell.run(
            [vxmon, "lab", "up", "--lab", name, "--bpf-object", "/nonexistent.o"], check: false)
        #expect(noObject.status == 1)
        #expect(noObject.errorOutput.split(separator: "\n").count == 1)
        #expect(noObject.errorOutput.contains("--bpf-object"))

        try withLab("bin") { lab, topology in
            let source = try #require(topology.pods.first { $0.node == "worker2" })
            let destination = try #require(topology.pods.first { $0.node == "worker" })
            let ping = try Shell.spawn(
                ["ip", "netns", "exec", source.namespace, "ping", "-c", "20", "-i", "0.2", destination.ip], quiet: true)
            defer { ping.stop() }
            // `vxmon -vv | head -n 3`: head exits after three lines, vxmon must follow at once.
            let start = Date()
            let pipe = try Shell.run(["sh", "-c", "\(vxmon) -vv --lab \(lab.name) | head -n 3"], check: false)
            let elapsed = Date().timeIntervalSince(start)
            #expect(pipe.status == 0)
            #expect(pipe.output.split(separator: "\n").count == 3)
            #expect(pipe.output.hasPrefix("------"))
            #expect(pipe.errorOutput.contains("; output closed"), "\(pipe.errorOutput)")
            #expect(elapsed < 5, "vxmon took \(elapsed) s to notice the closed pipe")
            #expect(NodeMaps.eventsMode(lab, "worker2") == 0)
            #expect(MonitorLock.holder(paths: lab.paths) == nil)
            // --duration ends it by itself, with the summary on stderr.
            let timed = try Shell.run([vxmon, "--lab", lab.name, "--duration", "1", "-o", "json"], check: false)
            #expect(timed.status == 0)
            #expect(timed.output.split(separator: "\n").allSatisfy { $0.contains("\"node_name\":") })
            #expect(timed.errorOutput.contains("; duration reached"))
        }
    }

    @Test("lab down leaves no namespaces, pins or state; a crashed lab is detected and cleaned")
    func downLeavesNothing() throws {
        try LabGate.check()
        let lab = try Lab(name: LabNames.make("down"))
        defer { _ = try? lab.down() }
        var topology = try lab.up(podsPerNode: 1, objectPath: try Preflight.locateObject())
        guard case .up = lab.state() else {
            Issue.record("lab not up after lab up")
            return
        }
        // A crash halfway through `lab up`: lab.json still says "creating".
        topology.phase = "creating"
        try topology.encoded().write(toFile: lab.paths.stateFile, atomically: true, encoding: .utf8)
        guard case .stale(let items) = lab.state() else {
            Issue.record("a half-built lab is not reported stale")
            return
        }
        #expect(items.contains("netns \(topology.underlayNamespace)"))
        // lab up on a stale lab cleans it first.
        try lab.up(podsPerNode: 1, objectPath: try Preflight.locateObject())
        // The state file lost entirely: the namespaces are still found by name.
        try FileManager.default.removeItem(atPath: lab.paths.stateFile)
        #expect(!lab.leftovers().isEmpty)
        try lab.down()
        #expect(lab.leftovers().isEmpty)
        #expect(NetworkNamespace.list().filter { LabTopology.isOwnNamespace($0, lab: lab.name) }.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: lab.paths.pinDirectory))
        #expect(!FileManager.default.fileExists(atPath: lab.paths.stateDirectory))
        guard case .down = lab.state() else {
            Issue.record("lab not down after lab down")
            return
        }
    }
}

/// The built executable, next to the test bundle (SwiftPM builds it with the tests).
enum VxmonBinary {
    static let path: String? = {
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while dir.path.contains(".xctest") { dir = dir.deletingLastPathComponent() }
        let candidate = dir.path + "/vxmon"
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }()
}

extension NodeMaps {
    /// The node's current events_mode (0 off, 1 perf, 2 ring), or -1.
    static func eventsMode(_ lab: Lab, _ node: String) -> Int {
        guard let maps = try? NodeMaps(paths: lab.paths, node: node) else { return -1 }
        return Int(maps.eventsMode)
    }
}
