import Foundation
import Testing
import VxmonCore
import VxmonLive
import VxmonWire

#if canImport(Glibc)
import Glibc
#endif

// The /metrics counting and exposition. Oracles: Cilium's own label values (pkg/hubble/metrics and
// the tables it reads, transcribed in the expectations below), Prometheus's Python client library
// (its text and strict OpenMetrics parsers, Tests/scripts/metrics_parse.py), `promtool check
// metrics` (Prometheus's own linter), urllib/http.client and raw sockets as HTTP clients, and known
// injected counts.

enum MetricsOracle {
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts").path

    /// Parses `text` with prometheus_client (text or OpenMetrics parser): family name -> samples.
    static func parse(_ text: String, openMetrics: Bool) throws -> [String: [(name: String, labels: [String: String], value: Double)]] {
        let python = try #require(which("python3"), "python3 is the exposition's oracle")
        let path = NSTemporaryDirectory() + "/vxmon-metrics-\(UUID().uuidString).txt"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try runProcess(python, [scripts + "/metrics_parse.py", "file", openMetrics ? "openmetrics" : "text", path])
        try #require(r.status == 0, "prometheus_client refused it (pip install prometheus_client): \(r.stderr)")
        return try families(r.stdout)
    }

    static func families(_ json: String) throws -> [String: [(name: String, labels: [String: String], value: Double)]] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        var result: [String: [(name: String, labels: [String: String], value: Double)]] = [:]
        for family in object["families"] as? [[String: Any]] ?? [] {
            let samples = (family["samples"] as? [[String: Any]] ?? []).map {
                (name: $0["name"] as? String ?? "", labels: $0["labels"] as? [String: String] ?? [:],
                 value: ($0["value"] as? NSNumber)?.doubleValue ?? .nan)
            }
            result[family["name"] as? String ?? ""] = samples
        }
        return result
    }

    /// `promtool check metrics` on `text`: its exit status and what it printed.
    static func promtool(_ text: String) throws -> ProcessOutput {
        let promtool = try #require(which("promtool"), "promtool (Debian package prometheus) lints the exposition")
        let path = NSTemporaryDirectory() + "/vxmon-metrics-\(UUID().uuidString).txt"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try runProcess("/bin/sh", ["-c", "'\(promtool)' check metrics < '\(path)'"])
    }
}

/// A flow as the decoder would make it.
func metricsFlow(
    _ type: MessageType, subType: UInt8 = 0, verdict: FlowVerdict, transport: FlowTransport = .none, v6: Bool = false,
    destinationPort: UInt16 = 0, tcpFlags: UInt16 = 0, icmp: (UInt8, UInt8) = (0, 0), isReply: Bool? = false,
    dropReason: UInt8? = nil
) -> Flow {
    var f = Flow()
    f.type = type
    f.subType = subType
    f.verdict = verdict
    f.isReply = isReply
    f.dropReason = dropReason
    f.outer.source = v6 ? .v6(IPv6Address(high: 0xfd00 << 48, low: 1)) : .v4(IPv4Address(rawValue: 0x0a00_0001))
    f.outer.destination = v6 ? .v6(IPv6Address(high: 0xfd00 << 48, low: 2)) : .v4(IPv4Address(rawValue: 0x0a00_0002))
    f.outer.transport = transport
    f.outer.sourcePort = transport.hasPorts ? 40000 : 0
    f.outer.destinationPort = destinationPort
    f.outer.tcpFlags = tcpFlags
    (f.outer.icmpType, f.outer.icmpCode) = icmp
    return f
}

