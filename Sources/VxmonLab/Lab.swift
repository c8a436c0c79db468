import CVxmonABI
import Glibc
import VxmonBPF
import VxmonLive

/// The lab: the seed's three-node cluster as network namespaces, vxmon's datapath loaded once per
/// node (separate maps per node) and attached inside each node's namespace, pinned under
/// /sys/fs/bpf/vxmon/<lab>/<node>/ so the lab outlives the process that built it.
///
/// Nothing is ever added to the root namespace: links are created inside the lab's namespaces
/// (`ip -n NS link add ... peer ... netns OTHER`).
public final class Lab {
    /// The lab lock while `up` holds it (its own cleanup calls `down`, which must not wait for it).
    private var heldLock: LabLock?
    public static let defaultName = "vxmon"
    /// Default datapath settings written to every node's config.
    public static let captureLength: UInt32 = 128
    public static let overlayCaptureLength: UInt32 = 192
    /// Ring buffer: wake the reader once per this many bytes written per CPU and node (1/16 of the
    /// 16 MiB ring; the reader drains it every 10 ms anyway, so at most rates nothing wakes it).
    public static let ringWakeupBytes: UInt32 = 1 << 20

    public let name: String
    public let paths: LabPaths
    /// Progress lines (stderr in the CLI).
    public var log: (String) -> Void

    public init(name: String, log: @escaping (String) -> Void = { _ in }) throws {
        try LabTopology.validate(labName: name)
        self.name = name
        paths = LabPaths(lab: name)
        self.log = log
    }

    /// The lab name from `--lab`, else $VXMON_LAB, else "vxmon".
    public static func resolveName(_ option: String?) -> String {
        if let option, !option.isEmpty { return option }
        if let env = getenv("VXMON_LAB").map({ String(cString: $0) }), !env.isEmpty { return env }
        return defaultName
    }

    // MARK: State

    /// What exists of the lab.
    public enum State {
        /// Nothing of it exists.
        case down
        /// lab.json says up and every namespace and pin is there.
        case up(LabTopology)
        /// Something exists but not a complete lab (a crash, a half-finished `lab up`, a reboot of
        /// bpffs): these leftovers.
        case stale([String])
    }

    /// The recorded topology, if lab.json can be read.
    public func recordedTopology() -> LabTopology? {
        guard let text = try? FileSystem.read(paths.stateFile) else { return nil }
        return try? LabTopology.decode(text)
    }

    /// Every namespace, pin directory and state directory of this lab that exists.
    public func leftovers() -> [String] {
        var items: [String] = []
        let existing = Set(NetworkNamespace.list())
        var namespaces = recordedTopology()?.namespaces.filter(existing.contains) ?? []
        for ns in existing.sorted() where LabTopology.isOwnNamespace(ns, lab: name) && !namespaces.contains(ns) {
            namespaces.append(ns)
        }
        items += namespaces.map { "netns \($0)" }
        if FileSystem.exists(paths.pinDirectory) { items.append(paths.pinDirectory) }
        if FileSystem.exists(paths.stateDirectory) { items.append(paths.stateDirectory) }
        return items
    }

    public func state() -> State {
        if let topology = recordedTopology(), topology.phase == "up",
            topology.namespaces.allSatisfy(NetworkNamespace.exists),
            topology.nodes.allSatisfy({ FileSystem.exists(paths.map($0.name, DatapathNames.config)) })
        {
            return .up(topology)
        }
        let items = leftovers()
        return items.isEmpty ? .down : .stale(items)
    }

    /// The topology of a lab that is up, or a one-line error saying how to get there.
    public func requireUp() throws -> LabTopology {
        switch state() {
        case .up(let topology): return topology
        case .down:
            throw VxmonError("lab '\(name)' is not up: run `vxmon lab up\(labFlag)` first")
        case .stale:
            throw VxmonError(
                "lab '\(name)' is incomplete (left over from a crash or an interrupted `lab up`): "
                    + "run `vxmon lab down\(labFlag)` and `vxmon lab up\(labFlag)`")
        }
    }

    var labFlag: String { name == Lab.defaultName ? "" : " --lab \(name)" }

    // MARK: Up

