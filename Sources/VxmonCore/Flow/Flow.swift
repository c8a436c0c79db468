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

extension IPAddress {
    /// 0.0.0.0 or ::.
    public var isUnspecified: Bool {
        switch self {
        case .v4(let a): a.rawValue == 0
        case .v6(let a): a == IPv6Address(high: 0, low: 0)
        }
    }
}

/// Cilium's monitor reading of a policy verdict, its `action`: the audit flag wins over the verdict
/// (where Hubble's `verdict` reads a redirect or a denial first).
public enum PolicyAction: UInt8, Sendable {
    case allow
    case deny
    case redirect
    case audit

    public var name: StaticString {
        switch self {
        case .allow: "allow"
        case .deny: "deny"
        case .redirect: "redirect"
        case .audit: "audit"
        }
    }
}

/// Hubble's `flow.TrafficDirection`.
public enum TrafficDirection: UInt8, Sendable {
    case unknown = 0
    case ingress = 1
    case egress = 2

    public var name: StaticString {
        switch self {
        case .unknown: "TRAFFIC_DIRECTION_UNKNOWN"
        case .ingress: "INGRESS"
        case .egress: "EGRESS"
        }
    }
}

/// One event's flow: computed once per event by the decoder, read by the text summary, the JSON/YAML
/// flow keys, the filters, the counters and the protocol converters, so that what a filter matches
/// is what the line shows.
public struct Flow: Sendable {
    public var type = MessageType.unspec
    /// The notify header's subtype (a trace's observation point, a drop's reason, a capture's point).
    public var subType: UInt8 = 0
    /// The outer frame (the only one for non-tunnel packets).
    public var outer = FlowLayers()
    /// The frame inside a VXLAN/Geneve tunnel (present iff `tunnel` is).
    public var inner = FlowLayers()
    public var tunnel: FlowTunnel?
    /// The inner frame was decoded far enough to name a flow: it has an IP header, or it is a whole
    /// frame without one (ARP). A frame cut before its addresses does not, and the outer flow stands
    /// for the packet.
    public var innerHasFlow = false
    /// False while the packet part (outer, inner, tunnel) has not been computed: a pipeline whose
    /// sinks read no flow for an event skips it (`EventDecoder.decode(_:into:packetFlow:)`).
    public internal(set) var hasPacketFlow = false
    /// Endpoint ID of the program that emitted the event (the notify header's `source`).
    public var endpoint: UInt16 = 0
    /// Destination endpoint ID (trace, drop), when the datapath gives one.
    public var destinationEndpoint: UInt32?
    /// Cilium's monitor filters (`--type`, `--from`, `--to`, `--related-to`) apply to the event: false
    /// for socket traces and for types the release does not decode, which Cilium never filters.
    public var monitorFilters = true
    /// A socket trace at a reverse translation point: its one address is the reply's source, where
    /// Hubble places it (else the destination).
    public var socketReverse = false
    /// The destination Cilium's monitor filters (`--to`, `--related-to`) compare: a trace's or drop's
    /// destination endpoint (16 bits), a policy verdict's remote identity (its low 16 bits), else 0.
    public var monitorDestination: UInt16 = 0
    /// Security identities: the datapath's, or where it gave none (0) the identity of the pod at the
    /// flow's address (`EventDecoder.resolveIdentities`); the text and JSON header fields show the
    /// datapath's own.
    public var sourceIdentity: UInt32?
    public var destinationIdentity: UInt32?
    public var observationPoint: ObservationPoint?
    /// Hubble's verdict (`flow.Verdict`): what `--verdict`, the counters, `-o jsonpb` and the Hubble
    /// servers read. A policy verdict's denial or redirect comes before its audit flag, as in Hubble's
    /// parser; Cilium's monitor reads the audit flag first (`policyAction`).
    public var verdict = FlowVerdict.unknown
    /// Cilium's monitor reading of a policy verdict (`action audit` in its text); nil for other types.
    public var policyAction: PolicyAction?
    /// Drop reason code (drops, and policy-verdict denials).
    public var dropReason: UInt8?
    /// Interface index the datapath reported (0 = unknown): a trace's or drop's, or the interface a
    /// debug capture names.
    public var ifindex: UInt32?
    /// Whether the packet is a reply, in Hubble's reading (`is_reply`): for traces, what the datapath's
    /// connection tracking says when it knows (not for the unknown and SRv6 states); false for policy
    /// verdicts that let the packet pass (they are emitted for a connection's first packet).
    public var isReply: Bool?
    /// A trace's connection-tracking state (its reason without the encrypt bit): 0 new, 1 established,
    /// 2 reply, 3 related, 4 reopened, 5 unknown, 6/7 SRv6, 8 encrypt overlay.
    public var traceState: UInt8?
    /// A trace's encrypt bit (Hubble's `IP.encrypted`).
    public var encrypted = false
    /// The address the datapath had before translating the packet (a trace's `orig_ip`, v1 and later),
    /// nil when it gave none (all zeros). Hubble reports it as the packet's source (`IP.source`); the
    /// text, the summary and the filters show the packet's own source (`primary.source`).
    public var originalIP: IPAddress?
    /// Hubble's traffic direction: for a drop, egress when the endpoint that emitted it is the local
    /// endpoint of the packet's source address, else ingress; for a trace with a known CT state, the
    /// same, reversed for a reply; for a policy verdict, its own direction; unknown otherwise (no
    /// emitting endpoint). Without pod records no address is a local endpoint, as in a Hubble without
    /// endpoint information.
    public var trafficDirection = TrafficDirection.unknown
    /// Hubble's parser cannot decode the packet: a header of the layers it decodes (Ethernet, IPv4,
    /// IPv6, TCP, UDP, SCTP, ICMP), reached through those alone, is cut or invalid. Hubble then makes no
    /// flow of the event at all; the monitor's text prints what it decoded.
    public var hubbleUndecodable = false
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

