import VxmonWire

/// Writes events as Hubble's `observer.GetFlowsResponse` in protobuf JSON, one per line: what
/// `hubble observe -o jsonpb` prints and reads back from a file or stdin. Field names are the
/// .proto's (`proto/`), enums are names, 64-bit integers strings, zero values left out.
///
/// The mapping is Cilium's Hubble parser's, read from the event's `Flow` (one meaning of every
/// field):
/// - trace: FORWARDED, `trace_observation_point` (Cilium's to-endpoint 0 is Hubble's TO_ENDPOINT 101),
///   `trace_reason`, `is_reply` where the connection tracking state is known, `interface`,
///   `proxy_port` for to-proxy, `IP.encrypted`;
/// - drop: DROPPED, `drop_reason` and `drop_reason_desc`, `file` is left out (vxmon's datapath is not
///   Cilium's source tree);
/// - policy verdict: DROPPED, REDIRECTED, AUDIT or FORWARDED, `policy_match_type`, `traffic_direction`;
/// - debug capture: `debug_capture_point`, `interface` or `proxy_port` as Cilium's parser sets them;
/// - socket trace: type SOCK, TRACED or TRANSLATED, `sock_xlate_point`, `socket_cookie`, `cgroup_id`.
/// A VXLAN/Geneve packet's outer headers go to `tunnel` (protocol, IP, l4, VNI) and `ethernet`, `IP`,
/// `l4` and `Summary` describe the inner packet, as newer Hubble does. Debug messages, recorder
/// captures and unknown types are not flows (Hubble serves debug messages elsewhere) and are skipped.
/// Pods named by the recording's or the lab's pod records fill `pod_name` and `namespace`.
public final class HubbleJSONRenderer {
    public let names: InterfaceNames
    private var pods: [IPAddress: PodInfo] = [:]

    public init(names: InterfaceNames) { self.names = names }

    static func isUnspecified(_ ip: IPAddress) -> Bool {
        switch ip {
        case .v4(let a): a.rawValue == 0
        case .v6(let a): a == IPv6Address(high: 0, low: 0)
        }
    }

    /// The endpoint ID of the pod at `ip` if it lives on `node` (a local endpoint, as Hubble resolves
    /// the source), 0 if the address is no pod of that node; nil when pods' endpoints are unknown.
    private func localEndpoint(_ ip: IPAddress?, node: String?) -> UInt16? {
        guard hasEndpoints else { return nil }
        guard let ip, let pod = pods[ip], pod.node == node else { return 0 }
        return pod.endpoint
    }

    /// Learns a pod (its address names it in `source`/`destination`).
    public func learn(_ pod: PodInfo) {
        // Labels as Hubble lists them, sorted, with the namespace's: made once here, not per event.
        var pod = pod
        let namespaceLabel = "k8s:io.kubernetes.pod.namespace=" + pod.namespace
        if !pod.labels.contains(namespaceLabel) { pod.labels.append(namespaceLabel) }
        pod.labels.sort()
        if pods.count < 65536 || pods[pod.ip] != nil { pods[pod.ip] = pod }
        if pod.endpoint != 0 { hasEndpoints = true }
    }
    /// Pods with endpoint IDs are known: traffic direction can be told.
    private var hasEndpoints = false

    /// True when the event type is a flow in Hubble's sense.
    public static func isFlow(_ type: MessageType) -> Bool {
        switch type.rawValue {
        case 1, 3, 4, 5, 7: true
        default: false
        }
    }

    public func renderLost(cpu: Int, count: UInt64, time: UInt64, node: String?, into out: OutputBuffer) {
        var w = JSONWriter(out: out)
        w.beginDocument()
        w.beginObject()
        w.key("lost_events")
        w.beginObject()
        w.field("source", string: "PERF_EVENT_RING_BUFFER")
        w.field("num_events_lost", raw: { $0.unsignedDecimal(count) })
        w.key("cpu")
        w.int(cpu)
        w.endObject()
        envelope(&w, node: node, time: time)
        w.endObject()
        w.endDocument()
    }

