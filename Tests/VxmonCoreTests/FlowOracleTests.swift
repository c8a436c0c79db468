import Foundation
import Testing
import VxmonCore
import VxmonLive
import VxmonWire

#if canImport(Glibc)
import Glibc
#endif

// The Flow of every event against an independent decoder: every packet of the vectors and samples is
// exported with the pcapng sink, and tshark's fields (addresses, ports, IP protocol, VXLAN VNI and the
// inner addresses with -d udp.port==8472,vxlan) must equal the event's Flow, outer and inner.

/// Collects every event's Flow (for events that carry a packet) in order.
final class FlowCollector: EventSink {
    var flows: [Flow] = []
    func event(_ event: borrowing Event, record: RawSpan) {
        if event.packetLength > 0 { flows.append(event.flow) }
    }
    func lost(_ lost: LostSamples) {}
}

enum Oracle {
    static var samples: String {
        URL(fileURLWithPath: Fixtures.root).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("samples").path
    }

    /// Every recording whose packets are checked: the Cilium vectors and the lab samples.
    static let recordings: [String] = {
        let vectors = Fixtures.vectorNames.map { "\(Fixtures.vectors)/\($0).vxrec" } + ["\(Fixtures.vectors)/bulk_2k.vxrec"]
        let files = (try? FileManager.default.contentsOfDirectory(atPath: samples)) ?? []
        return vectors + files.filter { $0.hasSuffix(".vxrec") }.sorted().map { "\(samples)/\($0)" }
    }()

    static func tshark() throws -> String {
        try #require(which("tshark"), "tshark is not on PATH: it is the oracle here; scripts/setup.sh installs it")
    }

    /// Replays `path` through a pipeline with the pcapng sink and a flow collector.
    static func export(_ path: String, filter: EventFilter = EventFilter()) throws -> (flows: [Flow], pcap: String) {
        let pcap = NSTemporaryDirectory() + "/vxmon-flow-\(UUID().uuidString).pcapng"
        let out = open(pcap, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(out >= 0)
        defer { close(out) }
        let pipeline = EventPipeline(format: .none, filter: filter, diagnostics: { _ in })
        let collector = FlowCollector()
        pipeline.add(collector)
        pipeline.add(PcapngSink(output: FileOutput(fd: out), names: pipeline.names))
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0, "cannot open \(path)")
        defer { close(fd) }
        var consumer = pipeline
        try VxrecReader(fd: fd).run(&consumer)
        #expect(pipeline.flush())
        return (collector.flows, pcap)
    }

    static let fields = [
        "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "ipv6.nxt", "tcp.srcport", "tcp.dstport",
        "udp.srcport", "udp.dstport", "sctp.srcport", "sctp.dstport", "icmp.type", "icmpv6.type", "vxlan.vni",
        "geneve.vni", "frame.comment",
    ]

