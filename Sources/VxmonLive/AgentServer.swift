import CVxmonSystem
import Glibc
import Synchronization
import VxmonCore

extension LabPaths {
    /// The lab-wide socket: vxmon's own stream (`.vxrec` records: nodes, interface names, kernel
    /// times, lost records).
    public var agentSocket: String { "\(stateDirectory)/vxmon.sock" }
    /// Node `node`'s socket speaking Cilium's monitor protocol 1.2 (gob `Payload`s).
    public func ciliumSocket(_ node: String) -> String { "\(stateDirectory)/\(node)/monitor1_2.sock" }
    public var agentPIDFile: String { "\(stateDirectory)/agent.pid" }
    /// The options the agent was started with, one per line (to start it again the same way).
    public var agentArguments: String { "\(stateDirectory)/agent.args" }
    public var agentLog: String { "\(stateDirectory)/agent.log" }
    /// Rewritten every second by the agent: its counters and clients (see `AgentStatus`).
    public var agentStatus: String { "\(stateDirectory)/agent.status" }
}

/// How the agent serves its clients.
public struct AgentOptions: Sendable {
    /// Bytes queued per client at most; what does not fit is counted as lost for that client alone.
    public var queueBytes = 16 << 20
    /// Connections at once (further ones are closed at once, with a line in the log).
    public var maxClients = 64
    /// Group owning the sockets (mode 0660, owner root).
    public var socketGroup: gid_t = 0

    public init() {}
}

/// One client's outgoing bytes: a fixed-size ring, written without blocking whenever the client's
/// socket takes more. What does not fit is refused (the caller counts it lost), so a client that
/// stops reading costs its own events and a bounded amount of memory, never the reader's time (a ring:
/// no bytes are moved to make room, however full it runs).
final class ClientQueue {
    private let storage: UnsafeMutablePointer<UInt8>
    let capacity: Int
    /// Where the oldest queued byte is, and how many are queued.
    private var head = 0
    private(set) var queued = 0

    init(capacity: Int) {
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
    }

    deinit { storage.deallocate() }

    var room: Int { capacity - queued }

    /// Appends `bytes` whole, or nothing (false) when they do not fit.
    func append(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count <= room, let base = bytes.baseAddress else { return bytes.isEmpty }
        let tail = (head + queued) % capacity
        let first = min(bytes.count, capacity - tail)
        (storage + tail).update(from: base, count: first)
        if first < bytes.count { storage.update(from: base + first, count: bytes.count - first) }
        queued += bytes.count
        return true
    }

    /// Writes what the socket takes. Returns 0, or the errno that ends the connection.
    func write(to fd: Int32) -> Int32 {
        while queued > 0 {
            let contiguous = min(queued, capacity - head)
            let n = Glibc.send(fd, storage + head, contiguous, Int32(MSG_NOSIGNAL))
            if n > 0 {
                head = (head + n) % capacity
                queued -= n
                continue
            }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { break }
            return code
        }
        if queued == 0 { head = 0 }
        return 0
    }
}

/// What a client of the agent is, from its command line (`/proc/<pid>/cmdline`, read when it connects):
/// argv[0]'s base name and the subcommand word. Shown by `lab status`; only these fixed names are ever
/// printed, never the command line itself (which the client controls).
public enum ClientProgram: String, Sendable, CaseIterable {
    /// `vxmon-hubble`, the lab's Hubble observers.
    case hubble
    /// `vxmon monitor`, or plain `vxmon` (its default subcommand).
    case monitor
    /// `vxmon record`.
    case recorder
    /// Cilium's CLI: `cilium monitor` (or `cilium-dbg monitor`).
    case cilium
    case unknown

    /// How `lab status` names it.
    public var label: String {
        switch self {
        case .hubble: "hubble observers (vxmon-hubble)"
        case .monitor: "monitor (vxmon monitor)"
        case .recorder: "recorder (vxmon record)"
        case .cilium: "Cilium CLI (cilium monitor)"
        case .unknown: "unknown"
        }
    }

    /// The program of process `pid` (unknown if its command line cannot be read).
    public static func of(pid: Int32) -> ClientProgram {
        guard pid > 0 else { return .unknown }
        return classify(commandLine: readCommandLine(pid))
    }