    /// The stack Hubble's flow describes: `primary` for latest Cilium (the inner packet of a tunnel,
    /// with the outer headers in `tunnel`), the outer headers for Cilium 1.13, whose parser does not
    /// decode tunnels.
    @inline(__always)
    public func hubbleLayers(_ release: CiliumRelease) -> FlowLayers {
        if socketReverse { return socketReplyLayers }
        return release == .v1_13 ? outer : primary
    }

    /// A reverse socket trace's one address and port as the source, as Hubble's socket parser has it.
    private var socketReplyLayers: FlowLayers {
        var l = FlowLayers()
        l.source = outer.destination
        l.sourcePort = outer.destinationPort
        l.transport = outer.transport
        return l
    }

    /// Hubble's `IP.source`: the trace's original address where it gives one, else the packet's.
    public func hubbleSource(_ release: CiliumRelease) -> IPAddress? { originalIP ?? hubbleLayers(release).source }

    /// Hubble's `interface`: a trace's or a debug capture's (its parser reads none of a drop).
    public var hubbleInterfaceIndex: UInt32 { type == MessageType.drop ? 0 : ifindex ?? 0 }
}

extension FlowLayers {
    /// Sets the flow of the layers gopacket decodes in `view` (Cilium's reused-struct semantics),
    /// whose bytes are `bytes`, in place.
    mutating func fill(
        _ packet: borrowing DecodedPacket, _ layers: UnsafeBufferPointer<Layer>, _ view: CiliumView, inner: Bool,
        bytes: RawSpan
    ) {
        self = FlowLayers()
        guard view.count > 0 else { return }
        let range = view.start..<(view.start &+ view.count)
        // Like Cilium, read each decoded type from its (reused) gopacket struct. That only differs
        // from the layer itself when a decode error left a partial struct or a type repeats (IP in
        // IP); the common case reads the fields straight from the bytes at each layer's offset (every
        // layer in the view was pushed with its fixed header present, and the loads are checked).
        var reuse = false
        if case .decode? = view.error { reuse = true }
        var seen: UInt32 = 0
        for i in range where !reuse {
            let bit: UInt32 = 1 << UInt32(layers[i].kind.rawValue & 31)
            if seen & bit != 0 { reuse = true }
            seen |= bit
        }
        if reuse {
            for i in range { set(packet.ciliumLayer(i, in: view, inner: inner).header) }
            return
        }
        for i in range {
            let o = layers[i].offset
            switch layers[i].kind {
            case .ethernet where bytes.has(14, at: o):
                hasEthernet = true
                destinationMAC = bytes.mac(o)
                sourceMAC = bytes.mac(o &+ 6)
                etherType = bytes.be16(o &+ 12)
            case .ipv4 where bytes.has(20, at: o):
                source = .v4(bytes.ipv4(o &+ 12))
                destination = .v4(bytes.ipv4(o &+ 16))
            case .ipv6 where bytes.has(40, at: o):
                source = .v6(bytes.ipv6(o &+ 8))
                destination = .v6(bytes.ipv6(o &+ 24))
            case .tcp where bytes.has(14, at: o):
                transport = .tcp
                sourcePort = bytes.be16(o)
                destinationPort = bytes.be16(o &+ 2)
                tcpFlags = UInt16(bytes.u8(o &+ 13)) | (UInt16(bytes.u8(o &+ 12) & 1) << 8)
            case .udp where bytes.has(4, at: o), .sctp where bytes.has(4, at: o):
                transport = layers[i].kind == .udp ? .udp : .sctp
                sourcePort = bytes.be16(o)
                destinationPort = bytes.be16(o &+ 2)
                tcpFlags = 0
            case .icmpv4 where bytes.has(2, at: o), .icmpv6 where bytes.has(2, at: o):
                transport = layers[i].kind == .icmpv4 ? .icmpv4 : .icmpv6
                icmpType = bytes.u8(o)
                icmpCode = bytes.u8(o &+ 1)
            default:
                // Headers gopacket decodes are always complete; anything else is read from the layer.
                set(layers[i].header)
            }
        }
    }