    private func envelope(_ w: inout JSONWriter, node: String?, time: UInt64) {
        if let node, !node.isEmpty {
            w.key("node_name")
            w.escapedString(node)
        }
        if time != 0 { w.field("time", raw: { StructuredRenderer.rfc3339($0, time) }) }
    }

    /// One `GetFlowsResponse` line for a flow event; nothing for other types.
    public func render(_ event: borrowing Event, record: RawSpan, into out: OutputBuffer) {
        let flow = event.flow
        guard Self.isFlow(flow.type) else { return }
        var w = JSONWriter(out: out)
        w.beginDocument()
        w.beginObject()
        w.key("flow")
        w.beginObject()
        if flow.timeNanoseconds != 0 { w.field("time", raw: { StructuredRenderer.rfc3339($0, flow.timeNanoseconds) }) }
        let primary = flow.primary
        var verdict = flow.verdict
        var dropReason: UInt8? = nil
        var isReply: Bool? = nil
        var traceReason: UInt8? = nil
        var encrypted = false
        var direction: StaticString? = nil
        var matchType: UInt8 = 0
        var proxyPort: UInt32 = 0
        var captureInterface: UInt32 = 0
        switch event.message {
        case .trace(let t):
            verdict = .forwarded
            let state = t.reason & 0x7f
            // Connection tracking state: 0 new, 1 established, 2 reply, 3 related, 4 reopened,
            // 5 unknown, 6/7 SRv6; Hubble's TraceReason is the state plus one for 0-4.
            if state <= 4 { traceReason = state + 1 } else if state != 5 { traceReason = state }
            // Known unless unknown (5) or an SRv6 state (6, 7), as in Cilium's parser.
            if state != 5 && state != 6 && state != 7 { isReply = state == 2 }
            encrypted = t.isEncrypted
            if t.observationPoint.rawValue == 1 { proxyPort = UInt32(t.destinationID) }
            // Hubble: egress when the emitting endpoint is the packet's source endpoint (resolved by the
            // original address when the datapath translated it), reversed for a reply; only with an
            // emitting endpoint and a known CT state.
            if let isReply, t.header.source != 0 {
                let original = t.originalIP.flatMap { Self.isUnspecified($0) ? nil : $0 }
                if let local = localEndpoint(original ?? primary.source, node: flow.node) {
                    direction = (t.header.source == local) != isReply ? "EGRESS" : "INGRESS"
                }
            }
        case .drop(let d):
            verdict = .dropped
            dropReason = d.reason
            if d.header.source != 0, let local = localEndpoint(primary.source, node: flow.node) {
                direction = d.header.source == local ? "EGRESS" : "INGRESS"
            }
        case .policyVerdict(let p):
            if p.verdict < 0 {
                verdict = .dropped
                dropReason = UInt8(truncatingIfNeeded: -Int64(p.verdict))
            } else if p.verdict > 0 {
                verdict = .redirected
            } else {
                verdict = p.isAudited ? .audit : .forwarded
            }
            if p.verdict >= 0 { isReply = false }
            direction = p.isIngress ? "INGRESS" : "EGRESS"
            matchType = p.matchType
        case .capture(let c):
            verdict = .unknown
            switch c.header.subtype {
            case 4, 5, 6, 7, 10, 11: captureInterface = c.arg1
            case 8, 9: proxyPort = UInt32(UInt16(truncatingIfNeeded: c.arg1).byteSwapped)
            default: break
            }
        default:
            break
        }
        if verdict != .unknown { w.field("verdict", string: verdict.name) }
        if let dropReason { w.field("drop_reason", dropReason) }
        layers(&w, primary, encrypted: encrypted, flow.type.rawValue == 7)
        if let tunnel = flow.tunnel, flow.primaryIsInner {
            w.key("tunnel")
            w.beginObject()
            w.field("protocol", string: tunnel.kind == .vxlan ? "VXLAN" : "GENEVE")
            FlowLayersJSON.ip(&w, flow.outer, style: .protobuf)
            FlowLayersJSON.l4(&w, flow.outer, style: .protobuf)
            if tunnel.vni != 0 { w.field("vni", tunnel.vni) }
            w.endObject()
        }
        endpoint(&w, "source", identity: flow.sourceIdentity, ip: flow.type.rawValue == 7 ? nil : primary.source, node: flow.node)
        endpoint(&w, "destination", identity: flow.destinationIdentity, ip: primary.destination, node: flow.node)
        w.field("Type", string: flow.type.rawValue == 7 ? "SOCK" : "L3_L4")
        if let node = flow.node, !node.isEmpty {
            w.key("node_name")
            w.escapedString(node)
        }
        if isReply == true { w.field("reply", true) }
        w.key("event_type")
        w.beginObject()
        w.field("type", flow.type.rawValue)
        let subtype = record.byteCount > 1 ? record.u8(1) : 0
        if subtype != 0 && flow.type.rawValue != 7 { w.field("sub_type", subtype) }
        w.endObject()
        if let direction { w.field("traffic_direction", string: direction) }
        if matchType != 0 { w.field("policy_match_type", matchType) }
        if case .trace(let t) = event.message {
            let point = t.observationPoint.rawValue
            w.key("trace_observation_point")
            if point <= 13 {
                w.string(CiliumNames.hubbleObservationPoint(point))
            } else {
                w.int(point)
            }
            if let traceReason, let name = Self.traceReasonName(traceReason) { w.field("trace_reason", string: name) }
        }
        if let dropReason {
            w.key("drop_reason_desc")
            if let name = HubbleDropReason.name(dropReason) { w.string(name) } else { w.int(dropReason) }
        }
        if let isReply { w.field("is_reply", isReply) }
        if case .capture(let c) = event.message, c.header.subtype >= 4, c.header.subtype <= 11 {
            w.field("debug_capture_point", string: Self.capturePointName(c.header.subtype))
        }
        let ifindex: UInt32 = captureInterface != 0 ? captureInterface : (flow.type.rawValue == 4 ? (flow.ifindex ?? 0) : 0)
        if ifindex != 0 {
            w.key("interface")
            w.beginObject()
            w.field("index", ifindex)
            if let name = names.name(ifindex, node: flow.node) {
                w.key("name")
                w.escapedString(name)
            }
            w.endObject()
        }
        if proxyPort != 0 { w.field("proxy_port", proxyPort) }
        if case .traceSock(let s) = event.message {
            if s.xlatePoint >= 1 && s.xlatePoint <= 4 { w.field("sock_xlate_point", string: Self.xlatePointName(s.xlatePoint)) }
            if s.socketCookie != 0 { w.field("socket_cookie", raw: { $0.unsignedDecimal(s.socketCookie) }) }
            if s.cgroupID != 0 { w.field("cgroup_id", raw: { $0.unsignedDecimal(s.cgroupID) }) }
        }
        if flow.type.rawValue != 7 { summary(&w, primary) }
        w.endObject()
        envelope(&w, node: flow.node, time: flow.timeNanoseconds)
        w.endObject()
        w.endDocument()
    }

