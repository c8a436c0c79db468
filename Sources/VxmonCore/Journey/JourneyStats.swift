import VxmonWire

/// Latencies in buckets 1/64 of a power of two wide (under 1.1%), kept sparse: memory grows with the
/// spread of the values, never with their number. Each bucket keeps its least value, and a
/// percentile is the least value of the bucket that holds its rank: a value that was seen, exact
/// when the bucket holds one value, else at most 1.1% under the true one. Values under 64 ns have a
/// bucket each; negative values (a clock correction that overshot) count as 0.
public struct LatencyHistogram: Sendable {
    public private(set) var count: UInt64 = 0
    public private(set) var max: Int64 = 0
    private var buckets: [Int32: (count: UInt64, least: Int64)] = [:]

    public init() {}

    static func bucket(_ v: UInt64) -> Int32 {
        if v < 64 { return Int32(v) }
        let e = 63 - v.leadingZeroBitCount  // >= 6
        let sub = Int32((v >> UInt64(e - 6)) & 63)
        return Int32(e - 5) * 64 + sub
    }

    public mutating func add(_ ns: Double) {
        var v = clampedInt64(ns.rounded())
        if v < 0 { v = 0 }
        count &+= 1
        if v > max { max = v }
        let b = Self.bucket(UInt64(v))
        if let old = buckets[b] {
            buckets[b] = (old.count &+ 1, Swift.min(old.least, v))
        } else {
            buckets[b] = (1, v)
        }
    }

    /// The value below which a fraction `p` of the values lie (0 when empty); `max` for p = 1.
    public func percentile(_ p: Double) -> Double {
        guard count > 0 else { return 0 }
        if p >= 1 { return Double(max) }
        let rank = Swift.max(UInt64((Double(count) * p).rounded(.up)), 1)
        var seen: UInt64 = 0
        for b in buckets.keys.sorted() {
            let bucket = buckets[b]!
            seen &+= bucket.count
            if seen >= rank { return Double(bucket.least) }
        }
        return Double(max)
    }
}

/// The aggregates of `--summary`: per path (the node a journey starts on, the node it ends on), the
/// journeys completed and not, latency per hop and end to end (p50, p99, max), and where the
/// incomplete ones stopped; with the builder's counts, which add up: events = hops + hops past the
/// limit + events of no journey.
public final class JourneyStats: JourneyOutput {
    public struct Path {
        public var sourceNode: UInt16
        public var destinationNode: UInt16
        public var journeys: UInt64 = 0
        public var complete: UInt64 = 0
        public var outcomes: [UInt64] = [0, 0, 0, 0]
        /// The hop sequences of complete journeys, and how often.
        var shapes: [Shape: UInt64] = [:]
        /// Per step of complete journeys (from one node and point to the next), in first-seen order.
        var steps: [(Step, LatencyHistogram)] = []
        public var endToEnd = LatencyHistogram()
        /// Where incomplete journeys stopped (node and point), and how often; past `maxKeys`, `other`.
        var stops: [UInt32: UInt64] = [:]
        var otherStops: UInt64 = 0
    }

    /// A hop's point as a byte: a trace's observation point + 1, 0x40 a drop, 0x41 a policy verdict.
    static func code(_ h: JourneyHop) -> UInt8 {
        switch h.kind {
        case .trace: (h.point?.rawValue ?? 0x3e) &+ 1
        case .drop: 0x40
        case .policyVerdict: 0x41
        }
    }

    static func name(_ code: UInt8) -> String {
        switch code {
        case 0x40: "drop"
        case 0x41: "policy-verdict"
        default:
            CiliumNames.observationPointAny(code &- 1).map { "\($0)" } ?? "point \(code &- 1)"
        }
    }

    /// The points of a journey, up to 16 (more are counted, not told apart).
    struct Shape: Hashable {
        var low: UInt64 = 0
        var high: UInt64 = 0
        var count = 0
        init(_ hops: [JourneyHop]) {
            for (i, h) in hops.enumerated() where i < 16 {
                let c = UInt64(JourneyStats.code(h))
                if i < 8 { low |= c << UInt64(8 * i) } else { high |= c << UInt64(8 * (i - 8)) }
            }
            count = hops.count
        }
        var names: [String] {
            (0..<Swift.min(count, 16)).map { i in
                JourneyStats.name(UInt8(truncatingIfNeeded: (i < 8 ? low : high) >> UInt64(8 * (i % 8))))
            } + (count > 16 ? ["..."] : [])
        }
    }

