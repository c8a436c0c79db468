import VxmonWire

/// Cilium message types (the first byte of every datapath event), pinned to the C header's
/// `VXMON_NOTIFY_*` values (EventABITests) and named as `cilium monitor --type` names them.
public struct MessageType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    @inline(__always) public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let unspec = MessageType(rawValue: 0)
    public static let drop = MessageType(rawValue: 1)
    public static let debug = MessageType(rawValue: 2)
    public static let capture = MessageType(rawValue: 3)
    public static let trace = MessageType(rawValue: 4)
    public static let policyVerdict = MessageType(rawValue: 5)
    public static let recorder = MessageType(rawValue: 6)
    public static let traceSock = MessageType(rawValue: 7)
    /// Agent-side message types (Cilium's `MessageTypeAccessLog` and `MessageTypeAgent`).
    public static let accessLog = MessageType(rawValue: 129)
    public static let agent = MessageType(rawValue: 130)

    /// `cilium monitor --type` names (Cilium's `MessageTypeNames`), in Cilium's order.
    public static let monitorNames: [(String, MessageType)] = [
        ("drop", .drop), ("debug", .debug), ("capture", .capture), ("trace", .trace),
        ("policy-verdict", .policyVerdict), ("recorder", .recorder), ("trace-sock", .traceSock),
        ("l7", .accessLog), ("agent", .agent),
    ]
}

/// Trace observation points (the trace notification's subtype), pinned to the C header's
/// `VXMON_TRACE_*` values (EventABITests).
public struct ObservationPoint: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    @inline(__always) public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let toEndpoint = ObservationPoint(rawValue: 0)
    public static let toProxy = ObservationPoint(rawValue: 1)
    public static let toHost = ObservationPoint(rawValue: 2)
    public static let toStack = ObservationPoint(rawValue: 3)
    public static let toOverlay = ObservationPoint(rawValue: 4)
    public static let fromEndpoint = ObservationPoint(rawValue: 5)
    public static let fromProxy = ObservationPoint(rawValue: 6)
    public static let fromHost = ObservationPoint(rawValue: 7)
    public static let fromStack = ObservationPoint(rawValue: 8)
    public static let fromOverlay = ObservationPoint(rawValue: 9)
    public static let fromNetwork = ObservationPoint(rawValue: 10)
    public static let toNetwork = ObservationPoint(rawValue: 11)
    /// Latest Cilium only.
    public static let fromCrypto = ObservationPoint(rawValue: 12)
    public static let toCrypto = ObservationPoint(rawValue: 13)

    /// Cilium's text name (`to-overlay`), any release; nil for values no release names.
    public var ciliumName: StaticString? { CiliumNames.observationPointAny(rawValue) }
    /// Hubble's enum name (`TO_OVERLAY`).
    public var hubbleName: StaticString { CiliumNames.hubbleObservationPoint(rawValue) }
}

/// The trace notification's `flags` byte. Cilium 1.13 defines only `ipv6` (the other bits are
/// padding there); latest adds the rest. Pinned to `VXMON_TRACE_FLAG_*` (EventABITests).
public struct TraceFlags: OptionSet, Sendable {
    public var rawValue: UInt8
    @inline(__always) public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let ipv6 = TraceFlags(rawValue: 0x01)
    /// The capture starts at the IP header (latest only).
    public static let l3Device = TraceFlags(rawValue: 0x02)
    public static let vxlan = TraceFlags(rawValue: 0x04)
    public static let geneve = TraceFlags(rawValue: 0x08)
}

/// The common notify header every capture-carrying message starts with.
public struct NotifyHeader: Sendable {
    public var type: MessageType
    public var subtype: UInt8
    /// Endpoint ID of the emitting program (0 if none).
    public var source: UInt16
    /// skb hash, printed as `flow`/`MARK`.
    public var hash: UInt32
}

/// Trace notification (type 4), versions 0, 1 and 2.
public struct TraceNotify: Sendable {
    public var header: NotifyHeader
    public var observationPoint: ObservationPoint { ObservationPoint(rawValue: header.subtype) }
    public var lengthOriginal: UInt32
    public var lengthCaptured: UInt16
    public var version: UInt8
    public var sourceIdentity: UInt32
    public var destinationIdentity: UInt32
    public var destinationID: UInt16
    public var reason: UInt8
    public var flags: UInt8
    public var ifindex: UInt32
    /// The original address before reverse NAT (v1+); nil for v0, whose header has no such field
    /// (Cilium prints its zero value: `0.0.0.0`, or `::` when the IPv6 flag is set).
    public var originalIP: IPAddress?
    /// IP option trace id (v2 only; 0 = none).
    public var ipTraceID: UInt64

