import VxmonWire

/// vxmon's JSON/YAML event schema (docs/event-schema.json, version `schemaVersion`). Keys are
/// snake_case except where Hubble's flow JSON already has a name (`node_name`, `event_type.sub_type`,
/// `trace_observation_point`, `drop_reason_desc`, `IP.ipVersion`, `l4.TCP.source_port`, ...), so jq
/// habits carry over. Key order is fixed; `type` comes first.
public struct StructuredRenderer: Sendable {
    public static let schemaVersion = 1
    public var release: CiliumRelease
    public var names: InterfaceNames
    /// What `-v`/`-vv` add to every event record: `monitor`, the lines `cilium monitor` prints for the
    /// event at that verbosity (`-vv`: the header line and the packet's layer lines). The default
    /// (`.info`) adds nothing: the default record is the same whatever the text options.
    public var verbosity: Verbosity
    /// `--hex`: `packet.data`, the captured bytes in hex (and hex dumps instead of layer lines in
    /// `monitor` at `-vv`, as the text has them).
    public var hex: Bool
    /// `-n`: identities as numbers in the `monitor` lines.
    public var numeric: Bool

    public init(
        release: CiliumRelease = .v1_13, names: InterfaceNames = InterfaceNames(), verbosity: Verbosity = .info,
        hex: Bool = false, numeric: Bool = false
    ) {
        self.release = release
        self.names = names
        self.verbosity = verbosity
        self.hex = hex
        self.numeric = numeric
    }

    public func renderJSON(_ event: borrowing Event, record: RawSpan, into out: OutputBuffer) {
        var w = JSONWriter(out: out)
        write(&w, event, record)
    }

    public func renderYAML(_ event: borrowing Event, record: RawSpan, into out: OutputBuffer) {
        var w = YAMLWriter(out: out)
        write(&w, event, record)
    }

    public func renderLostJSON(cpu: Int, count: UInt64, time: UInt64, node: String?, into out: OutputBuffer) {
        var w = JSONWriter(out: out)
        writeLost(&w, cpu: cpu, count: count, time: time, node: node)
    }

    public func renderLostYAML(cpu: Int, count: UInt64, time: UInt64, node: String?, into out: OutputBuffer) {
        var w = YAMLWriter(out: out)
        writeLost(&w, cpu: cpu, count: count, time: time, node: node)
    }

    func writeLost<W: StructuredWriter>(_ w: inout W, cpu: Int, count: UInt64, time: UInt64, node: String?) {
        w.beginDocument()
        w.beginObject()
        w.field("type", string: "lost")
        w.field("cpu", cpu)
        w.field("count", count)
        if time != 0 { w.field("time", raw: { Self.rfc3339($0, time) }) }
        if let node {
            w.key("node_name")
            w.escapedString(node)
        }
        w.endObject()
        w.endDocument()
    }

    // MARK: Events