    // MARK: Parts

    private func layers(_ w: inout JSONWriter, _ l: FlowLayers, encrypted: Bool, _ socket: Bool) {
        FlowLayersJSON.ethernet(&w, l)
        if !socket { FlowLayersJSON.ip(&w, l, style: .protobuf, encrypted: encrypted) }
        FlowLayersJSON.l4(&w, l, style: .protobuf)
    }

    /// The order Hubble's summary lists TCP flags in.
    static let summaryFlagOrder: [(UInt16, StaticString)] = [
        (0x002, "SYN"), (0x010, "ACK"), (0x004, "RST"), (0x001, "FIN"), (0x008, "PSH"), (0x020, "URG"),
        (0x040, "ECE"), (0x080, "CWR"), (0x100, "NS"),
    ]

    private func endpoint(_ w: inout JSONWriter, _ key: StaticString, identity: UInt32?, ip: IPAddress?, node: String?) {
        let pod = ip.flatMap { pods[$0] }
        // The datapath's identity wins; where it has none (0), the pod's, as Hubble takes it from the
        // ipcache.
        let id = (identity ?? 0) != 0 ? identity ?? 0 : pod?.identity ?? 0
        guard id != 0 || pod != nil else { return }
        w.key(key)
        w.beginObject()
        // The endpoint ID, for an endpoint of the node that saw the flow (Hubble knows only its own).
        if let pod, pod.endpoint != 0, let node, pod.node == node { w.field("ID", UInt32(pod.endpoint)) }
        if id != 0 { w.field("identity", id) }
        if let pod {
            w.key("namespace")
            w.escapedString(pod.namespace)
        }
        let reserved = Self.reservedLabel(id)
        if reserved != nil || pod != nil {
            w.key("labels")
            w.beginArray()
            if let reserved { w.string(reserved) }
            // Labels and namespace come from a recording or a stream: escaped like every outside string.
            if let pod { for label in pod.labels { w.escapedString(label) } }
            w.endArray()
        }
        if let pod {
            w.key("pod_name")
            w.escapedString(pod.name)
        }
        w.endObject()
    }

