import VxmonWire

/// An IPv4 or IPv6 prefix (`10.0.2.0/24`, `fd00::/64`, or one address).
public struct IPPrefix: Sendable, Equatable {
    public var address: IPAddress
    public var length: Int

    public init(address: IPAddress, length: Int) {
        self.address = address
        self.length = length
    }

    @inline(__always)
    public func contains(_ ip: IPAddress) -> Bool {
        switch (address, ip) {
        case (.v4(let p), .v4(let a)):
            if length == 0 { return true }
            let mask: UInt32 = length >= 32 ? ~0 : ~(UInt32.max >> UInt32(length))
            return p.rawValue & mask == a.rawValue & mask
        case (.v6(let p), .v6(let a)):
            if length == 0 { return true }
            if length <= 64 {
                let mask: UInt64 = length == 64 ? ~0 : ~(UInt64.max >> UInt64(length))
                return p.high & mask == a.high & mask
            }
            let mask: UInt64 = length >= 128 ? ~0 : ~(UInt64.max >> UInt64(length - 64))
            return p.high == a.high && p.low & mask == a.low & mask
        default:
            return false
        }
    }
}

/// Which end of a flow a filter looks at: `--ip` either, `--from-ip` the source, `--to-ip` the destination.
public enum FlowSide: Sendable {
    case either
    case source
    case destination
}

/// One value of one filter flag.
public enum FlowTerm: Sendable {
    case ip(IPPrefix, FlowSide)
    case port(UInt16, FlowSide)
    /// `--protocol`: the transport, or ARP by its EtherType.
    case transport(FlowTransport)
    case icmp
    case arp
    case identity(UInt32, FlowSide)
    /// A pod of the lab, resolved to its address through the filter's pod table.
    case pod(String, FlowSide)
    case vni(UInt32)
    case observationPoint(ObservationPoint)
    case verdict(FlowVerdict)
    case dropReason(UInt8)
    case interfaceIndex(UInt32)
    case interfaceName(String)
    case node(String)
    /// `--tcp-flags SYN,!ACK`: all of `set` set and all of `clear` clear.
    case tcpFlags(set: UInt16, clear: UInt16)
}

/// One filter flag's values (OR), possibly negated with `--not`.
public struct FlowClause: Sendable {
    public var flag: String
    public var negated: Bool
    public var terms: [FlowTerm]

    public init(flag: String, negated: Bool, terms: [FlowTerm]) {
        self.flag = flag
        self.negated = negated
        self.terms = terms
    }
}

/// What a lab pod is, for `--pod`: learned from the lab, or from a recording's `pod` metadata.
public struct PodInfo: Sendable, Equatable {
    public var name: String
    public var namespace: String
    public var ip: IPAddress
    public var identity: UInt32
    public var node: String
    /// The pod's endpoint ID on its node (0: unknown, as in recordings made before pod records had it).
    public var endpoint: UInt16
    /// Its identity's labels (`k8s:app=...`), as Hubble lists them; empty when unknown.
    public var labels: [String]

    public init(
        name: String, namespace: String = "default", ip: IPAddress, identity: UInt32, node: String, endpoint: UInt16 = 0,
        labels: [String] = []
    ) {
        self.name = name
        self.namespace = namespace
        self.ip = ip
        self.identity = identity
        self.node = node
        self.endpoint = endpoint
        self.labels = labels
    }
}

extension PodInfo {
    /// The metadata record a recording carries for a pod:
    /// `pod=name=N,namespace=NS,ip=IP,identity=ID,node=NODE[,endpoint=EP][,labels=L1;L2...]` (labels
    /// last, joined by `;`: they hold `=` themselves).
    public var metadataValue: String {
        let out = OutputBuffer(capacity: 96)
        out.ip(ip)
        return "name=\(name),namespace=\(namespace),ip=\(out.string),identity=\(identity),node=\(node)"
            + (endpoint != 0 ? ",endpoint=\(endpoint)" : "")
            + (labels.isEmpty ? "" : ",labels=" + labels.joined(separator: ";"))
    }

