import VxmonWire

/// A record that cannot be decoded as an event. The event is skipped and reported; the stream goes on.
public struct EventDecodeError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case empty
        case tooShort(type: MessageType, needed: Int, available: Int)
        case unknownVersion(type: MessageType, version: Int)
        case unknownExtension(type: MessageType, extensionVersion: Int)
    }
    public var kind: Kind

    public var description: String {
        switch kind {
        case .empty:
            return "empty sample"
        case .tooShort(let type, let needed, let available):
            return "\(EventDecodeError.typeName(type)) is \(available) bytes, its header needs \(needed)"
        case .unknownVersion(let type, let version):
            switch type {
            case MessageType.trace: return "Unrecognized trace event (version \(version))"
            case MessageType.drop: return "Unrecognized drop event (version \(version))"
            default: return "Unrecognized \(EventDecodeError.typeName(type)) (version \(version))"
            }
        case .unknownExtension(let type, let ext):
            return "\(EventDecodeError.typeName(type)) has unknown header extension \(ext)"
        }
    }

    static func typeName(_ type: MessageType) -> String {
        switch type {
        case MessageType.trace: "trace notification"
        case MessageType.drop: "drop notification"
        case MessageType.debug: "debug message"
        case MessageType.capture: "debug capture"
        case MessageType.policyVerdict: "policy verdict"
        case MessageType.traceSock: "socket trace"
        case MessageType.recorder: "recorder capture"
        default: "message type \(type.rawValue)"
        }
    }
}

/// Decodes raw monitor samples (notify header + captured packet) into `Event`s.
///
/// The packet is found at the version's header length, never at the sample size, and exactly
/// `len_cap` bytes of it are decoded (kernel padding after them is ignored); a sample that holds fewer
/// bytes than `len_cap` decodes what is there.
public struct EventDecoder: Sendable {
    public var release: CiliumRelease
    public var packetDecoder: PacketDecoder
    /// The pods whose endpoints tell Hubble's traffic direction (none: every source is remote).
    public var pods: PodDirectory?

    public init(release: CiliumRelease = .v1_13, tunnelPorts: TunnelPorts = .standard) {
        self.release = release
        self.packetDecoder = PacketDecoder(tunnelPorts: tunnelPorts)
    }

    /// Hubble's `TraceReasonIsKnown`: every reason but unknown (5). 1.13 compares the whole byte, so
    /// an encrypted unknown (0x85) counts as known; latest masks the encrypt bit.
    func traceReasonIsKnown(state: UInt8, encrypted: Bool) -> Bool {
        release == .v1_13 ? !(state == 5 && !encrypted) : state != 5
    }

    /// Hubble's reading of a trace reason: a reply iff the datapath said `reply`, when the reason is
    /// known; latest also leaves SRv6 encap/decap (6, 7) unknown (1.13 has no such states).
    func isReply(state: UInt8, encrypted: Bool) -> Bool? {
        guard traceReasonIsKnown(state: state, encrypted: encrypted) else { return nil }
        if release == .latest && (state == 6 || state == 7) { return nil }
        return state == 2
    }

    /// Decodes `record` into `event` (reusing its packet storage). `cpu`, time and node are set by the caller.
    public func decode(_ record: RawSpan, into event: inout Event) throws(EventDecodeError) {
        try decode(record, into: &event, packetFlow: true)
    }

    /// Computes the packet part of `event.flow` if `decode` skipped it (`packetFlow: false`).
    public func completeFlow(_ record: RawSpan, of event: inout Event) {
        guard !event.flow.hasPacketFlow else { return }
        if event.packetLength > 0 {
            let bytes = record.extracting(event.packetOffset..<(event.packetOffset &+ event.packetLength))
            event.flow.setPacket(event.packet, bytes: bytes)
        } else {
            event.flow.clearPacket()
            if case .traceSock(let sock) = event.message { event.flow.setSocket(sock) }
        }
        setTrafficDirection(&event.flow)
        if let pods, !pods.byIP.isEmpty, event.flow.type != MessageType.traceSock { resolveIdentities(&event.flow, pods) }
    }

    /// Where the datapath gave no identity (none, or 0), the identity of the pod at the address Hubble
    /// looks up (its source and destination for this release), as Hubble takes it from the ipcache:
    /// the filters, the counters and Hubble's flows then read one identity.
    func resolveIdentities(_ flow: inout Flow, _ pods: PodDirectory) {
        if (flow.sourceIdentity ?? 0) == 0, let pod = pods.pod(at: flow.hubbleSource(release)) {
            flow.sourceIdentity = pod.identity
        }
        if (flow.destinationIdentity ?? 0) == 0, let pod = pods.pod(at: flow.hubbleLayers(release).destination) {
            flow.destinationIdentity = pod.identity
        }
    }

