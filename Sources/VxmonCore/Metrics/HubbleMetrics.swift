import Synchronization
import VxmonWire

/// Hubble's flow metrics (Cilium's `pkg/hubble/metrics`: `flow`, `drop`, `tcp`, `icmp`,
/// `port-distribution`, and `hubble_lost_events_total`), counted from each event's `Flow`: the names,
/// labels and label values are Cilium's for the release (`--cilium`), plus a `node` label on every
/// family (one agent serves every node of the lab; a Cilium agent serves its own node and gets the
/// label from the scrape's relabeling).
///
/// Which events count is Hubble's: only events Hubble makes a flow of (drops, traces, policy
/// verdicts, debug captures, socket traces, whose packet its parser decodes), each read once by
/// every family:
/// - `hubble_flows_processed_total{protocol,subtype,type,verdict}`: every flow.
/// - `hubble_drop_total{protocol,reason}`: verdict DROPPED. The reason is Cilium 1.13's monitor text
///   (`Policy denied`; `monitorAPI.DropReason`) under 1.13, the `flow.DropReason` enum name
///   (`POLICY_DENIED`) under latest: the switch (cilium/cilium#22408) was merged in January 2023,
///   after 1.13 branched.
/// - `hubble_tcp_flags_total{family,flag}`: FORWARDED or REDIRECTED TCP flows; `FIN`, `SYN`,
///   `SYN-ACK`, `RST` (one flow can count several).
/// - `hubble_icmp_total{family,type}`: every ICMP flow, any verdict; gopacket's type names. Under
///   1.13 ICMPv6 is labelled `family="IPv4"`, as Cilium does until cilium/cilium#41427.
/// - `hubble_port_distribution_total{port,protocol}`: FORWARDED or REDIRECTED flows with a
///   transport that are known not to be replies; ICMP counts as port `0`.
/// - `hubble_lost_events_total{source="perf_event_ring_buffer"}`: samples the kernel reported lost
///   (Cilium adds 1 per lost-record notification, and has this family from 1.14 on).
///
/// Each sample is decoded once, or counted from the `SampleMemo` when it equals one already counted
/// in every byte a label depends on (its counts then show after `publish()`).
///
/// Bounded: label values from traffic are capped per family (`Limits`; past a cap the value is
/// `other`), and every table has a fixed capacity (`MetricTable`).
///
/// Writer thread only (`count`, `lost`); any thread may render the tables.
public final class HubbleMetrics {
    /// Caps on label values that come from traffic (and on nodes).
    public struct Limits: Sendable {
        /// Nodes with their own label value; later ones are `other`.
        public var nodes = 16
        /// Distinct destination ports in `hubble_port_distribution_total` (all nodes and protocols).
        public var ports = 128
        /// Distinct drop reasons in `hubble_drop_total`.
        public var dropReasons = 64
        /// Distinct ICMP type/code names in `hubble_icmp_total`.
        public var icmpTypes = 64
        public init() {}
    }

    /// Series per family at most (the last one is the all-`other` overflow series).
    public enum Capacity {
        public static let flows = 512
        public static let drops = 512
        public static let tcpFlags = 160
        public static let icmp = 512
        public static let ports = 1024
        public static let lost = 32
    }

    public let release: CiliumRelease
    public let limits: Limits
    public let nodeNames: [String]
    public let flows: MetricTable
    public let drops: MetricTable
    public let tcpFlags: MetricTable
    public let icmp: MetricTable
    public let ports: MetricTable
    public let lostEvents: MetricTable
    /// In exposition order.
    public var tables: [MetricTable] { [flows, drops, tcpFlags, icmp, ports, lostEvents] + (journeyLatency.map { [$0.table] } ?? []) }

    private let portCap: ValueCap
    private let reasonCap: ValueCap
    private let icmpCap: ValueCap
    private var decoder: EventDecoder
    /// The one event every sample is decoded into (its packet storage is reused).
    private let event: UnsafeMutablePointer<Event> = {
        let p = UnsafeMutablePointer<Event>.allocate(capacity: 1)
        p.initialize(to: Event())
        return p
    }()

