import SwiftProtobuf
import VxmonCore
import VxmonHubble

/// The test's oracle for the servers' filters: Hubble's filter semantics written a second time, over
/// the built `flow.Flow` message as Hubble's own filters read it (every non-empty field of one
/// `FlowFilter` must match, any value of a field may; a flow passes when it matches some whitelist
/// filter, or there is none, and no blacklist filter). vxmon itself compiles `FlowFilter`s into its
/// filter engine's terms over `Flow` (HubbleFilter); this file reads only the message, so a term
/// that tested the wrong field, or a reading that differed from what the message says, shows.
/// (It began as vxmon's own message-level matcher, before there was one engine.)
struct MessageFilterOracle {
    struct UnsupportedFilter: Error, CustomStringConvertible {
        var description: String
    }

    struct Clause {
        var sourceIP: [IPPrefix] = []
        var destinationIP: [IPPrefix] = []
        var sourcePod: [(namespace: String, prefix: String)] = []
        var destinationPod: [(namespace: String, prefix: String)] = []
        var sourceIdentity: [UInt32] = []
        var destinationIdentity: [UInt32] = []
        var sourcePort: [UInt32] = []
        var destinationPort: [UInt32] = []
        var protocols: [String] = []
        var verdicts: [Flow_Verdict] = []
        var dropReasons: [Flow_DropReason] = []
        var directions: [Flow_TrafficDirection] = []
        var eventTypes: [Flow_EventTypeFilter] = []
        var reply: [Bool] = []
        var nodeNames: [String] = []
        var ipVersions: [Flow_IPVersion] = []
        var tcpFlags: [Flow_TCPFlags] = []
        var interfaces: [Flow_NetworkInterface] = []
        var uuids: [String] = []
        var encrypted: [Bool] = []
    }

    let whitelist: [Clause]
    let blacklist: [Clause]

    /// The `FlowFilter` fields implemented (names as in Hubble's API).
    static let supportedFields = [
        "uuid", "source_ip", "destination_ip", "source_pod", "destination_pod", "source_identity",
        "destination_identity", "source_port", "destination_port", "protocol", "verdict", "drop_reason_desc",
        "traffic_direction", "event_type", "reply", "node_name", "ip_version", "tcp_flags", "interface", "encrypted",
    ]

    init(whitelist: [Flow_FlowFilter], blacklist: [Flow_FlowFilter]) throws {
        self.whitelist = try whitelist.map(Self.compile)
        self.blacklist = try blacklist.map(Self.compile)
    }

    static func compile(_ filter: Flow_FlowFilter) throws -> Clause {
        // What is left once the supported fields are taken out must be an empty filter.
        var rest = filter
        var c = Clause()
        c.uuids = rest.uuid; rest.uuid = []
        c.sourceIP = try rest.sourceIp.map(prefix); rest.sourceIp = []
        c.destinationIP = try rest.destinationIp.map(prefix); rest.destinationIp = []
        c.sourcePod = rest.sourcePod.map(podSelector); rest.sourcePod = []
        c.destinationPod = rest.destinationPod.map(podSelector); rest.destinationPod = []
        c.sourceIdentity = rest.sourceIdentity; rest.sourceIdentity = []
        c.destinationIdentity = rest.destinationIdentity; rest.destinationIdentity = []
        c.sourcePort = try rest.sourcePort.map(port); rest.sourcePort = []
        c.destinationPort = try rest.destinationPort.map(port); rest.destinationPort = []
        c.protocols = try rest.protocol.map(transport); rest.protocol = []
        c.verdicts = rest.verdict; rest.verdict = []
        c.dropReasons = rest.dropReasonDesc; rest.dropReasonDesc = []
        c.directions = rest.trafficDirection; rest.trafficDirection = []
        c.eventTypes = rest.eventType; rest.eventType = []
        c.reply = rest.reply; rest.reply = []
        c.nodeNames = rest.nodeName; rest.nodeName = []
        c.ipVersions = rest.ipVersion; rest.ipVersion = []
        c.tcpFlags = rest.tcpFlags; rest.tcpFlags = []
        c.interfaces = rest.interface; rest.interface = []
        c.encrypted = rest.encrypted; rest.encrypted = []
        if rest != Flow_FlowFilter() {
            let named = (try? rest.jsonString(options: jsonOptions)) ?? "fields unknown to vxmon"
            throw UnsupportedFilter(
                description: "filter fields not supported by vxmon's observer: \(EventPipeline.sanitized(named)) "
                    + "(supported: \(supportedFields.joined(separator: ", ")))")
        }
        return c
    }

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