    /// Hubble's traffic direction of a trace or drop (see `Flow.trafficDirection`), from the local
    /// endpoint of Hubble's source address (its `srcEP`: 0 when no pod of the node has that address).
    @inline(__always)
    func setTrafficDirection(_ flow: inout Flow) {
        guard flow.endpoint != 0 else { return }
        let isTrace = flow.type == MessageType.trace
        guard isTrace || flow.type == MessageType.drop else { return }
        var reply = false
        if isTrace {
            guard let state = flow.traceState, traceReasonIsKnown(state: state, encrypted: flow.encrypted) else { return }
            reply = state == 2
        }
        // Hubble's srcEP: the local endpoint at its source address (none without endpoint IDs).
        var local: UInt16 = 0
        if let pods, pods.hasEndpoints { local = pods.localEndpoint(flow.hubbleSource(release), node: flow.node) }
        var egress = (flow.endpoint == local) != reply
        // Latest also takes a translated source (an original address other than the packet's) for egress.
        if isTrace && release == .latest, let original = flow.originalIP, original != flow.primary.source { egress = true }
        flow.trafficDirection = egress ? .egress : .ingress
    }

    /// Decodes `record` into `event`; with `packetFlow: false` the packet part of the flow (addresses,
    /// ports, tunnel) is left for `completeFlow`, for sinks that do not read it.
    public func decode(_ record: RawSpan, into event: inout Event, packetFlow: Bool) throws(EventDecodeError) {
        let n = record.byteCount
        guard n >= 1 else { throw EventDecodeError(kind: .empty) }
        let type = MessageType(rawValue: record.u8(0))
        event.packetOffset = 0
        event.packetLength = 0
        event.flow.type = type
        event.flow.subType = n > 1 ? record.u8(1) : 0
        event.flow.endpoint = 0
        event.flow.monitorDestination = 0
        event.flow.monitorFilters = true
        event.flow.socketReverse = false
        event.flow.destinationEndpoint = nil
        event.flow.sourceIdentity = nil
        event.flow.destinationIdentity = nil
        event.flow.observationPoint = nil
        event.flow.verdict = .unknown
        event.flow.dropReason = nil
        event.flow.ifindex = nil
        event.flow.isReply = nil
        event.flow.policyAction = nil
        event.flow.traceState = nil
        event.flow.encrypted = false
        event.flow.originalIP = nil
        event.flow.trafficDirection = .unknown

        func need(_ count: Int) throws(EventDecodeError) {
            if n < count { throw EventDecodeError(kind: .tooShort(type: type, needed: count, available: n)) }
        }
        func common() -> NotifyHeader {
            NotifyHeader(type: type, subtype: record.u8(1), source: record.le16(2), hash: record.le32(4))
        }
        // Capture headers: the version is byte 14. Latest reads byte 15 as the extension version and
        // knows only extension 0. 1.13 has no extensions: its drop, debug capture and policy verdict
        // structs never look at bytes 14-15 as a version (drop and capture read 12-15 as one u32), so
        // nothing is checked there; the trace reads a u16 version (see the trace case).
        func captureVersion() throws(EventDecodeError) -> UInt8 {
            try need(16)
            if release == .latest {
                let ext = record.u8(EventLayout.Capture.extensionVersion)
                if ext != 0 { throw EventDecodeError(kind: .unknownExtension(type: type, extensionVersion: Int(ext))) }
            }
            return record.u8(EventLayout.Capture.version)
        }

        var first = FirstLayer.ethernet
        var captured = 0
        switch type {
        case MessageType.trace:
            let version: UInt8
            switch release {
            case .v1_13:
                // DecodeTraceNotify (pkg/monitor/datapath_trace.go, v1.13): a u16 version at 14, and
                // only versions 0 and 1 exist; anything else is "Unrecognized trace event".
                try need(16)
                let v = record.le16(EventLayout.Capture.version)
                guard v <= 1 else { throw EventDecodeError(kind: .unknownVersion(type: type, version: Int(v))) }
                version = UInt8(v)
            case .latest:
                version = try captureVersion()
            }
            guard let headerLength = EventLayout.Trace.headerLength(version: version) else {
                throw EventDecodeError(kind: .unknownVersion(type: type, version: Int(version)))
            }
            try need(headerLength)
            typealias L = EventLayout.Trace
            let flags = record.u8(L.flags)
            // v0 has no orig_ip: Cilium decodes only the 32-byte TraceNotifyV0 into a zeroed struct, so
            // its OriginalIP() is all zeros (the renderers print that zero; see TextRenderer).
            var origIP: IPAddress?
            if version >= 1 {
                origIP = flags & 1 != 0 ? .v6(record.ipv6(L.originalIP)) : .v4(record.ipv4(L.originalIP))
            }
            let t = TraceNotify(
                header: common(), lengthOriginal: record.le32(EventLayout.Capture.lengthOriginal),
                lengthCaptured: record.le16(EventLayout.Capture.lengthCaptured), version: version,
                sourceIdentity: record.le32(L.sourceIdentity), destinationIdentity: record.le32(L.destinationIdentity),
                destinationID: record.le16(L.destinationID), reason: record.u8(L.reason), flags: flags,
                ifindex: record.le32(L.ifindex), originalIP: origIP,
                ipTraceID: version >= 2 ? record.le64(L.ipTraceID) : 0)
            event.message = .trace(t)
            event.flow.endpoint = t.header.source
            event.flow.sourceIdentity = t.sourceIdentity
            event.flow.destinationIdentity = t.destinationIdentity
            event.flow.destinationEndpoint = UInt32(t.destinationID)
            event.flow.monitorDestination = t.destinationID
            event.flow.observationPoint = t.observationPoint
            event.flow.verdict = .forwarded
            event.flow.ifindex = t.ifindex
            event.flow.traceState = t.reason & 0x7f
            event.flow.encrypted = t.isEncrypted
            event.flow.isReply = isReply(state: t.reason & 0x7f, encrypted: t.isEncrypted)
            if let ip = t.originalIP, !ip.isUnspecified { event.flow.originalIP = ip }
            event.packetOffset = headerLength
            captured = Int(t.lengthCaptured)
            // The L3-device bit exists from Cilium 1.18 on; in 1.13 byte 27 is `ipv6:1, pad:7` and the
            // packet is always dissected from an Ethernet header, whatever the pad bits hold.
            if release == .latest && flags & 0x02 != 0 { first = .ip }
        case MessageType.drop:
            let version = try captureVersion()
            let headerLength: Int
            switch release {
            case .v1_13:
                // 1.13's DropNotify has no version: a fixed 36-byte header (DropNotifyLen), the packet
                // right after it, no flags and no trace id, whatever byte 14 says.
                headerLength = 36
            case .latest:
                guard let h = EventLayout.Drop.headerLength(version: version) else {
                    throw EventDecodeError(kind: .unknownVersion(type: type, version: Int(version)))
                }
                headerLength = h
            }
            try need(headerLength)
            let modern = release == .latest
            typealias L = EventLayout.Drop
            let d = DropNotify(
                header: common(), lengthOriginal: record.le32(EventLayout.Capture.lengthOriginal),
                lengthCaptured: record.le16(EventLayout.Capture.lengthCaptured), version: version,
                sourceIdentity: record.le32(L.sourceIdentity), destinationIdentity: record.le32(L.destinationIdentity),
                destinationID: record.le32(L.destinationID), line: record.le16(L.line), file: record.u8(L.file),
                extError: Int8(bitPattern: record.u8(L.extError)), ifindex: record.le32(L.ifindex),
                flags: modern && version >= 2 ? record.u8(L.flags) : 0,
                ipTraceID: modern && version >= 3 ? record.le64(L.ipTraceID) : 0)
            event.message = .drop(d)
            event.flow.endpoint = d.header.source
            event.flow.sourceIdentity = d.sourceIdentity
            event.flow.destinationIdentity = d.destinationIdentity
            event.flow.destinationEndpoint = d.destinationID
            event.flow.monitorDestination = UInt16(truncatingIfNeeded: d.destinationID)
            event.flow.verdict = .dropped
            event.flow.dropReason = d.reason
            event.flow.ifindex = d.ifindex
            event.packetOffset = headerLength
            captured = Int(d.lengthCaptured)
            if modern && d.flags & 0x02 != 0 { first = .ip }
        case MessageType.debug:
            try need(EventLayout.Debug.length)
            event.flow.endpoint = record.le16(2)
            event.message = .debug(
                DebugMessage(
                    header: common(), arg1: record.le32(EventLayout.Debug.arg1), arg2: record.le32(EventLayout.Debug.arg2),
                    arg3: record.le32(EventLayout.Debug.arg3)))
        case MessageType.capture:
            let version = try captureVersion()
            try need(EventLayout.DebugCapture.headerLength)
            let c = DebugCapture(
                header: common(), lengthOriginal: record.le32(EventLayout.Capture.lengthOriginal),
                lengthCaptured: record.le16(EventLayout.Capture.lengthCaptured), version: version,
                arg1: record.le32(EventLayout.DebugCapture.arg1), arg2: record.le32(EventLayout.DebugCapture.arg2))
            event.message = .capture(c)
            event.flow.endpoint = c.header.source
            // The interface a capture point names in arg1 (Cilium's DBG_CAPTURE_* on an ifindex).
            switch c.header.subtype {
            case 4, 5, 6, 7, 10, 11: event.flow.ifindex = c.arg1
            default: break
            }
            event.packetOffset = EventLayout.DebugCapture.headerLength
            captured = Int(c.lengthCaptured)
        case MessageType.policyVerdict:
            let version = try captureVersion()
            let headerLength = EventLayout.PolicyVerdict.headerLength(release)
            try need(headerLength)
            typealias L = EventLayout.PolicyVerdict
            let p = PolicyVerdict(
                header: common(), lengthOriginal: record.le32(EventLayout.Capture.lengthOriginal),
                lengthCaptured: record.le16(EventLayout.Capture.lengthCaptured), version: version,
                remoteIdentity: record.le32(L.remoteIdentity), verdict: Int32(bitPattern: record.le32(L.verdict)),
                destinationPort: record.le16(L.destinationPort), proto: record.u8(L.proto), flags: record.u8(L.flags),
                authType: release == .latest ? record.u8(L.authType) : nil,
                cookie: release == .latest ? record.le32(L.cookie) : nil)
            event.message = .policyVerdict(p)
            event.flow.endpoint = p.header.source
            event.flow.monitorDestination = UInt16(truncatingIfNeeded: p.remoteIdentity)
            if p.isIngress {
                event.flow.sourceIdentity = p.remoteIdentity
            } else {
                event.flow.destinationIdentity = p.remoteIdentity
            }
            // Hubble reads a denial, then a redirect, then the audit flag; Cilium's monitor the audit
            // flag first. Both readings are kept.
            if p.verdict < 0 {
                event.flow.verdict = .dropped
                // -DROP_*: the magnitude is the drop reason when it fits one.
                if p.verdict >= -255 { event.flow.dropReason = UInt8(truncatingIfNeeded: 0 &- p.verdict) }
            } else if p.verdict > 0 {
                event.flow.verdict = .redirected
            } else {
                event.flow.verdict = p.isAudited ? .audit : .forwarded
            }
            event.flow.policyAction = p.isAudited ? .audit : p.verdict < 0 ? .deny : p.verdict > 0 ? .redirect : .allow
            event.flow.trafficDirection = p.isIngress ? .ingress : .egress
            if p.verdict >= 0 { event.flow.isReply = false }
            event.packetOffset = headerLength
            captured = Int(p.lengthCaptured)
            if release == .latest && p.flags & 0x80 != 0 { first = .ip }
        case MessageType.traceSock:
            event.flow.monitorFilters = false
            switch release {
            case .v1_13:
                typealias L = EventLayout.TraceSock.V113
                try need(L.length)
                let flags = record.u8(L.flags)
                event.message = .traceSock(
                    TraceSock(
                        xlatePoint: record.u8(L.xlatePoint),
                        destinationIP: flags & 1 != 0
                            ? .v6(record.ipv6(L.destinationIP)) : .v4(record.ipv4(L.destinationIP)),
                        destinationPort: record.le16(L.destinationPort), socketCookie: record.le64(L.socketCookie),
                        cgroupID: record.le64(L.cgroupID), l4Proto: record.u8(L.l4Proto), flags: flags))
            case .latest:
                typealias L = EventLayout.TraceSock.Latest
                try need(L.length)
                let flags = record.u8(L.flags)
                event.message = .traceSock(
                    TraceSock(
                        xlatePoint: record.u8(L.xlatePoint),
                        destinationIP: flags & 1 != 0
                            ? .v6(record.ipv6(L.destinationIP)) : .v4(record.ipv4(L.destinationIP)),
                        destinationPort: record.le16(L.destinationPort), socketCookie: record.le64(L.socketCookie),
                        cgroupID: record.le64(L.cgroupID), l4Proto: record.u8(L.l4Proto), flags: flags))
            }
        case MessageType.recorder where release == .v1_13:
            // Type 6 exists in 1.13 only; latest Cilium prints it as an unknown event (default case).
            typealias L = EventLayout.Recorder
            try need(L.headerLength)
            let r = RecorderCapture(
                subtype: record.u8(1), ruleID: record.le16(L.ruleID), bootNanoseconds: record.le64(L.bootNanoseconds),
                captureLength: record.le32(L.captureLength), length: record.le32(L.length))
            event.message = .recorder(r)
            event.packetOffset = L.headerLength
            captured = Int(min(r.captureLength, UInt32(Int32.max)))
        default:
            event.message = .unknown(type: type)
            event.flow.monitorFilters = false
        }

        // Exactly len_cap bytes after the header, or what the sample holds if it is shorter.
        if event.packetOffset > 0 {
            let available = n &- event.packetOffset  // packetOffset <= n: checked by need() above
            event.packetLength = min(captured, available)
            let packetBytes = record.extracting(event.packetOffset..<(event.packetOffset &+ event.packetLength))
            packetDecoder.decode(packetBytes, first: first, into: &event.packet)
        } else {
            event.packet.reset()
        }
        event.flow.hasPacketFlow = false
        if packetFlow { completeFlow(record, of: &event) }
    }
}