    /// Samples already counted, for the next of their flows, if `useMemo` (else every sample is
    /// decoded: with journeys, or when turned off).
    @usableFromInline let memo: SampleMemo
    @usableFromInline let useMemo: Bool
    /// Samples looked for in the memo and decoded (benchmarks, tests: the others were counted from it).
    public var memoMisses: UInt64 { memo.misses }
    /// The counters the last `count(_:node:)` added to (for the memo).
    private let adds = UnsafeMutablePointer<UnsafeMutablePointer<Atomic<UInt64>>>.allocate(capacity: SampleMemo.maxAdds)
    private var addCount = 0

    /// Journeys built from the samples `count(sample:)` decodes, and their hop latencies (nil: off).
    public let journeys: JourneyBuilder?
    public let journeyLatency: JourneyLatency?
    private var lastNode = -1

    /// `nodeNames`: the label value of each node index `count` is given (clipped to 64 bytes).
    /// `journeys`: also build every sample's journey for `vxmon_journey_hop_latency_seconds`.
    /// `memo`: count a sample that differs from one already counted only in bytes no label reads
    /// without decoding it again (`SampleMemo`); off, every sample is decoded (the memo's tests).
    public init(
        nodeNames: [String], release: CiliumRelease = .v1_13, limits: Limits = Limits(), journeys: Bool = false,
        memo: Bool = true
    ) {
        self.release = release
        self.memo = SampleMemo(release: release, sets: memo && !journeys ? 256 : 1)
        useMemo = memo && !journeys
        self.limits = limits
        // Clipped: the exposition's size bound counts on label values of bounded length.
        self.nodeNames = nodeNames.map { $0.utf8.count <= 64 ? $0 : String(decoding: $0.utf8.prefix(64), as: UTF8.self) }
        flows = MetricTable(
            name: "hubble_flows_processed_total", help: "Total number of flows processed", kind: .counter,
            labelNames: ["node", "protocol", "subtype", "type", "verdict"], capacity: Capacity.flows)
        drops = MetricTable(
            name: "hubble_drop_total", help: "Number of drops", kind: .counter,
            labelNames: ["node", "protocol", "reason"], capacity: Capacity.drops)
        tcpFlags = MetricTable(
            name: "hubble_tcp_flags_total", help: "TCP flag occurrences", kind: .counter,
            labelNames: ["family", "flag", "node"], capacity: Capacity.tcpFlags)
        icmp = MetricTable(
            name: "hubble_icmp_total", help: "Number of ICMP messages", kind: .counter,
            labelNames: ["family", "node", "type"], capacity: Capacity.icmp)
        ports = MetricTable(
            name: "hubble_port_distribution_total", help: "Numbers of packets distributed by destination port",
            kind: .counter, labelNames: ["node", "port", "protocol"], capacity: Capacity.ports)
        lostEvents = MetricTable(
            name: "hubble_lost_events_total", help: "Number of lost events", kind: .counter,
            labelNames: ["node", "source"], capacity: Capacity.lost)
        portCap = ValueCap(values: 1 << 16, cap: limits.ports)
        reasonCap = ValueCap(values: 256, cap: limits.dropReasons)
        icmpCap = ValueCap(values: 1 << 17, cap: limits.icmpTypes)
        decoder = EventDecoder(release: release)
        if journeys {
            let latency = JourneyLatency(release: release)
            let builder = JourneyBuilder(pods: PodDirectory(), names: InterfaceNames())
            builder.add(latency)
            self.journeys = builder
            journeyLatency = latency
        } else {
            self.journeys = nil
            journeyLatency = nil
        }
    }

    deinit {
        memo.deallocate()
        adds.deallocate()
        event.deinitialize(count: 1)
        event.deallocate()
    }

    // MARK: Counting (writer thread)

    /// Decodes one raw sample (once, with the release's `EventDecoder`, into a reused `Event`) and
    /// counts its flow; false if it is not an event (nothing counted).
    @inlinable @inline(__always)
    public func count(sample: RawSpan, node: Int, time: UInt64 = 0) -> Bool {
        // Journeys need every event decoded; counting alone can take a remembered sample's counts.
        if useMemo && memo.replay(sample, node: node) { return true }
        return decodeAndCount(sample, node: node, time: time)
    }

    /// The memo half of `count(sample:)` as a value of pointers, for a reader's hot path that should
    /// not count references per sample; `countDecoding` is the other half.
    public var memoCounter: MemoCounter { MemoCounter(memo: memo, on: useMemo) }

