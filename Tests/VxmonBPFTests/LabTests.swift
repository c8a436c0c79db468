import Foundation
import Testing
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive

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

    /// The one-line summaries of a ping's request and reply.
    static func pingFlows(_ source: LabTopology.Pod, _ destination: LabTopology.Pod) -> (String, String) {
        ("\(source.ip) -> \(destination.ip) EchoRequest", "\(destination.ip) -> \(source.ip) EchoReply")
    }

    /// "node observation-point summary" of a cross-node ping worker2 -> worker, in datapath order.
    static func pingPath(_ source: LabTopology.Pod, _ destination: LabTopology.Pod) -> [String] {
        let (request, reply) = pingFlows(source, destination)
        return [
            "worker2 from-endpoint \(request)", "worker2 to-overlay \(request)",
            "worker from-overlay \(request)", "worker to-endpoint \(request)",
            "worker from-endpoint \(reply)", "worker to-overlay \(reply)",
            "worker2 from-overlay \(reply)", "worker2 to-endpoint \(reply)",
        ]
    }

    @Test("both buffers give a ping's events in datapath order, with node and CPU; from-network only when traced")
    func orderAndUnderlay() throws {
        try withLab("order") { lab, topology in
            let source = try #require(topology.pods.first { $0.node == "worker2" })
            let destination = try #require(topology.pods.first { $0.node == "worker" })
            let (request, reply) = LabTests.pingFlows(source, destination)
            let path = LabTests.pingPath(source, destination)
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
                        pipeline: EventPipeline(format: .json, diagnostics: { _ in }),
                        nodeNames: topology.nodes.map(\.name)))
            }
            #expect("\(error.map { "\($0)" } ?? "")".contains("vxmon lab down --lab \(lab.name)"))
        }
    }

    @Test("both buffers date each event with the datapath's time: distinct, in the kernel's order, near the wall clock")
    func eventTimes() throws {
        try withLab("time") { lab, topology in
            let source = try #require(topology.pods.first { $0.node == "worker2" })
            let destination = try #require(topology.pods.first { $0.node == "worker" })
            let (request, _) = LabTests.pingFlows(source, destination)
            // The order the kernel runs the ping's observation points in: each one's packet is what
            // the one before it sent on (the same path orderAndUnderlay checks).
            let path = LabTests.pingPath(source, destination)
            let port: UInt16 = 7
            for buffer in BufferKind.allCases {
                let collector = try JSONCollector(topology, buffer: buffer)
                // The oracle for the absolute time: the wall clock read right before and after the ping.
                let before = wallClock()
                let ping = try inNamespace(source.namespace, ["ping", "-c", "1", "-W", "2", destination.ip])
                let after = wallClock()
                // And tighter: a datagram's events happen after the sender's clock read before its
                // sendto() and before the receiver's clock read after its recv() returned it.
                let datagram = try udpDatagram(from: source, to: destination, port: port)
                let records = try collector.finish()
                #expect(ping.status == 0, "ping failed: \(ping.output)")

                // In the order read: the ring's order (the order the datapath reserved the records in),
                // for perf the nodes' and CPUs' rings merged.
                let icmp = records.filter { $0.summary.contains("Echo") }
                let seen = icmp.map { "\($0.node ?? "?") \($0.subtype ?? "?") \($0.summary)" }
                let times = icmp.map { ($0["time"] as? String).flatMap(parseRFC3339) }
                let described = zip(seen, times).map { "\($1.map(String.init) ?? "no time") \($0)" }
                #expect(seen == path, "\(buffer): \(described)")
                let known = times.compactMap { $0 }
                try #require(known.count == path.count, "\(buffer): events without a time: \(described)")
                #expect(
                    known.allSatisfy { $0 > 0 && $0 >= before && $0 <= after },
                    "\(buffer): times outside the ping's wall-clock window \(before)...\(after): \(described)")
                // Distinct and strictly increasing in the order read: every event's packet is the previous
                // one's, forwarded, so the kernel ran them in this order, with time between them.
                #expect(zip(known, known.dropFirst()).allSatisfy { $0 < $1 }, "\(buffer): \(described)")

                // The request leaves the pod on worker2 and arrives at the pod on worker within
                // microseconds; the two times come from two nodes' programs (for perf, two nodes' rings).
                let sent = try #require(
                    zip(icmp, known).first { $0.0.node == "worker2" && $0.0.subtype == "from-endpoint" }?.1)
                let delivered = try #require(
                    zip(icmp, known).first {
                        $0.0.node == "worker" && $0.0.subtype == "to-endpoint" && $0.0.summary == request
                    }?.1)
                #expect(delivered > sent && delivered - sent < 10_000_000, "\(buffer): \(delivered) - \(sent)")

                // The datagram: from-endpoint, to-overlay, from-overlay, to-endpoint, inside the window of
                // its send and receive (tens to hundreds of microseconds; a clock not convertible to
                // the wall clock, such as perf's default local_clock, misses it by more here). The
                // offset's own error is at most half the session's widest bracket.
                let slack = collector.session.stats.clockBracket / 2 + 1
                let udp = records.filter { $0.summary.contains("-> \(destination.ip):\(port) udp") }
                let udpTimes = udp.compactMap { ($0["time"] as? String).flatMap(parseRFC3339) }
                let udpDescribed = zip(udp, udpTimes).map { "\($1) \($0.node ?? "?") \($0.subtype ?? "?")" }
                #expect(
                    udp.map { "\($0.node ?? "?") \($0.subtype ?? "?")" }
                        == [
                            "worker2 from-endpoint", "worker2 to-overlay", "worker from-overlay", "worker to-endpoint",
                        ],
                    "\(buffer): \(udpDescribed)")
                #expect(udpTimes.count == udp.count)
                #expect(
                    udpTimes.allSatisfy { $0 + slack >= datagram.sent && $0 <= datagram.received + slack },
                    "\(buffer): datagram sent \(datagram.sent), received \(datagram.received): \(udpDescribed)")
                #expect(collector.session.stats.clockBracket < 1_000_000)
            }
            _ = lab
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
                    sink: PipelineSink(pipeline: EventPipeline(format: .json, diagnostics: { _ in }), nodeNames: ["x", "y", "z"]))
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

