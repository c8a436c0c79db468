import ArgumentParser
import CVxmonABI
import Glibc
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive

// Inspection of the lab's maps, in the layouts of Cilium's CLI (`cilium bpf tunnel list`,
// `cilium identity list`, `cilium endpoint list`), and the policy map.

enum ListFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}

/// Options shared by the list commands.
struct ListOptions: ParsableArguments {
    @OptionGroup var labOptions: LabOptions

    @Option(help: "Only this node (default: every node).")
    var node: String?

    @Option(name: .shortAndLong, help: "Output format: text or json.")
    var output: ListFormat = .text

    /// The lab's topology and the maps of the selected nodes.
    func open(_ command: String) throws -> (LabTopology, [(LabTopology.Node, NodeMaps)]) {
        try Preflight.requirePrivileged(command)
        Libbpf.routeLogs()
        let lab = try labOptions.open()
        let topology = try lab.requireUp()
        let nodes = try node.map { [try topology.requireNode($0)] } ?? topology.nodes
        return (topology, try nodes.map { ($0, try NodeMaps(paths: lab.paths, node: $0.name)) })
    }
}

// MARK: - tunnel

struct Tunnel: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the tunnel maps (pod CIDR -> remote node).", subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List tunnel endpoint entries, as `cilium bpf tunnel list` does.", aliases: ["ls"])

        @OptionGroup var options: ListOptions

        func run() throws {
            let (_, nodes) = try options.open("tunnel list")
            // Cilium prints the prefix and the remote node as IP:key (the tunnel key is 0 here).
            let perNode = nodes.map { node, maps in
                (node.name, maps.tunnelEntries().map { ("\(formatIPv4($0.prefix)):0", "\(formatIPv4($0.remote)):0") })
            }
            switch options.output {
            case .json:
                let tables = perNode.map { name, rows in
                    (name, JSON.object(rows.map { ($0.0, JSON.array([.string($0.1)])) }))
                }
                print(options.node != nil ? tables[0].1.rendered : JSON.object(tables).rendered)
            case .text:
                for (i, (name, rows)) in perNode.enumerated() {
                    if options.node == nil {
                        if i > 0 { print("") }
                        print("Node: \(name)")
                    }
                    // cilium's TablePrinter: tabwriter(minwidth 5, padding 3), every cell tab-terminated.
                    var table = Table(["TUNNEL", "VALUE"], padLastColumn: true)
                    for row in rows { table.add([row.0, row.1]) }
                    print(table.render(), terminator: "")
                }
            }
        }
    }
}

// MARK: - endpoint

struct EndpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpoint", abstract: "Show the endpoint maps (local pods per node).", subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the pods each node delivers to, from its endpoint map.", aliases: ["ls"])

        @OptionGroup var options: ListOptions

        func run() throws {
            let (topology, nodes) = try options.open("endpoint list")
            var records: [JSON] = []
            var table = Table(["ENDPOINT", "IDENTITY", "POD", "NODE", "IPv4", "MAC", "LXC", "LXC MAC", "LXC IFINDEX"])
            for (node, maps) in nodes {
                for (ip, info) in maps.endpointEntries() {
                    let address = formatIPv4(ip)
                    let pod = topology.pods.first { $0.ip == address }
                    let podMAC = withUnsafeBytes(of: info.pod_mac) { formatMAC($0) }
                    let lxcMAC = withUnsafeBytes(of: info.lxc_mac) { formatMAC($0) }
                    records.append(
                        .object([
                            ("pod", .string(pod?.name ?? "")), ("node", .string(node.name)), ("ip", .string(address)),
                            ("mac", .string(podMAC)), ("lxc", .string(pod?.lxc ?? "")), ("lxc_mac", .string(lxcMAC)),
                            ("lxc_ifindex", .number(Int(info.lxc_ifindex))),
                            ("endpoint_id", .number(Int(info.endpoint_id))), ("identity", .number(Int(info.identity))),
                        ]))
                    table.add([
                        "\(info.endpoint_id)", "\(info.identity)", pod?.name ?? "?", node.name, address, podMAC,
                        pod?.lxc ?? "?", lxcMAC, "\(info.lxc_ifindex)",
                    ])
                }
            }
            switch options.output {
            case .json: print(JSON.array(records).rendered)
            case .text: print(table.render(), terminator: "")
            }
        }
    }
}

// MARK: - identity