    /// `count(sample:)` for a sample the memo did not count: decoded, counted, remembered.
    public func countDecoding(sample: RawSpan, node: Int, time: UInt64 = 0) -> Bool {
        decodeAndCount(sample, node: node, time: time)
    }

    /// `count(sample:)` for a sample the memo does not know.
    @usableFromInline @inline(never)
    func decodeAndCount(_ sample: RawSpan, node: Int, time: UInt64) -> Bool {
        do {
            try decoder.decode(sample, into: &event.pointee, packetFlow: true)
        } catch {
            return false
        }
        // Through the pointer, the flow is borrowed in place (a class property's was copied).
        addCount = 0
        withUnsafePointer(to: &event.pointee.flow) { count(flowAt: $0, node: node) }
        if useMemo && addCount <= SampleMemo.maxAdds {
            memo.remember(sample, node: node, event: event, adds: UnsafeBufferPointer(start: adds, count: addCount))
        }
        if let journeys {
            // The node's name only when it changes (a String assigned per event costs a retain).
            if node != lastNode {
                lastNode = node
                event.pointee.node = node >= 0 && node < nodeNames.count ? nodeNames[node] : nil
            }
            event.pointee.timeNanoseconds = time
            journeys.event(event.pointee, record: sample)
        }
        return true
    }

    /// Adds the counts of samples counted from the memo since the last time to the counters (the
    /// exposition shows them from then on). Writer thread only.
    public func publish() { memo.publish() }

    /// Counts the event whose flow is `flow`, seen on node `node` (an index into `nodeNames`).
    public func count(_ flow: borrowing Flow, node: Int) {
        var copy = copy flow
        withUnsafePointer(to: &copy) { count(flowAt: $0, node: node) }
    }

    /// `count(_:node:)` through a pointer: the flow is read in place, not copied (per sample).
    private func count(flowAt f: UnsafePointer<Flow>, node: Int) {
        guard HubbleJSONRenderer.isFlow(f.pointee.type), !f.pointee.hubbleUndecodable else { return }
        // Scalars first: the label closures below capture these, not the flow (a copy per event).
        let n = UInt64(nodeCode(node))
        let type = f.pointee.type
        let verdict = f.pointee.verdict
        let isReply = f.pointee.isReply
        let dropReason = f.pointee.dropReason ?? 0
        var subtype: UInt64 = 0xFFFF
        if type == MessageType.trace, CiliumNames.observationPoint(f.pointee.subType, release) != nil {
            subtype = UInt64(f.pointee.subType)
        }
        let l = f.pointee.hubbleLayers(release)
        let transport = l.transport
        let hasIP = l.source != nil
        let v6: Bool = if case .v6? = l.source { true } else { false }
        let (destinationPort, tcpFlagBits, icmpType, icmpCode) = (l.destinationPort, l.tcpFlags, l.icmpType, l.icmpCode)
        let proto = Self.protocolCode(type, transport)

        // hubble_flows_processed_total
        let fkey = n | UInt64(type.rawValue) << 8 | subtype << 16 | UInt64(verdict.rawValue) << 32 | UInt64(proto) << 40
        add(
            flows,
            flows.slot(fkey) {
                let (t, s) = Self.typeLabels(type, subType: UInt8(truncatingIfNeeded: subtype), release: release)
                return [nodeLabel(node), Self.protocolNames[Int(proto)], s, t, String(describing: verdict.name)]
            })

        // hubble_drop_total
        if verdict == .dropped {
            let reason: UInt64 = reasonCap.admit(Int(dropReason)) ? UInt64(dropReason) : 0x100
            let dkey = n | reason << 8 | UInt64(proto) << 20
            add(
                drops,
                drops.slot(dkey) {
                    [nodeLabel(node), Self.protocolNames[Int(proto)],
                     reason == 0x100 ? "other" : Self.dropReasonLabel(UInt8(reason), release: release)]
                })
        }

        let forwarded = verdict == .forwarded || verdict == .redirected
        switch transport {
        case .tcp:
            // hubble_tcp_flags_total: FIN; SYN or SYN-ACK; RST (codes into tcpFlagNames).
            if forwarded && hasIP {
                Self.forEachTCPFlagCode(tcpFlagBits) { countTCP($0, v6, n, node) }
            }
        case .icmpv4, .icmpv6:
            // hubble_icmp_total
            let icmp6 = transport == .icmpv6
            let typeCode = (icmp6 ? 1 << 16 : 0) | Int(icmpType) << 8 | Int(icmpCode)
            let value: UInt64 = icmpCap.admit(typeCode) ? UInt64(typeCode) : 0x20000
            add(
                icmp,
                icmp.slot(n | value << 8) {
                    [Self.icmpFamilyLabel(v6: icmp6, release: release), nodeLabel(node),
                     value == 0x20000 ? "other" : Self.icmpTypeLabel(v6: icmp6, type: icmpType, code: icmpCode)]
                })
        default:
            break
        }

        // hubble_port_distribution_total
        if forwarded, isReply == false, transport != .none {
            var port: UInt64 = 0
            if transport.hasPorts {
                port = portCap.admit(Int(destinationPort)) ? UInt64(destinationPort) : 0x10000
            }
            add(
                ports,
                ports.slot(n | port << 8 | UInt64(proto) << 28) {
                    [nodeLabel(node), port == 0x10000 ? "other" : String(port), Self.protocolNames[Int(proto)]]
                })
        }
    }

