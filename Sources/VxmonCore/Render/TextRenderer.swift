import VxmonWire

/// Verbosity of the text output, as `cilium monitor` counts `-v`.
public enum Verbosity: Int, Sendable, Comparable {
    /// No `-v`: one line per event (INFO).
    case info = 0
    /// `-v` (DEBUG).
    case debug = 1
    /// `-vv` or more (VERBOSE): separator, header and packet lines.
    case verbose = 2

    public static func < (a: Verbosity, b: Verbosity) -> Bool { a.rawValue < b.rawValue }
}

/// Renders events exactly as Cilium 1.13's `cilium monitor` text formatter does, with vxmon's four
/// documented differences: at `-vv` the `CPU NN: MARK ...` header comes right after the separator;
/// VXLAN/Geneve inner frames are decoded; broken events never reach this renderer (they are reported
/// on stderr); kernel padding is never decoded.
public struct TextRenderer: Sendable {
    public var verbosity: Verbosity
    public var hex: Bool
    public var numeric: Bool
    public var release: CiliumRelease
    public var names: InterfaceNames

    public init(
        verbosity: Verbosity = .info, hex: Bool = false, numeric: Bool = false, release: CiliumRelease = .v1_13,
        names: InterfaceNames = InterfaceNames()
    ) {
        self.verbosity = verbosity
        self.hex = hex
        self.numeric = numeric
        self.release = release
        self.names = names
    }

    /// Whether rendering an event of `type` reads its flow (the one-line summary): at `-vv` trace,
    /// drop and debug capture show packet lines instead.
    public func readsFlow(_ type: MessageType) -> Bool { Self.readsFlow(type, verbosity: verbosity) }

    @inline(__always)
    public static func readsFlow(_ type: MessageType, verbosity: Verbosity) -> Bool {
        verbosity < .verbose || (type != .trace && type != .drop && type != .capture)
    }

    /// The event's node and CPU, read in place: through `pointee` the compiler copied the whole Flow
    /// (an outlined copy per event once the struct grew) to read one field.
    @inline(__always)
    static func node(_ event: UnsafePointer<Event>) -> String? { event.pointer(to: \.flow.node)!.pointee }
    @inline(__always)
    static func cpu(_ event: UnsafePointer<Event>) -> Int { event.pointer(to: \.flow.cpu)!.pointee }

    static let separator: StaticString =
        "------------------------------------------------------------------------------\n"

    // MARK: Events

    public func render(_ event: borrowing Event, record: RawSpan, into out: OutputBuffer) {
        withUnsafePointer(to: event) { render(at: $0, record: record, into: out) }
    }

    /// `render` reading the event in place: passing a large `borrowing` value on from memory makes
    /// the compiler copy it whole at every call, so the per-type functions take the pointer.
    func render(at event: UnsafePointer<Event>, record: RawSpan, into out: OutputBuffer) {
        let packetBytes = record.extracting(event.pointee.packetOffset..<(event.pointee.packetOffset + event.pointee.packetLength))
        switch event.pointee.message {
        case .trace(let t): trace(t, event, packetBytes, out)
        case .drop(let d): drop(d, event, packetBytes, out)
        case .debug(let m):
            guard verbosity >= .debug else { return }
            cpuPrefix(Self.cpu(event), out)
            markFrom(m.header, out)
            out.append("DEBUG: ")
            DebugText.message(m, out, names: names, node: Self.node(event), release: release)
            out.append(byte: 10)
        case .capture(let c): capture(c, event, packetBytes, out)
        case .policyVerdict(let p): policyVerdict(p, event, packetBytes, out)
        case .traceSock(let s):
            guard verbosity == .debug else { return }
            cpuPrefix(Self.cpu(event), out)
            out.append(" [")
            out.append(CiliumNames.xlatePoint(s.xlatePoint))
            out.append("] cgroup_id: ")
            out.decimal(s.cgroupID)
            out.append(" sock_cookie: ")
            out.decimal(s.socketCookie)
            out.append(", dst [")
            out.ip(s.destinationIP)
            out.append("]:")
            out.decimal(s.destinationPort)
            out.append(byte: 32)
            out.append(CiliumNames.sockProto(s.l4Proto))
            out.append(" \n")
        case .recorder(let r):
            out.append("Recorder capture: dir:")
            out.append(r.subtype == 1 ? "ingress" : "egress")
            out.append(" rule:")
            out.decimal(r.ruleID)
            out.append(" ts:")
            // Cilium formats `int(n.TimeBoot)` with %d (datapath_recorder.go): a u64 as a signed 64-bit
            // int, so values from 2^63 on print negative.
            out.decimal(Int64(bitPattern: r.bootNanoseconds))
            out.append(" caplen:")
            out.decimal(r.captureLength)
            out.append(" len:")
            out.decimal(r.length)
            out.append(byte: 10)
            dissect(event.pointee.packet, packetBytes, out)
            out.append("----\n")
        case .unknown:
            cpuPrefix(Self.cpu(event), out)
            out.append(" Unknown event: [")
            for i in 0..<record.byteCount {
                if i > 0 { out.append(byte: 32) }
                out.decimal(record.u8(i))
            }
            out.append("]\n")
        }
    }

