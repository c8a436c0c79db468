import VxmonWire

/// Journeys as JSON (one `{"journey": ...}` object per line) or YAML (one `journey:` document each),
/// the same keys in both; `docs/journey-schema.json` describes them. Times are the events' own
/// (`time_ns`, and RFC 3339 in UTC); `since_start_ns` is the raw difference from the first hop,
/// `delta_ns` the time from the hop before, corrected across nodes by the clocks' estimated offset
/// when it is known to differ from zero (`clock_offset_ns` then says by how much).
public final class JourneyStructuredOutput: JourneyOutput {
    public enum Syntax: Sendable {
        case json
        case yaml
    }

    public let syntax: Syntax
    public let out: OutputBuffer
    private let output: ByteOutput?
    private let flushEachRecord: Bool
    public private(set) var status = SinkStatus.ok

    public init(syntax: Syntax, output: ByteOutput?, flushEachRecord: Bool) {
        self.syntax = syntax
        self.output = output
        self.flushEachRecord = flushEachRecord
        out = OutputBuffer(capacity: 1 << 16)
    }

    public func exchange(_ journeys: UnsafeBufferPointer<Journey>, builder: JourneyBuilder) {
        for j in journeys {
            switch syntax {
            case .json:
                var w = JSONWriter(out: out)
                write(j, builder, &w)
            case .yaml:
                var w = YAMLWriter(out: out)
                write(j, builder, &w)
            }
        }
        if flushEachRecord || out.count >= 1 << 16 { _ = flush() }
    }

    public func flush() -> SinkStatus {
        guard let output, status == .ok, out.count > 0 else { return status }
        status = out.flush(to: output)
        return status
    }