    /// Builds the lab. A stale lab of the same name is cleaned first; a lab that is up is an error.
    /// On failure everything made so far is removed again.
    /// `traceUnderlay`: the nodes' eth0 programs also emit from-network traces of VXLAN packets
    /// (what Cilium's bpf_host does where it is attached to the native device).
    @discardableResult
    public func up(podsPerNode: Int = 2, objectPath: String, traceUnderlay: Bool = false) throws -> LabTopology {
        guard (1...200).contains(podsPerNode) else { throw VxmonError("--pods must be between 1 and 200") }
        // One command at a time changes a lab: a second `lab up` or `lab down` waits here.
        let lock = try LabLock(lab: name, log: log)
        heldLock = lock
        defer { heldLock = nil }
        // Before anything is built or cleaned: a pin directory someone else made is never used.
        try paths.checkPinDirectories()
        switch state() {
        case .up(let topology):
            throw VxmonError(
                "lab '\(name)' is already up (\(topology.pods.count) pods): "
                    + "`vxmon lab down\(labFlag)` first to rebuild it"
            )
        case .stale(let items):
            log("lab '\(name)': cleaning leftovers of an earlier run: \(items.joined(separator: ", "))")
            try down()
        case .down:
            break
        }

        var topology = LabTopology.make(
            lab: name, podsPerNode: podsPerNode, createdUnixSeconds: UInt64(time(nil)))
        try FileSystem.makeDirectories(paths.stateDirectory)
        // Written before anything is created, so a crash leaves a list of what to clean.
        try FileSystem.writeAtomically(paths.stateFile, try topology.encoded())
        do {
            try buildNetwork(topology)
            // The first node's object creates the lab's one event ring; the others reuse it.
            var ring: BPFMap?
            for (index, node) in topology.nodes.enumerated() {
                let created = try loadDatapath(
                    topology, node: node, index: index, objectPath: objectPath, sharedRing: ring,
                    traceUnderlay: traceUnderlay)
                if ring == nil { ring = created }
            }
        } catch {
            log("lab '\(name)': \(error); removing what was built")
            _ = try? down()
            throw error
        }
        topology.phase = "up"
        try FileSystem.writeAtomically(paths.stateFile, try topology.encoded())
        return topology
    }

    private func ip(_ arguments: String...) throws {
        try Shell.run(["ip"] + arguments.flatMap { $0.split(separator: " ").map(String.init) })
    }

    /// Creates a namespace with IPv6 off (router solicitations and MLD would otherwise be dropped
    /// noisily by the datapath) and loopback up.
    private func addNamespace(_ namespace: String) throws {
        try ip("netns add \(namespace)")
        try NetworkNamespace.run(in: namespace) {
            try NetworkNamespace.setSysctl("net.ipv6.conf.all.disable_ipv6", "1")
            try NetworkNamespace.setSysctl("net.ipv6.conf.default.disable_ipv6", "1")
        }
        try ip("-n \(namespace) link set lo up")
    }

    private func buildNetwork(_ topology: LabTopology) throws {
        let underlay = topology.underlayNamespace
        log("lab '\(name)': underlay \(underlay) with bridge br0")
        try addNamespace(underlay)
        try ip("-n \(underlay) link add br0 type bridge")
        try ip("-n \(underlay) link set br0 up")

        for node in topology.nodes {
            let ns = node.namespace
            log(
                "lab '\(name)': node \(node.name) (\(ns)) eth0 \(node.ip)/\(node.prefixLength), "
                    + "pod CIDR \(node.podCIDR)"
            )
            try addNamespace(ns)
            try ip(
                "-n \(ns) link add eth0 address \(node.mac) type veth peer name \(node.underlayPort) netns \(underlay)")
            try ip("-n \(underlay) link set \(node.underlayPort) master br0 up")
            try ip("-n \(ns) addr add \(node.ip)/\(node.prefixLength) dev eth0")
            try ip("-n \(ns) link set eth0 up")
            try ip(
                "-n \(ns) link add \(LabTopology.vxlanDevice) type vxlan external "
                    + "dstport \(topology.vxlanPort) nolearning"
            )
            try ip("-n \(ns) link set \(LabTopology.vxlanDevice) up")

            for pod in topology.pods(on: node.name) {
                log("lab '\(name)':   pod \(pod.name) \(pod.ip) \(pod.mac) via \(pod.lxc) identity \(pod.identity)")
                try addNamespace(pod.namespace)
                try ip(
                    "-n \(ns) link add \(pod.lxc) address \(pod.lxcMAC) type veth "
                        + "peer name eth0 address \(pod.mac) netns \(pod.namespace)"
                )
                try ip("-n \(ns) link set \(pod.lxc) up")
                try ip("-n \(pod.namespace) addr add \(pod.ip)/32 dev eth0")
                try ip("-n \(pod.namespace) link set eth0 mtu \(LabTopology.podMTU) up")
                try ip("-n \(pod.namespace) route add default via \(node.gateway) dev eth0 onlink")
            }
        }
    }

