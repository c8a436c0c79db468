import VxmonWire

/// One event as Hubble's `flow.Flow`: the one mapping from vxmon's `Flow` (and what only one message
/// type carries: observation point, capture point, socket cookie) to Hubble's fields, for a Cilium
/// release's API. Two encoders read it and decide nothing: `HubbleJSONRenderer` writes it as protobuf
/// JSON (`-o jsonpb`), and the Hubble servers copy it into the generated `Flow_Flow` message.
/// Zero values mean "not set", as in protobuf 3.
public struct HubbleFlow: Sendable {
    /// An endpoint (`source`, `destination`): always present, possibly empty.
    public struct Endpoint: Sendable {
        /// The endpoint ID, for a pod of the node that saw the flow (Hubble knows only its own).
        public var id: UInt32 = 0
        public var identity: UInt32 = 0
        /// The pod at the endpoint's address (namespace, name, labels), if known.
        public var pod: PodInfo?
        /// A reserved identity's label (`reserved:world`), listed before the pod's.
        public var reservedLabel: StaticString?
    }

    public var time: UInt64 = 0
    public var verdict = FlowVerdict.unknown
    public var dropReason: UInt8 = 0
    /// `ethernet`, `IP` and `l4` come from this stack (for a socket trace: its one address and port).
    public var layers = FlowLayers()
    /// `IP.source` when it is not the stack's (a trace's original source).
    public var ipSource: IPAddress?
    public var encrypted = false
    /// The outer headers and VNI of a tunnel packet (latest's API only).
    public var tunnel: (kind: FlowTunnel.Kind, vni: UInt32, outer: FlowLayers)?
    public var source = Endpoint()
    public var destination = Endpoint()
    /// `Type`: SOCK for socket traces, else L3_L4.
    public var socket = false
    public var nodeName: String?
    public var isReply: Bool?
    public var eventType: UInt8 = 0
    public var eventSubType: UInt8 = 0
    public var trafficDirection = TrafficDirection.unknown
    public var policyMatchType: UInt8 = 0
    /// Hubble's `TraceObservationPoint` value (101 for Cilium's to-endpoint 0), and whether the
    /// release's enum names it (else it is written as a number).
    public var observationPoint: UInt32?
    public var observationPointNamed = false
    /// Hubble's `TraceReason` value (0: not set; latest's API only).
    public var traceReason: UInt8 = 0
    public var dropReasonNamed = false
    public var debugCapturePoint: UInt8 = 0
    public var interfaceIndex: UInt32 = 0
    public var interfaceName: String?
    public var proxyPort: UInt32 = 0
    public var sockXlatePoint: UInt8 = 0
    public var socketCookie: UInt64 = 0
    public var cgroupID: UInt64 = 0

    public init() {}

    /// The flow of `event`, or nil when Hubble makes none of it (not a flow type, or a packet its
    /// parser cannot decode).
    public init?(
        _ event: borrowing Event, record: RawSpan, release: CiliumRelease, pods: PodDirectory, names: InterfaceNames
    ) {
        guard fill(event, record: record, release: release, pods: pods, names: names) else { return nil }
    }

