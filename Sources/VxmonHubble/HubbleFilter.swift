import SwiftProtobuf
import VxmonCore
import VxmonWire

/// A GetFlows request's filters, compiled into the filter engine's terms (`FlowTerm`, the ones the
/// CLI's flags compile to) and evaluated on the stored `Flow` in Hubble's reading of the flow API the
/// servers follow (latest): every non-empty field of one `FlowFilter` must match, any value of a field
/// may; a flow passes when it matches some whitelist filter, or there is none, and no blacklist
/// filter. Lost-events notices always pass.
///
/// A filter naming a field this compiler does not implement, or a value no flow can carry, is refused
/// (`UnsupportedFilter`), never ignored: a query that silently matched more than asked would mislead.
public struct HubbleFilter: Sendable {
    public struct UnsupportedFilter: Error, CustomStringConvertible {
        public var description: String
    }

    public let set: FilterSet

    /// The `FlowFilter` fields implemented (names as in Hubble's API).
    public static let supportedFields = [
        "uuid", "source_ip", "destination_ip", "source_pod", "destination_pod", "source_identity", "destination_identity",
        "source_port", "destination_port", "protocol", "verdict", "drop_reason_desc", "traffic_direction", "event_type",
        "reply", "node_name", "ip_version", "tcp_flags", "interface", "encrypted",
    ]

    /// `pods`: the lab's, to resolve pod names (read only here: not the pipeline's directory).
    /// Bounds on one request's filters, so that no request can cost the servers more than a few
    /// milliseconds per flow walk: filters in the whitelist plus the blacklist, and values in all of
    /// them together (Hubble itself sets none).
    public static let maxFilters = 64
    public static let maxValues = 1024

    /// `release`: whose reading of the flows the filters test (the servers': latest).
    public init(
        whitelist: [Flow_FlowFilter], blacklist: [Flow_FlowFilter], pods: PodDirectory, release: CiliumRelease = .latest
    ) throws {
        guard whitelist.count + blacklist.count <= Self.maxFilters else {
            throw UnsupportedFilter(
                description: "\(whitelist.count + blacklist.count) filters in one request; vxmon's observer takes at most \(Self.maxFilters)")
        }
        let values = (whitelist + blacklist).reduce(0) { $0 + Self.valueCount($1) }
        guard values <= Self.maxValues else {
            throw UnsupportedFilter(
                description: "\(values) filter values in one request; vxmon's observer takes at most \(Self.maxValues)")
        }
        func matcher(_ filter: Flow_FlowFilter) throws -> FilterMatcher {
            FilterMatcher(try Self.compile(filter, release: release), pods: pods)
        }
        set = FilterSet(whitelist: try whitelist.map(matcher), blacklist: try blacklist.map(matcher))
    }

    /// The values of every repeated field of `f` (what the filter engine gets one term each for).
    static func valueCount(_ f: Flow_FlowFilter) -> Int {
        f.uuid.count + f.sourceIp.count + f.destinationIp.count + f.sourcePod.count + f.destinationPod.count
            + f.sourceIdentity.count + f.destinationIdentity.count + f.sourcePort.count + f.destinationPort.count
            + f.protocol.count + f.verdict.count + f.dropReasonDesc.count + f.trafficDirection.count
            + f.eventType.count + f.reply.count + f.nodeName.count + f.ipVersion.count + f.tcpFlags.count
            + f.interface.count + f.encrypted.count
    }

