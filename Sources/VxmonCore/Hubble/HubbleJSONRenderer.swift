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

    /// One `GetFlowsResponse` line for a flow event; nothing for other types. The fields are
    /// `HubbleFlow`'s (the one mapping), written in the .proto's order.
    public func render(_ event: borrowing Event, record: RawSpan, into out: OutputBuffer) {
        guard flow.fill(event, record: record, release: release, pods: pods, names: names) else { return }
        write(flow, into: out)
    }

    /// The flow being written, reused for every event.
    private var flow = HubbleFlow()

    /// `h` as one `GetFlowsResponse` line.
    public func write(_ h: borrowing HubbleFlow, into out: OutputBuffer) {
        // Scalars the closures below take (a closure capturing `h` would copy all of it).
        let (time, cookie, cgroup, socket) = (h.time, h.socketCookie, h.cgroupID, h.socket)
        var w = JSONWriter(out: out)
        w.beginDocument()
        w.beginObject()
        w.key("flow")
        w.beginObject()
        if time != 0 { w.field("time", raw: { StructuredRenderer.rfc3339($0, time) }) }
        if h.verdict != .unknown { w.field("verdict", string: h.verdict.name) }
        if h.dropReason != 0 { w.field("drop_reason", h.dropReason) }
        FlowLayersJSON.ethernet(&w, h.layers)
        FlowLayersJSON.ip(&w, h.layers, style: .protobuf, encrypted: h.encrypted, source: h.ipSource)
        FlowLayersJSON.l4(&w, h.layers, style: .protobuf)
        if let tunnel = h.tunnel {
            w.key("tunnel")
            w.beginObject()
            w.field("protocol", string: tunnel.kind == .vxlan ? "VXLAN" : "GENEVE")
            FlowLayersJSON.ip(&w, tunnel.outer, style: .protobuf)
            FlowLayersJSON.l4(&w, tunnel.outer, style: .protobuf)
            if tunnel.vni != 0 { w.field("vni", tunnel.vni) }
            w.endObject()
        }
        endpoint(&w, "source", h.source)
        endpoint(&w, "destination", h.destination)
        w.field("Type", string: h.socket ? "SOCK" : "L3_L4")
        if let node = h.nodeName {
            w.key("node_name")
            w.escapedString(node)
        }
        if h.isReply == true { w.field("reply", true) }
        w.key("event_type")
        w.beginObject()
        w.field("type", h.eventType)
        if h.eventSubType != 0 { w.field("sub_type", h.eventSubType) }
        w.endObject()
        if h.trafficDirection != .unknown { w.field("traffic_direction", string: h.trafficDirection.name) }
        if h.policyMatchType != 0 { w.field("policy_match_type", h.policyMatchType) }
        if let point = h.observationPoint {
            w.key("trace_observation_point")
            if h.observationPointNamed {
                w.string(CiliumNames.hubbleObservationPoint(point == 101 ? 0 : UInt8(truncatingIfNeeded: point)))
            } else {
                w.int(point)
            }
        }
        if h.traceReason != 0, let name = Self.traceReasonName(h.traceReason) { w.field("trace_reason", string: name) }
        if h.dropReason != 0 {
            w.key("drop_reason_desc")
            if h.dropReasonNamed, let name = HubbleDropReason.name(h.dropReason) { w.string(name) } else { w.int(h.dropReason) }
        }
        if let isReply = h.isReply { w.field("is_reply", isReply) }
        if h.debugCapturePoint >= 4 && h.debugCapturePoint <= 11 {
            w.field("debug_capture_point", string: Self.capturePointName(h.debugCapturePoint))
        } else if h.debugCapturePoint != 0 {
            w.field("debug_capture_point", h.debugCapturePoint)
        }
        if h.interfaceIndex != 0 {
            w.key("interface")
            w.beginObject()
            w.field("index", h.interfaceIndex)
            if let name = h.interfaceName {
                w.key("name")
                w.escapedString(name)
            }
            w.endObject()
        }
        if h.proxyPort != 0 { w.field("proxy_port", h.proxyPort) }
        if h.sockXlatePoint >= 1 && h.sockXlatePoint <= 4 {
            w.field("sock_xlate_point", string: Self.xlatePointName(h.sockXlatePoint))
        } else if h.sockXlatePoint != 0 {
            w.field("sock_xlate_point", h.sockXlatePoint)
        }
        if cookie != 0 { w.field("socket_cookie", raw: { $0.unsignedDecimal(cookie) }) }
        if cgroup != 0 { w.field("cgroup_id", raw: { $0.unsignedDecimal(cgroup) }) }
        if h.hasSummary {
            let layers = h.layers
            w.field("Summary", raw: { HubbleFlow.summary(layers, socket: socket, into: $0) })
        }
        w.endObject()
        envelope(&w, node: h.nodeName, time: time)
        w.endObject()
        w.endDocument()
    }

    // MARK: Parts

    /// The order Hubble's summary lists TCP flags in.
    static let summaryFlagOrder: [(UInt16, StaticString)] = [
        (0x002, "SYN"), (0x010, "ACK"), (0x004, "RST"), (0x001, "FIN"), (0x008, "PSH"), (0x020, "URG"),
        (0x040, "ECE"), (0x080, "CWR"), (0x100, "NS"),
    ]

    /// `source` or `destination`: always present (empty when nothing is known), as Hubble sets both.
    private func endpoint(_ w: inout JSONWriter, _ key: StaticString, _ e: HubbleFlow.Endpoint) {
        w.key(key)
        w.beginObject()
        if e.id != 0 { w.field("ID", e.id) }
        if e.identity != 0 { w.field("identity", e.identity) }
        if let pod = e.pod {
            w.key("namespace")
            w.escapedString(pod.namespace)
        }
        if e.reservedLabel != nil || e.pod != nil {
            w.key("labels")
            w.beginArray()
            if let reserved = e.reservedLabel { w.string(reserved) }
            // Labels and namespace come from a recording or a stream: escaped like every outside string.
            if let pod = e.pod { for label in pod.labels { w.escapedString(label) } }
            w.endArray()
        }
        if let pod = e.pod {
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