    func write<W: StructuredWriter>(_ w: inout W, _ event: borrowing Event, _ record: RawSpan) {
        let packetBytes = record.extracting(event.packetOffset..<(event.packetOffset + event.packetLength))
        w.beginDocument()
        w.beginObject()
        let type = event.typeCode
        let subtype = record.byteCount > 1 ? record.u8(1) : 0
        switch event.message {
        case .trace: w.field("type", string: "trace")
        case .drop: w.field("type", string: "drop")
        case .debug: w.field("type", string: "debug")
        case .capture: w.field("type", string: "capture")
        case .policyVerdict: w.field("type", string: "policy_verdict")
        case .traceSock: w.field("type", string: "trace_sock")
        case .recorder: w.field("type", string: "recorder")
        case .unknown: w.field("type", string: "unknown")
        }
        w.key("subtype")
        subtypeName(&w, event, subtype)
        w.key("event_type")
        w.beginObject()
        w.field("type", type)
        w.field("sub_type", subtype)
        w.endObject()
        w.field("cpu", event.cpu)
        if event.timeNanoseconds != 0 { w.field("time", raw: { Self.rfc3339($0, event.timeNanoseconds) }) }
        if let node = event.node {
            w.key("node_name")
            w.escapedString(node)
        }

        switch event.message {
        case .trace(let t):
            header(&w, t.header)
            w.key("trace_observation_point")
            w.string(t.observationPoint.hubbleName)
            w.key("trace_reason")
            let state = event.flow.traceState ?? 0
            if let r = CiliumNames.traceReason(state, .latest) { w.string(r) } else { w.null() }
            w.field("reason_code", state)
            w.field("encrypted", event.flow.encrypted)
            endpoint(&w, "source", identity: t.sourceIdentity, id: nil)
            if t.observationPoint == .toProxy {
                endpoint(&w, "destination", identity: t.destinationIdentity, id: nil)
                w.field("proxy_port", t.destinationID)
            } else {
                endpoint(&w, "destination", identity: t.destinationIdentity, id: UInt32(t.destinationID))
            }
            interface(&w, t.ifindex, event.node)
            if let ip = t.originalIP { w.field("orig_ip", raw: { $0.ip(ip) }) }
            if t.version >= 2 { w.field("ip_trace_id", t.ipTraceID) }
            w.field("flags", t.flags)
            w.field("version", t.version)
            w.field("bytes", t.lengthOriginal)
            w.field("captured", t.lengthCaptured)
            packetFields(&w, event, packetBytes)
        case .drop(let d):
            header(&w, d.header)
            w.field("drop_reason", d.reason)
            w.key("drop_reason_desc")
            if let r = CiliumNames.dropReason(d.reason, .latest) { w.string(r) } else { w.null() }
            w.field("ext_error", d.extError)
            w.field("file", d.file)
            w.field("line", d.line)
            endpoint(&w, "source", identity: d.sourceIdentity, id: nil)
            endpoint(&w, "destination", identity: d.destinationIdentity, id: d.destinationID)
            interface(&w, d.ifindex, event.node)
            // Drop flags and trace ids exist in latest only (1.13's drop header is 36 bytes, unversioned).
            if release == .latest && d.version >= 2 { w.field("flags", d.flags) }
            if release == .latest && d.version >= 3 { w.field("ip_trace_id", d.ipTraceID) }
            w.field("version", d.version)
            w.field("bytes", d.lengthOriginal)
            w.field("captured", d.lengthCaptured)
            packetFields(&w, event, packetBytes)
        case .debug(let m):
            header(&w, m.header)
            w.key("message")
            let text = OutputBuffer(capacity: 256)
            DebugText.message(m, text, names: names, node: event.node, release: release)
            w.escapedString(text.string)
            w.key("args")
            w.beginArray()
            w.int(m.arg1)
            w.int(m.arg2)
            w.int(m.arg3)
            w.endArray()
        case .capture(let c):
            header(&w, c.header)
            w.field("message", raw: { DebugText.captureDescription(c, $0) })
            if DebugText.hasCapturePrefix(c.header.subtype) {
                let prefix = OutputBuffer(capacity: 64)
                DebugText.capturePrefix(c, prefix, names: names, node: event.node)
                w.key("prefix")
                w.escapedString(prefix.string)
            }
            w.key("args")
            w.beginArray()
            w.int(c.arg1)
            w.int(c.arg2)
            w.endArray()
            w.field("version", c.version)
            w.field("bytes", c.lengthOriginal)
            w.field("captured", c.lengthCaptured)
            packetFields(&w, event, packetBytes)
        case .policyVerdict(let p):
            header(&w, p.header)
            // The readings are the flow's (direction, redirect, denial, audit flag); the raw verdict
            // is printed as the datapath gave it.
            w.field("direction", string: event.flow.trafficDirection == .ingress ? "ingress" : "egress")
            // Cilium's monitor reading (the audit flag first); `hubble_verdict` has Hubble's.
            w.field("action", string: (event.flow.policyAction ?? .allow).name)
            w.field("verdict", p.verdict)
            if event.flow.verdict == .redirected { w.field("proxy_port", p.verdict) }
            if let reason = event.flow.dropReason, let r = CiliumNames.dropReason(reason, .latest) {
                w.field("drop_reason_desc", string: r)
            }
            w.field("match", string: CiliumNames.policyMatch(p.matchType))
            w.field("audited", event.flow.policyAction == .audit)
            endpoint(&w, "remote", identity: p.remoteIdentity, id: nil)
            w.field("proto", p.proto)
            w.field("dst_port", p.destinationPort)
            w.field("ipv6", p.isIPv6)
            if let a = p.authType {
                w.key("auth_type")
                if let n = CiliumNames.authType(a) { w.string(n) } else { w.int(a) }
            }
            if let c = p.cookie { w.field("cookie", c) }
            w.field("version", p.version)
            w.field("bytes", p.lengthOriginal)
            w.field("captured", p.lengthCaptured)
            packetFields(&w, event, packetBytes)
        case .traceSock(let s):
            w.field("xlate_point", string: CiliumNames.xlatePoint(s.xlatePoint))
            w.field("cgroup_id", s.cgroupID)
            w.field("sock_cookie", s.socketCookie)
            w.key("destination")
            w.beginObject()
            w.field("ip", raw: { $0.ip(s.destinationIP) })
            w.field("port", s.destinationPort)
            w.endObject()
            w.field("l4_proto", string: CiliumNames.sockProto(s.l4Proto))
            w.field("ipv6", s.flags & 1 != 0)
        case .recorder(let r):
            w.field("direction", string: r.subtype == 1 ? "ingress" : "egress")
            w.field("rule_id", r.ruleID)
            w.field("boot_ns", r.bootNanoseconds)
            w.field("caplen", r.captureLength)
            w.field("len", r.length)
            packetFields(&w, event, packetBytes)
        case .unknown:
            w.field("length", record.byteCount)
            w.key("data")
            w.beginArray()
            for i in 0..<record.byteCount { w.int(record.u8(i)) }
            w.endArray()
        }
        if event.flow.verdict != .unknown { w.field("hubble_verdict", string: event.flow.verdict.name) }
        if verbosity > .info { monitorLines(&w, event, record) }
        w.endObject()
        w.endDocument()
    }