    /// `CPU NN: Lost N events`.
    public func renderLost(cpu: Int, count: UInt64, into out: OutputBuffer) {
        cpuPrefix(cpu, out)
        out.append(" Lost ")
        out.decimal(count)
        out.append(" events\n")
    }

    // MARK: Per type

    func trace(_ t: TraceNotify, _ event: UnsafePointer<Event>, _ bytes: RawSpan, _ out: OutputBuffer) {
        if verbosity < .verbose {
            traceSummary(t, out)
            if t.isEncrypted {
                out.append(" encrypted  flow ")
            } else {
                out.append(" flow ")
            }
            out.hexPrefixed(UInt64(t.header.hash))
            out.append(" , identity ")
            identities(t.sourceIdentity, t.destinationIdentity, out)
            if t.ipTraceID > 0 {
                out.append(" [ ip-trace-id = ")
                out.decimal(t.ipTraceID)
                out.append(" ]")
            }
            out.append(" state ")
            traceReason(t.reason, out)
            out.append(" ifindex ")
            names.append(ifindex: t.ifindex, node: Self.node(event), to: out)
            out.append(" orig-ip ")
            originalIP(t, out)
            out.append(": ")
            summary(at: event, out)
            out.append(byte: 10)
            return
        }
        out.append(Self.separator)
        cpuPrefix(Self.cpu(event), out)
        out.append(" MARK ")
        out.hexPrefixed(UInt64(t.header.hash))
        if t.ipTraceID > 0 {
            out.append(" [ IP-TRACE-ID = ")
            out.decimal(t.ipTraceID)
            out.append(" ]")
        }
        out.append(" FROM ")
        out.decimal(t.header.source)
        out.append(byte: 32)
        if let name = CiliumNames.observationPoint(t.observationPoint.rawValue, release) {
            out.append(name)
        } else {
            out.decimal(t.observationPoint.rawValue)
        }
        out.append(": ")
        out.decimal(t.lengthOriginal)
        out.append(" bytes (")
        out.decimal(t.lengthCaptured)
        out.append(" captured), state ")
        traceReason(t.reason, out)
        if t.ifindex != 0 {
            out.append(", interface ")
            names.append(ifindex: t.ifindex, node: Self.node(event), to: out)
        }
        if t.sourceIdentity != 0 || t.destinationIdentity != 0 {
            out.append(", , identity ")
            identities(t.sourceIdentity, t.destinationIdentity, out)
        }
        out.append(", orig-ip ")
        originalIP(t, out)
        if t.destinationID != 0 {
            out.append(t.observationPoint == .toProxy ? ", to proxy-port " : ", to endpoint ")
            out.decimal(t.destinationID)
        }
        out.append(byte: 10)
        if t.lengthCaptured > 0 && event.pointee.packetLength > 0 { packetLines(event.pointee.packet, bytes, out) }
    }

