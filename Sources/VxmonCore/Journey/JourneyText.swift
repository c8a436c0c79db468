import VxmonWire

/// Journeys as text, one block per journey, the reply right after its request:
///
///     #1 request ICMPv4 EchoRequest 10.0.2.10 -> 10.0.1.10 id 2362 seq 1: delivered, 4 hops in 52.7µs, VNI 19773 (reply #2: VNI 5487)
///       worker2-pod1 -> lxc839726d5 (from-endpoint) -> cilium_vxlan (to-overlay, VNI 19773) -> ...
///             +0s            worker2  from-endpoint  lxc839726d5
///         +12.3µs  +12.3µs   worker2  to-overlay     cilium_vxlan
///
/// Times are the events' own; the second column is the time from the hop before, across nodes
/// corrected by the nodes' estimated clock offset when it is known to differ from zero.
public final class JourneyTextOutput: JourneyOutput {
    public let out: OutputBuffer
    private let output: ByteOutput?
    private let flushEachRecord: Bool
    public private(set) var status = SinkStatus.ok

    public init(output: ByteOutput?, flushEachRecord: Bool) {
        self.output = output
        self.flushEachRecord = flushEachRecord
        out = OutputBuffer(capacity: 1 << 16)
    }

    public func exchange(_ journeys: UnsafeBufferPointer<Journey>, builder: JourneyBuilder) {
        for j in journeys { render(j, builder) }
        if flushEachRecord || out.count >= 1 << 16 { _ = flush() }
    }

    public func flush() -> SinkStatus {
        guard let output, status == .ok, out.count > 0 else { return status }
        status = out.flush(to: output)
        return status
    }

    func render(_ j: Journey, _ b: JourneyBuilder) {
        out.append("#")
        out.unsignedDecimal(j.id)
        out.append(byte: 32)
        out.append(j.role == .single && j.key.isEchoRequest ? "request (no reply)" : j.role == .single ? "packet" : j.role.name)
        if j.role == .reply, let p = j.pairedWith {
            out.append(" to #")
            out.unsignedDecimal(p)
        }
        out.append(byte: 32)
        JourneyDescription.packet(j.key, into: out)
        out.append(": ")
        out.append(j.outcome.name)
        if j.outcome == .dropped, let last = j.hops.last {
            out.append(" at ")
            JourneyDescription.place(last, b, into: out)
            if let code = last.dropReason {
                out.append(": ")
                JourneyDescription.dropReason(code, b.release, into: out)
            }
        } else if j.outcome != .delivered, let last = j.hops.last {
            out.append(" after ")
            JourneyDescription.place(last, b, into: out)
            out.append(" (")
            out.append(j.closeReason.name)
            out.append(")")
        }
        out.append(", ")
        out.decimal(j.hops.count)
        out.append(j.hops.count == 1 ? " hop in " : " hops in ")
        JourneyDescription.duration(b.latency(j), into: out)
        if let vni = j.vni {
            out.append(", VNI ")
            out.unsignedDecimal(UInt64(vni))
        }
        if let p = j.pairedWith, j.role == .request {
            out.append(" (reply #")
            out.unsignedDecimal(p)
            if let v = j.pairVNI {
                out.append(": VNI ")
                out.unsignedDecimal(UInt64(v))
            }
            out.append(")")
        } else if j.role == .reply, let v = j.pairVNI {
            out.append(" (request: VNI ")
            out.unsignedDecimal(UInt64(v))
            out.append(")")
        }
        out.append(byte: 10)
        // The path, as a packet sees it.
        out.append("  ")
        JourneyDescription.path(j, b, into: out)
        out.append(byte: 10)
        for i in j.hops.indices {
            let h = j.hops[i]
            out.append("  ")
            let since = JourneyDescription.durationString(Double(Int64(bitPattern: h.time &- j.startTime)), plus: true)
            pad(since, 11)
            out.append("  ")
            pad(i == 0 ? "" : JourneyDescription.durationString(b.delta(j, i), plus: true), 11)
            out.append("  ")
            let node = b.nodeName(h.node) ?? "-"
            let mark = out.count
            out.appendSanitized(node)
            padFrom(mark, 10)
            out.append("  ")
            let pointMark = out.count
            JourneyDescription.point(h, into: out)
            padFrom(pointMark, 14)
            out.append("  ")
            let ifMark = out.count
            JourneyDescription.interface(h, b, into: out)
            padFrom(ifMark, 14)
            JourneyDescription.details(h, b.release, into: out)
            if let c = b.correction(j, i) {
                out.append("  (clock offset ")
                JourneyDescription.duration(c, into: out)
                out.append(" taken off)")
            }
            trimTrailingSpaces()
            out.append(byte: 10)
        }
        if j.extraHops > 0 {
            out.append("  (")
            out.decimal(j.extraHops)
            out.append(" more hops not kept)\n")
        }
        if !j.missing.isEmpty {
            out.append("  missing: ")
            for (k, m) in j.missing.enumerated() {
                if k > 0 { out.append(", ") }
                out.append(CiliumNames.observationPointAny(m.point.rawValue) ?? "unknown")
                out.append(" on ")
                if m.node == JourneyBuilder.unknownNode {
                    out.append("the far node")
                } else {
                    out.appendSanitized(b.nodeName(m.node) ?? "-")
                }
            }
            if j.lostDuring > 0 {
                out.append(" (")
                out.unsignedDecimal(j.lostDuring)
                out.append(j.lostDuring == 1 ? " sample lost meanwhile)" : " samples lost meanwhile)")
            } else {
                out.append(" (no sample was lost)")
            }
            out.append(byte: 10)
        }
    }