    /// Reads a `pod` metadata record; nil for other keys or a value that does not name a pod.
    public init?(metadataKey key: String, value: String) {
        guard key == "pod" else { return nil }
        var fields: [Substring: Substring] = [:]
        for item in value.split(separator: ",") {
            guard let eq = item.firstIndex(of: "=") else { return nil }
            fields[item[..<eq]] = item[item.index(after: eq)...]
        }
        guard let name = fields["name"], !name.isEmpty, let ipText = fields["ip"],
            let ip = FilterParser.parseIP(ipText)
        else { return nil }
        self.init(
            name: String(name), namespace: fields["namespace"].map(String.init) ?? "default", ip: ip,
            identity: fields["identity"].flatMap { UInt32($0) } ?? 0, node: fields["node"].map(String.init) ?? "",
            endpoint: fields["endpoint"].flatMap { UInt16($0) } ?? 0,
            labels: fields["labels"].map { $0.split(separator: ";").prefix(64).map(String.init) } ?? [])
    }
}

/// Which events to keep: Cilium's monitor filters (`--type`, `--from`, `--to`, `--related-to`) and
/// Hubble-like flow filters (the values of one flag are alternatives, different flags must all hold,
/// `--not` negates the next flag). Address, port and protocol filters look at the stack the summary
/// shows (the inner frame of a tunnel packet) unless `outer` is set.
public struct EventFilter: Sendable {
    /// `-t/--type`: Cilium's message types (trace-sock and unknown types pass, as in Cilium).
    public var types: [MessageType] = []
    /// `--from`, `--to`, `--related-to`: endpoint IDs, with Cilium's per-type meaning.
    public var fromEndpoints: [UInt16] = []
    public var toEndpoints: [UInt16] = []
    public var relatedEndpoints: [UInt16] = []
    public var clauses: [FlowClause] = []
    /// Match addresses, ports and protocols on the outer headers of tunnel packets.
    public var outer = false
    /// Pods by name (and `namespace/name`).
    public private(set) var pods: [String: PodInfo] = [:]
    /// Interface names, for `--interface NAME` (shared with the renderers).
    public var names: InterfaceNames?

    public init() {}

    /// True when every event passes.
    public var isEmpty: Bool {
        types.isEmpty && fromEndpoints.isEmpty && toEndpoints.isEmpty && relatedEndpoints.isEmpty && clauses.isEmpty
    }

    /// True when any flag names a pod.
    public var usesPods: Bool {
        clauses.contains { $0.terms.contains { if case .pod = $0 { true } else { false } } }
    }

    /// The pod names the filter uses.
    public var podNames: [String] {
        clauses.flatMap { $0.terms.compactMap { if case .pod(let n, _) = $0 { n } else { nil } } }
    }

    public mutating func learn(_ pod: PodInfo) {
        pods[pod.name] = pod
        pods[pod.namespace + "/" + pod.name] = pod
    }

    /// The node names the filter's `--node` flags use, negated or not.
    public var nodeNames: [String] {
        clauses.flatMap { $0.terms.compactMap { if case .node(let n) = $0 { n } else { nil } } }
    }

    /// The nodes whose events can pass the `--node` flags, in the order given: those of a `--node` that
    /// is not negated, less those of a negated one; nil when no `--node` restricts them (none, or only
    /// negated ones). A live reader need read only these: it then emits what replay would.
    public var nodesToRead: [String]? {
        var wanted: [String]?
        var excluded: Set<String> = []
        for clause in clauses {
            for case .node(let name) in clause.terms {
                if clause.negated {
                    excluded.insert(name)
                } else if !(wanted?.contains(name) ?? false) {
                    wanted = (wanted ?? []) + [name]
                }
            }
        }
        return wanted.map { $0.filter { !excluded.contains($0) } }
    }

    /// The flags that can match only packets seen on the underlay (VXLAN/Geneve packets as they cross
    /// the nodes' eth0): a `--vni`, `--outer`, an `--observation-point` of only from-network. Without
    /// underlay traces, a filter that needs them matches nothing.
    public var underlayOnlyFlags: [String] {
        var flags: [String] = []
        for clause in clauses where !clause.negated {
            if clause.terms.contains(where: { if case .vni = $0 { true } else { false } }) {
                flags.append(clause.flag)
            } else if clause.flag == "--observation-point",
                clause.terms.allSatisfy({ if case .observationPoint(.fromNetwork) = $0 { true } else { false } })
            {
                flags.append(clause.flag + " from-network")
            }
        }
        if outer { flags.append("--outer") }
        return flags
    }

