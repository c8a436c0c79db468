import FoundationEssentials
import VxmonCore
import VxmonWire

/// The lab's cluster: Cilium's seed topology (a three-node kind cluster in VXLAN mode) as network
/// namespaces. Everything is derived deterministically from the lab name and the pod count, and
/// persisted in `/run/vxmon/<lab>/lab.json`.
public struct LabTopology: Codable, Sendable, Equatable {
    /// Format version of lab.json.
    public var version = 1
    public var lab: String
    /// "creating" while `lab up` runs (and after it crashed), "up" once everything is in place.
    public var phase: String
    public var createdUnixSeconds: UInt64
    public var podsPerNode: Int
    public var underlayNamespace: String
    public var vxlanPort: UInt16
    public var nodes: [Node]
    public var pods: [Pod]

    public struct Node: Codable, Sendable, Equatable {
        public var name: String
        public var index: Int
        public var namespace: String
        /// Underlay address of eth0 (a /16 on the underlay bridge).
        public var ip: String
        public var prefixLength: Int
        public var mac: String
        /// The node's veth peer on the underlay bridge (in the underlay namespace).
        public var underlayPort: String
        public var podCIDR: String
        public var gateway: String
    }

    public struct Pod: Codable, Sendable, Equatable {
        public var name: String
        public var node: String
        public var namespace: String
        public var ip: String
        /// MAC of the pod's eth0.
        public var mac: String
        /// Node-side veth.
        public var lxc: String
        public var lxcMAC: String
        public var identity: UInt32
        public var endpointID: UInt16
        public var labels: [String]
    }

    public static let nodeNames = ["control-plane", "worker", "worker2"]
    public static let vxlanDevice = "cilium_vxlan"
    public static let podMTU = 1450

    /// Lab names become namespace-name prefixes: lowercase letters, digits and dashes.
    public static func validate(labName: String) throws {
        let ok =
            !labName.isEmpty && labName.count <= 32
            && labName.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
            && labName.utf8.first.map { $0 >= 0x61 && $0 <= 0x7a } == true
        if !ok {
            throw VxmonError(
                "invalid lab name '\(labName)': use up to 32 lowercase letters, digits and dashes, "
                    + "starting with a letter")
        }
    }

    /// The topology of lab `lab` with `podsPerNode` pods on each node.
    public static func make(lab: String, podsPerNode: Int, createdUnixSeconds: UInt64 = 0) -> LabTopology {
        var nodes: [Node] = []
        var pods: [Pod] = []
        var identities = Set<UInt32>()
        var endpointIDs = Set<UInt16>()
        for (index, name) in nodeNames.enumerated() {
            let host = 2 + index
            nodes.append(
                Node(
                    name: name, index: index, namespace: "\(lab)-\(name)", ip: "172.18.0.\(host)", prefixLength: 16,
                    // Docker's MAC for the address, as kind nodes have.
                    mac: "02:42:ac:12:00:\(hex2(host))", underlayPort: name,
                    podCIDR: "10.0.\(index).0/24", gateway: "10.0.\(index).1"))
            var lxcNames = Set<String>()
            for i in stride(from: 1, through: podsPerNode, by: 1) {
                let podName = "\(name)-pod\(i)"
                let octet = 9 + i  // .10, .11, ...
                let ip = "10.0.\(index).\(octet)"
                // Security identities are allocated from 256 in Cilium; a hash keeps them stable
                // across labs and pod counts, probing keeps them unique.
                var identity = 256 + fnv1a("identity/" + podName) % (65536 - 256)
                while !identities.insert(identity).inserted { identity = identity == 65535 ? 256 : identity + 1 }
                var endpointID = UInt16(1 + fnv1a("endpoint/" + podName) % 4095)
                while !endpointIDs.insert(endpointID).inserted { endpointID = endpointID == 4095 ? 1 : endpointID + 1 }
                var salt = 0
                var lxc = ""
                repeat {
                    lxc = "lxc" + hex8(fnv1a("lxc/\(podName)/\(salt)"))
                    salt += 1
                } while !lxcNames.insert(lxc).inserted
                pods.append(
                    Pod(
                        name: podName, node: name, namespace: "\(lab)-\(podName)", ip: ip,
                        // 0a:58 + the IPv4 address, as Kubernetes' bridge/ptp CNI plugins derive MACs.
                        mac: "0a:58:0a:00:\(hex2(index)):\(hex2(octet))",
                        lxc: lxc, lxcMAC: "0e:58:0a:00:\(hex2(index)):\(hex2(octet))",
                        identity: identity, endpointID: endpointID,
                        labels: ["k8s:app=\(podName)", "k8s:io.kubernetes.pod.namespace=default"]))
            }
        }
        return LabTopology(
            lab: lab, phase: "creating", createdUnixSeconds: createdUnixSeconds, podsPerNode: podsPerNode,
            underlayNamespace: "\(lab)-underlay", vxlanPort: 8472, nodes: nodes, pods: pods)
    }

