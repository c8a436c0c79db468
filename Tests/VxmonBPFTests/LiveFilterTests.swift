import Foundation
import Testing
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive
import VxmonWire

#if canImport(Glibc)
    import Glibc
#endif

// The filters, the summary and the pcapng export on a live lab. One session reads the lab and hands
// every event to several pipelines, each with its own filter, so one set of pings checks them all.
// The expected counts are what the datapath does to a ping (the seed's observation points), and the
// kernel's own counters of the pods' interfaces say how many packets there were.

/// Hands every live event to several pipelines.
final class FanOutSink: LiveSink {
    let sinks: [PipelineSink]
    init(_ sinks: [PipelineSink]) { self.sinks = sinks }
    func interfaceName(node: Int, ifindex: UInt32, name: String, time: UInt64) {
        for s in sinks { s.interfaceName(node: node, ifindex: ifindex, name: name, time: time) }
    }
    func sample(node: Int, cpu: Int, bytes: UnsafeRawBufferPointer, time: UInt64) {
        for s in sinks { s.sample(node: node, cpu: cpu, bytes: bytes, time: time) }
    }
    func lost(node: Int, cpu: Int, count: UInt64, time: UInt64) {
        for s in sinks { s.lost(node: node, cpu: cpu, count: count, time: time) }
    }
    func flush() -> Bool { sinks.allSatisfy { $0.flush() } }
}

extension LabTopology.Pod {
    var podInfo: PodInfo {
        PodInfo(name: name, namespace: namespace, ip: FilterParser.parseIP(Substring(ip))!, identity: identity, node: node)
    }
}

/// The ICMP packets an interface of a namespace received (the kernel's counter).
func receivedPackets(_ namespace: String, _ interface: String) throws -> Int {
    let r = try Shell.run(["ip", "netns", "exec", namespace, "cat", "/sys/class/net/\(interface)/statistics/rx_packets"])
    return Int(r.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
}

@Suite(
    "live filters, summary and pcapng (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct LiveFilterTests {
    @Test("filters on a live lab keep the events of the pings they name; summary and pcapng account for all")
    func liveFilters() throws {
        try LabGate.check()
        let lab = try Lab(name: LabNames.make("flt"))
        defer { _ = try? lab.down() }
        let topology = try lab.up(podsPerNode: 2, objectPath: try Preflight.locateObject(), traceUnderlay: true)
        let source = try #require(topology.pods.first { $0.node == "worker2" })
        let destination = try #require(topology.pods.first { $0.node == "worker" })
        let worker = try #require(topology.node(named: "worker"))
        // Warm up neighbour entries so the pings below are the only traffic.
        try inNamespace(source.namespace, ["ping", "-c", "1", "-W", "2", destination.ip])

        let specs: [(String, [String])] = [
            ("all icmp", ["--protocol", "icmp"]),
            ("from source pod", ["--from-pod", source.name, "--protocol", "icmp"]),
            ("to source pod", ["--to-pod", source.name, "--protocol", "icmp"]),
            ("node worker", ["--node", "worker", "--protocol", "icmp"]),
            ("to-overlay", ["--observation-point", "to-overlay", "--protocol", "icmp"]),
            ("underlay by outer address", ["--outer", "--ip", worker.ip, "--outer", "--protocol", "udp"]),
            ("request VNI", ["--vni", "\(source.identity)"]),
            ("not icmp", ["--not", "--protocol", "icmp", "--ip", destination.ip]),
        ]
        let pcap = NSTemporaryDirectory() + "/vxmon-live-\(UUID().uuidString).pcapng"
        let pcapFD = open(pcap, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(pcapFD >= 0)
        defer {
            close(pcapFD)
            unlink(pcap)
        }
        var pipelines: [EventPipeline] = []
        for (_, arguments) in specs {
            let filter = try FilterParser.parse(arguments)
            let p = EventPipeline(format: .json, filter: filter, diagnostics: { _ in })
            for pod in topology.pods { p.learn(pod.podInfo) }
            p.counters = FlowCounters()
            pipelines.append(p)
        }
        pipelines[0].add(PcapngSink(output: FileOutput(fd: pcapFD), names: pipelines[0].names))
        let nodes = topology.nodes.map(\.name)
        let session = try LiveSession(
            topology: topology, options: LiveOptions(),
            sink: FanOutSink(pipelines.map { PipelineSink(pipeline: $0, nodeNames: nodes) }))
        session.announceInterfaces()
        let thread = try BackgroundThread { _ = try session.run() }
        usleep(200_000)
        let before = try receivedPackets(destination.namespace, "eth0")
        let pings = 3
        let ping = try inNamespace(source.namespace, ["ping", "-c", "\(pings)", "-i", "0.2", "-W", "2", destination.ip])
        let received = try receivedPackets(destination.namespace, "eth0") - before
        usleep(300_000)
        session.requestStop()
        try thread.join()
        session.close()
        let live = session.stats
        #expect(ping.status == 0, "ping failed: \(ping.output)")
        // The kernel saw exactly the pings' requests arrive at the destination pod.
        #expect(received == pings)

        // Per ping the datapath traces the request at from-endpoint and to-overlay on worker2,
        // from-network, from-overlay and to-endpoint on worker, and the reply the other way round.
        let expected = [
            10 * pings,  // all icmp: 5 points per direction
            5 * pings,  // from the source pod: the requests
            5 * pings,  // to the source pod: the replies
            5 * pings,  // on worker: request arriving (3) and reply leaving (2)
            2 * pings,  // to-overlay: request on worker2, reply on worker
            2 * pings,  // the underlay packets to or from worker's address (from-network, either way)
            pings,  // the request's VNI is the source identity: from-network on worker
            0,  // nothing but ICMP to the destination
        ]
        for (i, p) in pipelines.enumerated() {
            #expect(p.stats.matched == expected[i], "\(specs[i].0): \(specs[i].1)")
            // Summary: shown + filtered out + lost = every sample the session read.
            let counters = try #require(p.counters)
            #expect(Int(counters.events) == p.stats.matched)
            #expect(p.stats.matched + p.stats.filtered + p.stats.decodeErrors == live.samples)
            #expect(p.stats.lostSamples == live.lost)
            #expect(lines(p.out.string).count == p.stats.matched + p.stats.lostRecords)
        }
        #expect(live.lost == 0)

        // The pcapng holds every ICMP event's packet, and tshark decodes the VXLAN inner frames.
        #expect(pipelines[0].flush())
        let tshark = try #require(which("tshark"), "tshark is the oracle here; scripts/setup.sh installs it")
        let r = try Shell.run(
            [tshark, "-r", pcap, "-n", "-d", "udp.port==8472,vxlan", "-T", "fields", "-e", "frame.comment", "-e", "icmp.type",
             "-e", "vxlan.vni"], check: false)
        let rows = lines(r.output).filter { !$0.hasPrefix("Running as user") }
        #expect(rows.count == expected[0], "tshark: \(r.output)")
        #expect(rows.allSatisfy { $0.split(separator: "\t").count >= 2 })
        #expect(rows.filter { $0.hasSuffix("\t\(source.identity)") }.count == pings)
    }
}

func lines(_ s: String) -> [String] {
    var l = s.components(separatedBy: "\n")
    if l.last == "" { l.removeLast() }
    return l
}

func which(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}
