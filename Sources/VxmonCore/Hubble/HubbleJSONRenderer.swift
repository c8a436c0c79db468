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
        Self.envelope(&w, node: node, time: time)
        w.endObject()
        w.endDocument()
    }

    static func envelope(_ w: inout JSONWriter, node: String?, time: UInt64) {
        if let node, !node.isEmpty {
            w.key("node_name")
            w.escapedString(node)
        }
        if time != 0 { w.field("time", raw: { StructuredRenderer.rfc3339($0, time) }) }
    }

    /// One `GetFlowsResponse` line for a flow event; nothing for other types. The fields are
    /// `HubbleFlow`'s (the one mapping), written in the .proto's order.
    public func render(_ event: borrowing Event, record: RawSpan, into out: OutputBuffer) {
        guard flow.pointee.fill(event, record: record, release: release, pods: pods, names: names) else { return }
        flow.pointee.writeJSON(into: out)
    }

    /// The flow being written, reused for every event; behind a pointer, so that filling and writing
    /// it work in place (a class property handed on is copied first).
    private let flow: UnsafeMutablePointer<HubbleFlow> = {
        let p = UnsafeMutablePointer<HubbleFlow>.allocate(capacity: 1)
        p.initialize(to: HubbleFlow())
        return p
    }()

    deinit {
        flow.deinitialize(count: 1)
        flow.deallocate()
    }

    // MARK: Parts

    /// The order Hubble's summary lists TCP flags in.
    static let summaryFlagOrder: [(UInt16, StaticString)] = [
        (0x002, "SYN"), (0x010, "ACK"), (0x004, "RST"), (0x001, "FIN"), (0x008, "PSH"), (0x020, "URG"),
        (0x040, "ECE"), (0x080, "CWR"), (0x100, "NS"),
    ]

    /// `source` or `destination`: always present (empty when nothing is known), as Hubble sets both.
    static func endpoint(_ w: inout JSONWriter, _ key: StaticString, _ e: borrowing HubbleFlow.Endpoint) {
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

extension HubbleFlow {
    /// This flow as one `GetFlowsResponse` line. A method of the flow, `mutating` though it changes
    /// nothing, so that the renderer's reused value is written where it is (borrowed through its
    /// pointer, or handed on as an argument, it was copied per event).
    public mutating func writeJSON(into out: OutputBuffer) {
        // Scalars the closures below take (a closure capturing `self` would copy all of it).
        let (time, cookie, cgroup, socket) = (self.time, self.socketCookie, self.cgroupID, self.socket)
        var w = JSONWriter(out: out)
        w.beginDocument()
        w.beginObject()
        w.key("flow")
        w.beginObject()
        if time != 0 { w.field("time", raw: { StructuredRenderer.rfc3339($0, time) }) }
        if self.verdict != .unknown { w.field("verdict", string: self.verdict.name) }
        if self.dropReason != 0 { w.field("drop_reason", self.dropReason) }
        FlowLayersJSON.ethernet(&w, self.layers)
        FlowLayersJSON.ip(&w, self.layers, style: .protobuf, encrypted: self.encrypted, source: self.ipSource)
        FlowLayersJSON.l4(&w, self.layers, style: .protobuf)
        if let tunnel = self.tunnel {
            w.key("tunnel")
            w.beginObject()
            w.field("protocol", string: tunnel.kind == .vxlan ? "VXLAN" : "GENEVE")
            FlowLayersJSON.ip(&w, tunnel.outer, style: .protobuf)
            FlowLayersJSON.l4(&w, tunnel.outer, style: .protobuf)
            if tunnel.vni != 0 { w.field("vni", tunnel.vni) }
            w.endObject()
        }
        HubbleJSONRenderer.endpoint(&w, "source", self.source)
        HubbleJSONRenderer.endpoint(&w, "destination", self.destination)
        w.field("Type", string: self.socket ? "SOCK" : "L3_L4")
        if let node = self.nodeName {
            w.key("node_name")
            w.escapedString(node)
        }
        if self.isReply == true { w.field("reply", true) }
        w.key("event_type")
        w.beginObject()
        w.field("type", self.eventType)
        if self.eventSubType != 0 { w.field("sub_type", self.eventSubType) }
        w.endObject()
        if self.trafficDirection != .unknown { w.field("traffic_direction", string: self.trafficDirection.name) }
        if self.policyMatchType != 0 { w.field("policy_match_type", self.policyMatchType) }
        if let point = self.observationPoint {
            w.key("trace_observation_point")
            if self.observationPointNamed {
                w.string(CiliumNames.hubbleObservationPoint(point == 101 ? 0 : UInt8(truncatingIfNeeded: point)))
            } else {
                w.int(point)
            }
        }
        if self.traceReason != 0, let name = HubbleJSONRenderer.traceReasonName(self.traceReason) { w.field("trace_reason", string: name) }
        if self.dropReason != 0 {
            w.key("drop_reason_desc")
            if self.dropReasonNamed, let name = HubbleDropReason.name(self.dropReason) { w.string(name) } else { w.int(self.dropReason) }
        }
        if let isReply = self.isReply { w.field("is_reply", isReply) }
        if self.debugCapturePoint >= 4 && self.debugCapturePoint <= 11 {
            w.field("debug_capture_point", string: HubbleJSONRenderer.capturePointName(self.debugCapturePoint))
        } else if self.debugCapturePoint != 0 {
            w.field("debug_capture_point", self.debugCapturePoint)
        }
        if self.interfaceIndex != 0 {
            w.key("interface")
            w.beginObject()
            w.field("index", self.interfaceIndex)
            if let name = self.interfaceName {
                w.key("name")
                w.escapedString(name)
            }
            w.endObject()
        }
        if self.proxyPort != 0 { w.field("proxy_port", self.proxyPort) }
        if self.sockXlatePoint >= 1 && self.sockXlatePoint <= 4 {
            w.field("sock_xlate_point", string: HubbleJSONRenderer.xlatePointName(self.sockXlatePoint))
        } else if self.sockXlatePoint != 0 {
            w.field("sock_xlate_point", self.sockXlatePoint)
        }
        if cookie != 0 { w.field("socket_cookie", raw: { $0.unsignedDecimal(cookie) }) }
        if cgroup != 0 { w.field("cgroup_id", raw: { $0.unsignedDecimal(cgroup) }) }
        if self.hasSummary {
            let layers = self.layers
            w.field("Summary", raw: { HubbleFlow.summary(layers, socket: socket, into: $0) })
        }
        w.endObject()
        HubbleJSONRenderer.envelope(&w, node: self.nodeName, time: time)
        w.endObject()
        w.endDocument()
    }
}