    /// Every namespace of the lab, pods first (the order `lab down` deletes them in).
    public var namespaces: [String] { pods.map(\.namespace) + nodes.map(\.namespace) + [underlayNamespace] }

    public func node(named name: String) -> Node? { nodes.first { $0.name == name } }

    /// The node `name`, or an error listing the nodes.
    public func requireNode(_ name: String) throws -> Node {
        guard let node = node(named: name) else {
            throw VxmonError("lab '\(lab)' has no node '\(name)' (nodes: \(nodes.map(\.name).joined(separator: ", ")))")
        }
        return node
    }

    /// The pod `reference` (name, IP or identity), or an error listing the pods.
    public func requirePod(_ reference: String, _ what: String = "pod") throws -> Pod {
        guard let pod = pod(reference) else {
            let names = pods.map(\.name).joined(separator: ", ")
            throw VxmonError("\(what) '\(reference)' is not a pod of lab '\(lab)' (pods: \(names))")
        }
        return pod
    }
    public func pods(on node: String) -> [Pod] { pods.filter { $0.node == node } }

    /// A pod by name, by IP or by identity.
    public func pod(_ reference: String) -> Pod? {
        pods.first { $0.name == reference || $0.ip == reference || String($0.identity) == reference }
    }

    public func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    public static func decode(_ text: String) throws -> LabTopology {
        try JSONDecoder().decode(LabTopology.self, from: Data(text.utf8))
    }

    /// Namespace names this lab could have made with any pod count: used to find leftovers of a lab
    /// whose lab.json is gone, without touching another lab whose name shares a prefix.
    public static func isOwnNamespace(_ namespace: String, lab: String) -> Bool {
        guard namespace.hasPrefix(lab + "-") else { return false }
        let rest = namespace.dropFirst(lab.count + 1)
        if rest == "underlay" || nodeNames.contains(String(rest)) { return true }
        for node in nodeNames where rest.hasPrefix(node + "-pod") {
            let number = rest.dropFirst(node.count + 4)
            if !number.isEmpty && number.allSatisfy(\.isNumber) { return true }
        }
        return false
    }
}

/// FNV-1a, 32 bits: a tiny stable hash for deterministic names and numbers.
func fnv1a(_ s: String) -> UInt32 {
    var h: UInt32 = 0x811c_9dc5
    for b in s.utf8 {
        h ^= UInt32(b)
        h = h &* 0x0100_0193
    }
    return h
}

func hex2(_ v: Int) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[(v >> 4) & 0xf], digits[v & 0xf]])
}

func hex8(_ v: UInt32) -> String {
    (0..<4).map { hex2(Int((v >> (24 - 8 * UInt32($0))) & 0xff)) }.joined()
}

// MARK: - Address helpers

/// An IPv4 address in dotted form as its 32-bit value (host order: 10.0.1.2 = 0x0a000102).
public func parseIPv4(_ text: String) -> UInt32? {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { return nil }
    var value: UInt32 = 0
    for p in parts {
        guard let octet = UInt8(p) else { return nil }
        value = value << 8 | UInt32(octet)
    }
    return value
}

/// The dotted form of a 32-bit IPv4 value (host order).
public func formatIPv4(_ value: UInt32) -> String {
    "\(value >> 24).\((value >> 16) & 0xff).\((value >> 8) & 0xff).\(value & 0xff)"
}

/// `aa:bb:cc:dd:ee:ff` as 6 bytes.
public func parseMAC(_ text: String) -> [UInt8]? {
    let parts = text.split(separator: ":")
    guard parts.count == 6 else { return nil }
    let bytes = parts.compactMap { UInt8($0, radix: 16) }
    return bytes.count == 6 ? bytes : nil
}

public func formatMAC<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    bytes.map { hex2(Int($0)) }.joined(separator: ":")
}

extension LabTopology.Pod {
    /// What filters and recordings know of a pod.
    /// (`namespace` is the Kubernetes namespace Hubble shows, `default` for every lab pod; the pod's
    /// network namespace is another thing.)
    public var info: PodInfo {
        PodInfo(
            name: name, namespace: "default",
            ip: FilterParser.parseIP(Substring(ip)) ?? .v4(IPv4Address(rawValue: 0)), identity: identity, node: node,
            endpoint: endpointID, labels: labels)
    }
}
