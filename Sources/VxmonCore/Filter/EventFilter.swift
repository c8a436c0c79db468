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

/// One value of one filter flag: a test of one field of a `Flow`. The CLI's flags (`FilterParser`)
/// and Hubble's `FlowFilter` (the servers' compiler) both compile to these; `FilterMatcher` evaluates
/// them, each kind's test in its own file under `Terms/`.
public enum FlowTerm: Sendable {
    case ip(IPPrefix, FlowSide)
    /// A pod of the lab, matched by the address of its flow's side (see `PodSelector`).
    case pod(PodSelector, FlowSide)
    case port(UInt16, FlowSide)
    /// `--protocol`: the transport, or ARP by its EtherType.
    case transport(FlowTransport)
    case icmp
    case arp
    case identity(UInt32, FlowSide)
    case vni(UInt32)
    case observationPoint(ObservationPoint)
    case verdict(FlowVerdict)
    case dropReason(UInt8)
    /// The interface the datapath reported: its index (nil: any) and name (nil: any).
    case interface(index: UInt32?, name: String?)
    /// The node's name: exact, or with `*` matching any run of characters (Hubble's node patterns).
    case node(String)
    /// `--tcp-flags SYN,!ACK`: all of `set` set and all of `clear` clear.
    case tcpFlags(set: UInt16, clear: UInt16)
    /// Hubble's `traffic_direction`.
    case direction(TrafficDirection)
    /// Hubble's `is_reply`: a flow whose reply state is unknown matches neither value.
    case reply(Bool)
    /// Cilium's message type (nil: any) and its subtype (nil: any): Hubble's `event_type`.
    case eventType(UInt8?, subType: UInt8?)
    /// The IP version of the flow's stack: 4, 6, or 0 for none (Hubble's `ip_version`).
    case ipVersion(UInt8)
    /// The trace's encrypt bit (Hubble's `IP.encrypted`).
    case encrypted(Bool)
    /// Hubble's `uuid`: vxmon's flows carry no UUID, so no flow has this one.
    case uuid(String)
}

/// Names a lab pod: `name` in any namespace (the CLI's `--pod client`), `namespace/name`, or with
/// `prefix` every pod of the namespace whose name starts with `name` (Hubble's `source_pod`).
public struct PodSelector: Sendable, Equatable {
    public var namespace: String?
    public var name: String
    public var prefix: Bool

    public init(namespace: String?, name: String, prefix: Bool) {
        self.namespace = namespace
        self.name = name
        self.prefix = prefix
    }

    /// The CLI's form: `name` or `namespace/name`, exact.
    public init(cli text: String) {
        if let slash = text.firstIndex(of: "/") {
            self.init(namespace: String(text[..<slash]), name: String(text[text.index(after: slash)...]), prefix: false)
        } else {
            self.init(namespace: nil, name: text, prefix: false)
        }
    }

    /// As written on the command line.
    public var text: String { namespace.map { $0 + "/" + name } ?? name }

    public func matches(_ pod: PodInfo) -> Bool {
        if let namespace, pod.namespace != namespace { return false }
        return prefix ? pod.name.hasPrefix(name) : pod.name == name
    }
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
    /// Whose reading of the flow the terms test: the monitor's (the packet as the summary shows it) or
    /// Hubble's for a release (`flow.Flow`'s stack and `IP.source`).
    public var reading = FlowReading.monitor
    /// Interface names, for `--interface NAME` (shared with the renderers).
    public var names: InterfaceNames?

    public init() {}

    /// True when every event passes.
    public var isEmpty: Bool {
        types.isEmpty && fromEndpoints.isEmpty && toEndpoints.isEmpty && relatedEndpoints.isEmpty && clauses.isEmpty
    }

    /// The pods the filter names, as written.
    public var podSelectors: [PodSelector] {
        clauses.flatMap { $0.terms.compactMap { if case .pod(let s, _) = $0 { s } else { nil } } }
    }

    /// The pod names the filter uses, as written.
    public var podNames: [String] { podSelectors.map(\.text) }

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
}

/// Which reading of a flow a filter tests (see `Flow`): the monitor's, or Hubble's for a release.
public enum FlowReading: Sendable, Equatable {
    case monitor
    case hubble(CiliumRelease)
}