    static func reservedLabel(_ identity: UInt32) -> StaticString? {
        switch identity {
        case 1: "reserved:host"
        case 2: "reserved:world"
        case 3: "reserved:unmanaged"
        case 4: "reserved:health"
        case 5: "reserved:init"
        case 6: "reserved:remote-node"
        case 7: "reserved:kube-apiserver"
        case 8: "reserved:ingress"
        default: nil
        }
    }

    /// Hubble's Summary: the last layer's name, the TCP flags, or the ICMP type and code.
    private func summary(_ w: inout JSONWriter, _ l: FlowLayers) {
        switch l.transport {
        case .tcp:
            guard l.tcpFlags & 0x1ff != 0 else { return w.field("Summary", string: "TCP Flags: ") }
            w.field("Summary", raw: { out in
                out.append("TCP Flags: ")
                var first = true
                for (bit, name) in Self.summaryFlagOrder where l.tcpFlags & bit != 0 {
                    if !first { out.append(", ") }
                    out.append(name)
                    first = false
                }
            })
        case .udp: w.field("Summary", string: "UDP")
        case .sctp: w.field("Summary", string: "SCTP")
        case .icmpv4, .icmpv6:
            let v6 = l.transport == .icmpv6
            w.field("Summary", raw: { out in
                out.append(v6 ? "ICMPv6 " : "ICMPv4 ")
                out.icmpTypeCode(v6: v6, type: l.icmpType, code: l.icmpCode)
            })
        case .none:
            if case .v6? = l.source {
                w.field("Summary", string: "IPv6")
            } else if l.source != nil {
                w.field("Summary", string: "IPv4")
            } else if l.hasEthernet {
                w.field("Summary", string: l.etherType == 0x0806 ? "ARP" : "Ethernet")
            }
        }
    }

    static func traceReasonName(_ v: UInt8) -> StaticString? {
        switch v {
        case 1: "NEW"
        case 2: "ESTABLISHED"
        case 3: "REPLY"
        case 4: "RELATED"
        case 5: "REOPENED"
        case 6: "SRV6_ENCAP"
        case 7: "SRV6_DECAP"
        case 8: "ENCRYPT_OVERLAY"
        default: nil
        }
    }

    static func capturePointName(_ v: UInt8) -> StaticString {
        switch v {
        case 4: "DBG_CAPTURE_DELIVERY"
        case 5: "DBG_CAPTURE_FROM_LB"
        case 6: "DBG_CAPTURE_AFTER_V46"
        case 7: "DBG_CAPTURE_AFTER_V64"
        case 8: "DBG_CAPTURE_PROXY_PRE"
        case 9: "DBG_CAPTURE_PROXY_POST"
        case 10: "DBG_CAPTURE_SNAT_PRE"
        default: "DBG_CAPTURE_SNAT_POST"
        }
    }

    static func xlatePointName(_ v: UInt8) -> StaticString {
        switch v {
        case 1: "SOCK_XLATE_POINT_PRE_DIRECTION_FWD"
        case 2: "SOCK_XLATE_POINT_POST_DIRECTION_FWD"
        case 3: "SOCK_XLATE_POINT_PRE_DIRECTION_REV"
        default: "SOCK_XLATE_POINT_POST_DIRECTION_REV"
        }
    }
}