@Suite("metrics: Hubble's label values and counting rules")
struct HubbleMetricsLabelTests {
    @Test("type/subtype of hubble_flows_processed_total: Cilium's TraceObservationPoints names, crypto points only in latest, empty otherwise")
    func typeAndSubtype() {
        // pkg/monitor/api/types.go TraceObservationPoints (1.13: 0-11; latest adds 12 from-crypto, 13 to-crypto).
        let names = [
            "to-endpoint", "to-proxy", "to-host", "to-stack", "to-overlay", "from-endpoint", "from-proxy", "from-host",
            "from-stack", "from-overlay", "from-network", "to-network",
        ]
        for (point, name) in names.enumerated() {
            for release in CiliumRelease.allCases {
                let (t, s) = HubbleMetrics.typeLabels(.trace, subType: UInt8(point), release: release)
                #expect(t == "Trace" && s == name)
            }
        }
        #expect(HubbleMetrics.typeLabels(.trace, subType: 12, release: .v1_13) == ("Trace", ""))
        #expect(HubbleMetrics.typeLabels(.trace, subType: 12, release: .latest) == ("Trace", "from-crypto"))
        #expect(HubbleMetrics.typeLabels(.trace, subType: 13, release: .latest) == ("Trace", "to-crypto"))
        #expect(HubbleMetrics.typeLabels(.trace, subType: 99, release: .latest) == ("Trace", ""))
        #expect(HubbleMetrics.typeLabels(.drop, subType: 133, release: .v1_13) == ("Drop", ""))
        #expect(HubbleMetrics.typeLabels(.capture, subType: 3, release: .v1_13) == ("Capture", ""))
        #expect(HubbleMetrics.typeLabels(.policyVerdict, subType: 1, release: .v1_13) == ("PolicyVerdict", ""))
        #expect(HubbleMetrics.typeLabels(.traceSock, subType: 0, release: .v1_13) == ("Unknown", "7"))
    }