    /// Loads the object for one node (with the lab's event ring, if one exists already), pins it,
    /// attaches it inside the node and fills its maps. Returns the node's event ring.
    private func loadDatapath(
        _ topology: LabTopology, node: LabTopology.Node, index: Int, objectPath: String, sharedRing: BPFMap?,
        traceUnderlay: Bool
    ) throws -> BPFMap {
        let object = try BPFObject(path: objectPath)
        defer { object.close() }
        if let sharedRing { try object.reuseMap(DatapathNames.ringEvents, fd: sharedRing.fd) }
        try object.load()
        let ring = try BPFMap(duplicating: try object.mapFD(DatapathNames.ringEvents), name: DatapathNames.ringEvents)
        try paths.makePinDirectories(node: node.name)
        try object.pinMaps(in: paths.mapPins(node.name))
        try object.pinPrograms(in: paths.programPins(node.name))

        let pods = topology.pods(on: node.name)
        var programs: [(interface: String, programFD: Int32)] = []
        let fromContainer = try object.programFD(DatapathNames.fromContainer)
        for pod in pods { programs.append((pod.lxc, fromContainer)) }
        programs.append((LabTopology.vxlanDevice, try object.programFD(DatapathNames.fromOverlay)))
        programs.append(("eth0", try object.programFD(DatapathNames.fromNetwork)))
        let attachments = try TCAttachment.attach(in: node.namespace, programs)
        log(
            "lab '\(name)': \(node.name): attached \(DatapathNames.fromContainer) to \(pods.count) lxc, "
                + "\(DatapathNames.fromOverlay) to \(LabTopology.vxlanDevice), \(DatapathNames.fromNetwork) to eth0")

        let maps = try NodeMaps(paths: paths, node: node.name)
        var config = vxmon_config()
        config.vxlan_ifindex = UInt32(attachments.first { $0.interface == LabTopology.vxlanDevice }!.ifindex)
        config.events_mode = UInt32(VXMON_EVENTS_OFF)
        config.cap_len = Lab.captureLength
        config.cap_len_overlay = Lab.overlayCaptureLength
        config.ring_wakeup_bytes = Lab.ringWakeupBytes
        config.node_ip = (parseIPv4(node.ip) ?? 0).bigEndian
        config.node_index = UInt32(index)
        config.abi_version = UInt32(VXMON_ABI_VERSION)
        config.flags = traceUnderlay ? UInt32(VXMON_CFG_TRACE_UNDERLAY) : 0
        try maps.writeConfig(config)

        for pod in pods {
            var info = vxmon_endpoint_info()
            info.lxc_ifindex = UInt32(attachments.first { $0.interface == pod.lxc }!.ifindex)
            info.identity = pod.identity
            info.endpoint_id = pod.endpointID
            info.pod_mac = macTuple(parseMAC(pod.mac)!)
            info.lxc_mac = macTuple(parseMAC(pod.lxcMAC)!)
            try maps.setEndpoint(ip: parseIPv4(pod.ip)!, info)
        }
        // Every pod of the cluster, plus the nodes as Cilium's ipcache has them (host, remote-node).
        for pod in topology.pods { try maps.setIPCache(ip: parseIPv4(pod.ip)!, identity: pod.identity) }
        for other in topology.nodes {
            try maps.setIPCache(
                ip: parseIPv4(other.ip)!,
                identity: other.name == node.name ? ReservedIdentity.host : ReservedIdentity.remoteNode)
        }
        for other in topology.nodes where other.name != node.name {
            let cidr = other.podCIDR.split(separator: "/")
            try maps.setTunnel(
                prefix: parseIPv4(String(cidr[0]))!, length: UInt32(cidr[1])!, remote: parseIPv4(other.ip)!)
        }
        for attachment in attachments { attachment.keep() }
        return ring
    }

    // MARK: Down

    /// How long `lab down` waits for the kernel to free the lab's programs and maps once its
    /// namespaces and pins are gone (a namespace is destroyed after its last user lets go, and then
    /// asynchronously).
    public static let releaseWaitSeconds: Double = 15