    /// One step: from a node and point to the next.
    struct Step: Equatable {
        var fromNode: UInt16
        var from: UInt8
        var toNode: UInt16
        var to: UInt8
    }

    public static let maxPaths = 256
    public static let maxSteps = 64
    public static let maxKeys = 64

    public private(set) var paths: [Path] = []
    private var index: [UInt32: Int] = [:]
    /// Journeys of paths past `maxPaths`.
    public private(set) var otherJourneys: UInt64 = 0

    public init() {}

    public func exchange(_ journeys: UnsafeBufferPointer<Journey>, builder b: JourneyBuilder) {
        for j in journeys { add(j, b) }
    }

    func add(_ j: Journey, _ b: JourneyBuilder) {
        guard let first = j.hops.first, let last = j.hops.last else { return }
        let end: UInt16 =
            j.outcome == .delivered || j.outcome == .dropped ? last.node : j.destinationNode ?? JourneyBuilder.unknownNode
        let id = UInt32(first.node) << 16 | UInt32(end)
        let p: Int
        if let known = index[id] {
            p = known
        } else if paths.count < Self.maxPaths {
            p = paths.count
            paths.append(Path(sourceNode: first.node, destinationNode: end))
            index[id] = p
        } else {
            otherJourneys &+= 1
            return
        }
        paths[p].journeys &+= 1
        paths[p].outcomes[Int(j.outcome.rawValue)] &+= 1
        if j.isComplete {
            paths[p].complete &+= 1
            let shape = Shape(j.hops)
            if paths[p].shapes[shape] != nil || paths[p].shapes.count < Self.maxKeys { paths[p].shapes[shape, default: 0] &+= 1 }
            for i in j.hops.indices.dropFirst() {
                let a = j.hops[i - 1]
                let c = j.hops[i]
                let step = Step(fromNode: a.node, from: Self.code(a), toNode: c.node, to: Self.code(c))
                if let s = paths[p].steps.firstIndex(where: { $0.0 == step }) {
                    paths[p].steps[s].1.add(b.delta(j, i))
                } else if paths[p].steps.count < Self.maxSteps {
                    var h = LatencyHistogram()
                    h.add(b.delta(j, i))
                    paths[p].steps.append((step, h))
                }
            }
            paths[p].endToEnd.add(b.latency(j))
        } else {
            // A journey that did not arrive stopped at its last hop; one delivered with a gap is filed
            // under its first missing hop.
            var stop = UInt32(last.node) << 8 | UInt32(Self.code(last))
            if j.outcome == .delivered, let m = j.missing.first {
                stop = 1 << 31 | UInt32(m.node) << 8 | UInt32(m.point.rawValue &+ 1)
            }
            if paths[p].stops[stop] != nil || paths[p].stops.count < Self.maxKeys {
                paths[p].stops[stop, default: 0] &+= 1
            } else {
                paths[p].otherStops &+= 1
            }
        }
    }

    func label(_ s: Step, _ b: JourneyBuilder) -> String {
        if s.fromNode == s.toNode { return Self.name(s.from) + " -> " + Self.name(s.to) }
        return (b.nodeName(s.fromNode) ?? "-") + " " + Self.name(s.from) + " -> " + (b.nodeName(s.toNode) ?? "-") + " "
            + Self.name(s.to)
    }

    /// Where incomplete journeys stopped, most first: (`worker2 to-overlay`, count).
    func stops(_ p: Path, _ b: JourneyBuilder) -> [(String, UInt64)] {
        var list = p.stops.map { (key, n) in
            let node = UInt16(truncatingIfNeeded: key >> 8)
            let where_ = (node == JourneyBuilder.unknownNode ? "the far node" : b.nodeName(node) ?? "-")
            if key >> 31 != 0 { return ("delivered without " + Self.name(UInt8(key & 0xff)) + " on " + where_, n) }
            return (where_ + " " + Self.name(UInt8(key & 0xff)), n)
        }
        if p.otherStops > 0 { list.append(("other", p.otherStops)) }
        return list.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
    }

    /// The most frequent shape of complete journeys.
    func shape(_ p: Path) -> [String]? {
        p.shapes.max { $0.value < $1.value || ($0.value == $1.value && $0.key.names.joined() > $1.key.names.joined()) }?.key.names
    }

    func nodeLabel(_ n: UInt16, _ b: JourneyBuilder) -> String {
        n == JourneyBuilder.unknownNode ? "?" : b.nodeName(n) ?? "-"
    }