struct IdentityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity", abstract: "Show the security identities the nodes know.", subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List identities (reserved ones and every pod in the ipcache), as `cilium identity list` does.",
            aliases: ["ls"])

        @OptionGroup var options: ListOptions

        func run() throws {
            let (topology, nodes) = try options.open("identity list")
            var identities: [UInt32: [String]] = [:]
            for (id, label) in ReservedIdentity.labels { identities[id] = [label] }
            for (_, maps) in nodes {
                for (ip, identity) in maps.ipcacheEntries() where identities[identity] == nil {
                    let pod = topology.pods.first { $0.ip == formatIPv4(ip) }
                    identities[identity] = pod?.labels.sorted() ?? ["unknown"]
                }
            }
            let sorted = identities.sorted { $0.key < $1.key }
            switch options.output {
            case .json:
                print(
                    JSON.array(
                        sorted.map {
                            .object([("id", .number(Int($0.key))), ("labels", .array($0.value.map(JSON.string)))])
                        }
                    ).rendered)
            case .text:
                var table = Table(["ID", "LABELS"])
                for (id, labels) in sorted {
                    for (i, label) in labels.enumerated() { table.add([i == 0 ? "\(id)" : "", label]) }
                }
                print(table.render(), terminator: "")
            }
        }
    }
}

// MARK: - policy

enum PolicyAction: String, EnumerableFlag {
    case allow
    case deny
}

struct Policy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add, remove and list policy rules (checked on delivery to the destination pod).",
        discussion: """
            A rule matches (source identity, destination identity[, protocol[, port]]); the most specific \
            rule decides, deny drops with Policy denied (133), no rule allows. Replies of tracked \
            connections bypass policy, as in Cilium. Rules live in the policy map of the destination \
            pod's node.
            """,
        subcommands: [Add.self, Remove.self, List.self])

    struct Rule: ParsableArguments {
        @OptionGroup var labOptions: LabOptions

        @Option(help: "Source: a pod name, pod IP or identity number (reserved names like world also work).")
        var from: String

        @Option(help: "Destination: a pod name, pod IP or pod identity.")
        var to: String

        @Option(help: "Protocol: tcp, udp, icmp, sctp, any or a number.")
        var proto: String = "any"

        @Option(help: "Destination port (tcp, udp and sctp only; default any).")
        var port: UInt16 = 0

        func validate() throws {
            guard let p = protocolNumber(proto) else { throw ValidationError("--proto: unknown protocol '\(proto)'") }
            if port != 0 && ![6, 17, 132].contains(p) {
                throw ValidationError("--port needs --proto tcp, udp or sctp")
            }
        }

        /// The policy key and the maps of the destination pod's node.
        func resolve() throws -> (vxmon_policy_key, LabTopology.Pod, NodeMaps, String) {
            try Preflight.requirePrivileged("policy")
            Libbpf.routeLogs()
            let lab = try labOptions.open()
            let topology = try lab.requireUp()
            let destination = try topology.requirePod(to, "--to")
            let source: UInt32
            var sourceName = from
            if let pod = topology.pod(from) {
                source = pod.identity
                sourceName = "\(pod.identity) (\(pod.name))"
            } else if let number = UInt32(from), number > 0 {
                source = number
            } else if let reserved = ReservedIdentity.labels.first(where: { $0.1 == from || $0.1 == "reserved:" + from }
            ) {
                source = reserved.0
                sourceName = "\(reserved.0) (\(reserved.1))"
            } else {
                throw CLIError("--from '\(from)' is neither a pod of lab '\(lab.name)' nor an identity")
            }
            let key = vxmon_policy_key(
                source: source, destination: destination.identity, proto: protocolNumber(proto)!, port: port)
            return (key, destination, try NodeMaps(paths: lab.paths, node: destination.node), sourceName)
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add (or replace) a rule.")

        @OptionGroup var rule: Rule

        @Flag(help: "Whether matching traffic is allowed or denied.")
        var action: PolicyAction

        func run() throws {
            let (key, destination, maps, sourceName) = try rule.resolve()
            try maps.setPolicy(
                source: key.src_identity, destination: key.dst_identity, proto: key.proto, port: key.dport,
                deny: action == .deny)
            print("\(action.rawValue) \(sourceName) -> \(describe(destination, key))")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a rule.", aliases: ["delete"])

        @OptionGroup var rule: Rule

        func run() throws {
            let (key, destination, maps, sourceName) = try rule.resolve()
            guard
                try maps.removePolicy(
                    source: key.src_identity, destination: key.dst_identity, proto: key.proto, port: key.dport)
            else {
                throw CLIError("no rule \(sourceName) -> \(describe(destination, key))")
            }
            print("removed \(sourceName) -> \(describe(destination, key))")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the rules of every node.", aliases: ["ls"])

        @OptionGroup var options: ListOptions

        func run() throws {
            let (topology, nodes) = try options.open("policy list")
            func name(_ identity: UInt32) -> String {
                if let pod = topology.pods.first(where: { $0.identity == identity }) {
                    return "\(identity) (\(pod.name))"
                }
                if let reserved = ReservedIdentity.labels.first(where: { $0.0 == identity }) {
                    return "\(identity) (\(reserved.1))"
                }
                return "\(identity)"
            }
            var table = Table(["NODE", "SOURCE", "DESTINATION", "PROTO", "PORT", "ACTION"])
            var records: [JSON] = []
            for (node, maps) in nodes {
                for (key, action) in maps.policyEntries() {
                    let verdict = action == UInt8(VXMON_POLICY_DENY) ? "deny" : "allow"
                    table.add([
                        node.name, name(key.src_identity), name(key.dst_identity), protocolName(key.proto),
                        key.dport == 0 ? "any" : "\(key.dport)", verdict,
                    ])
                    records.append(
                        .object([
                            ("node", .string(node.name)), ("src_identity", .number(Int(key.src_identity))),
                            ("dst_identity", .number(Int(key.dst_identity))), ("proto", .number(Int(key.proto))),
                            ("dport", .number(Int(key.dport))), ("action", .string(verdict)),
                        ]))
                }
            }
            switch options.output {
            case .json: print(JSON.array(records).rendered)
            case .text: print(table.render(), terminator: "")
            }
        }
    }
}

func protocolNumber(_ text: String) -> UInt8? {
    switch text.lowercased() {
    case "any", "all": 0
    case "icmp": 1
    case "tcp": 6
    case "udp": 17
    case "sctp": 132
    default: UInt8(text)
    }
}

func protocolName(_ number: UInt8) -> String {
    switch number {
    case 0: "any"
    case 1: "icmp"
    case 6: "tcp"
    case 17: "udp"
    case 132: "sctp"
    default: "\(number)"
    }
}

private func describe(_ key: vxmon_policy_key) -> String {
    "proto \(protocolName(key.proto)) port \(key.dport == 0 ? "any" : "\(key.dport)")"
}

/// "5487 (worker-pod1) proto icmp port any on node worker".
private func describe(_ destination: LabTopology.Pod, _ key: vxmon_policy_key) -> String {
    "\(destination.identity) (\(destination.name)) \(describe(key)) on node \(destination.node)"
}

// MARK: - Output helpers

/// Aligned columns like Go's text/tabwriter with minwidth 5, padding 3 and space padding (what
/// Cilium's CLI tables use). With `padLastColumn`, the last column is padded too (Cilium terminates
/// every cell with a tab, so its rows end in spaces).
struct Table {
    var rows: [[String]]
    var padLastColumn: Bool

    init(_ header: [String], padLastColumn: Bool = false) {
        rows = [header]
        self.padLastColumn = padLastColumn
    }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render(minWidth: Int = 5, padding: Int = 3) -> String {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: minWidth, count: columns)
        for row in rows {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count + padding) }
        }
        var out = ""
        for row in rows {
            for (i, cell) in row.enumerated() {
                out += cell
                if i < row.count - 1 || padLastColumn {
                    out += String(repeating: " ", count: widths[i] - cell.count)
                }
            }
            out += "\n"
        }
        return out
    }
}