    static func port(_ text: String) throws -> UInt32 {
        guard let n = UInt32(text), n <= 65535 else {
            throw UnsupportedFilter(description: "not a port (0-65535): \(EventPipeline.sanitized(text))")
        }
        return n
    }

    static func transport(_ text: String) throws -> String {
        let name = text.lowercased()
        let known = ["tcp", "udp", "sctp", "icmp", "icmpv4", "icmpv6"]
        guard known.contains(name) else {
            throw UnsupportedFilter(
                description: "protocol \(EventPipeline.sanitized(text)) not supported (vxmon has no L7 flows): use one of \(known.joined(separator: ", "))")
        }
        return name
    }

    /// "namespace/pod-prefix", or "pod-prefix" in namespace `default`.
    static func podSelector(_ text: String) -> (namespace: String, prefix: String) {
        if let slash = text.firstIndex(of: "/") {
            return (String(text[..<slash]), String(text[text.index(after: slash)...]))
        }
        return ("default", text)
    }

    /// Whether the entry passes: lost-events notices always do.
    func matches(_ response: Observer_GetFlowsResponse) -> Bool {
        guard case .flow(let flow) = response.responseTypes else { return true }
        return matches(flow)
    }

    func matches(_ flow: Flow_Flow) -> Bool {
        if !whitelist.isEmpty && !whitelist.contains(where: { Self.matches($0, flow) }) { return false }
        return !blacklist.contains { Self.matches($0, flow) }
    }

    static func matches(_ c: Clause, _ flow: Flow_Flow) -> Bool {
        if !c.uuids.isEmpty && !c.uuids.contains(flow.uuid) { return false }
        if !c.sourceIP.isEmpty && !ip(flow.ip.source, in: c.sourceIP) { return false }
        if !c.destinationIP.isEmpty && !ip(flow.ip.destination, in: c.destinationIP) { return false }
        if !c.sourcePod.isEmpty && !pod(flow.source, c.sourcePod) { return false }
        if !c.destinationPod.isEmpty && !pod(flow.destination, c.destinationPod) { return false }
        if !c.sourceIdentity.isEmpty && !c.sourceIdentity.contains(flow.source.identity) { return false }
        if !c.destinationIdentity.isEmpty && !c.destinationIdentity.contains(flow.destination.identity) { return false }
        let ports = self.ports(flow.l4)
        if !c.sourcePort.isEmpty && !(ports.map { c.sourcePort.contains($0.source) } ?? false) { return false }
        if !c.destinationPort.isEmpty && !(ports.map { c.destinationPort.contains($0.destination) } ?? false) {
            return false
        }
        if !c.protocols.isEmpty && !c.protocols.contains(where: { transport(flow.l4, is: $0) }) { return false }
        if !c.verdicts.isEmpty && !c.verdicts.contains(flow.verdict) { return false }
        if !c.dropReasons.isEmpty && !c.dropReasons.contains(flow.dropReasonDesc) { return false }
        if !c.directions.isEmpty && !c.directions.contains(flow.trafficDirection) { return false }
        if !c.eventTypes.isEmpty && !c.eventTypes.contains(where: { eventType(flow.eventType, $0) }) { return false }
        if !c.reply.isEmpty {
            // Hubble: a flow whose reply state is unknown matches neither true nor false.
            guard flow.hasIsReply, c.reply.contains(flow.isReply.value) else { return false }
        }
        if !c.nodeNames.isEmpty && !c.nodeNames.contains(where: { nodeName(flow.nodeName, pattern: $0) }) { return false }
        if !c.ipVersions.isEmpty && !c.ipVersions.contains(flow.ip.ipVersion) { return false }
        if !c.tcpFlags.isEmpty {
            guard case .tcp(let tcp) = flow.l4.protocol,
                c.tcpFlags.contains(where: { flagsSet($0, in: tcp.flags) })
            else { return false }
        }
        if !c.interfaces.isEmpty && !c.interfaces.contains(where: { interface(flow.interface, $0) }) { return false }
        if !c.encrypted.isEmpty && !c.encrypted.contains(flow.ip.encrypted) { return false }
        return true
    }