    @inline(__always)
    private func countTCP(_ flag: UInt8, _ v6: Bool, _ n: UInt64, _ node: Int) {
        add(
            tcpFlags,
            tcpFlags.slot(n | UInt64(flag) << 8 | (v6 ? 1 : 0) << 12) {
                [v6 ? "IPv6" : "IPv4", String(describing: Self.tcpFlagNames[Int(flag)]), nodeLabel(node)]
            })
    }

    /// Adds 1 to a series of a flow family, and notes the counter for the memo.
    @inline(__always)
    private func add(_ table: MetricTable, _ slot: Int) {
        table.add(slot)
        if addCount < SampleMemo.maxAdds {
            adds[addCount] = table.counter(slot)
            addCount &+= 1
        } else {
            addCount = SampleMemo.maxAdds + 1  // more than the memo holds: not remembered
        }
    }

    /// Counts `count` samples lost on node `node`.
    public func lost(node: Int, count: UInt64, time: UInt64 = 0) {
        journeys?.lost(
            LostSamples(cpu: 0, count: count, timeNanoseconds: time, node: node >= 0 && node < nodeNames.count ? nodeNames[node] : nil))
        lostEvents.addSaturating(
            lostEvents.slot(UInt64(nodeCode(node))) { [nodeLabel(node), "perf_event_ring_buffer"] }, count)
    }

    @inline(__always)
    private func nodeCode(_ node: Int) -> Int { node >= 0 && node < min(limits.nodes, nodeNames.count) ? node : 255 }

    private func nodeLabel(_ node: Int) -> String {
        node >= 0 && node < min(limits.nodes, nodeNames.count) ? nodeNames[node] : "other"
    }

    // MARK: Label values (Cilium's)

    /// `v1.FlowProtocol`'s names, by `protocolCode`.
    public static let protocolNames = ["Unknown flow", "Unknown L4", "TCP", "UDP", "ICMPv4", "ICMPv6", "SCTP"]

    /// Hubble's `FlowProtocol`: the transport for drops, traces, policy verdicts and debug captures
    /// (`Unknown L4` without one), `Unknown flow` for every other type (socket traces).
    public static func protocolCode(_ type: MessageType, _ transport: FlowTransport) -> UInt8 {
        switch type {
        case MessageType.drop, MessageType.trace, MessageType.policyVerdict, MessageType.capture:
            switch transport {
            case .none: 1
            case .tcp: 2
            case .udp: 3
            case .icmpv4: 4
            case .icmpv6: 5
            case .sctp: 6
            }
        default: 0
        }
    }

    /// `hubble_flows_processed_total`'s `type` and `subtype`: `Trace` with the observation point's
    /// name (empty for one the release does not name), `Drop`, `Capture` and `PolicyVerdict` with an
    /// empty subtype, `Unknown` with the type's number as subtype.
    public static func typeLabels(_ type: MessageType, subType: UInt8, release: CiliumRelease) -> (String, String) {
        switch type {
        case MessageType.drop: ("Drop", "")
        case MessageType.capture: ("Capture", "")
        case MessageType.trace: ("Trace", CiliumNames.observationPoint(subType, release).map { String(describing: $0) } ?? "")
        case MessageType.policyVerdict: ("PolicyVerdict", "")
        default: ("Unknown", String(type.rawValue))
        }
    }

