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
    /// The pods that name `source` and `destination` (shared with the pipeline's decoder).
    public let pods: PodDirectory
    /// Whose flow API and parser rules to follow: 1.13's (no `trace_reason`, no `tunnel`, a tunnel
    /// packet's outer headers, 1.13's observation points) or the latest.
    public let release: CiliumRelease

    public init(names: InterfaceNames, pods: PodDirectory = PodDirectory(), release: CiliumRelease = .v1_13) {
        self.names = names
        self.pods = pods
        self.release = release
    }

    /// Learns a pod (its address names it in `source`/`destination`).
    public func learn(_ pod: PodInfo) { pods.learn(pod) }

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

    /// One `GetFlowsResponse` line for a flow event; nothing for other types. Every field is read from
    /// the event's `Flow` (Hubble's readings: verdict, reply, direction, original source) or, for
    /// what only one message type carries (observation point, capture point, socket cookie), from
    /// the decoded message as it is.
    public func render(_ event: borrowing Event, record: RawSpan, into out: OutputBuffer) {
        let flow = event.flow
        guard Self.isFlow(flow.type), !flow.hubbleUndecodable else { return }
        let socket = flow.type == MessageType.traceSock
        let latest = release == .latest
        let stack = flow.hubbleLayers(release)
        var w = JSONWriter(out: out)
        w.beginDocument()
        w.beginObject()
        w.key("flow")
        w.beginObject()
        if flow.timeNanoseconds != 0 { w.field("time", raw: { StructuredRenderer.rfc3339($0, flow.timeNanoseconds) }) }
        if flow.verdict != .unknown { w.field("verdict", string: flow.verdict.name) }
        if let dropReason = flow.dropReason, dropReason != 0 { w.field("drop_reason", dropReason) }
        var source = flow.hubbleSource(release)
        if socket {
            socketLayers(&w, event)
            source = nil
        } else {
            FlowLayersJSON.ethernet(&w, stack)
            FlowLayersJSON.ip(&w, stack, style: .protobuf, encrypted: flow.encrypted, source: source)
            FlowLayersJSON.l4(&w, stack, style: .protobuf)
        }
        if latest, let tunnel = flow.tunnel, flow.primaryIsInner {
            w.key("tunnel")
            w.beginObject()
            w.field("protocol", string: tunnel.kind == .vxlan ? "VXLAN" : "GENEVE")
            FlowLayersJSON.ip(&w, flow.outer, style: .protobuf)
            FlowLayersJSON.l4(&w, flow.outer, style: .protobuf)
            if tunnel.vni != 0 { w.field("vni", tunnel.vni) }
            w.endObject()
        }
        endpoint(&w, "source", identity: flow.sourceIdentity, ip: source, node: flow.node)
        endpoint(&w, "destination", identity: flow.destinationIdentity, ip: socket ? nil : stack.destination, node: flow.node)
        w.field("Type", string: socket ? "SOCK" : "L3_L4")
        if let node = flow.node, !node.isEmpty {
            w.key("node_name")
            w.escapedString(node)
        }
        if flow.isReply == true { w.field("reply", true) }
        w.key("event_type")
        w.beginObject()
        w.field("type", flow.type.rawValue)
        let subtype = record.byteCount > 1 ? record.u8(1) : 0
        if subtype != 0 { w.field("sub_type", subtype) }
        w.endObject()
        if flow.trafficDirection != .unknown { w.field("traffic_direction", string: flow.trafficDirection.name) }
        if case .policyVerdict(let p) = event.message, p.matchType != 0 { w.field("policy_match_type", p.matchType) }
        if case .trace(let t) = event.message {
            let point = t.observationPoint.rawValue
            w.key("trace_observation_point")
            if point <= (latest ? 13 : 11) {
                w.string(CiliumNames.hubbleObservationPoint(point))
            } else {
                w.int(point)
            }
            // Hubble's TraceReason is the CT state plus one up to reopened; unknown (5) is its zero.
            if latest, let state = flow.traceState, let name = Self.traceReasonName(state <= 4 ? state + 1 : state) {
                w.field("trace_reason", string: name)
            }
        }
        if let dropReason = flow.dropReason, dropReason != 0 {
            w.key("drop_reason_desc")
            if let name = HubbleDropReason.name(dropReason, release) { w.string(name) } else { w.int(dropReason) }
        }
        if let isReply = flow.isReply { w.field("is_reply", isReply) }
        var ifindex: UInt32 = flow.type == MessageType.trace ? (flow.ifindex ?? 0) : 0
        var proxyPort: UInt32 = 0
        if case .trace(let t) = event.message, t.observationPoint.rawValue == 1 { proxyPort = UInt32(t.destinationID) }
        if case .capture(let c) = event.message {
            if c.header.subtype >= 4 && c.header.subtype <= 11 {
                w.field("debug_capture_point", string: Self.capturePointName(c.header.subtype))
            } else if c.header.subtype != 0 {
                w.field("debug_capture_point", c.header.subtype)
            }
            switch c.header.subtype {
            case 4, 5, 6, 7, 10, 11: ifindex = c.arg1
            case 8, 9:
                // The datapath puts the port, in network order, in arg1's low half; Hubble's parser
                // (1.13 and latest alike) swaps all 32 bits of it: port 15001 reads 983105536.
                proxyPort = c.arg1.byteSwapped
            default: break
            }
        }
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
        summary(&w, stack, socket: socket)
        w.endObject()
        envelope(&w, node: flow.node, time: flow.timeNanoseconds)
        w.endObject()
        w.endDocument()
    }

    /// A socket trace's one address and port: the destination before a forward translation, the
    /// source of a reply (reverse points), as Hubble's socket parser places them.
    private func socketLayers(_ w: inout JSONWriter, _ event: borrowing Event) {
        guard case .traceSock(let s) = event.message else { return }
        let reverse = s.xlatePoint == 3 || s.xlatePoint == 4
        var l = FlowLayers()
        if reverse {
            l.source = s.destinationIP
            l.sourcePort = s.destinationPort
        } else {
            l.destination = s.destinationIP
            l.destinationPort = s.destinationPort
        }
        l.transport = event.flow.outer.transport
        FlowLayersJSON.ip(&w, l, style: .protobuf)
        FlowLayersJSON.l4(&w, l, style: .protobuf)
    }

    // MARK: Parts

    /// The order Hubble's summary lists TCP flags in.
    static let summaryFlagOrder: [(UInt16, StaticString)] = [
        (0x002, "SYN"), (0x010, "ACK"), (0x004, "RST"), (0x001, "FIN"), (0x008, "PSH"), (0x020, "URG"),
        (0x040, "ECE"), (0x080, "CWR"), (0x100, "NS"),
    ]

    /// `source` or `destination`: always present (empty when nothing is known), as Hubble sets both.
    private func endpoint(_ w: inout JSONWriter, _ key: StaticString, identity: UInt32?, ip: IPAddress?, node: String?) {
        let pod = pods.pod(at: ip)
        // The datapath's identity wins; where it has none (0), the pod's, as Hubble takes it from the
        // ipcache.
        let id = (identity ?? 0) != 0 ? identity ?? 0 : pod?.identity ?? 0
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

    /// Hubble's Summary: the last layer's name, the TCP flags, or the ICMP type and code; a socket
    /// trace's protocol.
    private func summary(_ w: inout JSONWriter, _ l: FlowLayers, socket: Bool) {
        if socket {
            switch l.transport {
            case .tcp: w.field("Summary", string: "TCP")
            case .udp: w.field("Summary", string: "UDP")
            default: w.field("Summary", string: "Unknown")
            }
            return
        }
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
