import VxmonWire

/// Totals for `--summary` and `vxmon stats`: events by type, observation point, drop reason, node, CPU
/// and VNI, the busiest flows, and lost samples. Memory is bounded whatever the input: at most
/// `maxKeys` nodes, CPUs, VNIs and flows are told apart, the rest is counted as `other`.
public final class FlowCounters {
    public static let maxKeys = 65536

    public private(set) var events: UInt64 = 0
    public private(set) var byType = [UInt64](repeating: 0, count: 256)
    /// Events by Hubble's verdict (`Flow.verdict`: what `--verdict` and the Hubble servers read).
    public private(set) var byVerdict = [UInt64](repeating: 0, count: 8)
    /// Trace events by observation point.
    public private(set) var byObservationPoint = [UInt64](repeating: 0, count: 256)
    /// Drops (and denied policy verdicts) by reason.
    public private(set) var byDropReason = [UInt64](repeating: 0, count: 256)
    public private(set) var byNode: [String: UInt64] = [:]
    public private(set) var byCPU: [Int: UInt64] = [:]
    public private(set) var byVNI: [UInt32: UInt64] = [:]
    public private(set) var flows: [FlowKey: UInt64] = [:]
    /// Events whose node, CPU, VNI or flow did not fit the bound.
    public private(set) var other: UInt64 = 0
    public private(set) var lostSamples: UInt64 = 0
    public private(set) var lostByCPU: [Int: UInt64] = [:]

    /// A flow as the summary shows it: addresses, transport, ports (or ICMP type), tunnel VNI.
    public struct FlowKey: Hashable, Sendable {
        public var source: IPAddress?
        public var destination: IPAddress?
        public var transport: FlowTransport
        public var sourcePort: UInt16
        public var destinationPort: UInt16
        public var vni: UInt32?

        init(_ flow: borrowing Flow) {
            let f = flow.primary
            source = f.source
            destination = f.destination
            transport = f.transport
            switch f.transport {
            case .tcp, .udp, .sctp:
                sourcePort = f.sourcePort
                destinationPort = f.destinationPort
            case .icmpv4, .icmpv6:
                sourcePort = UInt16(f.icmpType)
                destinationPort = 0
            case .none:
                sourcePort = 0
                destinationPort = 0
            }
            vni = flow.tunnel?.vni
        }

        /// A total order for ties: source, destination (IPv4 before IPv6, numerically; none first),
        /// protocol, ports, VNI (none first).
        func precedes(_ o: FlowKey) -> Bool {
            if source != o.source { return Self.rank(source) < Self.rank(o.source) }
            if destination != o.destination { return Self.rank(destination) < Self.rank(o.destination) }
            if transport != o.transport { return transport.rawValue < o.transport.rawValue }
            if sourcePort != o.sourcePort { return sourcePort < o.sourcePort }
            if destinationPort != o.destinationPort { return destinationPort < o.destinationPort }
            return (vni.map { Int64($0) } ?? -1) < (o.vni.map { Int64($0) } ?? -1)
        }

        private static func rank(_ a: IPAddress?) -> (UInt8, UInt64, UInt64) {
            switch a {
            case nil: (0, 0, 0)
            case .v4(let v): (1, 0, UInt64(v.rawValue))
            case .v6(let v): (2, v.high, v.low)
            }
        }
    }

    public init() {}

    private var lastNode: String?
    private var lastNodeCount: UInt64 = 0

    @inline(__always)
    private static func bump<K: Hashable>(_ table: inout [K: UInt64], _ key: K, _ n: UInt64 = 1) -> Bool {
        if let i = table.index(forKey: key) {
            table.values[i] +|= n
            return true
        }
        guard table.count < maxKeys else { return false }
        table[key] = n
        return true
    }

    /// Counts one event that passed the filter.
    public func count(_ event: borrowing Event) {
        let flow = event.flow
        // One per event: these cannot reach 2^64. Counts from outside (lost samples, merges) saturate.
        events &+= 1
        byType[Int(flow.type.rawValue)] &+= 1
        byVerdict[Int(flow.verdict.rawValue & 7)] &+= 1
        if let point = flow.observationPoint { byObservationPoint[Int(point.rawValue)] &+= 1 }
        if let reason = flow.dropReason { byDropReason[Int(reason)] &+= 1 }
        var fits = true
        if let node = flow.node {
            // Runs of one node are counted without hashing its name per event.
            if node == lastNode {
                lastNodeCount &+= 1
            } else {
                flushNode()
                lastNode = node
                lastNodeCount = 1
            }
        }
        fits = Self.bump(&byCPU, flow.cpu) && fits
        if let vni = flow.tunnel?.vni { fits = Self.bump(&byVNI, vni) && fits }
        if flow.type == .trace || flow.type == .drop || flow.type == .policyVerdict || flow.type == .capture {
            fits = Self.bump(&flows, FlowKey(flow)) && fits
        }
        if !fits { other &+= 1 }
    }