    /// Sets every field from `event` in place (the JSON renderer reuses one value: a HubbleFlow
    /// copied per event cost a tenth of `-o jsonpb`); false when Hubble makes no flow of it.
    public mutating func fill(
        _ event: borrowing Event, record: RawSpan, release: CiliumRelease, pods: PodDirectory, names: InterfaceNames
    ) -> Bool {
        guard HubbleJSONRenderer.isFlow(event.flow.type), !event.flow.hubbleUndecodable else { return false }
        self = HubbleFlow()
        let latest = release == .latest
        socket = event.flow.type == MessageType.traceSock
        time = event.flow.timeNanoseconds
        verdict = event.flow.verdict
        dropReason = event.flow.dropReason ?? 0
        if dropReason != 0 { dropReasonNamed = HubbleDropReason.name(dropReason, release) != nil }
        encrypted = event.flow.encrypted
        nodeName = event.flow.node.flatMap { $0.isEmpty ? nil : $0 }
        isReply = event.flow.isReply
        eventType = event.flow.type.rawValue
        eventSubType = event.flow.subType
        trafficDirection = event.flow.trafficDirection
        var sourceAddress: IPAddress?
        var destinationAddress: IPAddress?
        // Hubble's stack; for a socket trace its one address and port: the destination before a
        // forward translation, the source of a reply (reverse points), as its socket parser has them.
        layers = event.flow.hubbleLayers(release)
        if case .traceSock(let s) = event.message {
            sockXlatePoint = s.xlatePoint
            socketCookie = s.socketCookie
            cgroupID = s.cgroupID
        } else {
            ipSource = event.flow.originalIP
            sourceAddress = event.flow.originalIP ?? layers.source
            destinationAddress = layers.destination
            if latest, let t = event.flow.tunnel, event.flow.primaryIsInner { tunnel = (t.kind, t.vni, event.flow.outer) }
        }
        Self.setEndpoint(&source, identity: event.flow.sourceIdentity, ip: sourceAddress, node: event.flow.node, pods: pods)
        Self.setEndpoint(
            &destination, identity: event.flow.destinationIdentity, ip: destinationAddress, node: event.flow.node, pods: pods)
        switch event.message {
        case .trace(let t):
            let point = t.observationPoint.rawValue
            observationPoint = point == 0 ? 101 : UInt32(point)
            observationPointNamed = point <= (latest ? 13 : 11)
            // Hubble's TraceReason is the CT state plus one up to reopened; unknown (5) is its zero.
            if latest, let state = event.flow.traceState, state != 5 { traceReason = state <= 4 ? state + 1 : state }
            if point == 1 { proxyPort = UInt32(t.destinationID) }
        case .policyVerdict(let p):
            policyMatchType = p.matchType
        case .capture(let c):
            debugCapturePoint = c.header.subtype
            switch c.header.subtype {
            case 8, 9:
                // The datapath puts the port, in network order, in arg1's low half; Hubble's parser
                // (1.13 and latest alike) swaps all 32 bits of it: port 15001 reads 983105536.
                proxyPort = c.arg1.byteSwapped
            default: break
            }
        default:
            break
        }
        interfaceIndex = event.flow.hubbleInterfaceIndex
        if interfaceIndex != 0 { interfaceName = names.name(interfaceIndex, node: event.flow.node) }
        return true
    }

    /// Sets `e` in place (an Endpoint returned and assigned was copied per event).
    static func setEndpoint(_ e: inout Endpoint, identity: UInt32?, ip: IPAddress?, node: String?, pods: PodDirectory) {
        let pod = pods.pod(at: ip)
        // Resolved once, by the decoder (the datapath's, else the pod's).
        e.identity = identity ?? 0
        if let pod, pod.endpoint != 0, let node, pod.node == node { e.id = UInt32(pod.endpoint) }
        e.pod = pod
        e.reservedLabel = HubbleJSONRenderer.reservedLabel(e.identity)
    }

    /// Hubble's `Summary`: the last layer's name, the TCP flags, the ICMP type and code, or a socket
    /// trace's protocol; nothing when no layer was decoded.
    public func summary(into out: OutputBuffer) { Self.summary(layers, socket: socket, into: out) }

    static func summary(_ l: borrowing FlowLayers, socket: Bool, into out: OutputBuffer) {
        if socket {
            switch l.transport {
            case .tcp: out.append("TCP")
            case .udp: out.append("UDP")
            default: out.append("Unknown")
            }
            return
        }
        switch l.transport {
        case .tcp:
            out.append("TCP Flags: ")
            var first = true
            for (bit, name) in HubbleJSONRenderer.summaryFlagOrder where l.tcpFlags & bit != 0 {
                if !first { out.append(", ") }
                out.append(name)
                first = false
            }
        case .udp: out.append("UDP")
        case .sctp: out.append("SCTP")
        case .icmpv4, .icmpv6:
            let v6 = l.transport == .icmpv6
            out.append(v6 ? "ICMPv6 " : "ICMPv4 ")
            out.icmpTypeCode(v6: v6, type: l.icmpType, code: l.icmpCode)
        case .none:
            if case .v6? = l.source {
                out.append("IPv6")
            } else if l.source != nil {
                out.append("IPv4")
            } else if l.hasEthernet {
                out.append(l.etherType == 0x0806 ? "ARP" : "Ethernet")
            }
        }
    }

    /// True when `summary(into:)` writes something.
    public var hasSummary: Bool { socket || layers.transport != .none || layers.source != nil || layers.hasEthernet }
}