    /// `monitor`: what `cilium monitor` prints for the event with the same `-v`/`-vv`/`--hex`/`-n`,
    /// one string per line (the `-vv` separator left out; an empty list where it prints nothing, as
    /// for debug messages without `-v`).
    func monitorLines<W: StructuredWriter>(_ w: inout W, _ event: borrowing Event, _ record: RawSpan) {
        let text = OutputBuffer(capacity: 1 << 10)
        TextRenderer(verbosity: verbosity, hex: hex, numeric: numeric, release: release, names: names)
            .render(event, record: record, into: text)
        w.key("monitor")
        w.beginArray()
        let bytes = text.bytes
        var start = 0
        for i in bytes.indices where bytes[i] == 10 {
            let line = UnsafeBufferPointer(rebasing: bytes[start..<i])
            start = i + 1
            if line.count == 78 && line.allSatisfy({ $0 == UInt8(ascii: "-") }) { continue }
            w.escapedString(String(decoding: line, as: UTF8.self))
        }
        w.endArray()
    }

    func subtypeName<W: StructuredWriter>(_ w: inout W, _ event: borrowing Event, _ subtype: UInt8) {
        let name: StaticString?
        switch event.message {
        case .trace: name = CiliumNames.observationPointAny(subtype)
        case .drop: name = CiliumNames.dropReason(subtype, .latest)
        case .debug: name = DebugText.typeName(subtype)
        case .capture: name = CiliumNames.captureType(subtype)
        case .traceSock(let s): name = CiliumNames.xlatePoint(s.xlatePoint)
        case .recorder(let r): name = r.subtype == 1 ? "ingress" : r.subtype == 2 ? "egress" : nil
        case .policyVerdict: name = event.flow.trafficDirection == .ingress ? "ingress" : "egress"
        case .unknown: name = nil
        }
        if let name { w.string(name) } else { w.rawString { $0.decimal(subtype) } }
    }