    @Test("protocol (v1.FlowProtocol), verdict (flow.Verdict names), TCP flags (FIN, SYN, SYN-ACK, RST)")
    func protocolVerdictFlags() {
        #expect(HubbleMetrics.protocolNames == ["Unknown flow", "Unknown L4", "TCP", "UDP", "ICMPv4", "ICMPv6", "SCTP"])
        let transports: [(FlowTransport, String)] = [
            (.none, "Unknown L4"), (.tcp, "TCP"), (.udp, "UDP"), (.icmpv4, "ICMPv4"), (.icmpv6, "ICMPv6"), (.sctp, "SCTP"),
        ]
        for type in [MessageType.drop, .trace, .policyVerdict, .capture] {
            for (t, name) in transports {
                #expect(HubbleMetrics.protocolNames[Int(HubbleMetrics.protocolCode(type, t))] == name)
            }
        }
        #expect(HubbleMetrics.protocolNames[Int(HubbleMetrics.protocolCode(.traceSock, .tcp))] == "Unknown flow")
        let verdicts: [(FlowVerdict, String)] = [
            (.unknown, "VERDICT_UNKNOWN"), (.forwarded, "FORWARDED"), (.dropped, "DROPPED"), (.error, "ERROR"),
            (.audit, "AUDIT"), (.redirected, "REDIRECTED"), (.traced, "TRACED"), (.translated, "TRANSLATED"),
        ]
        for (v, name) in verdicts { #expect(String(describing: v.name) == name) }
        func flags(_ bits: UInt16) -> [String] { HubbleMetrics.tcpFlagCodes(bits).map { String(describing: HubbleMetrics.tcpFlagNames[Int($0)]) } }
        let (fin, syn, rst, psh, ack, urg) = (UInt16(0x01), UInt16(0x02), UInt16(0x04), UInt16(0x08), UInt16(0x10), UInt16(0x20))
        #expect(flags(syn) == ["SYN"])
        #expect(flags(syn | ack) == ["SYN-ACK"])
        #expect(flags(fin | ack) == ["FIN"])
        #expect(flags(rst) == ["RST"])
        #expect(flags(rst | ack) == ["RST"])
        #expect(flags(ack).isEmpty && flags(psh | ack).isEmpty && flags(urg).isEmpty)
        #expect(flags(fin | syn | rst) == ["FIN", "SYN", "RST"])
    }

    @Test("drop reasons: 1.13 gives monitorAPI.DropReason's text (Policy denied), latest the flow.DropReason enum name (POLICY_DENIED)")
    func dropReasons() {
        let cases: [(UInt8, String, String)] = [
            (133, "Policy denied", "POLICY_DENIED"),
            (151, "Stale or unroutable IP", "STALE_OR_UNROUTABLE_IP"),
            (155, "CT: Map insertion failed", "CT_MAP_INSERTION_FAILED"),
            (189, "Authentication required", "AUTH_REQUIRED"),
            (181, "Policy denied by denylist", "POLICY_DENY"),
            // Reason 0: "Success" in 1.13 (cilium/cilium#22402), DROP_REASON_UNKNOWN after #22408.
            (0, "Success", "DROP_REASON_UNKNOWN"),
            // A code no table names: its number.
            (250, "250", "250"),
        ]
        for (code, v113, latest) in cases {
            #expect(HubbleMetrics.dropReasonLabel(code, release: .v1_13) == v113)
            #expect(HubbleMetrics.dropReasonLabel(code, release: .latest) == latest)
        }
    }

    @Test("ICMP types: gopacket's ICMPv4TypeCode/ICMPv6TypeCode strings; ICMPv6 is family IPv4 under 1.13 (Cilium's bug until #41427)")
    func icmpTypes() {
        let v4: [(UInt8, UInt8, String)] = [
            (8, 0, "EchoRequest"), (0, 0, "EchoReply"), (3, 3, "DestinationUnreachable(Port)"),
            (3, 1, "DestinationUnreachable(Host)"), (11, 0, "TimeExceeded(TTLExceeded)"), (5, 1, "Redirect(Host)"),
            (13, 0, "TimestampRequest"), (9, 0, "RouterAdvertisement"), (3, 99, "DestinationUnreachable(Code: 99)"),
            (42, 0, "42(0)"),
        ]
        for (t, c, name) in v4 { #expect(HubbleMetrics.icmpTypeLabel(v6: false, type: t, code: c) == name) }
        let v6: [(UInt8, UInt8, String)] = [
            (128, 0, "EchoRequest"), (129, 0, "EchoReply"), (135, 0, "NeighborSolicitation"),
            (136, 0, "NeighborAdvertisement"), (1, 4, "DestinationUnreachable(PortUnreachable)"),
        ]
        for (t, c, name) in v6 { #expect(HubbleMetrics.icmpTypeLabel(v6: true, type: t, code: c) == name) }
        #expect(HubbleMetrics.icmpFamilyLabel(v6: true, release: .v1_13) == "IPv4")
        #expect(HubbleMetrics.icmpFamilyLabel(v6: true, release: .latest) == "IPv6")
        #expect(HubbleMetrics.icmpFamilyLabel(v6: false, release: .latest) == "IPv4")
    }

    @Test("which flows each family counts (Cilium's handlers): every flow; DROPPED only; TCP when forwarded or redirected; ICMP whatever the verdict; ports of non-replies only")
    func countingRules() {
        let m = HubbleMetrics(nodeNames: ["control-plane", "worker", "worker2"])
        // A forwarded SYN at to-overlay (not a reply): flows, tcp SYN, port 80.
        m.count(metricsFlow(.trace, subType: 4, verdict: .forwarded, transport: .tcp, destinationPort: 80, tcpFlags: 0x02), node: 1)
        // Its SYN-ACK (a reply): tcp SYN-ACK, no port.
        m.count(metricsFlow(.trace, subType: 0, verdict: .forwarded, transport: .tcp, destinationPort: 40000, tcpFlags: 0x12, isReply: true), node: 2)
        // A reply state the datapath does not know: no port either.
        m.count(metricsFlow(.trace, subType: 5, verdict: .forwarded, transport: .udp, destinationPort: 53, isReply: nil), node: 1)
        // Redirected (to a proxy): tcp and ports count it.
        m.count(metricsFlow(.trace, subType: 1, verdict: .redirected, transport: .tcp, destinationPort: 8080, tcpFlags: 0x01), node: 1)
        // A policy drop of a ping: flows (Drop), drop (Policy denied), icmp (no verdict filter); no port.
        m.count(metricsFlow(.drop, subType: 133, verdict: .dropped, transport: .icmpv4, icmp: (8, 0), dropReason: 133), node: 0)
        // A dropped TCP RST: drop, not tcp.
        m.count(metricsFlow(.drop, subType: 151, verdict: .dropped, transport: .tcp, destinationPort: 22, tcpFlags: 0x04, dropReason: 151), node: 0)
        // ICMPv6 echo forwarded, IPv6: icmp family IPv4 (1.13), port 0.
        m.count(metricsFlow(.trace, subType: 5, verdict: .forwarded, transport: .icmpv6, v6: true, icmp: (128, 0)), node: 2)
        // Not flows: a debug message, an event Hubble's parser cannot decode.
        m.count(metricsFlow(.debug, verdict: .unknown), node: 0)
        var cut = metricsFlow(.trace, subType: 4, verdict: .forwarded, transport: .udp, destinationPort: 9)
        cut.hubbleUndecodable = true
        m.count(cut, node: 0)
        // A socket trace: type Unknown, subtype 7, protocol Unknown flow, verdict TRACED.
        m.count(metricsFlow(.traceSock, verdict: .traced, transport: .tcp, destinationPort: 443), node: 1)
        m.lost(node: 2, count: 5)
        m.lost(node: 2, count: 2)

        #expect(m.flows.value(["worker", "TCP", "to-overlay", "Trace", "FORWARDED"]) == 1)
        #expect(m.flows.value(["worker2", "TCP", "to-endpoint", "Trace", "FORWARDED"]) == 1)
        #expect(m.flows.value(["worker", "TCP", "to-proxy", "Trace", "REDIRECTED"]) == 1)
        #expect(m.flows.value(["control-plane", "ICMPv4", "", "Drop", "DROPPED"]) == 1)
        #expect(m.flows.value(["worker", "Unknown flow", "7", "Unknown", "TRACED"]) == 1)
        var total: UInt64 = 0
        m.flows.forEachSeries { _, v in total += v[0] }
        #expect(total == 8, "every flow once; the debug message and the undecodable trace are no flows")

        #expect(m.drops.value(["control-plane", "ICMPv4", "Policy denied"]) == 1)
        #expect(m.drops.value(["control-plane", "TCP", "Stale or unroutable IP"]) == 1)
        #expect(m.drops.seriesCount == 2)

        #expect(m.tcpFlags.value(["IPv4", "SYN", "worker"]) == 1)
        #expect(m.tcpFlags.value(["IPv4", "SYN-ACK", "worker2"]) == 1)
        #expect(m.tcpFlags.value(["IPv4", "FIN", "worker"]) == 1)
        #expect(m.tcpFlags.seriesCount == 3, "the dropped RST is not counted")

        #expect(m.icmp.value(["IPv4", "control-plane", "EchoRequest"]) == 1)
        #expect(m.icmp.value(["IPv4", "worker2", "EchoRequest"]) == 1, "ICMPv6 labelled IPv4 under 1.13")

        #expect(m.ports.value(["worker", "80", "TCP"]) == 1)
        #expect(m.ports.value(["worker", "8080", "TCP"]) == 1)
        #expect(m.ports.value(["worker2", "0", "ICMPv6"]) == 1)
        #expect(m.ports.seriesCount == 3, "replies, unknown reply state, drops and socket traces have no port series")

        #expect(m.lostEvents.value(["worker2", "perf_event_ring_buffer"]) == 7)
    }

    @Test("latest: drop reasons are enum names, ICMPv6 is family IPv6")
    func latestRelease() {
        let m = HubbleMetrics(nodeNames: ["worker"], release: .latest)
        m.count(metricsFlow(.drop, subType: 133, verdict: .dropped, transport: .icmpv6, v6: true, icmp: (128, 0), dropReason: 133), node: 0)
        #expect(m.drops.value(["worker", "ICMPv6", "POLICY_DENIED"]) == 1)
        #expect(m.icmp.value(["IPv6", "worker", "EchoRequest"]) == 1)
    }
}

@Suite("metrics: the exposition, read by Prometheus's parsers and promtool")
struct MetricsExpositionTests {
    /// Metrics with known counts: 3 forwarded pings' traces, a denied ping, TCP, lost samples, a
    /// histogram, a node name that needs escaping.
    static func sampleMetrics() -> AgentMetrics {
        let m = AgentMetrics(nodeNames: ["worker", "odd \"node\" \\ with\nnewline"])
        for _ in 0..<3 {
            for point: UInt8 in [5, 4] {
                m.hubble.count(metricsFlow(.trace, subType: point, verdict: .forwarded, transport: .icmpv4, icmp: (8, 0)), node: 0)
            }
        }
        m.hubble.count(metricsFlow(.drop, subType: 133, verdict: .dropped, transport: .icmpv4, icmp: (8, 0), dropReason: 133), node: 1)
        m.hubble.count(metricsFlow(.trace, subType: 4, verdict: .forwarded, transport: .tcp, destinationPort: 443, tcpFlags: 0x02), node: 0)
        m.lost(node: 1, cpu: 3, count: 9)
        m.clients.store(2, ordering: .relaxed)
        let slot = m.clientSlot(program: .monitor, number: 0)
        m.clientSent.add(slot, 42)
        m.clientQueue.set(slot, 4096)
        let gone = m.clientSlot(program: .hubble, number: 0)
        m.clientQueue.set(gone, MetricTable.absent)
        return m
    }

    static func render(_ m: AgentMetrics, _ format: MetricsFormat, extra: [MetricTable] = []) -> String {
        let out = OutputBuffer()
        m.render(format, into: out)
        return out.string
    }

    @Test("text format: prometheus_client's parser reads every family and value we put in; promtool check metrics finds nothing")
    func textFormat() throws {
        let text = Self.render(Self.sampleMetrics(), .text)
        let families = try MetricsOracle.parse(text, openMetrics: false)
        let flows = try #require(families["hubble_flows_processed"])
        #expect(flows.count == 4, "from-endpoint and to-overlay ICMP, the drop, the TCP trace")
        #expect(flows.contains { $0.labels == ["node": "worker", "protocol": "ICMPv4", "subtype": "to-overlay", "type": "Trace", "verdict": "FORWARDED"] && $0.value == 3 })
        #expect(flows.contains { $0.labels["subtype"] == "from-endpoint" && $0.value == 3 })
        let drops = try #require(families["hubble_drop"])
        #expect(drops.count == 1)
        #expect(drops[0].labels == ["node": "odd \"node\" \\ with\nnewline", "protocol": "ICMPv4", "reason": "Policy denied"])
        #expect(drops[0].value == 1)
        #expect(families["hubble_tcp_flags"]?.first?.labels == ["family": "IPv4", "flag": "SYN", "node": "worker"])
        #expect(families["hubble_icmp"]?.reduce(0) { $0 + $1.value } == 7, "6 traces and the drop")
        #expect(families["hubble_lost_events"]?.first?.labels["source"] == "perf_event_ring_buffer")
        #expect(families["hubble_lost_events"]?.first?.value == 9)
        #expect(families["vxmon_events_lost"]?.first?.labels["cpu"] == "3")
        #expect(families["vxmon_agent_clients"]?.first?.value == 2)
        #expect(families["vxmon_agent_client_events_sent"]?.first { $0.labels["client"] == "monitor-0" }?.value == 42)
        let queues = try #require(families["vxmon_agent_client_queue_bytes"])
        #expect(queues.map(\.labels) == [["client": "monitor-0"]] && queues[0].value == 4096, "a gone client's gauge is not shown")
        #expect((families["process_cpu_seconds"]?.first?.value ?? -1) >= 0)
        #expect((families["process_resident_memory_bytes"]?.first?.value ?? 0) > 1_048_576.0)

        let lint = try MetricsOracle.promtool(text)
        #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "promtool: \(lint.stdout) \(lint.stderr)")
    }

    @Test("OpenMetrics: the strict parser reads it (# EOF, counters named without _total in HELP/TYPE, histogram buckets)")
    func openMetricsFormat() throws {
        let m = Self.sampleMetrics()
        let text = Self.render(m, .openMetrics)
        #expect(text.hasSuffix("# EOF\n"))
        #expect(text.contains("# TYPE hubble_flows_processed counter\n"))
        #expect(text.contains("# TYPE hubble_drop counter\n"))
        #expect(text.contains("hubble_drop_total{"))
        let families = try MetricsOracle.parse(text, openMetrics: true)
        #expect(families["hubble_flows_processed"]?.count == 4)
        #expect(families["hubble_drop"]?.first?.value == 1)
        #expect(families["process_cpu_seconds"] != nil)
    }

    @Test("a histogram: cumulative buckets, +Inf, _sum and _count as both parsers and promtool read them")
    func histogram() throws {
        let table = MetricTable(
            name: "vxmon_test_latency_seconds", help: "A test histogram.", kind: .histogram(buckets: [0.000001, 0.001, 0.25]),
            labelNames: ["from_point", "to_point"], capacity: 4)
        let s = table.slot(1) { ["from-endpoint", "to-overlay"] }
        for v in [0.0000005, 0.0005, 0.0007, 0.1, 3.0] { table.observe(s, v) }
        for format in [MetricsFormat.text, .openMetrics] {
            let out = OutputBuffer()
            let w = MetricsWriter(out: out, format: format)
            w.family(table)
            w.finish()
            let families = try MetricsOracle.parse(out.string, openMetrics: format == .openMetrics)
            let samples = try #require(families["vxmon_test_latency_seconds"])
            let buckets = samples.filter { $0.name.hasSuffix("_bucket") }.map { ($0.labels["le"] ?? "", $0.value) }
            #expect(buckets.map(\.1) == [1, 3, 4, 5], "\(buckets)")
            #expect(buckets.last?.0 == "+Inf")
            #expect(samples.first { $0.name.hasSuffix("_count") }?.value == 5)
            let sum = samples.first { $0.name.hasSuffix("_sum") }?.value ?? 0
            #expect(abs(sum - 3.1012005) < 1e-9)
            if format == .text {
                let lint = try MetricsOracle.promtool(out.string)
                #expect(lint.status == 0, "promtool: \(lint.stdout) \(lint.stderr)")
            }
        }
    }

    @Test("Accept: OpenMetrics when it names application/openmetrics-text with q > 0 (Prometheus's own header), else text")
    func negotiation() {
        let prometheus =
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        #expect(MetricsFormat.negotiate(accept: prometheus[...]) == .openMetrics)
        #expect(MetricsFormat.negotiate(accept: nil) == .text)
        #expect(MetricsFormat.negotiate(accept: "text/plain"[...]) == .text)
        #expect(MetricsFormat.negotiate(accept: "*/*"[...]) == .text)
        #expect(MetricsFormat.negotiate(accept: "application/openmetrics-text; q=0"[...]) == .text)
        #expect(MetricsFormat.negotiate(accept: " Application/OpenMetrics-Text ; version=1.0.0"[...]) == .openMetrics)
    }
}

@Suite("metrics: bounded cardinality and size")
struct MetricsBoundTests {
    @Test("every port, reason, ICMP type and node past the caps: each table stays within its capacity, no count is lost, the exposition stays under AgentMetrics.maxExpositionBytes and promtool still accepts it")
    func everythingAtOnce() throws {
        // 20 nodes (past the 16 with their own value), names as long as a lab's could be.
        let nodes = (0..<20).map { "node-\($0)-" + String(repeating: "n", count: 48) }
        let m = AgentMetrics(nodeNames: nodes, journeys: true)
        // Every pair of observation points, both ways across nodes, in the hop latency histogram.
        let latency = try #require(m.hubble.journeyLatency?.table)
        for from in 0...13 {
            for to in 0...13 {
                for cross in [false, true] {
                    let s = latency.slot(UInt64(from | to << 8 | (cross ? 1 << 16 : 0))) {
                        [cross ? "true" : "false", String(describing: CiliumNames.observationPoint(UInt8(from), .latest)!),
                         String(describing: CiliumNames.observationPoint(UInt8(to), .latest)!)]
                    }
                    latency.observe(s, 0.000_003)
                }
            }
        }
        var flows: UInt64 = 0
        for node in 0..<20 {
            for port in stride(from: 0, through: 65535, by: 7) {
                m.hubble.count(metricsFlow(.trace, subType: 4, verdict: .forwarded, transport: .udp, destinationPort: UInt16(port)), node: node)
                flows += 1
            }
            for reason in 0...255 {
                m.hubble.count(metricsFlow(.drop, verdict: .dropped, transport: .sctp, destinationPort: 1, dropReason: UInt8(reason)), node: node)
                flows += 1
            }
            for type in 0...255 {
                for code in [0, 1, 3, 200] {
                    m.hubble.count(metricsFlow(.trace, subType: UInt8(type % 16), verdict: .forwarded, transport: type % 2 == 0 ? .icmpv4 : .icmpv6, icmp: (UInt8(type), UInt8(code))), node: node)
                    flows += 1
                }
            }
            for verdict in 0...7 {
                for type in [MessageType.drop, .capture, .policyVerdict, .traceSock] {
                    m.hubble.count(metricsFlow(type, verdict: FlowVerdict(rawValue: UInt8(verdict))!, transport: .tcp, destinationPort: 9, tcpFlags: 0x17), node: node)
                    flows += 1
                }
            }
            for cpu in 0..<300 {
                m.sample(node: node, cpu: cpu, bytes: UnsafeRawBufferPointer(start: nil, count: 0))
                m.lost(node: node, cpu: cpu, count: 1)
            }
        }
        for program in ClientProgram.allCases {
            for n in 0..<40 { _ = m.clientSlot(program: program, number: n) }
        }
        var counted: UInt64 = 0
        m.hubble.flows.forEachSeries { _, v in counted += v[0] }
        #expect(counted == flows, "past the capacity, counts go to the overflow series")
        #expect(latency.seriesCount == latency.capacity)
        for table in m.hubble.tables + [m.eventsRead, m.eventsLost, m.clientQueue, m.clientSent, m.clientLost] {
            #expect(table.seriesCount <= table.capacity, "\(table.name)")
        }
        var otherPorts = 0
        m.hubble.ports.forEachSeries { l, _ in if l[1] == "other" { otherPorts += 1 } }
        #expect(otherPorts > 0)
        let text = MetricsExpositionTests.render(m, .text)
        let om = MetricsExpositionTests.render(m, .openMetrics)
        #expect(text.utf8.count <= AgentMetrics.maxExpositionBytes, "\(text.utf8.count) bytes")
        #expect(om.utf8.count <= AgentMetrics.maxExpositionBytes, "\(om.utf8.count) bytes")
        print("worst-case exposition: \(text.utf8.count) bytes text, \(om.utf8.count) OpenMetrics")
        let lint = try MetricsOracle.promtool(text)
        #expect(lint.status == 0, "promtool: \(lint.stdout.prefix(500)) \(lint.stderr.prefix(500))")
        _ = try MetricsOracle.parse(om, openMetrics: true)
    }
}

@Suite("metrics: the HTTP server, against urllib, http.client and raw sockets")
struct MetricsServerTests {
    @Test("addresses: IPv4 and bracketed IPv6 literals with a port, :PORT for any IPv4 address; names and junk are refused")
    func addresses() {
        func ok(_ s: String) -> String? { if case .success(let a) = MetricsAddress.parse(s) { a.text } else { nil } }
        #expect(ok("127.0.0.1:9965") == "127.0.0.1:9965")
        #expect(ok("[::1]:9965") == "[::1]:9965")
        #expect(ok(":9965") == "0.0.0.0:9965")
        #expect(ok("127.0.0.1:0") == "127.0.0.1:0")
        for bad in ["localhost:9965", "127.0.0.1", "127.0.0.1:65536", "127.0.0.1:-1", "::1:9965", "[::1]", "[]:80", "1.2.3:80", "127.0.0.1:９９"] {
            #expect(ok(bad) == nil, "\(bad)")
        }
    }

    @Test("GET /metrics over urllib in both formats (Content-Type and body as prometheus_client reads them), on IPv4 and IPv6 loopback")
    func scrapes() throws {
        let m = MetricsExpositionTests.sampleMetrics()
        let python = try #require(which("python3"))
        for host in ["127.0.0.1", "[::1]"] {
            guard case .success(let address) = MetricsAddress.parse("\(host):0") else { Issue.record("parse"); return }
            let server = try MetricsServer(address: address) { format, out in m.render(format, into: out) }
            try server.start()
            defer { server.stop() }
            #expect(server.address.port != 0)
            let url = "http://\(server.address)/metrics"
            for openMetrics in [false, true] {
                let r = try runProcess(python, [MetricsOracle.scripts + "/metrics_parse.py", "url", url, openMetrics ? "openmetrics" : "text"])
                try #require(r.status == 0, "\(r.stderr)")
                let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
                #expect(
                    object["content_type"] as? String
                        == (openMetrics
                            ? "application/openmetrics-text; version=1.0.0; charset=utf-8" : "text/plain; version=0.0.4; charset=utf-8"))
                let families = try MetricsOracle.families(r.stdout)
                #expect(families["hubble_drop"]?.first?.value == 1)
            }
        }
    }

    @Test("hostile clients (garbage, wrong method, path, version, a 100 KiB header, 30 slowloris and 300 silent connections, a client that never reads) get errors or nothing, and scrapes during the attack still get 200")
    func hostile() throws {
        let m = MetricsExpositionTests.sampleMetrics()
        guard case .success(let address) = MetricsAddress.parse("127.0.0.1:0") else { Issue.record("parse"); return }
        let server = try MetricsServer(address: address) { format, out in m.render(format, into: out) }
        try server.start()
        defer { server.stop() }
        let python = try #require(which("python3"))
        let r = try runProcess(python, [MetricsOracle.scripts + "/metrics_hostile.py", "127.0.0.1", "\(server.address.port)", "4"])
        try #require(r.status == 0, "\(r.stderr)")
        let results = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        MetricsServerTests.checkHostile(results)
    }

    /// What every hostile check must have got (shared with the lab test).
    static func checkHostile(_ results: [String: Any]) {
        #expect(results["garbage"] as? String == "HTTP/1.1 400 Bad Request")
        #expect(results["no_version"] as? String == "HTTP/1.1 400 Bad Request")
        #expect(results["header_without_colon"] as? String == "HTTP/1.1 400 Bad Request")
        #expect(results["post"] as? String == "HTTP/1.1 405 Method Not Allowed")
        #expect(results["other_path"] as? String == "HTTP/1.1 404 Not Found")
        #expect(results["http2_line"] as? String == "HTTP/1.1 505 HTTP Version Not Supported")
        let huge = results["huge_header"] as? String
        #expect(huge == "HTTP/1.1 431 Request Header Fields Too Large" || huge == "", "\(huge ?? "nil")")
        let scrapes = results["scrapes_under_attack"] as? [[String: Any]] ?? []
        #expect(!scrapes.isEmpty)
        for s in scrapes { #expect(s["status"] as? Int == 200 && (s["families"] as? Int ?? 0) > 5, "\(s)") }
        let after = results["scrape_after"] as? [String: Any]
        #expect(after?["status"] as? Int == 200, "\(after ?? [:])")
    }
}

@Suite("metrics: journey hop latency histograms")
struct JourneyLatencyMetricsTests {
    /// Feeds a recording's samples to `metrics`, with their node and time.
    final class Feeder: RecordConsumer {
        let metrics: HubbleMetrics
        var node = -1
        init(_ metrics: HubbleMetrics) { self.metrics = metrics }
        func sample(_ body: RawSpan, cpu: Int, timeNanoseconds: UInt64, index: Int, offset: Int) {
            _ = metrics.count(sample: body, node: node, time: timeNanoseconds)
        }
        func lost(cpu: Int, count: UInt64, timeNanoseconds: UInt64) {}
        func interfaceName(ifindex: UInt32, name: String) {}
        func metadata(key: String, value: String) {
            if key == "node" { node = metrics.nodeNames.firstIndex(of: value) ?? -1 }
        }
        func malformedRecord(index: Int, offset: Int, reason: String) {}
    }

    @Test("cross_node_ping.vxrec (2 pings, underlay traced: 5 traces per packet, one packet after the other): each pair of consecutive hops counted 4 times, with the time differences the .vxrec spec reader finds")
    func crossNodePing() throws {
        let path = Fixtures.root + "/../../samples/cross_node_ping.vxrec"
        let m = HubbleMetrics(nodeNames: ["control-plane", "worker", "worker2"], journeys: true)
        let parser = VxrecParser()
        var feeder = Feeder(m)
        Fixtures.bytes(path).withUnsafeBytes { parser.feed($0) }
        try parser.parse(into: &feeder)
        m.journeys?.finish()

        // The oracle: the samples in file order, 5 per packet; consecutive ones are a hop pair.
        let python = try #require(which("python3"))
        let r = try runProcess(python, [MetricsOracle.scripts + "/vxrec_count.py", path])
        try #require(r.status == 0, "\(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let events = try #require(object["events"] as? [[Any]])
        try #require(events.count == 20)
        let names = [0: "to-endpoint", 4: "to-overlay", 5: "from-endpoint", 9: "from-overlay", 10: "from-network"]
        var expected: [[String]: (count: Int, sum: Double)] = [:]
        for packet in stride(from: 0, to: 20, by: 5) {
            for i in packet..<(packet + 4) {
                let (a, b) = (events[i], events[i + 1])
                let labels = [
                    (a[0] as? String) != (b[0] as? String) ? "true" : "false", names[a[2] as? Int ?? -1] ?? "?",
                    names[b[2] as? Int ?? -1] ?? "?",
                ]
                let dt = Double(((b[3] as? NSNumber)?.uint64Value ?? 0) - ((a[3] as? NSNumber)?.uint64Value ?? 0)) / 1e9
                expected[labels, default: (0, 0)].count += 1
                expected[labels, default: (0, 0)].sum += dt
            }
        }
        #expect(expected.count == 4)
        let table = try #require(m.journeyLatency?.table)
        var seen = 0
        table.forEachSeries { labels, values in
            seen += 1
            guard let e = expected[labels] else {
                Issue.record("unexpected series \(labels)")
                return
            }
            let buckets = JourneyLatency.buckets.count
            let count = (0...buckets).reduce(UInt64(0)) { $0 + values[$1] }
            #expect(count == UInt64(e.count), "\(labels)")
            #expect(abs(Double(bitPattern: values[buckets + 1]) - e.sum) < 1e-12, "\(labels)")
        }
        #expect(seen == 4)
        let out = OutputBuffer()
        let w = MetricsWriter(out: out, format: .text)
        w.family(table)
        let lint = try MetricsOracle.promtool(out.string)
        #expect(lint.status == 0, "promtool: \(lint.stdout) \(lint.stderr)")
    }
}