    /// Removes every namespace, pin and state file of the lab (also of a stale one), then checks that
    /// they are gone: no namespace of the lab listed, no pin directory, no state directory, and every
    /// program and map the pins named freed by the kernel (which also means the namespaces, and the
    /// links the programs were attached to, are destroyed). Throws what is still there. Returns what
    /// was removed.
    @discardableResult
    public func down() throws -> [String] {
        let lock = heldLock == nil ? try LabLock(lab: name, log: log) : nil
        defer { withExtendedLifetime(lock) {} }
        let items = leftovers()
        let existing = Set(NetworkNamespace.list())
        var failures: [String] = []
        var namespaces = recordedTopology()?.namespaces ?? []
        for ns in existing.sorted() where LabTopology.isOwnNamespace(ns, lab: name) && !namespaces.contains(ns) {
            namespaces.append(ns)
        }
        // A pin directory someone other than root could change is not used, not even to remove it.
        var pinsUsable = true
        do { try paths.checkPinDirectories() } catch {
            failures.append("\(error)")
            pinsUsable = false
        }
        // What the kernel must have freed at the end, and which namespaces (by inode) to look for in
        // processes if it has not.
        let pinned = pinsUsable ? PinnedObject.collect(under: paths.pinDirectory) : []
        let namespaceInodes = Dictionary(
            namespaces.compactMap { ns -> (ino_t, String)? in
                var st = stat()
                return stat(NetworkNamespace.path(ns), &st) == 0 ? (st.st_ino, ns) : nil
            }, uniquingKeysWith: { first, _ in first })
        // The agent first (it would switch events on for its clients), then events off, so a monitor
        // still attached sees the end cleanly.
        HubbleDaemon.stop(paths)
        AgentDaemon.stop(paths)
        if pinsUsable, let topology = recordedTopology() {
            for node in topology.nodes {
                try? NodeMaps(paths: paths, node: node.name).setEventsMode(UInt32(VXMON_EVENTS_OFF))
            }
        }
        for ns in namespaces where existing.contains(ns) {
            do { try Shell.run(["ip", "netns", "del", ns]) } catch { failures.append("\(error)") }
        }
        if pinsUsable { FileSystem.removeTree(paths.pinDirectory) }
        FileSystem.removeTree(paths.stateDirectory)

        // What was removed must be gone.
        let remaining = NetworkNamespace.list().filter {
            namespaces.contains($0) || LabTopology.isOwnNamespace($0, lab: name)
        }
        if !remaining.isEmpty { failures.append("namespaces still there: \(remaining.joined(separator: ", "))") }
        for path in (pinsUsable ? [paths.pinDirectory] : []) + [paths.stateDirectory] where FileSystem.exists(path) {
            failures.append("\(path) is still there after removing it")
        }
        let loaded = waitUntilFreed(pinned)
        if !loaded.isEmpty { failures.append(stillLoadedMessage(loaded, namespaceInodes)) }
        if let reader = MonitorLock.removeIfFree(paths: paths) {
            failures.append("a reader\(reader > 0 ? " (pid \(reader))" : "") still holds the lab's reader lock")
        }
        lock?.removeFile()
        // The shared parents go when the last lab goes (rmdir fails while another lab uses them).
        if pinsUsable { rmdir(LabPaths.pinRoot) }
        rmdir(LabPaths.lockDirectory)
        rmdir(LabPaths.stateRoot)
        if !failures.isEmpty { throw VxmonError("lab '\(name)': \(failures.joined(separator: "; "))") }
        return items
    }

    /// Waits (up to `releaseWaitSeconds`) until the kernel has freed every one of `objects`; returns
    /// those it still has.
    private func waitUntilFreed(_ objects: [PinnedObject]) -> [PinnedObject] {
        let deadline = monotonicNanoseconds() + UInt64(Lab.releaseWaitSeconds * 1e9)
        let start = monotonicNanoseconds()
        var said = false
        var loaded = objects
        while true {
            loaded = loaded.filter { $0.isLoaded == true }
            let now = monotonicNanoseconds()
            if loaded.isEmpty || now >= deadline { return loaded }
            if !said && now - start > 1_000_000_000 {
                log("lab '\(name)': waiting for the kernel to free \(loaded.count) of the lab's programs and maps")
                said = true
            }
            usleep(20_000)
        }
    }

    /// What `lab down` says when programs or maps outlive the lab: which, who may hold them, what to do.
    private func stillLoadedMessage(_ loaded: [PinnedObject], _ namespaces: [ino_t: String]) -> String {
        let loaded = loaded.sorted { ($0.kind == .program ? 0 : 1, $0.id) < ($1.kind == .program ? 0 : 1, $1.id) }
        let shown = loaded.prefix(6).map(\.description).joined(separator: ", ")
        let more = loaded.count > 6 ? " and \(loaded.count - 6) more" : ""
        var message =
            "the kernel still has \(loaded.count) of the lab's programs and maps \(Int(Lab.releaseWaitSeconds)) s "
            + "after their pins and namespaces were removed (\(shown)\(more)): something still holds them"
        let inside = Lab.processes(inside: namespaces)
        if !inside.isEmpty {
            message += ": still inside the lab's namespaces, keeping them, their links and the programs attached to "
                + "those: \(inside.joined(separator: ", ")); end those processes and the kernel frees the rest"
        } else {
            message += " (a process inside one of the lab's namespaces, which keeps it, its links and the programs "
                + "attached to them; a descriptor or a mount of such a namespace; or a pin outside "
                + "\(paths.pinDirectory)): `lsns -t net` and `bpftool prog show` find them"
        }
        return message
    }