/// A JSON value rendered like Go's json.MarshalIndent(v, "", "  ") (Cilium's `-o json`), keys in
/// the order given.
indirect enum JSON {
    case object([(String, JSON)])
    case array([JSON])
    case string(String)
    case number(Int)

    var rendered: String {
        var out = ""
        write(&out, indent: "")
        return out
    }

    private func write(_ out: inout String, indent: String) {
        let inner = indent + "  "
        switch self {
        case .object(let pairs):
            if pairs.isEmpty {
                out += "{}"
                return
            }
            out += "{\n"
            for (i, (key, value)) in pairs.enumerated() {
                out += inner + JSON.quote(key) + ": "
                value.write(&out, indent: inner)
                out += i < pairs.count - 1 ? ",\n" : "\n"
            }
            out += indent + "}"
        case .array(let values):
            if values.isEmpty {
                out += "[]"
                return
            }
            out += "[\n"
            for (i, value) in values.enumerated() {
                out += inner
                value.write(&out, indent: inner)
                out += i < values.count - 1 ? ",\n" : "\n"
            }
            out += indent + "]"
        case .string(let s): out += JSON.quote(s)
        case .number(let n): out += "\(n)"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "<": out += "\\u003c"
            case ">": out += "\\u003e"
            case "&": out += "\\u0026"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