    public var isEncrypted: Bool { reason & 0x80 != 0 }
    public var isIPv6: Bool { flags & 0x01 != 0 }
}

/// Drop notification (type 1), versions 0-3.
public struct DropNotify: Sendable {
    public var header: NotifyHeader
    public var reason: UInt8 { header.subtype }
    public var lengthOriginal: UInt32
    public var lengthCaptured: UInt16
    public var version: UInt8
    public var sourceIdentity: UInt32
    public var destinationIdentity: UInt32
    public var destinationID: UInt32
    public var line: UInt16
    public var file: UInt8
    public var extError: Int8
    public var ifindex: UInt32
    /// Latest v2+: trace flags (IPv6, L3 device, VXLAN, Geneve). Always 0 when decoding for 1.13,
    /// whose drop header has no flags.
    public var flags: UInt8
    /// Latest v3: IP option trace id.
    public var ipTraceID: UInt64
}

/// Debug message (type 2), no packet.
public struct DebugMessage: Sendable {
    public var header: NotifyHeader
    public var arg1: UInt32
    public var arg2: UInt32
    public var arg3: UInt32
}

/// Debug capture (type 3).
public struct DebugCapture: Sendable {
    public var header: NotifyHeader
    public var lengthOriginal: UInt32
    public var lengthCaptured: UInt16
    public var version: UInt8
    public var arg1: UInt32
    public var arg2: UInt32
}

/// Policy verdict (type 5).
public struct PolicyVerdict: Sendable {
    public var header: NotifyHeader
    public var lengthOriginal: UInt32
    public var lengthCaptured: UInt16
    public var version: UInt8
    public var remoteIdentity: UInt32
    /// 0 allow, < 0 = -DROP_* (deny), > 0 = proxy port (redirect).
    public var verdict: Int32
    public var destinationPort: UInt16
    public var proto: UInt8
    public var flags: UInt8
    /// Latest layout only.
    public var authType: UInt8?
    /// Latest layout only (Cilium 1.19+).
    public var cookie: UInt32?

    public var isIngress: Bool { flags & 0x3 == 1 }
    public var isIPv6: Bool { flags & 0x4 != 0 }
    public var matchType: UInt8 { (flags & 0x38) >> 3 }
    public var isAudited: Bool { flags & 0x40 != 0 }
}

/// Socket load-balancer trace (type 7), no packet.
public struct TraceSock: Sendable {
    public var xlatePoint: UInt8
    public var destinationIP: IPAddress
    public var destinationPort: UInt16
    public var socketCookie: UInt64
    public var cgroupID: UInt64
    public var l4Proto: UInt8
    public var flags: UInt8
}

/// Recorder (pcap) capture (type 6, Cilium 1.13).
public struct RecorderCapture: Sendable {
    /// 1 ingress, 2 egress.
    public var subtype: UInt8
    public var ruleID: UInt16
    public var bootNanoseconds: UInt64
    public var captureLength: UInt32
    public var length: UInt32
}

/// The decoded message of one event.
public enum Message: Sendable {
    case trace(TraceNotify)
    case drop(DropNotify)
    case debug(DebugMessage)
    case capture(DebugCapture)
    case policyVerdict(PolicyVerdict)
    case traceSock(TraceSock)
    case recorder(RecorderCapture)
    /// A message type vxmon does not know; rendered as Cilium does (`Unknown event: [...]`).
    case unknown(type: MessageType)
}

/// One decoded event: its message, the decoded packet it carries and its `Flow` (which also holds
/// where and when it happened: CPU, node, time).
public struct Event: Sendable {
    public var message: Message
    /// Where the packet starts in the record, and how many bytes of it are real (len_cap clamped to
    /// what is present). `packetLength` is 0 for messages without a packet.
    public var packetOffset: Int
    public var packetLength: Int
    public var packet: DecodedPacket
    /// The event's flow, computed once by the decoder.
    public var flow: Flow

    public init() {
        message = .unknown(type: .unspec)
        packetOffset = 0
        packetLength = 0
        packet = DecodedPacket()
        flow = Flow()
    }

    public var cpu: Int {
        get { flow.cpu }
        set { flow.cpu = newValue }
    }
    /// Receive time in ns since the Unix epoch, 0 when unknown.
    public var timeNanoseconds: UInt64 {
        get { flow.timeNanoseconds }
        set { flow.timeNanoseconds = newValue }
    }
    /// The node the event came from, when known.
    public var node: String? {
        get { flow.node }
        set { flow.node = newValue }
    }

    /// The message type.
    public var type: MessageType { flow.type }
    /// The message type byte.
    public var typeCode: UInt8 { flow.type.rawValue }
}