    /// Processes whose network namespace is one of `namespaces` (by nsfs inode), as `pid N (comm) in
    /// NAME`, at most 8.
    static func processes(inside namespaces: [ino_t: String]) -> [String] {
        guard !namespaces.isEmpty else { return [] }
        var found: [String] = []
        for entry in FileSystem.listDirectory("/proc") where found.count < 8 {
            guard let pid = Int32(entry), pid > 0 else { continue }
            var st = stat()
            guard stat("/proc/\(entry)/ns/net", &st) == 0, let ns = namespaces[st.st_ino] else { continue }
            // A name another user chose: printable ASCII only, and short.
            let comm = ((try? FileSystem.read("/proc/\(entry)/comm")) ?? "").split(separator: "\n").first ?? ""
            let printable = comm.prefix(16).map { (0x20..<0x7f).contains($0.asciiValue ?? 0) ? $0 : "?" }
            found.append("pid \(pid) (\(String(printable))) in \(ns)")
        }
        return found
    }
}

/// A MAC address as a C `__u8[6]` (imported as a tuple).
private func macTuple(_ b: [UInt8]) -> (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) {
    (b[0], b[1], b[2], b[3], b[4], b[5])
}

/// Cilium's reserved identities (pkg/identity/numericidentity.go).
public enum ReservedIdentity {
    public static let host: UInt32 = 1
    public static let world: UInt32 = 2
    public static let unmanaged: UInt32 = 3
    public static let health: UInt32 = 4
    public static let initializing: UInt32 = 5
    public static let remoteNode: UInt32 = 6
    public static let kubeAPIServer: UInt32 = 7
    public static let ingress: UInt32 = 8

    public static let labels: [(UInt32, String)] = [
        (host, "reserved:host"), (world, "reserved:world"), (unmanaged, "reserved:unmanaged"),
        (health, "reserved:health"), (initializing, "reserved:init"), (remoteNode, "reserved:remote-node"),
        (kubeAPIServer, "reserved:kube-apiserver"), (ingress, "reserved:ingress"),
    ]
}

// MARK: - Status

extension Lab {
    /// One tc attachment as found in a node.
    public struct AttachmentStatus: Sendable {
        public var node: String
        public var interface: String
        public var program: String
        /// The id of the program attached at vxmon's handle/priority, nil if none.
        public var attachedID: UInt32?
        /// The id of the pinned program, nil if the pin is missing.
        public var pinnedID: UInt32?
        public var isHealthy: Bool { attachedID != nil && attachedID == pinnedID }
    }

    /// The datapath attachments of every node (`bpf_tc_query` inside each node's namespace).
    public func attachments(_ topology: LabTopology) -> [AttachmentStatus] {
        var result: [AttachmentStatus] = []
        // Pins in a directory someone other than root could change are not read (none is the lab's).
        let pinsUsable = (try? paths.checkPinDirectories()) != nil
        for node in topology.nodes {
            var wanted: [(String, String)] = topology.pods(on: node.name).map { ($0.lxc, DatapathNames.fromContainer) }
            wanted.append((LabTopology.vxlanDevice, DatapathNames.fromOverlay))
            wanted.append(("eth0", DatapathNames.fromNetwork))
            let found: [UInt32?] =
                (try? NetworkNamespace.run(in: node.namespace) {
                    wanted.map { (interface, _) -> UInt32? in
                        guard let ifindex = try? NetworkNamespace.ifindex(interface) else { return nil }
                        return TCAttachment.queryProgramID(ifindex: ifindex)
                    }
                }) ?? wanted.map { _ in nil }
            for ((interface, program), attached) in zip(wanted, found) {
                result.append(
                    AttachmentStatus(
                        node: node.name, interface: interface, program: program, attachedID: attached,
                        pinnedID: pinsUsable ? BPFMap.objectID(pinned: paths.program(node.name, program)) : nil))
            }
        }
        return result
    }
}