    func drop(_ d: DropNotify, _ event: UnsafePointer<Event>, _ bytes: RawSpan, _ out: OutputBuffer) {
        if verbosity < .verbose {
            out.append("xx drop (")
            dropReason(d.reason, d.extError, out)
            out.append(") flow ")
            out.hexPrefixed(UInt64(d.header.hash))
            out.append(" to endpoint ")
            out.decimal(d.destinationID)
            out.append(", ifindex ")
            out.decimal(d.ifindex)
            out.append(", file ")
            out.decimal(d.file)
            out.append(byte: UInt8(ascii: ":"))
            out.decimal(d.line)
            out.append(", ")
            if d.ipTraceID > 0 {
                out.append(" [ ip-trace-id = ")
                out.decimal(d.ipTraceID)
                out.append(" ]")
            }
            out.append(", identity ")
            identities(d.sourceIdentity, d.destinationIdentity, out)
            out.append(": ")
            summary(at: event, out)
            out.append(byte: 10)
            return
        }
        out.append(Self.separator)
        cpuPrefix(Self.cpu(event), out)
        markFrom(d.header, out)
        out.append("DROP: ")
        out.decimal(d.lengthOriginal)
        out.append(" bytes, reason ")
        dropReason(d.reason, d.extError, out)
        if d.sourceIdentity != 0 || d.destinationIdentity != 0 {
            out.append(", identity ")
            identities(d.sourceIdentity, d.destinationIdentity, out)
        }
        if d.destinationID != 0 {
            out.append(", to endpoint ")
            out.decimal(d.destinationID)
        }
        out.append(byte: 10)
        if event.pointee.packetLength > 0 { packetLines(event.pointee.packet, bytes, out) }
    }

    func capture(_ c: DebugCapture, _ event: UnsafePointer<Event>, _ bytes: RawSpan, _ out: OutputBuffer) {
        if verbosity < .verbose {
            guard DebugText.hasCapturePrefix(c.header.subtype) else { return }
            DebugText.capturePrefix(c, out, names: names, node: Self.node(event))
            out.append(": ")
            summary(at: event, out)
            out.append(byte: 10)
            return
        }
        out.append(Self.separator)
        cpuPrefix(Self.cpu(event), out)
        markFrom(c.header, out)
        out.append("DEBUG: ")
        out.decimal(c.lengthOriginal)
        out.append(" bytes, ")
        DebugText.captureDescription(c, out)
        out.append(byte: 10)
        if c.lengthOriginal > 0 && event.pointee.packetLength > 0 { packetLines(event.pointee.packet, bytes, out) }
    }

    func policyVerdict(_ p: PolicyVerdict, _ event: UnsafePointer<Event>, _ bytes: RawSpan, _ out: OutputBuffer) {
        out.append("Policy verdict log: flow ")
        out.hexPrefixed(UInt64(p.header.hash))
        out.append(" local EP ID ")
        out.decimal(p.header.source)
        out.append(", remote ID ")
        identity(p.remoteIdentity, out)
        out.append(", proto ")
        out.decimal(p.proto)
        out.append(event.pointee.flow.trafficDirection == .ingress ? ", ingress, action " : ", egress, action ")
        out.append((event.pointee.flow.policyAction ?? .allow).name)
        if let auth = p.authType {
            out.append(", auth: ")
            if let name = CiliumNames.authType(auth) {
                out.append(name)
            } else {
                out.append("Unknown-auth-type-")
                out.decimal(auth)
            }
        }
        out.append(", match ")
        out.append(CiliumNames.policyMatch(p.matchType))
        out.append(", ")
        summary(at: event, out)
        out.append(byte: 10)
    }

    // MARK: Pieces

    func cpuPrefix(_ cpu: Int, _ out: OutputBuffer) {
        out.append("CPU ")
        out.decimal(cpu, width: 2)
        out.append(byte: UInt8(ascii: ":"))
    }

    /// ` MARK 0x.. FROM n ` after the CPU prefix.
    func markFrom(_ h: NotifyHeader, _ out: OutputBuffer) {
        out.append(" MARK ")
        out.hexPrefixed(UInt64(h.hash))
        out.append(" FROM ")
        out.decimal(h.source)
        out.append(byte: 32)
    }

    /// `src->dst`.
    func identities(_ source: UInt32, _ destination: UInt32, _ out: OutputBuffer) {
        identity(source, out)
        out.append("->")
        identity(destination, out)
    }

    func identity(_ id: UInt32, _ out: OutputBuffer) {
        if !numeric, let name = CiliumNames.reservedIdentity(id, release) {
            out.append(name)
        } else {
            out.decimal(id)
        }
    }