    private func pad(_ s: String, _ width: Int) {
        let n = s.unicodeScalars.count
        if n < width { out.append(repeating: 32, count: width - n) }
        out.append(s)
    }

    /// Pads what was appended since `mark` with spaces to `width` characters.
    private func padFrom(_ mark: Int, _ width: Int) {
        var chars = 0
        let bytes = out.bytes
        for k in mark..<bytes.count where bytes[k] & 0xc0 != 0x80 { chars += 1 }
        if chars < width { out.append(repeating: 32, count: width - chars) }
    }

    private func trimTrailingSpaces() {
        var n = out.count
        let bytes = out.bytes
        while n > 0 && bytes[n - 1] == 32 { n -= 1 }
        out.truncate(to: n)
    }
}

/// The words journeys are described with, shared by the text, the drawing and the summary.
public enum JourneyDescription {
    /// `ICMPv4 EchoRequest 10.0.2.10 -> 10.0.1.10 id 2362 seq 1`, `TCP 10.0.2.10:40000 -> 10.0.1.10:8080`.
    public static func packet(_ k: PacketKey, into out: OutputBuffer) {
        switch k.ipProtocol {
        case 1, 58:
            out.append(k.ipProtocol == 1 ? "ICMPv4 " : "ICMPv6 ")
            icmpName(k, into: out)
            out.append(byte: 32)
            out.ip(k.source)
            out.append(" -> ")
            out.ip(k.destination)
            if k.isEchoRequest || k.isEchoReply {
                out.append(" id ")
                out.decimal(Int(k.sequence >> 16))
                out.append(" seq ")
                out.decimal(Int(k.sequence & 0xffff))
            }
        case 6, 17, 132:
            out.append(k.ipProtocol == 6 ? "TCP " : k.ipProtocol == 17 ? "UDP " : "SCTP ")
            endpoint(k.source, k.sourcePort, into: out)
            out.append(" -> ")
            endpoint(k.destination, k.destinationPort, into: out)
        default:
            out.append("IP proto ")
            out.decimal(Int(k.ipProtocol))
            out.append(byte: 32)
            out.ip(k.source)
            out.append(" -> ")
            out.ip(k.destination)
        }
    }