    private func flushNode() {
        if let lastNode, lastNodeCount > 0, !Self.bump(&byNode, lastNode, lastNodeCount) { other +|= lastNodeCount }
        lastNodeCount = 0
    }

    /// Counts lost samples.
    public func count(_ lost: LostSamples) {
        lostSamples +|= lost.count
        if !Self.bump(&lostByCPU, lost.cpu, lost.count) { other +|= 1 }
    }

    /// Adds another set of counters (a parallel worker's).
    public func merge(_ o: FlowCounters) {
        o.flushNode()
        o.lastNode = nil
        events +|= o.events
        for i in 0..<8 { byVerdict[i] +|= o.byVerdict[i] }
        for i in 0..<256 {
            byType[i] +|= o.byType[i]
            byObservationPoint[i] +|= o.byObservationPoint[i]
            byDropReason[i] +|= o.byDropReason[i]
        }
        flushNode()
        lastNode = nil
        for (k, v) in o.byNode where !Self.bump(&byNode, k, v) { other +|= v }
        for (k, v) in o.byCPU where !Self.bump(&byCPU, k, v) { other +|= v }
        for (k, v) in o.byVNI where !Self.bump(&byVNI, k, v) { other +|= v }
        for (k, v) in o.flows where !Self.bump(&flows, k, v) { other +|= v }
        for (k, v) in o.lostByCPU where !Self.bump(&lostByCPU, k, v) { other +|= v }
        other +|= o.other
        lostSamples +|= o.lostSamples
    }

    /// Clears every counter (a parallel worker's, after it was merged).
    public func reset() {
        events = 0
        for i in 0..<8 { byVerdict[i] = 0 }
        for i in 0..<256 {
            byType[i] = 0
            byObservationPoint[i] = 0
            byDropReason[i] = 0
        }
        byNode.removeAll(keepingCapacity: true)
        byCPU.removeAll(keepingCapacity: true)
        byVNI.removeAll(keepingCapacity: true)
        flows.removeAll(keepingCapacity: true)
        lostByCPU.removeAll(keepingCapacity: true)
        other = 0
        lostSamples = 0
        lastNode = nil
        lastNodeCount = 0
    }

    // MARK: Report

    /// The rows of every table, in the order they are shown.
    struct Report {
        var sections: [(title: StaticString, key: StaticString, rows: [(String, UInt64)])] = []
        var topFlows: [(String, UInt64)] = []
    }

    public static let topFlowCount = 10

    static func typeName(_ t: UInt8) -> String {
        MessageType.monitorNames.first { $0.1.rawValue == t }?.0 ?? "type-\(t)"
    }