    func header<W: StructuredWriter>(_ w: inout W, _ h: NotifyHeader) {
        w.field("endpoint", h.source)
        w.field("hash", raw: { $0.hexPrefixed(UInt64(h.hash)) })
    }

    func endpoint<W: StructuredWriter>(_ w: inout W, _ k: StaticString, identity: UInt32, id: UInt32?) {
        w.key(k)
        w.beginObject()
        w.field("identity", identity)
        if let reserved = CiliumNames.reservedIdentity(identity, .latest) {
            w.key("labels")
            w.beginArray()
            w.rawString {
                $0.append("reserved:")
                $0.append(reserved)
            }
            w.endArray()
        }
        if let id { w.field("ID", id) }
        w.endObject()
    }

    func interface<W: StructuredWriter>(_ w: inout W, _ ifindex: UInt32, _ node: String?) {
        w.key("interface")
        w.beginObject()
        w.field("index", ifindex)
        if let name = names.name(ifindex, node: node) {
            w.key("name")
            w.escapedString(name)
        }
        w.endObject()
    }

    // MARK: Packet

    func packetFields<W: StructuredWriter>(_ w: inout W, _ event: borrowing Event, _ bytes: RawSpan) {
        let text = TextRenderer(release: release, names: names)
        w.field("summary", raw: { text.summary(event.flow, $0) })
        flowKeys(&w, event.flow)
        packet(&w, event.packet, bytes)
    }

    /// Hubble-style flow view of the event's `Flow`: `ethernet`, `IP`, `l4` of the stack the summary
    /// shows (the inner one for tunnel packets) and `tunnel` with the outer IP, UDP and the VNI.
    func flowKeys<W: StructuredWriter>(_ w: inout W, _ flow: borrowing Flow) {
        let f = flow.primary
        FlowLayersJSON.ethernet(&w, f)
        ipObject(&w, f)
        l4Object(&w, f)
        if let tunnel = flow.tunnel {
            w.key("tunnel")
            w.beginObject()
            switch tunnel.kind {
            case .vxlan: w.field("protocol", string: "VXLAN")
            case .geneve: w.field("protocol", string: "GENEVE")
            }
            w.field("vni", tunnel.vni)
            ipObject(&w, flow.outer)
            l4Object(&w, flow.outer)
            w.endObject()
        }
    }

    func ipObject<W: StructuredWriter>(_ w: inout W, _ f: borrowing FlowLayers) {
        FlowLayersJSON.ip(&w, f, style: .vxmon)
    }

    func l4Object<W: StructuredWriter>(_ w: inout W, _ f: borrowing FlowLayers) {
        FlowLayersJSON.l4(&w, f, style: .vxmon)
    }

    func tcpFlags<W: StructuredWriter>(_ w: inout W, _ flags: UInt16) {
        FlowLayersJSON.tcpFlags(&w, flags, style: .vxmon)
    }

    func packet<W: StructuredWriter>(_ w: inout W, _ p: borrowing DecodedPacket, _ bytes: RawSpan) {
        w.key("packet")
        w.beginObject()
        w.field("length", p.length)
        // Truncated: some layer announced more bytes than were captured, or decoding stopped for lack of them.
        var truncated = p.stop.map { $0.truncated || $0.reason == .truncated } ?? false
        w.key("layers")
        w.beginArray()
        for i in p.layers.indices {
            truncated = truncated || p.layers[i].truncated
            w.beginObject()
            w.field("layer", string: p.layers[i].kind.name)
            w.field("offset", p.layers[i].offset)
            w.field("header_length", p.layers[i].headerLength)
            w.field("payload_length", p.layers[i].payloadLength)
            if p.layers[i].isInner { w.field("inner", true) }
            layerFields(&w, p.layers[i].header, bytes)
            w.endObject()
        }
        w.endArray()
        w.field("truncated", truncated)
        if hex {
            w.field("data", raw: { out in for k in 0..<bytes.byteCount { out.hexByte(bytes.u8(k)) } })
        }
        if let stop = p.stop {
            w.key("stop")
            w.beginObject()
            w.key("layer")
            if let l = stop.layer { w.string(l.name) } else { w.null() }
            w.field("offset", stop.offset)
            w.key("reason")
            switch stop.reason {
            case .truncated: w.string("truncated")
            case .malformed: w.string("malformed")
            case .unsupported: w.string("unsupported")
            case .fragment: w.string("fragment")
            }
            w.field("detail", raw: { stop.detail.appendDescription(to: $0) })
            w.field("inner", stop.isInner)
            w.endObject()
        }
        w.endObject()
    }

