import VxmonWire

/// One event of a packet's journey: where the datapath saw the packet (a trace's observation point, a
/// drop, a policy verdict), on which node and interface, and when.
public struct JourneyHop: Sendable {
    public enum Kind: UInt8, Sendable {
        case trace
        case drop
        case policyVerdict
    }
    public var kind: Kind
    /// The node's index in the builder's node table (`JourneyBuilder.nodeName(_:)`).
    public var node: UInt16
    /// A trace's observation point (nil for drops and policy verdicts).
    public var point: ObservationPoint?
    /// The interface the datapath reported (0: none).
    public var ifindex: UInt32
    /// The event's own time, ns since the Unix epoch (its node's clock).
    public var time: UInt64
    /// The event's identities, as the datapath gave them (0: none).
    public var sourceIdentity: UInt32
    public var destinationIdentity: UInt32
    /// The tunnel header the event's packet carries (an underlay trace of a VXLAN packet).
    public var tunnel: FlowTunnel?
    /// The outer addresses of a tunnelled packet.
    public var outerSource: IPAddress?
    public var outerDestination: IPAddress?
    /// A drop's reason code, or a denying policy verdict's.
    public var dropReason: UInt8?
    /// A policy verdict's action.
    public var policyAction: PolicyAction?
    /// Hubble's verdict of the event.
    public var verdict: FlowVerdict
    /// The event passed the command's filter.
    public var matched: Bool

    public init(
        kind: Kind, node: UInt16, point: ObservationPoint?, ifindex: UInt32, time: UInt64, sourceIdentity: UInt32 = 0,
        destinationIdentity: UInt32 = 0, tunnel: FlowTunnel? = nil, outerSource: IPAddress? = nil,
        outerDestination: IPAddress? = nil, dropReason: UInt8? = nil, policyAction: PolicyAction? = nil,
        verdict: FlowVerdict = .unknown, matched: Bool = true
    ) {
        self.kind = kind
        self.node = node
        self.point = point
        self.ifindex = ifindex
        self.time = time
        self.sourceIdentity = sourceIdentity
        self.destinationIdentity = destinationIdentity
        self.tunnel = tunnel
        self.outerSource = outerSource
        self.outerDestination = outerDestination
        self.dropReason = dropReason
        self.policyAction = policyAction
        self.verdict = verdict
        self.matched = matched
    }

    /// A hop where the packet arrives on a node from outside it: from an endpoint, the host, the
    /// stack, a proxy, the network or the overlay.
    public var isEntry: Bool {
        guard kind == .trace, let point else { return false }
        switch point {
        case .fromEndpoint, .fromHost, .fromStack, .fromProxy, .fromNetwork, .fromOverlay, .fromCrypto: return true
        default: return false
        }
    }

    /// A hop that ends the packet's way through the watched datapath: delivered to an endpoint, the
    /// host, the stack or a proxy, or dropped.
    public var isTerminal: Bool {
        if kind == .drop { return true }
        guard kind == .trace, let point else { return false }
        switch point {
        case .toEndpoint, .toHost, .toStack, .toProxy: return true
        default: return false
        }
    }
}

/// How a journey ended.
public enum JourneyOutcome: UInt8, Sendable, CaseIterable {
    /// It reached an endpoint, the host, the stack or a proxy.
    case delivered
    /// The datapath dropped it (the last hop is the drop, with its reason).
    case dropped
    /// An expected hop never came, and samples were lost meanwhile: the missing events are among them.
    case lost
    /// It had not ended when the run ended, or when its time ran out, and no sample was lost.
    case unfinished

    public var name: StaticString {
        switch self {
        case .delivered: "delivered"
        case .dropped: "dropped"
        case .lost: "lost"
        case .unfinished: "unfinished"
        }
    }
}

/// Why a journey that did not end was closed.
public enum JourneyCloseReason: UInt8, Sendable {
    /// It ended (delivered or dropped).
    case ended
    /// Its time ran out (`--timeout` after its first hop).
    case timeout
    /// Too many journeys were open (`--max-open`): the oldest was closed.
    case evicted
    /// The run ended.
    case endOfRun
    /// An event of a packet with the same key came to a node and point the journey had already
    /// passed: another packet (IPv4 identifications wrap after 65,536 packets of one flow).
    case superseded

    public var name: StaticString {
        switch self {
        case .ended: "ended"
        case .timeout: "timeout"
        case .evicted: "evicted"
        case .endOfRun: "end-of-run"
        case .superseded: "superseded"
        }
    }
}

/// A journey's part in a request/reply exchange.
public enum JourneyRole: UInt8, Sendable {
    /// No pair: an ICMP message other than an echo, an echo reply without its request, or a packet
    /// nothing came back for in time. (A TCP, UDP or SCTP packet is paired with the next packet of its
    /// conversation that comes back, an echo request with the echo reply of its identifier and
    /// sequence.)
    case single
    case request
    case reply

    public var name: StaticString {
        switch self {
        case .single: "single"
        case .request: "request"
        case .reply: "reply"
        }
    }
}

/// An expected hop that no event showed.
public struct MissingHop: Sendable, Equatable {
    /// The node's index (`JourneyBuilder.nodeName(_:)`); `JourneyBuilder.unknownNode` when unknown.
    public var node: UInt16
    public var point: ObservationPoint
}

/// The way of one packet through the datapath, across nodes: its hops in time order, and how it ended.
public struct Journey: Sendable {
    /// Numbered from 1 in the order of their first hop.
    public var id: UInt64
    /// The packet: addresses, protocol, ports, and what tells it from its neighbours.
    public var key: PacketKey
    public var hops: [JourneyHop] = []
    /// Hops beyond `JourneyBuilder.maxHops`, counted only.
    public var extraHops = 0
    public var outcome = JourneyOutcome.unfinished
    public var closeReason = JourneyCloseReason.ended
    public var role = JourneyRole.single
    /// The other journey of its exchange (request or reply).
    public var pairedWith: UInt64?
    /// The VNI the packet travelled with: the VXLAN header's when the underlay was traced, else the
    /// identity the far node's datapath read from the tunnel key (its from-overlay trace's source).
    public var vni: UInt32?
    public var vniSource = VNISource.none
    /// The VNI of the other journey of its exchange.
    public var pairVNI: UInt32?
    /// Expected hops no event showed (a gap between nodes, an entry never seen).
    public var missing: [MissingHop] = []
    /// Samples lost (on every node) between the journey's start and its close.
    public var lostDuring: UInt64 = 0
    /// The node index of the packet's destination pod, when known (its delivery node).
    public var destinationNode: UInt16?

    public init(id: UInt64, key: PacketKey) {
        self.id = id
        self.key = key
    }

    /// Where the VNI was read.
    public enum VNISource: UInt8, Sendable {
        case none
        /// The VXLAN header of an underlay trace.
        case header
        /// The source identity of the far node's from-overlay trace (the datapath reads it from the
        /// tunnel key, which is the VNI).
        case tunnelKey

        public var name: StaticString {
            switch self {
            case .none: "none"
            case .header: "vxlan-header"
            case .tunnelKey: "tunnel-key"
            }
        }
    }

    /// Time of the first hop (0 without hops).
    public var startTime: UInt64 { hops.first?.time ?? 0 }
    /// Time of the last hop.
    public var endTime: UInt64 { hops.last?.time ?? 0 }
    /// True when it was delivered and no expected hop is missing.
    public var isComplete: Bool { outcome == .delivered && missing.isEmpty }
    /// Some hop passed the command's filter.
    public var matched: Bool { hops.contains { $0.matched } }
}