    /// Takes the flow fields of one decoded header.
    private mutating func set(_ header: LayerHeader) {
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

extension Flow {
    /// Fills the packet part of the flow (outer, tunnel, inner) from `packet`.
    mutating func setPacket(_ packet: borrowing DecodedPacket, bytes: RawSpan) {
        hasPacketFlow = true
        hubbleUndecodable = false
        if let stop = packet.stop, !stop.isInner, stop.reason == .truncated || stop.reason == .malformed,
            let failed = stop.layer, Self.hubbleDecodes(failed)
        {
            hubbleUndecodable = packet.layers.allSatisfy { $0.isInner || Self.hubbleDecodes($0.kind) }
        }
        let outerView = packet.ciliumView(from: 0, inner: false)
        let t = packet.tunnelAfter(outerView)
        packet.layers.withUnsafeBufferPointer { layers in
            outer.fill(packet, layers, outerView, inner: false, bytes: bytes)
            guard let t else { return }
            inner.fill(packet, layers, packet.ciliumView(from: t + 1, inner: true), inner: true, bytes: bytes)
            switch layers[t].header {
            case .vxlan(let v): tunnel = FlowTunnel(kind: .vxlan, vni: v.vni, vniValid: v.validID)
            case .geneve(let g): tunnel = FlowTunnel(kind: .geneve, vni: g.vni, vniValid: true)
            default: tunnel = nil
            }
        }
        if t != nil {
            var cut = false
            if let stop = packet.stop { cut = stop.isInner && stop.reason == .truncated }
            innerHasFlow = inner.source != nil || (inner.hasEthernet && !cut)
        } else {
            tunnel = nil
            if inner.hasEthernet || inner.source != nil || inner.transport != .none { inner = FlowLayers() }
            innerHasFlow = false
        }
    }

    /// The layers Hubble's parser decodes (its DecodingLayerParser's, from Ethernet on).
    static func hubbleDecodes(_ kind: LayerKind) -> Bool {
        switch kind {
        case .ethernet, .ipv4, .ipv6, .tcp, .udp, .sctp, .icmpv4, .icmpv6: true
        default: false
        }
    }

    /// Clears the packet part (events without a packet).
    mutating func clearPacket() {
        hasPacketFlow = true
        hubbleUndecodable = false
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
        socketReverse = s.xlatePoint == 3 || s.xlatePoint == 4
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