    static func endpoint(_ a: IPAddress, _ port: UInt16, into out: OutputBuffer) {
        if case .v6 = a {
            out.append("[")
            out.ip(a)
            out.append("]")
        } else {
            out.ip(a)
        }
        out.append(":")
        out.decimal(Int(port))
    }

    static func icmpName(_ k: PacketKey, into out: OutputBuffer) {
        let type = UInt8(k.sourcePort >> 8)
        if k.ipProtocol == 1 {
            switch type {
            case 0: out.append("EchoReply")
            case 3: out.append("DestinationUnreachable")
            case 8: out.append("EchoRequest")
            case 11: out.append("TimeExceeded")
            default:
                out.append("type ")
                out.decimal(Int(type))
            }
        } else {
            switch type {
            case 1: out.append("DestinationUnreachable")
            case 128: out.append("EchoRequest")
            case 129: out.append("EchoReply")
            case 135: out.append("NeighborSolicitation")
            case 136: out.append("NeighborAdvertisement")
            default:
                out.append("type ")
                out.decimal(Int(type))
            }
        }
    }

    /// A hop's observation point, `drop` or `policy-verdict`.
    public static func point(_ h: JourneyHop, into out: OutputBuffer) {
        switch h.kind {
        case .drop: out.append("drop")
        case .policyVerdict: out.append("policy-verdict")
        case .trace:
            if let p = h.point, let name = CiliumNames.observationPointAny(p.rawValue) {
                out.append(name)
            } else {
                out.append("point ")
                out.decimal(Int(h.point?.rawValue ?? 0))
            }
        }
    }

    public static func pointString(_ h: JourneyHop) -> String {
        let b = OutputBuffer(capacity: 32)
        point(h, into: b)
        return b.string
    }

    /// The interface's name on the hop's node, else `if<N>`, else `-`.
    public static func interface(_ h: JourneyHop, _ b: JourneyBuilder, into out: OutputBuffer) {
        guard h.ifindex != 0 else { return out.append("-") }
        if let name = b.names.name(h.ifindex, node: b.nodeName(h.node)) {
            out.appendSanitized(name)
        } else {
            out.append("if")
            out.unsignedDecimal(UInt64(h.ifindex))
        }
    }

    /// `worker to-overlay (cilium_vxlan)`.
    static func place(_ h: JourneyHop, _ b: JourneyBuilder, into out: OutputBuffer) {
        out.appendSanitized(b.nodeName(h.node) ?? "-")
        if h.kind != .drop {
            out.append(byte: 32)
            point(h, into: out)
        }
        if h.ifindex != 0 {
            out.append(" (")
            interface(h, b, into: out)
            out.append(")")
        }
    }

    /// What else the hop says: the tunnel, a drop's reason, a policy verdict's action.
    static func details(_ h: JourneyHop, _ release: CiliumRelease, into out: OutputBuffer) {
        if let t = h.tunnel, let s = h.outerSource, let d = h.outerDestination {
            out.ip(s)
            out.append(" -> ")
            out.ip(d)
            out.append(t.kind == .vxlan ? " VXLAN VNI " : " Geneve VNI ")
            out.unsignedDecimal(UInt64(t.vni))
        } else if h.kind == .drop, let code = h.dropReason {
            dropReason(code, release, into: out)
        } else if h.kind == .policyVerdict, let a = h.policyAction {
            out.append("policy ")
            out.append(a.name)
        }
    }

    /// `Policy denied (133)`, named as the release names it.
    static func dropReason(_ code: UInt8, _ release: CiliumRelease, into out: OutputBuffer) {
        out.append(CiliumNames.dropReason(code, release) ?? "unknown reason")
        out.append(" (")
        out.decimal(Int(code))
        out.append(")")
    }