    /// `hubble_drop_total`'s `reason`: 1.13's monitor text (`Policy denied`; an unknown code as its
    /// number), latest's `flow.DropReason` enum name (`POLICY_DENIED`; 0 is `DROP_REASON_UNKNOWN`, a
    /// code the enum lacks its number).
    public static func dropReasonLabel(_ code: UInt8, release: CiliumRelease) -> String {
        switch release {
        case .v1_13:
            return CiliumNames.dropReason(code, .v1_13).map { String(describing: $0) } ?? String(code)
        case .latest:
            if code == 0 { return "DROP_REASON_UNKNOWN" }
            return HubbleDropReason.name(code, .latest).map { String(describing: $0) } ?? String(code)
        }
    }

    /// `hubble_tcp_flags_total`'s flags, by code.
    public static let tcpFlagNames: [StaticString] = ["FIN", "SYN", "SYN-ACK", "RST"]

    /// The `flag` values a TCP header's flags count under (codes into `tcpFlagNames`): FIN; SYN, or
    /// SYN-ACK with ACK; RST. Other flags (ACK alone, PSH, URG, ...) count nothing.
    public static func tcpFlagCodes(_ flags: UInt16) -> [UInt8] {
        var codes: [UInt8] = []
        forEachTCPFlagCode(flags) { codes.append($0) }
        return codes
    }

    /// `tcpFlagCodes` without an array (the counting path).
    @inline(__always)
    static func forEachTCPFlagCode(_ flags: UInt16, _ body: (UInt8) -> Void) {
        if flags & 0x01 != 0 { body(0) }
        if flags & 0x02 != 0 { body(flags & 0x10 != 0 ? 2 : 1) }
        if flags & 0x04 != 0 { body(3) }
    }

    /// `hubble_icmp_total`'s `type`: gopacket's `ICMPv4TypeCode`/`ICMPv6TypeCode.String()`.
    public static func icmpTypeLabel(v6: Bool, type: UInt8, code: UInt8) -> String {
        let out = OutputBuffer(capacity: 64)
        out.icmpTypeCode(v6: v6, type: type, code: code)
        return out.string
    }

    /// `hubble_icmp_total`'s `family`: `IPv4` for ICMPv6 too under 1.13 (Cilium's bug until #41427).
    public static func icmpFamilyLabel(v6: Bool, release: CiliumRelease) -> String {
        v6 && release == .latest ? "IPv6" : "IPv4"
    }
}

/// Which values of one label have their own series: the first `cap` seen; the rest count as `other`.
/// A bitmap over the value space (writer thread only).
final class ValueCap {
    private let bits: UnsafeMutablePointer<UInt64>
    private let words: Int
    private var admitted = 0
    let cap: Int

    init(values: Int, cap: Int) {
        words = (values + 63) / 64
        bits = .allocate(capacity: words)
        bits.initialize(repeating: 0, count: words)
        self.cap = cap
    }

    deinit { bits.deallocate() }

    /// Whether `value` has its own series (admitting it if there is room).
    @inline(__always)
    func admit(_ value: Int) -> Bool {
        let w = value >> 6
        guard w >= 0 && w < words else { return false }
        let bit: UInt64 = 1 << UInt64(value & 63)
        if bits[w] & bit != 0 { return true }
        guard admitted < cap else { return false }
        bits[w] |= bit
        admitted += 1
        return true
    }
}

/// `HubbleMetrics.memoCounter`: counts a sample from the memo when it can (true), else leaves it to
/// `HubbleMetrics.countDecoding`. Pointers only; the metrics must outlive it. Writer thread only.
public struct MemoCounter: @unchecked Sendable {
    @usableFromInline let memo: SampleMemo
    @usableFromInline let on: Bool

    @usableFromInline
    init(memo: SampleMemo, on: Bool) {
        self.memo = memo
        self.on = on
    }

    @inlinable @inline(__always)
    public func count(_ sample: RawSpan, node: Int) -> Bool { on && memo.replay(sample, node: node) }
}