    func traceReason(_ reason: UInt8, _ out: OutputBuffer) {
        if let text = CiliumNames.traceReason(reason, release) {
            out.append(text)
        } else {
            out.decimal(reason)
        }
    }

    func dropReason(_ reason: UInt8, _ ext: Int8, _ out: OutputBuffer) {
        if let text = CiliumNames.dropReason(reason, release) {
            out.append(text)
            if ext != 0 {
                out.append(", ")
                out.decimal(ext)
            }
        } else {
            out.decimal(reason)
            out.append(", ")
            out.decimal(ext)
        }
    }

    /// `TraceNotify.OriginalIP().String()`. A v0 header has no orig_ip; Cilium decodes it into a zeroed
    /// struct, so OriginalIP() is 4 zero bytes (`0.0.0.0`), or 16 (`::`) when the IPv6 flag is set.
    func originalIP(_ t: TraceNotify, _ out: OutputBuffer) {
        if let ip = t.originalIP {
            out.ip(ip)
        } else {
            out.append(t.isIPv6 ? "::" : "0.0.0.0")
        }
    }

    func traceSummary(_ t: TraceNotify, _ out: OutputBuffer) {
        switch t.observationPoint.rawValue {
        case 0:
            out.append("-> endpoint ")
            out.decimal(t.destinationID)
        case 1:
            out.append("-> proxy")
            if t.destinationID != 0 {
                out.append(" port ")
                out.decimal(t.destinationID)
            }
        case 2: out.append("-> host from")
        case 3: out.append("-> stack")
        case 4: out.append("-> overlay")
        case 5:
            out.append("<- endpoint ")
            out.decimal(t.header.source)
        case 6: out.append("<- proxy")
        case 7: out.append("<- host")
        case 8: out.append("<- stack")
        case 9: out.append("<- overlay")
        case 10: out.append("<- network")
        case 11: out.append("-> network")
        case 12 where release == .latest: out.append("<- crypto")
        case 13 where release == .latest: out.append("-> crypto")
        default: out.append("unknown trace")
        }
    }

    /// `-vv` packet lines: the dissection, or the hex dump with `--hex`.
    func packetLines(_ packet: borrowing DecodedPacket, _ bytes: RawSpan, _ out: OutputBuffer) {
        if hex {
            appendHexDump(bytes, to: out)
        } else {
            dissect(packet, bytes, out)
        }
    }

    /// Cilium's `Dissect`: one gopacket layer line per decoded layer, then the truncation and error
    /// lines. For tunnel packets the tunnel header and the inner frame follow the outer layers.
    func dissect(_ packet: borrowing DecodedPacket, _ bytes: RawSpan, _ out: OutputBuffer) {
        bytes.withUnsafeBytes { buffer in dissect(packet, LayerStrings(buffer, out: out), out) }
    }

    private func dissect(_ packet: borrowing DecodedPacket, _ strings: LayerStrings, _ out: OutputBuffer) {
        let outer = packet.ciliumView(from: 0, inner: false)
        for i in outer.start..<(outer.start + outer.count) {
            strings.line(packet.ciliumLayer(i, in: outer, inner: false))
        }
        var truncated = outer.truncated
        var error = outer.error
        if let t = packet.tunnelAfter(outer) {
            strings.line(packet.layers[t])
            let inner = packet.ciliumView(from: t + 1, inner: true)
            for i in inner.start..<(inner.start + inner.count) {
                strings.line(packet.ciliumLayer(i, in: inner, inner: true))
            }
            truncated = truncated || inner.truncated
            error = inner.error
        }
        if truncated { out.append("  Packet has been truncated\n") }
        if let error {
            out.append("  Failed to decode layer: ")
            switch error {
            case .noDecoder(let go):
                out.append("No decoder for layer type ")
                out.append(go.name)
            case .decode(let detail):
                detail.appendGoMessage(to: out)
            }
            out.append(byte: 10)
        }
    }