    func layerFields<W: StructuredWriter>(_ w: inout W, _ header: borrowing LayerHeader, _ bytes: RawSpan) {
        switch header {
        case .ethernet(let h):
            w.field("source", raw: { $0.mac(h.source) })
            w.field("destination", raw: { $0.mac(h.destination) })
            if let type = h.etherType {
                w.field("ethertype", type)
                w.field("ethertype_name", string: GoPacketNames.etherType(type))
            } else {
                w.field("length", h.typeOrLength)
            }
        case .vlan(let h):
            w.field("priority", h.priority)
            w.field("drop_eligible", h.dropEligible)
            w.field("id", h.vlanID)
            w.field("ethertype", h.etherType)
            w.field("ethertype_name", string: GoPacketNames.etherType(h.etherType))
        case .arp(let h):
            w.field("operation", h.operation)
            w.key("operation_name")
            switch h.operation {
            case 1: w.string("request")
            case 2: w.string("reply")
            default: w.null()
            }
            w.field("hardware_type", h.hardwareType)
            w.field("protocol_type", h.protocolType)
            if h.hardwareLength == 6 && h.protocolLength == 4 && h.protocolType == 0x0800 {
                w.field("sender_mac", raw: { $0.mac(bytes.mac(h.senderHardware.offset)) })
                w.field("sender_ip", raw: { $0.ipv4(bytes.ipv4(h.senderProtocol.offset)) })
                w.field("target_mac", raw: { $0.mac(bytes.mac(h.targetHardware.offset)) })
                w.field("target_ip", raw: { $0.ipv4(bytes.ipv4(h.targetProtocol.offset)) })
            } else {
                w.field("hardware_length", h.hardwareLength)
                w.field("protocol_length", h.protocolLength)
            }
        case .ipv4(let h):
            w.field("source", raw: { $0.ipv4(h.source) })
            w.field("destination", raw: { $0.ipv4(h.destination) })
            w.field("version", h.version)
            w.field("ihl", h.ihl)
            w.field("tos", h.tos)
            w.field("length", h.totalLengthWasZero ? 0 : h.totalLength)
            w.field("id", h.identification)
            w.key("flags")
            w.beginArray()
            if h.flags & 4 != 0 { w.string("RESERVED") }
            if h.flags & 2 != 0 { w.string("DF") }
            if h.flags & 1 != 0 { w.string("MF") }
            w.endArray()
            w.field("fragment_offset", h.fragmentOffset)
            w.field("ttl", h.ttl)
            w.field("protocol", h.protocolNumber)
            w.field("protocol_name", string: GoPacketNames.ipProtocol(h.protocolNumber))
            w.field("checksum", h.checksum)
            w.field("options_length", h.options.count + h.padding.count)
        case .ipv6(let h):
            w.field("source", raw: { $0.ipv6(h.source) })
            w.field("destination", raw: { $0.ipv6(h.destination) })
            w.field("version", h.version)
            w.field("traffic_class", h.trafficClass)
            w.field("flow_label", h.flowLabel)
            w.field("length", h.payloadLength)
            w.field("next_header", h.nextHeader)
            w.field("next_header_name", string: GoPacketNames.ipProtocol(h.nextHeader))
            w.field("hop_limit", h.hopLimit)
            if let hbh = h.hopByHop {
                w.key("hop_by_hop")
                w.beginObject()
                w.field("next_header", hbh.nextHeader)
                w.field("length", hbh.actualLength)
                w.endObject()
            }
        case .ipv6Extension(let h):
            w.field("header", h.headerType)
            w.field("header_name", string: GoPacketNames.ipProtocol(h.headerType))
            w.field("next_header", h.nextHeader)
            w.field("length", h.length)
            if h.headerType == 44 {
                w.field("fragment_offset", h.fragmentOffset)
                w.field("more_fragments", h.moreFragments)
                w.field("identification", h.identification)
            }
        case .tcp(let h):
            w.field("source_port", h.sourcePort)
            w.field("destination_port", h.destinationPort)
            w.field("seq", h.sequence)
            w.field("ack", h.acknowledgment)
            w.field("data_offset", h.dataOffset)
            tcpFlags(&w, h.flags)
            w.field("window", h.window)
            w.field("checksum", h.checksum)
            w.field("urgent", h.urgent)
            tcpOptions(&w, h.options, bytes)
        case .udp(let h):
            w.field("source_port", h.sourcePort)
            w.field("destination_port", h.destinationPort)
            w.field("length", h.length)
            w.field("checksum", h.checksum)
        case .sctp(let h):
            w.field("source_port", h.sourcePort)
            w.field("destination_port", h.destinationPort)
            w.field("verification_tag", h.verificationTag)
            w.field("checksum", h.checksum)
        case .icmpv4(let h):
            w.field("type", h.type)
            w.field("code", h.code)
            w.field("type_code", raw: { $0.icmpTypeCode(v6: false, type: h.type, code: h.code) })
            w.field("checksum", h.checksum)
            w.field("id", h.identifier)
            w.field("seq", h.sequence)
        case .icmpv6(let h):
            w.field("type", h.type)
            w.field("code", h.code)
            w.field("type_code", raw: { $0.icmpTypeCode(v6: true, type: h.type, code: h.code) })
            w.field("checksum", h.checksum)
        case .vxlan(let h):
            w.field("flags", h.flags)
            w.field("valid_vni", h.validID)
            w.field("vni", h.vni)
            w.field("gbp", h.gbpExtension)
            w.field("group_policy_id", h.groupPolicyID)
            w.field("dont_learn", h.gbpDontLearn)
            w.field("policy_applied", h.gbpApplied)
        case .geneve(let h):
            w.field("version", h.version)
            w.field("options_length", h.optionsLength)
            w.field("oam", h.oam)
            w.field("critical", h.critical)
            w.field("protocol", h.protocolType)
            w.field("vni", h.vni)
        }
    }