/// Sends one UDP datagram from pod `source` to `destination`:`port` and receives it there. Returns
/// the wall clock read right before the sendto() and right after the recv() that returned it.
func udpDatagram(from source: LabTopology.Pod, to destination: LabTopology.Pod, port: UInt16) throws -> (
    sent: UInt64, received: UInt64
) {
    let receiver = try Traffic.openSink(namespace: destination.namespace, port: port)
    defer { close(receiver) }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    _ = setsockopt(receiver, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let address = try #require(parseIPv4(destination.ip))
    let sent = try NetworkNamespace.run(in: source.namespace) { () throws -> UInt64 in
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        if fd < 0 { throw SystemError.errno("socket", source.namespace) }
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = address.bigEndian
        var byte: UInt8 = 0x74
        let before = wallClock()
        let n = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, &byte, 1, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if n != 1 { throw SystemError.errno("sendto", destination.ip) }
        return before
    }
    var byte: UInt8 = 0
    let n = recv(receiver, &byte, 1, 0)
    let received = wallClock()
    if n != 1 { throw SystemError.errno("recv", "the datagram to \(destination.ip):\(port)") }
    return (sent, received)
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
func wallClock() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Nanoseconds since the Unix epoch of an RFC 3339 UTC time with a fraction
/// ("2026-12-01T17:14:27.123456789Z"), through glibc's timegm, not vxmon's own calendar arithmetic.
func parseRFC3339(_ text: String) -> UInt64? {
    let parts = text.split(whereSeparator: { "-T:.Z".contains($0) }).map(String.init)
    guard text.hasSuffix("Z"), parts.count == 7, let fraction = UInt64(parts[6]), parts[6].count <= 9,
        let fields = Optional(parts[0..<6].compactMap { Int32($0) }), fields.count == 6
    else { return nil }
    var tm = tm()
    tm.tm_year = fields[0] - 1900
    tm.tm_mon = fields[1] - 1
    tm.tm_mday = fields[2]
    tm.tm_hour = fields[3]
    tm.tm_min = fields[4]
    tm.tm_sec = fields[5]
    let seconds = timegm(&tm)
    guard seconds >= 0 else { return nil }
    var scale: UInt64 = 1
    for _ in parts[6].count..<9 { scale *= 10 }
    return UInt64(seconds) * 1_000_000_000 + fraction * scale
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