    /// One `FlowFilter` as the engine's clauses: one clause per field, one term per value.
    static func compile(_ filter: Flow_FlowFilter, release: CiliumRelease) throws -> EventFilter {
        var rest = filter
        var out = EventFilter()
        out.reading = .hubble(release)
        func clause(_ field: String, _ terms: [FlowTerm]) {
            if !terms.isEmpty { out.clauses.append(FlowClause(flag: field, negated: false, terms: terms)) }
        }
        clause("source_ip", try rest.sourceIp.map { .ip(try prefix($0), .source) })
        clause("destination_ip", try rest.destinationIp.map { .ip(try prefix($0), .destination) })
        rest.sourceIp = []
        rest.destinationIp = []
        clause("source_pod", rest.sourcePod.map { .pod(podSelector($0), .source) })
        clause("destination_pod", rest.destinationPod.map { .pod(podSelector($0), .destination) })
        rest.sourcePod = []
        rest.destinationPod = []
        clause("source_identity", rest.sourceIdentity.map { .identity($0, .source) })
        clause("destination_identity", rest.destinationIdentity.map { .identity($0, .destination) })
        rest.sourceIdentity = []
        rest.destinationIdentity = []
        clause("source_port", try rest.sourcePort.map { .port(try port($0), .source) })
        clause("destination_port", try rest.destinationPort.map { .port(try port($0), .destination) })
        rest.sourcePort = []
        rest.destinationPort = []
        clause("protocol", try rest.protocol.map(transport))
        rest.protocol = []
        clause("verdict", try rest.verdict.map { v in
            guard (0...255).contains(v.rawValue), let verdict = FlowVerdict(rawValue: UInt8(v.rawValue)) else {
                throw UnsupportedFilter(description: "verdict \(v.rawValue) is not a verdict")
            }
            return .verdict(verdict)
        })
        rest.verdict = []
        clause("drop_reason_desc", try rest.dropReasonDesc.map { r in
            guard r.rawValue > 0, r.rawValue <= 255 else {
                throw UnsupportedFilter(description: "drop_reason_desc \(r.rawValue) is not a drop reason (1-255)")
            }
            return .dropReason(UInt8(r.rawValue))
        })
        rest.dropReasonDesc = []
        clause("traffic_direction", try rest.trafficDirection.map { d in
            guard d.rawValue >= 0, d.rawValue <= 2, let direction = TrafficDirection(rawValue: UInt8(d.rawValue)) else {
                throw UnsupportedFilter(description: "traffic_direction \(d.rawValue) is not a direction")
            }
            return .direction(direction)
        })
        rest.trafficDirection = []
        clause("event_type", try rest.eventType.map { e in
            guard e.type >= 0, e.type <= 255, !e.matchSubType || (e.subType >= 0 && e.subType <= 255) else {
                throw UnsupportedFilter(description: "event_type \(e.type)/\(e.subType): Cilium's types and subtypes are 0-255")
            }
            // Type 0 is any type, as in Hubble.
            return .eventType(e.type == 0 ? nil : UInt8(e.type), subType: e.matchSubType ? UInt8(e.subType) : nil)
        })
        rest.eventType = []
        clause("reply", rest.reply.map { .reply($0) })
        rest.reply = []
        clause("node_name", try rest.nodeName.map { pattern in
            // A node name is at most 253 bytes; a longer pattern would only cost time.
            guard pattern.utf8.count <= maxPattern else {
                throw UnsupportedFilter(description: "node_name pattern longer than \(maxPattern) bytes")
            }
            return .node(pattern)
        })
        rest.nodeName = []
        clause("ip_version", try rest.ipVersion.map { v in
            switch v {
            case .ipNotUsed: return .ipVersion(0)
            case .ipv4: return .ipVersion(4)
            case .ipv6: return .ipVersion(6)
            default: throw UnsupportedFilter(description: "ip_version \(v.rawValue) is not an IP version")
            }
        })
        rest.ipVersion = []
        clause("tcp_flags", rest.tcpFlags.map { .tcpFlags(set: bits($0), clear: 0) })
        rest.tcpFlags = []
        clause("interface", rest.interface.map {
            .interface(index: $0.index == 0 ? nil : $0.index, name: $0.name.isEmpty ? nil : $0.name)
        })
        rest.interface = []
        clause("encrypted", rest.encrypted.map { .encrypted($0) })
        rest.encrypted = []
        clause("uuid", rest.uuid.map { .uuid($0) })
        rest.uuid = []
        // What is left once the supported fields are taken out must be an empty filter.
        if rest != Flow_FlowFilter() {
            let named = (try? rest.jsonString(options: jsonOptions)) ?? "fields unknown to vxmon"
            throw UnsupportedFilter(
                description: "filter fields not supported by vxmon's observer: \(EventPipeline.sanitized(named)) "
                    + "(supported: \(supportedFields.joined(separator: ", ")))")
        }
        return out
    }

    /// The longest `node_name` pattern taken (a DNS name and a few `*`).
    static let maxPattern = 256

    private static var jsonOptions: JSONEncodingOptions {
        var o = JSONEncodingOptions()
        o.preserveProtoFieldNames = true
        return o
    }

    static func prefix(_ text: String) throws -> IPPrefix {
        guard let p = FilterParser.parsePrefix(text) else {
            throw UnsupportedFilter(description: "not an IP address or CIDR: \(EventPipeline.sanitized(text))")
        }
        return p
    }

    static func port(_ text: String) throws -> UInt16 {
        guard let n = UInt16(text) else {
            throw UnsupportedFilter(description: "not a port (0-65535): \(EventPipeline.sanitized(text))")
        }
        return n
    }

    static func transport(_ text: String) throws -> FlowTerm {
        switch text.lowercased() {
        case "tcp": return .transport(.tcp)
        case "udp": return .transport(.udp)
        case "sctp": return .transport(.sctp)
        case "icmp": return .icmp
        case "icmpv4": return .transport(.icmpv4)
        case "icmpv6": return .transport(.icmpv6)
        default:
            throw UnsupportedFilter(
                description: "protocol \(EventPipeline.sanitized(text)) not supported (vxmon has no L7 flows): "
                    + "use one of tcp, udp, sctp, icmp, icmpv4, icmpv6")
        }
    }

    /// "namespace/pod-prefix", or "pod-prefix" in namespace `default`.
    static func podSelector(_ text: String) -> PodSelector {
        if let slash = text.firstIndex(of: "/") {
            return PodSelector(namespace: String(text[..<slash]), name: String(text[text.index(after: slash)...]), prefix: true)
        }
        return PodSelector(namespace: "default", name: text, prefix: true)
    }

    /// The flag bits of `FlowLayers.tcpFlags`.
    static func bits(_ f: Flow_TCPFlags) -> UInt16 {
        var b: UInt16 = 0
        if f.fin { b |= TCPHeader.fin }
        if f.syn { b |= TCPHeader.syn }
        if f.rst { b |= TCPHeader.rst }
        if f.psh { b |= TCPHeader.psh }
        if f.ack { b |= TCPHeader.ack }
        if f.urg { b |= TCPHeader.urg }
        if f.ece { b |= TCPHeader.ece }
        if f.cwr { b |= TCPHeader.cwr }
        if f.ns { b |= TCPHeader.ns }
        return b
    }

    /// Whether a ring entry passes: a flow by its stored `Flow`, a lost-events notice always.
    public func matches(_ entry: FlowRing.Entry) -> Bool {
        switch entry {
        case .built: return true
        case .flow(let flow, let hubble):
            return withUnsafePointer(to: flow) { set.matches($0, interfaceName: hubble.interfaceName) }
        }
    }
}