    func report(release: CiliumRelease) -> Report {
        flushNode()
        var r = Report()
        r.sections.append(
            ("events by type", "by_type", (0..<256).filter { byType[$0] > 0 }.map { (Self.typeName(UInt8($0)), byType[$0]) }))
        r.sections.append(
            (
                "events by verdict", "by_verdict",
                (1..<8).filter { byVerdict[$0] > 0 }.map {
                    ((FlowVerdict(rawValue: UInt8($0)) ?? .unknown).name.description, byVerdict[$0])
                }
            ))
        r.sections.append(
            (
                "trace events by observation point", "by_observation_point",
                (0..<256).filter { byObservationPoint[$0] > 0 }.map {
                    (ObservationPoint(rawValue: UInt8($0)).ciliumName?.description ?? "\($0)", byObservationPoint[$0])
                }
            ))
        r.sections.append(
            (
                "drops by reason", "by_drop_reason",
                (0..<256).filter { byDropReason[$0] > 0 }.map {
                    let name = CiliumNames.dropReason(UInt8($0), release)?.description ?? "unknown"
                    return ("\(name) (\($0))", byDropReason[$0])
                }
            ))
        r.sections.append(("events by node", "by_node", byNode.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        r.sections.append(("events by CPU", "by_cpu", byCPU.sorted { $0.key < $1.key }.map { ("\($0.key)", $0.value) }))
        r.sections.append(("tunnel packets by VNI", "by_vni", byVNI.sorted { $0.key < $1.key }.map { ("\($0.key)", $0.value) }))
        r.sections.append(
            ("lost samples by CPU", "lost_by_cpu", lostByCPU.sorted { $0.key < $1.key }.map { ("\($0.key)", $0.value) }))
        // The busiest flows, ties in address, protocol, port and VNI order: one pass keeping the best
        // `topFlowCount` so far (a bounded, sorted list), and text for those only, once each. Sorting
        // every flow and making text inside the comparisons took 43 s for 65,536 distinct flows.
        var top: [(key: FlowKey, count: UInt64)] = []
        top.reserveCapacity(Self.topFlowCount + 1)
        for (key, count) in flows {
            if top.count == Self.topFlowCount, let last = top.last, !Self.busier(key, count, than: last.key, last.count) {
                continue
            }
            let at = top.firstIndex { !Self.busier($0.key, $0.count, than: key, count) } ?? top.count
            top.insert((key, count), at: at)
            if top.count > Self.topFlowCount { top.removeLast() }
        }
        describedFlows &+= top.count
        r.topFlows = top.map { (Self.describe($0.key), $0.count) }
        return r
    }

    /// Flow texts made by `report` (the winners only): what the test of its cost reads.
    package private(set) var describedFlows = 0

    /// Whether flow `a` with `m` events ranks before `b` with `n`: more events first, then the key.
    static func busier(_ a: FlowKey, _ m: UInt64, than b: FlowKey, _ n: UInt64) -> Bool {
        m != n ? m > n : a.precedes(b)
    }

    static func describe(_ k: FlowKey) -> String {
        var f = FlowLayers()
        f.source = k.source
        f.destination = k.destination
        f.transport = k.transport
        switch k.transport {
        case .tcp, .udp, .sctp:
            f.sourcePort = k.sourcePort
            f.destinationPort = k.destinationPort
        case .icmpv4, .icmpv6: f.icmpType = UInt8(truncatingIfNeeded: k.sourcePort)
        case .none: break
        }
        let out = OutputBuffer(capacity: 128)
        if f.source == nil && f.transport == .none {
            out.append("(no IP)")
        } else {
            ConnectionSummary.append(f, out)
            if k.transport == .tcp { out.truncate(to: out.count - 1) }  // no flag list: a flow's flags vary
        }
        if let vni = k.vni {
            out.append(" vni ")
            out.decimal(vni)
        }
        return out.string
    }

    /// The summary as tables, for stderr. `stats` gives the totals of the whole stream.
    public func table(_ stats: PipelineStats, release: CiliumRelease = .v1_13) -> String {
        let r = report(release: release)
        var lines: [String] = []
        // Saturating: lost samples come from outside and can be near 2^64.
        let total = UInt64(stats.events) +| UInt64(stats.decodeErrors) +| stats.lostSamples
        lines.append(
            "vxmon summary: \(total) records: \(stats.matched) shown, \(stats.filtered) filtered out, "
                + "\(stats.decodeErrors) undecodable, \(stats.lostSamples) samples lost"
                + (stats.malformedRecords > 0 ? " (\(stats.malformedRecords) malformed records skipped)" : ""))
        func section(_ title: String, _ rows: [(String, UInt64)]) {
            guard !rows.isEmpty else { return }
            let width = max(rows.map { $0.0.count }.max() ?? 0, 8)
            lines.append("")
            lines.append(title.uppercased())
            for (name, count) in rows {
                lines.append("  " + name + String(repeating: " ", count: width - name.count + 2) + "\(count)")
            }
        }
        for s in r.sections { section(s.title.description, s.rows.map { (EventPipeline.sanitized($0.0), $0.1) }) }
        section("top flows", r.topFlows)
        if other > 0 { lines.append("\n(\(other) events beyond the \(Self.maxKeys)-key bound counted only in totals)") }
        return lines.joined(separator: "\n")
    }

    public func renderJSON(_ stats: PipelineStats, release: CiliumRelease = .v1_13, into out: OutputBuffer) {
        var w = JSONWriter(out: out)
        write(&w, stats, release)
    }

    public func renderYAML(_ stats: PipelineStats, release: CiliumRelease = .v1_13, into out: OutputBuffer) {
        var w = YAMLWriter(out: out)
        write(&w, stats, release)
    }

    func write<W: StructuredWriter>(_ w: inout W, _ stats: PipelineStats, _ release: CiliumRelease) {
        let r = report(release: release)
        w.beginDocument()
        w.beginObject()
        w.field("type", string: "summary")
        w.field("records", UInt64(stats.events) +| UInt64(stats.decodeErrors) +| stats.lostSamples)
        w.field("events", stats.events)
        w.field("matched", stats.matched)
        w.field("filtered", stats.filtered)
        w.field("undecodable", stats.decodeErrors)
        w.field("malformed_records", stats.malformedRecords)
        w.field("lost_samples", stats.lostSamples)
        for s in r.sections {
            w.key(s.key)
            w.beginArray()
            for (name, count) in s.rows {
                w.beginObject()
                w.key("name")
                w.escapedString(name)
                w.field("count", count)
                w.endObject()
            }
            w.endArray()
        }
        w.key("top_flows")
        w.beginArray()
        for (name, count) in r.topFlows {
            w.beginObject()
            w.key("flow")
            w.escapedString(name)
            w.field("count", count)
            w.endObject()
        }
        w.endArray()
        w.field("other", other)
        w.endObject()
        w.endDocument()
    }
}