    func write<W: StructuredWriter>(_ j: Journey, _ b: JourneyBuilder, _ w: inout W) {
        w.beginDocument()
        w.beginObject()
        w.key("journey")
        w.beginObject()
        w.field("id", j.id)
        w.field("role", string: j.role.name)
        if let p = j.pairedWith { w.field("paired_with", p) }
        let k = j.key
        w.field("protocol", raw: { JourneyDescription.protocolName(k, into: $0) })
        w.field("source", raw: { $0.ip(k.source) })
        w.field("destination", raw: { $0.ip(k.destination) })
        switch k.ipProtocol {
        case 6, 17, 132:
            w.field("source_port", k.sourcePort)
            w.field("destination_port", k.destinationPort)
            if k.ipProtocol == 6 {
                w.field("tcp_seq", k.sequence)
                w.field("tcp_ack", k.acknowledgment)
            }
        case 1, 58:
            w.field("icmp_type", k.sourcePort >> 8)
            w.field("icmp_code", k.sourcePort & 0xff)
            if k.isEchoRequest || k.isEchoReply {
                w.field("icmp_id", k.sequence >> 16)
                w.field("icmp_seq", k.sequence & 0xffff)
            }
        default: break
        }
        w.field("ip_id", k.ipID)
        if let pod = b.pods.pod(at: k.source) {
            w.key("source_pod")
            w.escapedString(pod.namespace + "/" + pod.name)
        }
        if let pod = b.pods.pod(at: k.destination) {
            w.key("destination_pod")
            w.escapedString(pod.namespace + "/" + pod.name)
        }
        w.field("outcome", string: j.outcome.name)
        w.field("complete", j.isComplete)
        w.field("close_reason", string: j.closeReason.name)
        if j.outcome == .dropped, let last = j.hops.last, let code = last.dropReason {
            w.field("drop_reason", raw: { $0.append(CiliumNames.dropReason(code, b.release) ?? "unknown reason") })
            w.field("drop_reason_code", code)
        }
        if let last = j.hops.last, j.outcome != .delivered {
            w.key("stopped_at")
            w.beginObject()
            place(last, b, &w)
            w.endObject()
        }
        if let v = j.vni {
            w.field("vni", v)
            w.field("vni_source", string: j.vniSource.name)
        }
        if j.role != .single {
            w.key("vnis")
            w.beginObject()
            let (request, reply) = j.role == .request ? (j.vni, j.pairVNI) : (j.pairVNI, j.vni)
            w.key("request")
            if let request { w.int(request) } else { w.null() }
            w.key("reply")
            if let reply { w.int(reply) } else { w.null() }
            w.endObject()
        }
        w.key("start_time")
        w.rawString { TimeFormatter.utcNano.append(j.startTime, to: $0) }
        w.field("start_time_ns", j.startTime)
        w.field("latency_ns", clampedInt64(b.latency(j).rounded()))
        w.key("hops")
        w.beginArray()
        for i in j.hops.indices {
            let h = j.hops[i]
            w.beginObject()
            place(h, b, &w)
            w.field("kind", string: h.kind == .trace ? "trace" : h.kind == .drop ? "drop" : "policy-verdict")
            w.key("time")
            w.rawString { TimeFormatter.utcNano.append(h.time, to: $0) }
            w.field("time_ns", h.time)
            w.field("since_start_ns", Int64(bitPattern: h.time &- j.startTime))
            w.field("delta_ns", clampedInt64(b.delta(j, i).rounded()))
            if let c = b.correction(j, i) { w.field("clock_offset_ns", clampedInt64(c.rounded())) }
            w.field("source_identity", h.sourceIdentity)
            w.field("destination_identity", h.destinationIdentity)
            w.field("verdict", string: h.verdict.name)
            if let t = h.tunnel {
                w.field("tunnel", string: t.kind == .vxlan ? "vxlan" : "geneve")
                w.field("vni", t.vni)
                if let s = h.outerSource { w.field("outer_source", raw: { $0.ip(s) }) }
                if let d = h.outerDestination { w.field("outer_destination", raw: { $0.ip(d) }) }
            }
            if let code = h.dropReason, h.kind != .trace {
                w.field("drop_reason", raw: { $0.append(CiliumNames.dropReason(code, b.release) ?? "unknown reason") })
                w.field("drop_reason_code", code)
            }
            if let a = h.policyAction { w.field("policy_action", string: a.name) }
            w.endObject()
        }
        w.endArray()
        if j.extraHops > 0 { w.field("extra_hops", j.extraHops) }
        w.key("missing")
        w.beginArray()
        for m in j.missing {
            w.beginObject()
            w.key("node")
            if m.node == JourneyBuilder.unknownNode { w.null() } else { nodeValue(m.node, b, &w) }
            w.field("point", raw: { $0.append(CiliumNames.observationPointAny(m.point.rawValue) ?? "unknown") })
            w.endObject()
        }
        w.endArray()
        w.field("lost_samples_during", j.lostDuring)
        w.endObject()
        w.endObject()
        w.endDocument()
    }

    /// node, point, interface, ifindex.
    private func place<W: StructuredWriter>(_ h: JourneyHop, _ b: JourneyBuilder, _ w: inout W) {
        w.key("node")
        nodeValue(h.node, b, &w)
        w.field("point", raw: { JourneyDescription.point(h, into: $0) })
        w.key("interface")
        if h.ifindex == 0 {
            w.null()
        } else if let name = b.names.name(h.ifindex, node: b.nodeName(h.node)) {
            w.escapedString(name)
        } else {
            w.null()
        }
        w.field("ifindex", h.ifindex)
    }

    private func nodeValue<W: StructuredWriter>(_ node: UInt16, _ b: JourneyBuilder, _ w: inout W) {
        if let name = b.nodeName(node) { w.escapedString(name) } else { w.null() }
    }
}

extension JourneyDescription {
    static func protocolName(_ k: PacketKey, into out: OutputBuffer) {
        switch k.ipProtocol {
        case 1: out.append("ICMPv4")
        case 58: out.append("ICMPv6")
        case 6: out.append("TCP")
        case 17: out.append("UDP")
        case 132: out.append("SCTP")
        default:
            out.append("IP-")
            out.decimal(Int(k.ipProtocol))
        }
    }
}