    func tcpOptions<W: StructuredWriter>(_ w: inout W, _ r: ByteRange, _ bytes: RawSpan) {
        w.key("options")
        w.beginArray()
        var o = r.offset
        let end = r.offset + r.count
        while o < end, bytes.has(1, at: o) {
            let kind = bytes.u8(o)
            var length = 1
            if kind > 1 {
                guard bytes.has(2, at: o) else { break }
                length = Int(bytes.u8(o + 1))
                guard length >= 2, o + length <= end, bytes.has(length, at: o) else { break }
            }
            w.beginObject()
            w.field("kind", kind)
            w.key("name")
            if let n = GoPacketNames.tcpOptionKind(kind) { w.string(n) } else { w.null() }
            if length > 2 {
                let start = o + 2
                let count = length - 2
                w.field("data", raw: { out in for k in 0..<count { out.hexByte(bytes.u8(start + k)) } })
                if kind == 2 && count == 2 { w.field("mss", bytes.be16(start)) }
                if kind == 3 && count == 1 { w.field("shift", bytes.u8(start)) }
                if kind == 8 && count == 8 {
                    w.field("tsval", bytes.be32(start))
                    w.field("tsecr", bytes.be32(start + 4))
                }
            }
            w.endObject()
            if kind == 0 { break }
            o += length
        }
        w.endArray()
    }

    // MARK: Time

    /// RFC 3339 UTC with nanoseconds: `2026-11-25T13:29:39.123456789Z`.
    /// RFC 3339 in UTC with all nine digits of nanoseconds (`2026-12-01T18:09:59.119541255Z`).
    static func rfc3339(_ out: OutputBuffer, _ ns: UInt64) { TimeFormatter.utcNano.append(ns, to: out) }
}