    /// Cilium's `match(type, src, dst)`; trace-sock and unknown types are not filtered, as in Cilium.
    func monitorMatch(_ event: borrowing Event) -> Bool {
        let src: UInt16
        let dst: UInt16
        switch event.message {
        case .traceSock, .unknown: return true
        case .trace(let t):
            src = t.header.source
            dst = t.destinationID
        case .drop(let d):
            src = d.header.source
            dst = UInt16(truncatingIfNeeded: d.destinationID)
        case .debug(let m):
            src = m.header.source
            dst = 0
        case .capture(let c):
            src = c.header.source
            dst = 0
        case .policyVerdict(let p):
            src = p.header.source
            dst = UInt16(truncatingIfNeeded: p.remoteIdentity)
        case .recorder:
            src = 0
            dst = 0
        }
        if !types.isEmpty && !types.contains(event.type) { return false }
        if !fromEndpoints.isEmpty && !fromEndpoints.contains(src) { return false }
        if !toEndpoints.isEmpty && !toEndpoints.contains(dst) { return false }
        if !relatedEndpoints.isEmpty && !relatedEndpoints.contains(src) && !relatedEndpoints.contains(dst) {
            return false
        }
        return true
    }
}

/// An `EventFilter` compiled for the per-event path: its terms in one flat buffer of plain values
/// (pods resolved to their addresses, names to indexes), so matching an event neither copies the
/// filter nor retains anything. Built again whenever the filter changes.
final class FilterMatcher {
    enum Kind: UInt8 {
        case ip, port, transport, icmp, arp, identity, vni, observationPoint, verdict, dropReason
        case interfaceIndex, interfaceName, node, tcpFlags, never
    }

    struct Term {
        var kind: Kind
        var side: FlowSide
        var prefix: IPPrefix
        var value: UInt32
        var value2: UInt32
    }

    private let filter: EventFilter
    private let terms: UnsafeMutableBufferPointer<Term>
    /// One past each clause's last term, and whether the clause is negated.
    private let clauseEnds: [Int]
    private let negated: [Bool]
    private let strings: [String]
    private let hasMonitorPart: Bool

    init(_ filter: EventFilter) {
        self.filter = filter
        var list: [Term] = []
        var ends: [Int] = []
        var negated: [Bool] = []
        var strings: [String] = []
        let nothing = IPPrefix(address: .v4(IPv4Address(rawValue: 0)), length: 0)
        func term(_ kind: Kind, _ side: FlowSide = .either, prefix: IPPrefix? = nil, _ value: UInt32 = 0, _ value2: UInt32 = 0) -> Term {
            Term(kind: kind, side: side, prefix: prefix ?? nothing, value: value, value2: value2)
        }
        for clause in filter.clauses {
            for t in clause.terms {
                switch t {
                case .ip(let p, let side): list.append(term(.ip, side, prefix: p))
                case .port(let port, let side): list.append(term(.port, side, UInt32(port)))
                case .transport(let tr): list.append(term(.transport, .either, UInt32(tr.rawValue)))
                case .icmp: list.append(term(.icmp))
                case .arp: list.append(term(.arp))
                case .identity(let id, let side): list.append(term(.identity, side, id))
                case .pod(let name, let side):
                    if let pod = filter.pods[name] {
                        let length: Int
                        switch pod.ip {
                        case .v4: length = 32
                        case .v6: length = 128
                        }
                        list.append(term(.ip, side, prefix: IPPrefix(address: pod.ip, length: length)))
                    } else {
                        list.append(term(.never))
                    }
                case .vni(let v): list.append(term(.vni, .either, v))
                case .observationPoint(let p): list.append(term(.observationPoint, .either, UInt32(p.rawValue)))
                case .verdict(let v): list.append(term(.verdict, .either, UInt32(v.rawValue)))
                case .dropReason(let r): list.append(term(.dropReason, .either, UInt32(r)))
                case .interfaceIndex(let i): list.append(term(.interfaceIndex, .either, i))
                case .interfaceName(let name):
                    strings.append(name)
                    list.append(term(.interfaceName, .either, UInt32(strings.count - 1)))
                case .node(let name):
                    strings.append(name)
                    list.append(term(.node, .either, UInt32(strings.count - 1)))
                case .tcpFlags(let set, let clear): list.append(term(.tcpFlags, .either, UInt32(set), UInt32(clear)))
                }
            }
            ends.append(list.count)
            negated.append(clause.negated)
        }
        terms = .allocate(capacity: max(list.count, 1))
        _ = terms.initialize(from: list)
        clauseEnds = ends
        self.negated = negated
        self.strings = strings
        hasMonitorPart =
            !filter.types.isEmpty || !filter.fromEndpoints.isEmpty || !filter.toEndpoints.isEmpty
            || !filter.relatedEndpoints.isEmpty
    }

