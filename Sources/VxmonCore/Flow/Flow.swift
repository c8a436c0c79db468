import VxmonWire

/// The transport an event's packet carries, as Cilium's dissector sees it.
public enum FlowTransport: UInt8, Sendable {
    case none
    case tcp
    case udp
    case sctp
    case icmpv4
    case icmpv6

    /// True for the transports with ports.
    public var hasPorts: Bool { self == .tcp || self == .udp || self == .sctp }
}

/// One header stack of a packet (the outer frame, or the frame inside a tunnel) reduced to what
/// identifies a flow: link addresses, IP addresses, transport, ports or ICMP type/code, TCP flags.
///
/// The values are those of Cilium 1.13's gopacket-based dissector (`GetConnectionSummary`): only the
/// layers it decodes count, and a layer type seen twice (IP in IP) shows its last instance, so the
/// one-line summary, the JSON flow keys and the filters all say the same thing about a packet.
public struct FlowLayers: Sendable, Equatable {
    /// True when the stack has an Ethernet header (false for L3 captures and cut frames).
    public var hasEthernet = false
    public var sourceMAC = MACAddress(rawValue: 0)
    public var destinationMAC = MACAddress(rawValue: 0)
    public var etherType: UInt16 = 0
    public var source: IPAddress?
    public var destination: IPAddress?
    public var transport = FlowTransport.none
    public var sourcePort: UInt16 = 0
    public var destinationPort: UInt16 = 0
    /// TCP flag bits (`TCPHeader.syn`, ...), 0 unless `transport == .tcp`.
    public var tcpFlags: UInt16 = 0
    public var icmpType: UInt8 = 0
    public var icmpCode: UInt8 = 0

    public init() {}

    /// True when nothing of the stack was decoded (Cilium would print `[unknown]`).
    public var isEmpty: Bool { !hasEthernet && source == nil && transport == .none }

    /// The IP protocol number of the transport (nil without one).
    public var ipProtocol: UInt8? {
        switch transport {
        case .none: nil
        case .tcp: 6
        case .udp: 17
        case .sctp: 132
        case .icmpv4: 1
        case .icmpv6: 58
        }
    }
}

/// The tunnel a VXLAN or Geneve packet travels in.
public struct FlowTunnel: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case vxlan
        case geneve
    }
    public var kind: Kind
    /// The VNI field (for Cilium's VXLAN mode: the source pod's security identity).
    public var vni: UInt32
    /// The VXLAN I flag (VNI valid); always true for Geneve.
    public var vniValid: Bool
}

/// What happened to the packet, in Hubble's terms (values are Hubble's `flow.Verdict` numbers).
public enum FlowVerdict: UInt8, Sendable {
    case unknown = 0
    case forwarded = 1
    case dropped = 2
    case error = 3
    case audit = 4
    case redirected = 5
    case traced = 6
    case translated = 7

    public var name: StaticString {
        switch self {
        case .unknown: "VERDICT_UNKNOWN"
        case .forwarded: "FORWARDED"
        case .dropped: "DROPPED"
        case .error: "ERROR"
        case .audit: "AUDIT"
        case .redirected: "REDIRECTED"
        case .traced: "TRACED"
        case .translated: "TRANSLATED"
        }
    }
}

/// One event's flow: computed once per event by the decoder, read by the text summary, the JSON/YAML
/// flow keys, the filters, the counters and the protocol converters, so that what a filter matches
/// is what the line shows.
public struct Flow: Sendable {
    public var type = MessageType.unspec
    /// The outer frame (the only one for non-tunnel packets).
    public var outer = FlowLayers()
    /// The frame inside a VXLAN/Geneve tunnel (present iff `tunnel` is).
    public var inner = FlowLayers()
    public var tunnel: FlowTunnel?
    /// The inner frame was decoded far enough to name a flow: it has an IP header, or it is a whole
    /// frame without one (ARP). A frame cut before its addresses does not, and the outer flow stands
    /// for the packet.
    public var innerHasFlow = false
    /// Endpoint ID of the program that emitted the event (the notify header's `source`).
    public var endpoint: UInt16 = 0
    /// Destination endpoint ID (trace, drop), when the datapath gives one.
    public var destinationEndpoint: UInt32?
    public var sourceIdentity: UInt32?
    public var destinationIdentity: UInt32?
    public var observationPoint: ObservationPoint?
    public var verdict = FlowVerdict.unknown
    /// Drop reason code (drops, and policy-verdict denials).
    public var dropReason: UInt8?
    /// Interface index the datapath reported (0 = unknown).
    public var ifindex: UInt32?
    /// Whether the packet is a reply, where the datapath's connection tracking says so.
    public var isReply: Bool?
    public var cpu = 0
    /// Time of the event in ns since the Unix epoch (0 = unknown).
    public var timeNanoseconds: UInt64 = 0
    /// The node the event came from, when known.
    public var node: String?

