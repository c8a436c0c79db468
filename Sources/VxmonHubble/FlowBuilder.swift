import SwiftProtobuf
import VxmonCore
import VxmonWire

/// `HubbleFlow` (the one mapping from vxmon's `Flow` to Hubble's fields) copied into the generated
/// `flow.Flow` message: no JSON in between, and nothing decided here. `FlowBuilderTests` checks that
/// the message equals what `-o jsonpb` writes for the same event (parsed by swift-protobuf) on every
/// vector, sample and bulk_2k.
public struct FlowBuilder {
    /// Text of addresses, MACs and summaries (reused across flows).
    private let scratch = OutputBuffer(capacity: 256)

    public init() {}

    public func response(_ h: HubbleFlow) -> Observer_GetFlowsResponse {
        var r = Observer_GetFlowsResponse()
        r.flow = flow(h)
        if let node = h.nodeName { r.nodeName = node }
        if h.time != 0 { r.time = Self.timestamp(h.time) }
        return r
    }

    public func flow(_ h: HubbleFlow) -> Flow_Flow {
        var f = Flow_Flow()
        if h.time != 0 { f.time = Self.timestamp(h.time) }
        f.verdict = Flow_Verdict(rawValue: Int(h.verdict.rawValue)) ?? .init()
        f.dropReason = UInt32(h.dropReason)
        if h.layers.hasEthernet {
            var e = Flow_Ethernet()
            e.source = text { $0.mac(h.layers.sourceMAC) }
            e.destination = text { $0.mac(h.layers.destinationMAC) }
            f.ethernet = e
        }
        if let ip = ip(h.layers, source: h.ipSource, encrypted: h.encrypted) { f.ip = ip }
        if let l4 = l4(h.layers) { f.l4 = l4 }
        if let tunnel = h.tunnel {
            var t = Flow_Tunnel()
            t.protocol = tunnel.kind == .vxlan ? .vxlan : .geneve
            if let ip = ip(tunnel.outer, source: nil, encrypted: false) { t.ip = ip }
            if let l4 = l4(tunnel.outer) { t.l4 = l4 }
            t.vni = tunnel.vni
            f.tunnel = t
        }
        f.source = endpoint(h.source)
        f.destination = endpoint(h.destination)
        f.type = h.socket ? .sock : .l3L4
        if let node = h.nodeName { f.nodeName = node }
        f.reply = h.isReply == true
        var eventType = Flow_CiliumEventType()
        eventType.type = Int32(h.eventType)
        eventType.subType = Int32(h.eventSubType)
        f.eventType = eventType
        f.trafficDirection = Flow_TrafficDirection(rawValue: Int(h.trafficDirection.rawValue)) ?? .init()
        f.policyMatchType = UInt32(h.policyMatchType)
        if let point = h.observationPoint {
            f.traceObservationPoint = Flow_TraceObservationPoint(rawValue: Int(point)) ?? .init()
        }
        f.traceReason = Flow_TraceReason(rawValue: Int(h.traceReason)) ?? .init()
        f.dropReasonDesc = Flow_DropReason(rawValue: Int(h.dropReason)) ?? .init()
        if let isReply = h.isReply { f.isReply = Google_Protobuf_BoolValue(isReply) }
        f.debugCapturePoint = Flow_DebugCapturePoint(rawValue: Int(h.debugCapturePoint)) ?? .init()
        if h.interfaceIndex != 0 {
            var i = Flow_NetworkInterface()
            i.index = h.interfaceIndex
            if let name = h.interfaceName { i.name = name }
            f.interface = i
        }
        f.proxyPort = h.proxyPort
        f.sockXlatePoint = Flow_SocketTranslationPoint(rawValue: Int(h.sockXlatePoint)) ?? .init()
        f.socketCookie = h.socketCookie
        f.cgroupID = h.cgroupID
        if h.hasSummary { f.summary = text { h.summary(into: $0) } }
        return f
    }

    private func text(_ body: (OutputBuffer) -> Void) -> String {
        scratch.removeAll()
        body(scratch)
        return scratch.string
    }

    private func ip(_ l: FlowLayers, source: IPAddress?, encrypted: Bool) -> Flow_IP? {
        let source = source ?? l.source
        guard let version = source ?? l.destination else { return nil }
        var ip = Flow_IP()
        if let source { ip.source = text { $0.ip(source) } }
        if let destination = l.destination { ip.destination = text { $0.ip(destination) } }
        if case .v4 = version { ip.ipVersion = .ipv4 } else { ip.ipVersion = .ipv6 }
        ip.encrypted = encrypted
        return ip
    }

    private func l4(_ l: FlowLayers) -> Flow_Layer4? {
        var l4 = Flow_Layer4()
        switch l.transport {
        case .none: return nil
        case .tcp:
            var t = Flow_TCP()
            t.sourcePort = UInt32(l.sourcePort)
            t.destinationPort = UInt32(l.destinationPort)
            if l.tcpFlags & 0x1ff != 0 {
                var flags = Flow_TCPFlags()
                flags.fin = l.tcpFlags & TCPHeader.fin != 0
                flags.syn = l.tcpFlags & TCPHeader.syn != 0
                flags.rst = l.tcpFlags & TCPHeader.rst != 0
                flags.psh = l.tcpFlags & TCPHeader.psh != 0
                flags.ack = l.tcpFlags & TCPHeader.ack != 0
                flags.urg = l.tcpFlags & TCPHeader.urg != 0
                flags.ece = l.tcpFlags & TCPHeader.ece != 0
                flags.cwr = l.tcpFlags & TCPHeader.cwr != 0
                flags.ns = l.tcpFlags & TCPHeader.ns != 0
                t.flags = flags
            }
            l4.tcp = t
        case .udp:
            var u = Flow_UDP()
            u.sourcePort = UInt32(l.sourcePort)
            u.destinationPort = UInt32(l.destinationPort)
            l4.udp = u
        case .sctp:
            var s = Flow_SCTP()
            s.sourcePort = UInt32(l.sourcePort)
            s.destinationPort = UInt32(l.destinationPort)
            l4.sctp = s
        case .icmpv4:
            var i = Flow_ICMPv4()
            i.type = UInt32(l.icmpType)
            i.code = UInt32(l.icmpCode)
            l4.icmpv4 = i
        case .icmpv6:
            var i = Flow_ICMPv6()
            i.type = UInt32(l.icmpType)
            i.code = UInt32(l.icmpCode)
            l4.icmpv6 = i
        }
        return l4
    }

    private func endpoint(_ e: HubbleFlow.Endpoint) -> Flow_Endpoint {
        var out = Flow_Endpoint()
        out.id = e.id
        out.identity = e.identity
        if let reserved = e.reservedLabel { out.labels.append(reserved.description) }
        if let pod = e.pod {
            out.namespace = pod.namespace
            out.labels += pod.labels
            out.podName = pod.name
        }
        return out
    }

    static func timestamp(_ ns: UInt64) -> Google_Protobuf_Timestamp {
        var t = Google_Protobuf_Timestamp()
        t.seconds = Int64(ns / 1_000_000_000)
        t.nanos = Int32(ns % 1_000_000_000)
        return t
    }
}