    /// The summary as a table (for stderr after text output).
    public func table(_ b: JourneyBuilder) -> String {
        let out = OutputBuffer(capacity: 4096)
        let c = b.counters
        out.append("Journeys: ")
        out.unsignedDecimal(c.shown)
        out.append(" shown of ")
        out.unsignedDecimal(c.journeys)
        out.append(" (")
        out.unsignedDecimal(c.complete)
        out.append(" complete; ")
        for o in JourneyOutcome.allCases {
            if o != .delivered { out.append(", ") }
            out.unsignedDecimal(c.outcomes[Int(o.rawValue)])
            out.append(byte: 32)
            out.append(o.name)
        }
        out.append("), ")
        out.unsignedDecimal(c.pairs)
        out.append(" request/reply pairs\n")
        out.append("Events: ")
        out.decimal(c.events)
        out.append(" = ")
        out.decimal(c.hops)
        out.append(" hops + ")
        out.decimal(c.extraHops)
        out.append(" past the hop limit + ")
        out.decimal(c.otherEvents)
        out.append(" of no journey; ")
        out.unsignedDecimal(c.lostSamples)
        out.append(" samples lost; ")
        out.unsignedDecimal(c.missingHops)
        out.append(" expected hops missing; ")
        out.unsignedDecimal(c.timedOut)
        out.append(" timed out; ")
        out.unsignedDecimal(c.evicted)
        out.append(" evicted; ")
        out.unsignedDecimal(c.superseded)
        out.append(" superseded\n")
        for p in paths {
            out.append("\nPath ")
            out.appendSanitized(nodeLabel(p.sourceNode, b))
            out.append(" -> ")
            out.appendSanitized(nodeLabel(p.destinationNode, b))
            if let shape = shape(p) {
                out.append(" (")
                out.append(shape.joined(separator: ", "))
                out.append(")")
            }
            out.append(": ")
            out.unsignedDecimal(p.journeys)
            out.append(" journeys, ")
            out.unsignedDecimal(p.complete)
            out.append(" complete, ")
            out.unsignedDecimal(p.journeys &- p.complete)
            out.append(" incomplete\n")
            if !p.steps.isEmpty {
                row(out, "  hop", "p50", "p99", "max", width: 58)
                for (step, h) in p.steps {
                    let l = OutputBuffer(capacity: 64)
                    l.append("  ")
                    l.appendSanitized(label(step, b))
                    row(out, l.string, dur(h.percentile(0.5)), dur(h.percentile(0.99)), dur(Double(h.max)), width: 58)
                }
                let h = p.endToEnd
                row(out, "  end to end", dur(h.percentile(0.5)), dur(h.percentile(0.99)), dur(Double(h.max)), width: 58)
            }
            if !p.stops.isEmpty {
                out.append("  incomplete stopped at: ")
                out.appendSanitized(stops(p, b).map { "\($0.0) (\($0.1))" }.joined(separator: ", "))
                out.append(byte: 10)
            }
        }
        if otherJourneys > 0 {
            out.append("\n")
            out.unsignedDecimal(otherJourneys)
            out.append(" journeys on further paths (more than \(Self.maxPaths) paths)\n")
        }
        let estimates = b.clocks.estimates
        if !estimates.isEmpty {
            out.append("\nClock offsets (from request/reply pairs, NTP's four times):\n")
            for e in estimates {
                out.append("  ")
                out.appendSanitized(nodeLabel(e.nodeB, b))
                out.append(" - ")
                out.appendSanitized(nodeLabel(e.nodeA, b))
                out.append(": ")
                out.append(dur(e.offset))
                out.append(" ± ")
                out.append(dur(e.bound))
                out.append(", drift ")
                out.append(String(format1(e.driftPPM)))
                out.append(" ± ")
                out.append(String(format1(e.driftBoundPPM)))
                out.append(" ppm, from ")
                out.decimal(e.samples)
                out.append(" pairs")
                if !e.consistent { out.append(" (no constant drift fits: the least-delay pair's midpoint)") }
                out.append(e.significant ? "; cross-node hops corrected\n" : "; not told apart from 0, hops not corrected\n")
            }
        }
        // Without its last newline: stderr's writer adds one.
        var text = out.string
        if text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    private func dur(_ ns: Double) -> String { JourneyDescription.durationString(ns) }

    private func format1(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        return r == 0 ? "0" : "\(r)"
    }

    private func row(_ out: OutputBuffer, _ label: String, _ a: String, _ b: String, _ c: String, width: Int) {
        out.append(label)
        let n = label.unicodeScalars.count
        out.append(repeating: 32, count: max(1, width - n))
        for v in [a, b, c] {
            let m = v.unicodeScalars.count
            out.append(repeating: 32, count: max(1, 11 - m))
            out.append(v)
        }
        out.append(byte: 10)
    }

    /// The summary as one `journey_summary` record (JSON or YAML).
    public func render(_ b: JourneyBuilder, syntax: JourneyStructuredOutput.Syntax, into out: OutputBuffer) {
        switch syntax {
        case .json:
            var w = JSONWriter(out: out)
            write(b, &w)
        case .yaml:
            var w = YAMLWriter(out: out)
            write(b, &w)
        }
    }

    func write<W: StructuredWriter>(_ b: JourneyBuilder, _ w: inout W) {
        let c = b.counters
        w.beginDocument()
        w.beginObject()
        w.key("journey_summary")
        w.beginObject()
        w.field("events", c.events)
        w.field("hops", c.hops)
        w.field("hops_past_limit", c.extraHops)
        w.field("events_of_no_journey", c.otherEvents)
        w.field("journeys", c.journeys)
        w.field("shown", c.shown)
        w.field("complete", c.complete)
        outcomes(c.outcomes, &w)
        w.field("pairs", c.pairs)
        w.field("missing_hops", c.missingHops)
        w.field("timed_out", c.timedOut)
        w.field("evicted", c.evicted)
        w.field("superseded", c.superseded)
        w.field("lost_samples", c.lostSamples)
        w.field("lost_records", c.lostRecords)
        w.key("paths")
        w.beginArray()
        for p in paths {
            w.beginObject()
            w.key("source_node")
            node(p.sourceNode, b, &w)
            w.key("destination_node")
            node(p.destinationNode, b, &w)
            w.field("journeys", p.journeys)
            w.field("complete", p.complete)
            w.field("incomplete", p.journeys &- p.complete)
            outcomes(p.outcomes, &w)
            w.key("hops")
            w.beginArray()
            for (step, h) in p.steps {
                w.beginObject()
                w.key("step")
                w.escapedString(label(step, b))
                latencies(h, &w)
                w.endObject()
            }
            w.endArray()
            w.key("end_to_end")
            w.beginObject()
            latencies(p.endToEnd, &w)
            w.endObject()
            w.key("stopped_at")
            w.beginArray()
            for (k, v) in stops(p, b) {
                w.beginObject()
                w.key("where")
                w.escapedString(k)
                w.field("journeys", v)
                w.endObject()
            }
            w.endArray()
            w.endObject()
        }
        w.endArray()
        w.field("journeys_on_further_paths", otherJourneys)
        w.key("clock_offsets")
        w.beginArray()
        for e in b.clocks.estimates {
            w.beginObject()
            w.key("node_a")
            node(e.nodeA, b, &w)
            w.key("node_b")
            node(e.nodeB, b, &w)
            // offset = clock of node_b − clock of node_a, at `time_ns` (node_a's clock).
            w.field("offset_ns", clampedInt64(e.offset.rounded()))
            w.field("bound_ns", clampedInt64(e.bound.rounded(.up)))
            w.field("time_ns", e.time)
            w.field("drift_ppb", clampedInt64((e.driftPPM * 1000).rounded()))
            w.field("drift_bound_ppb", clampedInt64((e.driftBoundPPM * 1000).rounded(.up)))
            w.field("pairs", e.samples)
            w.field("min_round_trip_ns", clampedInt64(e.minDelay.rounded()))
            w.field("consistent", e.consistent)
            w.field("corrected", e.significant)
            w.endObject()
        }
        w.endArray()
        w.endObject()
        w.endObject()
        w.endDocument()
    }

    /// `outcomes: {delivered: N, dropped: N, lost: N, unfinished: N}`.
    private func outcomes<W: StructuredWriter>(_ counts: [UInt64], _ w: inout W) {
        w.key("outcomes")
        w.beginObject()
        for o in JourneyOutcome.allCases {
            w.key(o.name)
            w.int(counts[Int(o.rawValue)])
        }
        w.endObject()
    }

    private func node<W: StructuredWriter>(_ n: UInt16, _ b: JourneyBuilder, _ w: inout W) {
        if n == JourneyBuilder.unknownNode {
            w.null()
        } else if let name = b.nodeName(n) {
            w.escapedString(name)
        } else {
            w.null()
        }
    }

    private func latencies<W: StructuredWriter>(_ h: LatencyHistogram, _ w: inout W) {
        w.field("count", h.count)
        w.field("p50_ns", clampedInt64(h.percentile(0.5).rounded()))
        w.field("p99_ns", clampedInt64(h.percentile(0.99).rounded()))
        w.field("max_ns", h.max)
    }
}