    /// tshark's fields for every packet of `pcap`, one dictionary per packet (values split at commas).
    static func decode(_ pcap: String) throws -> [[String: [String]]] {
        var arguments = ["-r", pcap, "-n", "-d", "udp.port==8472,vxlan", "-d", "udp.port==4789,vxlan", "-T", "fields"]
        arguments += ["-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
        for f in fields { arguments += ["-e", f] }
        let result = try runProcess(try tshark(), arguments)
        #expect(result.status == 0, "tshark: \(result.stderr)")
        return lines(result.stdout).map { line in
            let values = line.components(separatedBy: "\t")
            var packet: [String: [String]] = [:]
            for (i, f) in fields.enumerated() where i < values.count && !values[i].isEmpty {
                packet[f] = values[i].components(separatedBy: ",")
            }
            return packet
        }
    }

    static func text(_ ip: IPAddress?) -> String? {
        guard let ip else { return nil }
        let out = OutputBuffer(capacity: 64)
        // tshark prints IPv6 addresses in RFC 5952 form, as vxmon does; IPv4-mapped ones as ::ffff:a.b.c.d.
        if case .v6(let a) = ip, let v4 = a.mappedIPv4 {
            out.append("::ffff:")
            out.ipv4(v4)
        } else {
            out.ip(ip)
        }
        return out.string
    }
}

@Suite("Flow against tshark", .serialized)
struct FlowOracleTests {
    @Test("every packet of the vectors and samples: tshark's addresses, ports, protocol and VNI equal the Flow", arguments: Oracle.recordings)
    func flowsMatchTshark(_ path: String) throws {
        let (flows, pcap) = try Oracle.export(path)
        defer { unlink(pcap) }
        let packets = try Oracle.decode(pcap)
        let name = URL(fileURLWithPath: path).lastPathComponent
        #expect(packets.count == flows.count, "\(name): tshark lists \(packets.count) packets, vxmon wrote \(flows.count)")
        for (i, (flow, packet)) in zip(flows, packets).enumerated() {
            let at = "\(name) packet \(i + 1)"
            // Addresses: tshark lists every IP header, outer first; the Flow's outer and inner stacks.
            var sources: [String] = []
            var destinations: [String] = []
            for f in [flow.outer] + (flow.tunnel != nil ? [flow.inner] : []) {
                if let s = Oracle.text(f.source), let d = Oracle.text(f.destination) {
                    sources.append(s)
                    destinations.append(d)
                }
            }
            let tsharkSources = (packet["ip.src"] ?? []) + (packet["ipv6.src"] ?? [])
            let tsharkDestinations = (packet["ip.dst"] ?? []) + (packet["ipv6.dst"] ?? [])
            #expect(Set(tsharkSources) == Set(sources), "\(at): sources \(tsharkSources) vs flow \(sources)")
            #expect(Set(tsharkDestinations) == Set(destinations), "\(at): destinations \(tsharkDestinations) vs \(destinations)")
            // Transport of each stack: its ports (or ICMP type) must be among tshark's.
            for f in [flow.outer] + (flow.tunnel != nil && !flow.inner.isEmpty ? [flow.inner] : []) {
                switch f.transport {
                case .tcp, .udp, .sctp:
                    let p = f.transport == .tcp ? "tcp" : f.transport == .udp ? "udp" : "sctp"
                    #expect(packet["\(p).srcport"]?.contains("\(f.sourcePort)") == true, "\(at): \(p) source port \(f.sourcePort) vs \(packet)")
                    #expect(packet["\(p).dstport"]?.contains("\(f.destinationPort)") == true, "\(at): \(p) destination port \(f.destinationPort)")
                case .icmpv4:
                    #expect(packet["icmp.type"]?.contains("\(f.icmpType)") == true, "\(at): ICMP type \(f.icmpType)")
                case .icmpv6:
                    #expect(packet["icmpv6.type"]?.contains("\(f.icmpType)") == true, "\(at): ICMPv6 type \(f.icmpType)")
                case .none:
                    break
                }
                if let proto = f.ipProtocol {
                    let protocols = (packet["ip.proto"] ?? []) + (packet["ipv6.nxt"] ?? [])
                    #expect(protocols.contains("\(proto)"), "\(at): IP protocol \(proto) vs \(protocols)")
                }
            }
            // The tunnel and its VNI.
            let vnis = (packet["vxlan.vni"] ?? []) + (packet["geneve.vni"] ?? [])
            if let tunnel = flow.tunnel {
                #expect(vnis == ["\(tunnel.vni)"], "\(at): VNI \(tunnel.vni) vs tshark \(vnis)")
            } else {
                #expect(vnis.isEmpty, "\(at): tshark sees a tunnel (\(vnis)) the Flow does not")
            }
            // Every packet carries its comment (the event's one-line summary).
            #expect(packet["frame.comment"] != nil, "\(at): no comment")
        }
        #expect(!flows.isEmpty || name.hasPrefix("debug_") || name.hasPrefix("trace_sock") || name == "lost_events.vxrec"
            || name == "unknown_type.vxrec" || name.hasPrefix("trace_unknown"), "\(name): no packet exported")
    }
}