    /// Cilium's `GetConnectionSummary` of the event's flow, plus ` [tunnel ...]` with the tunnel's
    /// outer endpoints and VNI for tunnel packets. The inner flow is shown unless the inner frame was
    /// cut before its addresses; then the outer one (never `[unknown]` for a tunnel packet).
    /// `summary` of the event at `event`, reading the flow's fields in place (passing the whole flow
    /// on from the pipeline's memory would copy it, node name and all).
    func summary(at event: UnsafePointer<Event>, _ out: OutputBuffer) {
        guard let tunnel = event.pointee.flow.tunnel else {
            ConnectionSummary.append(event.pointee.flow.outer, out)
            return
        }
        ConnectionSummary.append(event.pointee.flow.primaryIsInner ? event.pointee.flow.inner : event.pointee.flow.outer, out)
        Self.tunnelSuffix(tunnel, event.pointee.flow.outer, out)
    }

    public func summary(_ flow: borrowing Flow, _ out: OutputBuffer) {
        guard let tunnel = flow.tunnel else {
            ConnectionSummary.append(flow.outer, out)
            return
        }
        ConnectionSummary.append(flow.primary, out)
        Self.tunnelSuffix(tunnel, flow.outer, out)
    }

    /// ` [tunnel <outer src>:<sport> -> <outer dst>:<dport> vxlan vni N]`.
    static func tunnelSuffix(_ tunnel: FlowTunnel, _ outer: borrowing FlowLayers, _ out: OutputBuffer) {
        out.append(" [tunnel ")
        ConnectionSummary.hostPort(outer.source, outer.sourcePort, out)
        out.append(" -> ")
        ConnectionSummary.hostPort(outer.destination, outer.destinationPort, out)
        switch tunnel.kind {
        case .vxlan: out.append(" vxlan vni ")
        case .geneve: out.append(" geneve vni ")
        }
        out.decimal(tunnel.vni)
        out.append(byte: UInt8(ascii: "]"))
    }
}

/// Cilium 1.13's `GetConnectionSummary`, over one stack of a `Flow`.
enum ConnectionSummary {
    /// Cilium's getTCPInfo order.
    static let summaryFlags: [(UInt16, StaticString)] = [
        (TCPHeader.syn, "SYN"), (TCPHeader.ack, "ACK"), (TCPHeader.rst, "RST"), (TCPHeader.fin, "FIN"),
    ]

    static func append(_ f: borrowing FlowLayers, _ out: OutputBuffer) {
        switch f.transport {
        case .icmpv4, .icmpv6:
            hostOnly(f.source, out)
            out.append(" -> ")
            hostOnly(f.destination, out)
            out.append(byte: 32)
            out.icmpTypeCode(v6: f.transport == .icmpv6, type: f.icmpType, code: f.icmpCode)
        case .tcp, .udp, .sctp:
            hostPort(f.source, f.sourcePort, out)
            out.append(" -> ")
            hostPort(f.destination, f.destinationPort, out)
            switch f.transport {
            case .tcp:
                out.append(" tcp ")
                var first = true
                for (bit, name) in summaryFlags where f.tcpFlags & bit != 0 {
                    if !first { out.append(", ") }
                    out.append(name)
                    first = false
                }
            case .udp: out.append(" udp")
            default: out.append(" sctp")
            }
        case .none:
            if let source = f.source, let destination = f.destination {
                out.ip(source)
                out.append(" -> ")
                out.ip(destination)
            } else if f.hasEthernet {
                out.mac(f.sourceMAC)
                out.append(" -> ")
                out.mac(f.destinationMAC)
                out.append(byte: 32)
                out.append(GoPacketNames.etherType(f.etherType))
            } else {
                out.append("[unknown]")
            }
        }
    }

    /// Go prints a nil net.IP as `<nil>` (unreachable with Cilium's layer set, kept for completeness).
    static func hostOnly(_ ip: IPAddress?, _ out: OutputBuffer) {
        if let ip { out.ip(ip) } else { out.append("<nil>") }
    }

    /// `net.JoinHostPort`: brackets when the host contains a colon.
    static func hostPort(_ ip: IPAddress?, _ port: UInt16, _ out: OutputBuffer) {
        switch ip {
        case .v6(let a) where a.mappedIPv4 == nil:
            out.append(byte: UInt8(ascii: "["))
            out.ipv6(a)
            out.append(byte: UInt8(ascii: "]"))
        case .some(let a): out.ip(a)
        case nil: out.append("<nil>")
        }
        out.append(byte: UInt8(ascii: ":"))
        out.decimal(port)
    }
}