    /// `/proc/<pid>/cmdline`'s words, from its first 4 KiB at most (the client chooses it: bounded, and
    /// only compared with fixed words).
    static func readCommandLine(_ pid: Int32) -> [String] {
        let fd = open("/proc/\(pid)/cmdline", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { Glibc.close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            count += n
        }
        return bytes[..<count].split(separator: 0, omittingEmptySubsequences: false).prefix(64)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// The program of a command line (argv): argv[0]'s base name, and for vxmon the subcommand (the
    /// first word after argv[0], none or an option meaning the default, `monitor`), for Cilium's CLI the
    /// word `monitor` among its arguments (its global flags may come first).
    public static func classify(commandLine words: [String]) -> ClientProgram {
        guard let first = words.first else { return .unknown }
        let base = first.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? first
        let arguments = words.dropFirst()
        switch base {
        case "vxmon-hubble":
            return .hubble
        case "vxmon":
            guard let word = arguments.first, !word.hasPrefix("-") else { return .monitor }
            switch word {
            case "monitor": return .monitor
            case "record": return .recorder
            default: return .unknown
            }
        case "cilium", "cilium-dbg":
            return arguments.prefix(16).contains("monitor") ? .cilium : .unknown
        default:
            return .unknown
        }
    }
}

/// One connected client.
final class AgentConnection {
    enum Kind: Equatable {
        /// The lab-wide vxmon stream.
        case lab
        /// A node's Cilium 1.2 socket (index into the agent's nodes).
        case node(Int)
    }

    let fd: Int32
    let kind: Kind
    let pid: Int32
    /// What it is, from its command line when it connected.
    let program: ClientProgram
    let since: UInt64
    let queue: ClientQueue
    /// The node of the last record queued (lab stream); -1 after a loss, so the next record says again.
    var currentNode = -1
    var sentEvents: UInt64 = 0
    var lostEvents: UInt64 = 0
    /// Losses not yet told to the client, per node (lab stream) or in slot 0 (Cilium stream).
    var pendingLost: [Int: UInt64] = [:]
    /// Interface names could not be queued: send them all again once there is room.
    var namesPending = false

    init(fd: Int32, kind: Kind, pid: Int32, queueBytes: Int) {
        self.fd = fd
        self.kind = kind
        self.pid = pid
        program = ClientProgram.of(pid: pid)
        since = wallClockNanoseconds()
        queue = ClientQueue(capacity: queueBytes)
    }

    deinit { Glibc.close(fd) }
}

/// The agent's side of the sockets: the one reader's sink (it is a `LiveSink` of the lab's
/// `LiveSession`) and a `PollSource` of the same poll loop, so that accepting, reading and writing
/// clients happen on the reader's thread without locks. Every event is encoded once per stream kind
/// and copied into each client's bounded queue; queues are written without blocking on every tick.
///
/// The datapath's events are on for a node while some client wants them (a lab-stream client, or a
/// client of that node's Cilium socket), and off otherwise.
public final class AgentServer: LiveSink, PollSource {
    public private(set) var pollFD: Int32
    public let nodeNames: [String]
    private let options: AgentOptions
    private let paths: LabPaths
    private var listeners: [(fd: Int32, kind: AgentConnection.Kind, path: String)] = []
    private var clients: [AgentConnection] = [] {
        didSet {
            clientCountValue.store(clients.count, ordering: .relaxed)
            // Counted once per change of clients, not scanned per event.
            labClients = 0
            for i in nodeClients.indices { nodeClients[i] = 0 }
            for client in clients {
                switch client.kind {
                case .lab: labClients += 1
                case .node(let n): nodeClients[n] += 1
                }
            }
        }
    }
    /// Lab-stream clients, and Cilium-socket clients per node.
    private var labClients = 0
    private var nodeClients: [Int]
    private let clientCountValue = Atomic<Int>(0)
    /// Clients connected now (safe to read from any thread).
    public var clientCount: Int { clientCountValue.load(ordering: .relaxed) }
    /// Switches a node's events on or off (set by the owner); false if that failed (retried at the
    /// next change of clients).
    public var switchEvents: (Int, Bool) -> Bool = { _, _ in true }
    private var eventsOn: [Bool]
    /// Metadata records every lab-stream client gets first (lab, pods, ...).
    private let metadata: [(String, String)]
    private var interfaces: [[UInt32: String]]
    private let record = OutputBuffer(capacity: 1 << 16)
    private let gob = OutputBuffer(capacity: 1 << 16)
    private let scratch = OutputBuffer(capacity: 1 << 12)
    private let nodeRecords: [OutputBuffer]
    /// Samples and losses the agent read.
    public private(set) var samples: UInt64 = 0
    public private(set) var lost: UInt64 = 0
    private let started = wallClockNanoseconds()
    private var lastStatus: UInt64 = 0
    private var readBuffer = [UInt8](repeating: 0, count: 256)
    private var refused = 0
    private var lastRefusalLog: UInt64 = 0
    /// Where diagnostics go (the agent's log).
    public var log: (String) -> Void = { EventPipeline.standardError($0) }

    /// Creates the sockets under the lab's state directory (replacing stale ones).
    public init(paths: LabPaths, nodeNames: [String], metadata: [(String, String)], options: AgentOptions) throws {
        self.paths = paths
        self.nodeNames = nodeNames
        self.options = options
        self.metadata = metadata
        eventsOn = Array(repeating: false, count: nodeNames.count)
        nodeClients = Array(repeating: 0, count: nodeNames.count)
        interfaces = Array(repeating: [:], count: nodeNames.count)
        nodeRecords = nodeNames.map { name in
            let b = OutputBuffer(capacity: 64)
            VxrecEncoder.appendMetadata("node", name, time: 0, to: b)
            return b
        }
        pollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        if pollFD < 0 { throw VxmonError("epoll_create1: \(errnoString(errno))") }
        do {
            try FileSystem.makeDirectories(paths.stateDirectory)
            try listen(paths.agentSocket, .lab)
            for (i, node) in nodeNames.enumerated() {
                try FileSystem.makeDirectories("\(paths.stateDirectory)/\(node)")
                try listen(paths.ciliumSocket(node), .node(i))
            }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Makes this process the lab's agent for `AgentStatus.runningAgent` and `lab status`: writes the pid
    /// file (the caller holds the lab's reader lock), and `arguments` (the options to start it again
    /// with) when given. `close()` removes what this wrote.
    public func register(arguments: [String]?) throws {
        try FileSystem.writeText(paths.agentPIDFile, "\(getpid())\n")
        registered = true
        if let arguments { try FileSystem.writeText(paths.agentArguments, arguments.joined(separator: "\n") + "\n") }
    }
    private var registered = false

    /// Closes every socket and removes the listening sockets' files, and the pid and status files if
    /// `register` wrote them (idempotent).
    public func close() {
        if registered {
            unlink(paths.agentPIDFile)
            unlink(paths.agentStatus)
            registered = false
        }
        drain(seconds: 1)
        clients.removeAll()
        for l in listeners {
            Glibc.close(l.fd)
            unlink(l.path)
        }
        listeners.removeAll()
        if pollFD >= 0 { Glibc.close(pollFD) }
        pollFD = -1
    }

    /// At the end: gives every client what is still queued for it (a closed agent would otherwise
    /// throw away up to a queue of events it counted as sent), for at most `seconds`; what a client
    /// still has not taken by then is logged with the client.
    private func drain(seconds: Double) {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        var waiting = clients.filter { $0.queue.queued > 0 }
        while !waiting.isEmpty {
            let now = monotonicNanoseconds()
            guard now < deadline else { break }
            var fds = waiting.map { pollfd(fd: $0.fd, events: Int16(POLLOUT), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), Int32(min((deadline - now) / 1_000_000 + 1, 50)))
            waiting = waiting.filter { client in
                let code = client.queue.write(to: client.fd)
                return code == 0 && client.queue.queued > 0
            }
        }
        for client in waiting {
            log("vxmon agent: at stop, \(client.queue.queued) queued bytes not taken by \(describe(client)) within \(seconds) s")
        }
    }

    private func listen(_ path: String, _ kind: AgentConnection.Kind) throws {
        var address = try unixAddress(path)
        // SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, as numbers (see LabLock).
        let fd = socket(AF_UNIX, 1 | 0o4000 | 0o2000000, 0)
        if fd < 0 { throw VxmonError("socket: \(errnoString(errno))") }
        unlink(path)
        // Bound with mode 0600 at first (umask), then opened to the group: never wider than meant.
        let old = umask(0o177)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        if rc != 0 {
            let code = errno
            Glibc.close(fd)
            throw VxmonError("cannot bind \(path): \(errnoString(code))")
        }
        _ = chown(path, 0, options.socketGroup)
        _ = chmod(path, 0o660)
        guard Glibc.listen(fd, 128) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw VxmonError("cannot listen on \(path): \(errnoString(code))")
        }
        listeners.append((fd, kind, path))
        _ = vxmon_shim_epoll_add(pollFD, fd, UInt32(EPOLLIN.rawValue), UInt64(listeners.count - 1))
    }

    // MARK: Clients (polling thread)

    /// Clients and their counters, for the status file (polling thread, or once the loop has ended).
    public var connections:
        [(kind: String, pid: Int32, program: ClientProgram, since: UInt64, sent: UInt64, lost: UInt64, queued: Int)]
    {
        clients.map { c in
            let kind: String
            switch c.kind {
            case .lab: kind = "vxmon"
            case .node(let i): kind = "cilium:" + nodeNames[i]
            }
            return (kind, c.pid, c.program, c.since, c.sentEvents, c.lostEvents, c.queue.queued)
        }
    }

    private static let clientTag: UInt64 = 1 << 32

    public func readReady() -> Bool {
        var tags = [UInt64](repeating: 0, count: 16)
        var events = [UInt32](repeating: 0, count: 16)
        let n = vxmon_shim_epoll_wait(pollFD, &tags, &events, 16, 0)
        for i in 0..<max(Int(n), 0) {
            if tags[i] < Self.clientTag {
                accept(Int(tags[i]))
            } else {
                let fd = Int32(truncatingIfNeeded: tags[i] - Self.clientTag)
                if let index = clients.firstIndex(where: { $0.fd == fd }) { readClient(index) }
            }
        }
        writeAll()
        let now = monotonicNanoseconds()
        if now - lastStatus >= 1_000_000_000 {
            lastStatus = now
            writeStatus()
        }
        return false
    }

    private func accept(_ listener: Int) {
        guard listener < listeners.count else { return }
        let (lfd, kind, _) = listeners[listener]
        while true {
            let fd = Glibc.accept(lfd, nil, nil)
            if fd < 0 { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if clients.count >= options.maxClients {
                refused &+= 1
                let now = monotonicNanoseconds()
                if now &- lastRefusalLog >= 10_000_000_000 {
                    lastRefusalLog = now
                    log("vxmon agent: refused \(refused) clients so far: \(options.maxClients) are connected")
                }
                Glibc.close(fd)
                continue
            }
            let client = AgentConnection(fd: fd, kind: kind, pid: Self.peerPID(fd), queueBytes: options.queueBytes)
            // The client sends nothing; readability means it hung up.
            _ = vxmon_shim_epoll_add(pollFD, fd, UInt32(EPOLLIN.rawValue), Self.clientTag + UInt64(UInt32(bitPattern: fd)))
            greet(client)
            clients.append(client)
            log("vxmon agent: client connected (\(describe(client)))")
            updateEvents()
        }
    }

    private func describe(_ c: AgentConnection) -> String {
        switch c.kind {
        case .lab: "vxmon stream, pid \(c.pid), \(c.program.label)"
        case .node(let i): "\(nodeNames[i]) monitor1_2, pid \(c.pid), \(c.program.label)"
        }
    }

    /// What a connection starts with: the stream header and what a reader needs to know first.
    private func greet(_ client: AgentConnection) {
        scratch.removeAll()
        switch client.kind {
        case .lab:
            VxrecEncoder.appendFileHeader(to: scratch)
            let now = wallClockNanoseconds()
            for (key, value) in metadata { VxrecEncoder.appendMetadata(key, value, time: now, to: scratch) }
            _ = client.queue.append(scratch.bytes)
            queueNames(client)
        case .node:
            AgentPayloadEncoder.appendTypeDefinition(to: scratch)
            _ = client.queue.append(scratch.bytes)
        }
    }

    /// Every known interface name, per node (lab stream).
    private func queueNames(_ client: AgentConnection) {
        scratch.removeAll()
        let now = wallClockNanoseconds()
        for (node, names) in interfaces.enumerated() {
            scratch.append(nodeRecords[node])
            for (ifindex, name) in names.sorted(by: { $0.key < $1.key }) {
                VxrecEncoder.appendInterfaceName(ifindex, name, time: now, to: scratch)
            }
        }
        client.namesPending = !client.queue.append(scratch.bytes)
        client.currentNode = client.namesPending ? -1 : interfaces.count - 1
    }

    /// Clients only read: readability means a hang-up, an error, or bytes the protocol does not have,
    /// which end the connection (a client writing without end would otherwise keep the loop busy).
    private func readClient(_ index: Int) {
        let client = clients[index]
        let n = readBuffer.withUnsafeMutableBytes { Glibc.read(client.fd, $0.baseAddress, $0.count) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        drop(index, n > 0 ? "it sent data; the protocol is one-way" : n == 0 ? "hung up" : errnoString(errno))
    }

    private func drop(_ index: Int, _ why: String) {
        let client = clients.remove(at: index)
        log("vxmon agent: client gone (\(describe(client)); \(why); \(client.sentEvents) events sent, \(client.lostEvents) lost)")
        updateEvents()
    }

    private func writeAll() {
        var i = 0
        while i < clients.count {
            let code = clients[i].queue.write(to: clients[i].fd)
            if code != 0 {
                drop(i, errnoString(code))
            } else {
                settle(clients[i])
                i += 1
            }
        }
    }

    /// Tells a client about its losses (and resends names) once its queue has room again.
    private func settle(_ client: AgentConnection) {
        if client.namesPending && client.queue.room > client.queue.capacity / 2 { queueNames(client) }
        guard !client.pendingLost.isEmpty, client.queue.room > client.queue.capacity / 4 else { return }
        let now = wallClockNanoseconds()
        for (node, count) in client.pendingLost.sorted(by: { $0.key < $1.key }) {
            scratch.removeAll()
            switch client.kind {
            case .lab:
                scratch.append(nodeRecords[node])
                VxrecEncoder.appendLost(cpu: 0, count: count, time: now, to: scratch)
            case .node:
                AgentPayloadEncoder.appendPayload(
                    data: UnsafeRawBufferPointer(start: nil, count: 0), cpu: 0, lost: count,
                    type: AgentPayloadEncoder.lostType, to: scratch)
            }
            guard client.queue.append(scratch.bytes) else { return }
            client.currentNode = client.kind == .lab ? node : -1
            client.pendingLost[node] = nil
        }
    }

    /// Events on for the nodes some client reads, off for the others.
    private func updateEvents() {
        for node in nodeNames.indices {
            let wanted = hasLabClients || hasClients(of: node)
            if wanted != eventsOn[node] {
                if switchEvents(node, wanted) {
                    eventsOn[node] = wanted
                } else {
                    log("vxmon agent: cannot switch the events of node \(nodeNames[node]) \(wanted ? "on" : "off")")
                }
            }
        }
    }

    private static func peerPID(_ fd: Int32) -> Int32 {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        var cred = (Int32(0), UInt32(0), UInt32(0))
        var length = socklen_t(MemoryLayout.size(ofValue: cred))
        return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0 ? cred.0 : 0
    }

    // MARK: LiveSink (polling thread)

    /// Queues `encoded` (plus, on the lab stream, the node's record when the node changes) for every
    /// client that wants node `node`'s events; a client without room loses it, counted.
    private func fanOut(node: Int, lab: OutputBuffer?, cilium: OutputBuffer?, countsAsEvent: UInt64) {
        for client in clients {
            let bytes: OutputBuffer
            switch client.kind {
            case .lab:
                guard let lab else { continue }
                bytes = lab
            case .node(let n):
                guard n == node, let cilium else { continue }
                bytes = cilium
            }
            if !client.pendingLost.isEmpty || client.namesPending { settle(client) }
            var fits = client.pendingLost.isEmpty
            if fits && client.kind == .lab && client.currentNode != node {
                fits = client.queue.room >= nodeRecords[node].count + bytes.count
                    && client.queue.append(nodeRecords[node].bytes)
                if fits { client.currentNode = node }
            }
            if fits && client.queue.append(bytes.bytes) {
                client.sentEvents &+= 1
            } else {
                let slot = client.kind == .lab ? node : 0
                client.pendingLost[slot, default: 0] +|= countsAsEvent
                client.lostEvents +|= countsAsEvent
            }
            // Past half full: give the socket what it takes now rather than at the next tick.
            if client.queue.queued > client.queue.capacity / 2 { _ = client.queue.write(to: client.fd) }
        }
    }

    private var hasLabClients: Bool { labClients > 0 }
    private func hasClients(of node: Int) -> Bool { nodeClients[node] > 0 }

    public func interfaceName(node: Int, ifindex: UInt32, name: String, time: UInt64) {
        guard interfaces[node][ifindex] != name else { return }
        // Bounded: the lab's namespaces hold a bounded number of interfaces; keep it so if they churn.
        if interfaces[node].count >= 4096 { interfaces[node].removeAll() }
        interfaces[node][ifindex] = name
        guard hasLabClients else { return }
        record.removeAll()
        VxrecEncoder.appendInterfaceName(ifindex, name, time: time, to: record)
        for client in clients where client.kind == .lab {
            if client.currentNode != node {
                if client.queue.append(nodeRecords[node].bytes) { client.currentNode = node } else { client.namesPending = true }
            }
            if !client.namesPending && !client.queue.append(record.bytes) { client.namesPending = true }
        }
    }

    public func sample(node: Int, cpu: Int, bytes: UnsafeRawBufferPointer, time: UInt64) {
        samples &+= 1
        let lab = hasLabClients
        let cilium = hasClients(of: node)
        guard lab || cilium else { return }
        if lab {
            record.removeAll()
            VxrecEncoder.appendSample(bytes, cpu: cpu, time: time, to: record)
        }
        if cilium {
            gob.removeAll()
            AgentPayloadEncoder.appendPayload(data: bytes, cpu: cpu, lost: 0, type: AgentPayloadEncoder.sampleType, to: gob)
        }
        fanOut(node: node, lab: lab ? record : nil, cilium: cilium ? gob : nil, countsAsEvent: 1)
    }

    public func lost(node: Int, cpu: Int, count: UInt64, time: UInt64) {
        lost +|= count
        let lab = hasLabClients
        let cilium = hasClients(of: node)
        guard lab || cilium else { return }
        record.removeAll()
        VxrecEncoder.appendLost(cpu: cpu, count: count, time: time, to: record)
        gob.removeAll()
        AgentPayloadEncoder.appendPayload(
            data: UnsafeRawBufferPointer(start: nil, count: 0), cpu: cpu, lost: count, type: AgentPayloadEncoder.lostType,
            to: gob)
        fanOut(node: node, lab: lab ? record : nil, cilium: cilium ? gob : nil, countsAsEvent: count)
    }

    public func flush() -> Bool {
        writeAll()
        return true
    }

    // MARK: Status

    /// Writes the status file `vxmon lab status` shows.
    public func writeStatus() {
        var text = "pid \(getpid())\nstarted \(started)\nevents \(samples)\nlost \(lost)\n"
        for c in connections {
            text +=
                "client \(c.kind) pid \(c.pid) since \(c.since) sent \(c.sent) lost \(c.lost) queued \(c.queued) "
                + "program \(c.program.rawValue)\n"
        }
        try? FileSystem.writeAtomically(paths.agentStatus, text)
    }
}

/// What the agent last wrote to its status file.
public struct AgentStatus: Sendable {
    public struct Client: Sendable {
        /// The socket: `vxmon` (the lab stream) or `cilium:<node>` (a node's monitor1_2.sock).
        public var kind: String
        public var pid: Int32
        /// What the client is (unknown from an agent that did not say).
        public var program: ClientProgram
        public var since: UInt64
        public var sent: UInt64
        public var lost: UInt64
    }

    public var pid: Int32 = 0
    public var started: UInt64 = 0
    public var events: UInt64 = 0
    public var lost: UInt64 = 0
    public var clients: [Client] = []

    /// Parses the status file (nil if there is none).
    public static func read(_ paths: LabPaths) -> AgentStatus? {
        guard let text = try? FileSystem.read(paths.agentStatus) else { return nil }
        var s = AgentStatus()
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            guard f.count >= 2 else { continue }
            switch f[0] {
            case "pid": s.pid = Int32(f[1]) ?? 0
            case "started": s.started = UInt64(f[1]) ?? 0
            case "events": s.events = UInt64(f[1]) ?? 0
            case "lost": s.lost = UInt64(f[1]) ?? 0
            case "client" where f.count >= 12:
                s.clients.append(
                    Client(
                        kind: f[1], pid: Int32(f[3]) ?? 0,
                        program: f.count >= 14 && f[12] == "program" ? ClientProgram(rawValue: f[13]) ?? .unknown : .unknown,
                        since: UInt64(f[5]) ?? 0, sent: UInt64(f[7]) ?? 0, lost: UInt64(f[9]) ?? 0))
            default: break
            }
        }
        return s
    }

    /// The pid of the running agent of the lab, or nil: the pid file's process holds the lab's
    /// monitor lock (a dead agent's lock is released by the kernel).
    public static func runningAgent(_ paths: LabPaths) -> Int32? {
        guard let text = try? FileSystem.read(paths.agentPIDFile),
            let pid = Int32(text.split(separator: "\n").first ?? ""), pid > 0
        else { return nil }
        return MonitorLock.holder(paths: paths) == pid ? pid : nil
    }
}