    public init() {}

    /// The stack the one-line summary shows and address filters match by default: the inner frame of
    /// a tunnel packet unless it was cut before its addresses, else the outer frame.
    @inline(__always)
    public var primary: FlowLayers { primaryIsInner ? inner : outer }

    /// True when `primary` is the inner frame.
    @inline(__always)
    public var primaryIsInner: Bool { tunnel != nil && innerHasFlow }
}

extension FlowLayers {
    /// The flow of the layers gopacket decodes in `view` (Cilium's reused-struct semantics).
    init(_ packet: borrowing DecodedPacket, _ view: CiliumView, inner: Bool) {
        self.init()
        guard view.count > 0 else { return }
        for i in view.start..<(view.start + view.count) {
            // Like Cilium, read each decoded type from its (reused) gopacket struct.
            let header = view.error == nil ? packet.layers[i].header : packet.ciliumLayer(i, in: view, inner: inner).header
            switch header {
            case .ethernet(let h):
                hasEthernet = true
                sourceMAC = h.source
                destinationMAC = h.destination
                etherType = h.typeOrLength
            case .ipv4(let h):
                source = .v4(h.source)
                destination = .v4(h.destination)
            case .ipv6(let h):
                source = .v6(h.source)
                destination = .v6(h.destination)
            case .tcp(let h):
                transport = .tcp
                sourcePort = h.sourcePort
                destinationPort = h.destinationPort
                tcpFlags = h.flags
            case .udp(let h):
                transport = .udp
                sourcePort = h.sourcePort
                destinationPort = h.destinationPort
                tcpFlags = 0
            case .sctp(let h):
                transport = .sctp
                sourcePort = h.sourcePort
                destinationPort = h.destinationPort
                tcpFlags = 0
            case .icmpv4(let h):
                transport = .icmpv4
                icmpType = h.type
                icmpCode = h.code
            case .icmpv6(let h):
                transport = .icmpv6
                icmpType = h.type
                icmpCode = h.code
            default: break
            }
        }
    }
}

extension Flow {
    /// Fills the packet part of the flow (outer, tunnel, inner) from `packet`.
    mutating func setPacket(_ packet: borrowing DecodedPacket) {
        let outerView = packet.ciliumView(from: 0, inner: false)
        outer = FlowLayers(packet, outerView, inner: false)
        if let t = packet.tunnelAfter(outerView) {
            switch packet.layers[t].header {
            case .vxlan(let v): tunnel = FlowTunnel(kind: .vxlan, vni: v.vni, vniValid: v.validID)
            case .geneve(let g): tunnel = FlowTunnel(kind: .geneve, vni: g.vni, vniValid: true)
            default: tunnel = nil
            }
            inner = FlowLayers(packet, packet.ciliumView(from: t + 1, inner: true), inner: true)
            let cut = packet.stop.map { $0.isInner && $0.reason == .truncated } ?? false
            innerHasFlow = inner.source != nil || (inner.hasEthernet && !cut)
        } else {
            tunnel = nil
            inner = FlowLayers()
            innerHasFlow = false
        }
    }

    /// Clears the packet part (events without a packet).
    mutating func clearPacket() {
        outer = FlowLayers()
        inner = FlowLayers()
        tunnel = nil
        innerHasFlow = false
    }
}

extension Flow {
    /// A socket load-balancer trace carries no packet: its flow is the destination it names, and
    /// Hubble's verdict for the translation point (traced before, translated after).
    mutating func setSocket(_ s: TraceSock) {
        outer.destination = s.destinationIP
        outer.destinationPort = s.destinationPort
        switch s.l4Proto {
        case 1: outer.transport = .tcp
        case 2: outer.transport = .udp
        default: outer.transport = .none
        }
        switch s.xlatePoint {
        case 1, 3: verdict = .traced
        case 2, 4: verdict = .translated
        default: verdict = .unknown
        }
    }
}