    deinit { terms.deallocate() }

    /// Whether the event at `event` passes (the event is read in place, not copied).
    func matches(_ event: UnsafePointer<Event>) -> Bool {
        if hasMonitorPart && !filter.monitorMatch(event.pointee) { return false }
        var start = 0
        for (c, end) in clauseEnds.enumerated() {
            var any = false
            var i = start
            while i < end {
                if matches(terms[i], event) {
                    any = true
                    break
                }
                i += 1
            }
            if any == negated[c] { return false }
            start = end
        }
        return true
    }

    @inline(__always)
    private static func side<T>(_ side: FlowSide, _ source: T?, _ destination: T?, _ test: (T) -> Bool) -> Bool {
        switch side {
        case .either: (source.map(test) ?? false) || (destination.map(test) ?? false)
        case .source: source.map(test) ?? false
        case .destination: destination.map(test) ?? false
        }
    }

    private func matches(_ t: Term, _ event: UnsafePointer<Event>) -> Bool {
        let outer = filter.outer || !event.pointee.flow.primaryIsInner
        switch t.kind {
        case .ip:
            let (s, d) = outer ? (event.pointee.flow.outer.source, event.pointee.flow.outer.destination)
                : (event.pointee.flow.inner.source, event.pointee.flow.inner.destination)
            return Self.side(t.side, s, d) { t.prefix.contains($0) }
        case .port:
            let transport = outer ? event.pointee.flow.outer.transport : event.pointee.flow.inner.transport
            guard transport.hasPorts else { return false }
            let (s, d) = outer ? (event.pointee.flow.outer.sourcePort, event.pointee.flow.outer.destinationPort)
                : (event.pointee.flow.inner.sourcePort, event.pointee.flow.inner.destinationPort)
            return Self.side(t.side, s, d) { UInt32($0) == t.value }
        case .transport:
            let transport = outer ? event.pointee.flow.outer.transport : event.pointee.flow.inner.transport
            return UInt32(transport.rawValue) == t.value
        case .icmp:
            let transport = outer ? event.pointee.flow.outer.transport : event.pointee.flow.inner.transport
            return transport == .icmpv4 || transport == .icmpv6
        case .arp:
            let (eth, type) = outer ? (event.pointee.flow.outer.hasEthernet, event.pointee.flow.outer.etherType)
                : (event.pointee.flow.inner.hasEthernet, event.pointee.flow.inner.etherType)
            return eth && type == 0x0806
        case .identity:
            return Self.side(t.side, event.pointee.flow.sourceIdentity, event.pointee.flow.destinationIdentity) { $0 == t.value }
        case .vni:
            return event.pointee.flow.tunnel?.vni == t.value
        case .observationPoint:
            return event.pointee.flow.observationPoint.map { UInt32($0.rawValue) == t.value } ?? false
        case .verdict:
            return UInt32(event.pointee.flow.verdict.rawValue) == t.value
        case .dropReason:
            return event.pointee.flow.dropReason.map { UInt32($0) == t.value } ?? false
        case .interfaceIndex:
            return event.pointee.flow.ifindex == t.value
        case .interfaceName:
            guard let ifindex = event.pointee.flow.ifindex, let names = filter.names else { return false }
            return names.name(ifindex, node: event.pointee.flow.node) == strings[Int(t.value)]
        case .node:
            return event.pointee.flow.node == strings[Int(t.value)]
        case .tcpFlags:
            let (transport, flags) = outer ? (event.pointee.flow.outer.transport, event.pointee.flow.outer.tcpFlags)
                : (event.pointee.flow.inner.transport, event.pointee.flow.inner.tcpFlags)
            let set = UInt16(truncatingIfNeeded: t.value)
            let clear = UInt16(truncatingIfNeeded: t.value2)
            return transport == .tcp && flags & set == set && flags & clear == 0
        case .never:
            return false
        }
    }
}