    /// `worker2-pod1 -> lxc839726d5 (from-endpoint) -> cilium_vxlan (to-overlay, VNI 19773) -> underlay
    /// (172.18.0.4 -> 172.18.0.3, VNI 19773) -> cilium_vxlan (from-overlay) -> lxc8c649a1d (to-endpoint) -> worker-pod1`
    public static func path(_ j: Journey, _ b: JourneyBuilder, into out: OutputBuffer) {
        if let pod = b.pods.pod(at: j.key.source) {
            out.appendSanitized(pod.name)
        } else {
            out.ip(j.key.source)
        }
        for h in j.hops {
            out.append(" -> ")
            if h.tunnel != nil, let s = h.outerSource, let d = h.outerDestination {
                out.append("underlay (")
                out.ip(s)
                out.append(" -> ")
                out.ip(d)
                out.append(", ")
                point(h, into: out)
                out.append(")")
                continue
            }
            interface(h, b, into: out)
            out.append(" (")
            point(h, into: out)
            if h.kind == .trace && h.point == .toOverlay, let v = j.vni {
                out.append(", VNI ")
                out.unsignedDecimal(UInt64(v))
            }
            if h.kind == .drop, let code = h.dropReason {
                out.append(": ")
                dropReason(code, b.release, into: out)
            }
            out.append(")")
        }
        if j.outcome == .delivered, let last = j.hops.last, last.point == .toEndpoint {
            out.append(" -> ")
            if let pod = b.pods.pod(at: j.key.destination) {
                out.appendSanitized(pod.name)
            } else {
                out.ip(j.key.destination)
            }
        } else if j.outcome == .dropped {
            out.append(" X")
        } else {
            out.append(" ...")
        }
    }

    /// A duration as Go prints one (`52.7µs`, `1.5ms`, `0s`), from ns rounded to a whole ns.
    public static func durationString(_ ns: Double, plus: Bool = false) -> String {
        let b = OutputBuffer(capacity: 24)
        if plus && ns >= 0 { b.append("+") }
        duration(ns, into: b)
        return b.string
    }

    public static func duration(_ ns: Double, into out: OutputBuffer) {
        var v = clampedInt64(ns.rounded())
        if v == 0 { return out.append("0s") }
        if v < 0 {
            out.append("-")
            v = v == .min ? .max : -v
        }
        var u = UInt64(v)
        // A minute or more: hours and minutes first, as Go prints them (1h2m3.5s).
        if u >= 60_000_000_000 {
            let hours = u / 3_600_000_000_000
            if hours > 0 {
                out.unsignedDecimal(hours)
                out.append("h")
            }
            out.unsignedDecimal(u / 60_000_000_000 % 60)
            out.append("m")
            u %= 60_000_000_000
            if u == 0 { return out.append("0s") }
            if u < 1_000_000_000 {
                // Go keeps seconds as the unit here: 1m0.5s.
                out.append("0")
                fraction(u, digits: 9, into: out)
                return out.append("s")
            }
        }
        let (unit, scale, digits): (StaticString, UInt64, Int) =
            u < 1_000
            ? ("ns", 1, 0) : u < 1_000_000 ? ("µs", 1_000, 3) : u < 1_000_000_000 ? ("ms", 1_000_000, 6) : ("s", 1_000_000_000, 9)
        out.unsignedDecimal(u / scale)
        fraction(u % scale, digits: digits, into: out)
        out.append(unit)
    }

    /// `.5` for 500 of 3 digits: a fraction without its trailing zeros (nothing for 0).
    static func fraction(_ value: UInt64, digits: Int, into out: OutputBuffer) {
        guard value != 0 else { return }
        var frac = value
        var digits = digits
        while frac % 10 == 0 {
            frac /= 10
            digits -= 1
        }
        out.append(".")
        let text = String(frac)
        if text.count < digits { out.append(repeating: 48, count: digits - text.count) }
        out.append(text)
    }
}