    static func ip(_ text: String, in prefixes: [IPPrefix]) -> Bool {
        guard !text.isEmpty, let address = FilterParser.parsePrefix(text)?.address else { return false }
        return prefixes.contains { $0.contains(address) }
    }

    static func pod(_ endpoint: Flow_Endpoint, _ selectors: [(namespace: String, prefix: String)]) -> Bool {
        guard !endpoint.podName.isEmpty else { return false }
        return selectors.contains { endpoint.namespace == $0.namespace && endpoint.podName.hasPrefix($0.prefix) }
    }

    static func ports(_ l4: Flow_Layer4) -> (source: UInt32, destination: UInt32)? {
        switch l4.protocol {
        case .tcp(let t): return (t.sourcePort, t.destinationPort)
        case .udp(let u): return (u.sourcePort, u.destinationPort)
        case .sctp(let s): return (s.sourcePort, s.destinationPort)
        default: return nil
        }
    }

    static func transport(_ l4: Flow_Layer4, is name: String) -> Bool {
        switch (l4.protocol, name) {
        case (.tcp, "tcp"), (.udp, "udp"), (.sctp, "sctp"): return true
        case (.icmpv4, "icmp"), (.icmpv4, "icmpv4"), (.icmpv6, "icmp"), (.icmpv6, "icmpv6"): return true
        default: return false
        }
    }

    static func eventType(_ type: Flow_CiliumEventType, _ filter: Flow_EventTypeFilter) -> Bool {
        // Type 0 is any type (Hubble's filterByEventType).
        (filter.type == 0 || type.type == filter.type) && (!filter.matchSubType || type.subType == filter.subType)
    }

    /// Hubble's node-name patterns: exact, or with `*` matching any run of characters.
    static func nodeName(_ name: String, pattern: String) -> Bool {
        guard pattern.contains("*") else { return name == pattern }
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
        var rest = Substring(name)
        for (i, part) in parts.enumerated() {
            if i == 0 {
                guard rest.hasPrefix(part) else { return false }
                rest = rest.dropFirst(part.count)
            } else if i == parts.count - 1 {
                return part.isEmpty || rest.hasSuffix(part)
            } else if let r = rest.range(of: part) {
                rest = rest[r.upperBound...]
            } else {
                return false
            }
        }
        return true
    }

    /// Every flag set in the filter is set on the packet.
    static func flagsSet(_ want: Flow_TCPFlags, in have: Flow_TCPFlags) -> Bool {
        (!want.fin || have.fin) && (!want.syn || have.syn) && (!want.rst || have.rst) && (!want.psh || have.psh)
            && (!want.ack || have.ack) && (!want.urg || have.urg) && (!want.ece || have.ece)
            && (!want.cwr || have.cwr) && (!want.ns || have.ns)
    }

    /// Name and index each match when given.
    static func interface(_ have: Flow_NetworkInterface, _ want: Flow_NetworkInterface) -> Bool {
        (want.name.isEmpty || want.name == have.name) && (want.index == 0 || want.index == have.index)
    }
}
