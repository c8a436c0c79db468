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
    /// Bytes all client queues hold together at most (their chunks, and the few kept for reuse). When
    /// it is reached, the client that has gone longest without taking a byte loses its queued events
    /// first (counted, and told to it as lost records), so that clients that read keep getting theirs.
    public var totalQueueBytes = 64 << 20
    /// Connections at once (further ones are closed at once, with a line in the log).
    public var maxClients = 64
    /// Group owning the sockets (mode 0660, owner root).
    public var socketGroup: gid_t = 0

    public init() {}
}

/// The memory of every client queue: fixed-size chunks mapped from the kernel (munmap gives them back at
/// once, where malloc would keep large freed blocks and the process's RSS with them), a few kept for
/// reuse, and one budget for all of them.
final class QueueMemory {
    /// A chunk's size: records never straddle chunks, so that whole chunks can be dropped.
    static let chunkBytes = 64 << 10
    /// Free chunks kept for reuse at most (a reading client frees one and takes one every 64 KiB).
    static let keptChunks = 8
    let budget: Int
    /// Bytes mapped now (chunks in queues and kept ones); never more than `budget`.
    private(set) var held = 0
    private var kept: [UnsafeMutableRawPointer] = []
    /// Bumped whenever memory is given back: a client refused memory tries again only after that.
    private(set) var generation: UInt64 = 0

    init(budget: Int) { self.budget = max(budget, 0) }

    deinit { trim() }

    /// A chunk of `size` bytes (a multiple of the page size), or nil when the budget has no room. The
    /// chunks kept for reuse go only to those who may `reuse` them (clients that read: a stalled one
    /// could otherwise take, one by one, each chunk a reading client gives back).
    func take(_ size: Int, reuse: Bool) -> UnsafeMutableRawPointer? {
        if reuse && size == Self.chunkBytes, let chunk = kept.popLast() { return chunk }
        // held <= budget always, so the subtraction cannot go below zero.
        guard size <= budget - held else { return nil }
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else { return nil }
        held += size
        return p
    }

    func give(_ chunk: UnsafeMutableRawPointer, _ size: Int) {
        generation &+= 1
        if size == Self.chunkBytes && kept.count < Self.keptChunks {
            kept.append(chunk)
            return
        }
        munmap(chunk, size)
        held -= size
    }

    /// Unmaps the kept chunks too (when no client is left).
    func trim() {
        for chunk in kept { munmap(chunk, Self.chunkBytes) }
        held -= kept.count * Self.chunkBytes
        kept.removeAll()
    }
}

/// One client's outgoing bytes: a list of chunks from the shared `QueueMemory`, written without
/// blocking whenever the client's socket takes more, each chunk given back as soon as it is sent.
/// Every record goes whole into one chunk, and a chunk remembers what its records count for, so that the
/// chunks nothing of which was sent can be dropped with their events counted as the client's losses.
final class ClientQueue {
    struct Chunk {
        let base: UnsafeMutableRawPointer
        let size: Int
        /// The first unsent byte, and the end of what was written.
        var start = 0
        var end = 0
        /// The stream's first records (header, metadata): never dropped.
        var pinned = false
        /// Holds interface names (sent again if dropped).
        var names = false
        /// Records counted as sent events (uncounted if dropped).
        var events: UInt64 = 0
        /// What dropping it adds to the client's lost events, and to the losses still to tell per slot.
        var newLost: UInt64 = 0
        var lost: [UInt64] = []
    }

    /// What dropping chunks took away.
    struct Dropped {
        var bytes = 0
        var events: UInt64 = 0
        var newLost: UInt64 = 0
        var lost: [UInt64]
        var names = false
    }

    enum Room { case ready, overLimit, needsChunk }

    /// Bytes queued at most (unsent bytes, not chunk space).
    let limit: Int
    private let memory: QueueMemory
    private let slots: Int
    private var chunks: [Chunk] = []
    private(set) var queued = 0
    /// send() calls made for this client.
    private(set) var sendCalls: UInt64 = 0

    init(limit: Int, memory: QueueMemory, slots: Int) {
        self.limit = limit
        self.memory = memory
        self.slots = slots
    }

    deinit { release() }

    /// Gives every chunk back (the client is gone).
    func release() {
        for chunk in chunks { memory.give(chunk.base, chunk.size) }
        chunks.removeAll()
        queued = 0
    }

    var room: Int { limit - queued }

    /// Whether `count` more bytes can go into the last chunk, or need one more chunk, or do not fit at all.
    func room(for count: Int) -> Room {
        guard count <= room else { return .overLimit }
        if let last = chunks.last, last.size - last.end >= count { return .ready }
        return .needsChunk
    }

    /// Takes a chunk for `count` bytes from the shared memory (see `QueueMemory.take` for `reuse`);
    /// false when the budget has no room.
    func grow(for count: Int, reuse: Bool) -> Bool {
        let page = 4096
        let size = count <= QueueMemory.chunkBytes ? QueueMemory.chunkBytes : (count + page - 1) / page * page
        guard let base = memory.take(size, reuse: reuse) else { return false }
        chunks.append(Chunk(base: base, size: size, lost: Array(repeating: 0, count: slots)))
        return true
    }

    /// Appends `bytes` to the last chunk (after `room(for:)` said ready, or `grow` made it so).
    func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        let i = chunks.count - 1
        (chunks[i].base + chunks[i].end).copyMemory(from: base, byteCount: bytes.count)
        chunks[i].end += bytes.count
        queued += bytes.count
    }

    /// What the last chunk's records count for (see `Chunk`).
    func account(
        events: UInt64 = 0, slot: Int = 0, lost: UInt64 = 0, newLost: UInt64 = 0, names: Bool = false, pinned: Bool = false
    ) {
        guard !chunks.isEmpty else { return }
        let i = chunks.count - 1
        chunks[i].events &+= events
        if lost > 0 && slot < slots { chunks[i].lost[slot] +|= lost }
        chunks[i].newLost +|= newLost
        if names { chunks[i].names = true }
        if pinned { chunks[i].pinned = true }
    }

    enum WriteResult: Equatable {
        /// Everything was sent.
        case drained
        /// The socket takes no more now.
        case blocked
        /// The errno that ends the connection.
        case failed(Int32)
    }

    /// Writes what the socket takes, giving back every chunk sent whole; `progress` says whether a
    /// byte went.
    func write(to fd: Int32) -> (result: WriteResult, progress: Bool) {
        var progress = false
        while let head = chunks.first {
            if head.start == head.end {
                chunks.removeFirst()
                memory.give(head.base, head.size)
                continue
            }
            sendCalls &+= 1
            let n = Glibc.send(fd, head.base + head.start, head.end - head.start, Int32(MSG_NOSIGNAL))
            if n > 0 {
                chunks[0].start += n
                queued -= n
                progress = true
                continue
            }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return (.blocked, progress) }
            return (.failed(n == 0 ? EPIPE : code), progress)
        }
        return (.drained, progress)
    }

    /// Whether some chunk could be dropped (the droppable ones are the last ones).
    var canDrop: Bool {
        guard let last = chunks.last else { return false }
        return !last.pinned && last.start == 0
    }

    /// Drops every chunk of which nothing was sent, except the stream's first records: what remains
    /// ends with a whole record. Returns what they held.
    func dropUnsent() -> Dropped {
        var dropped = Dropped(lost: Array(repeating: 0, count: slots))
        var keep = 0
        while keep < chunks.count && (chunks[keep].pinned || chunks[keep].start > 0) { keep += 1 }
        for chunk in chunks[keep...] {
            dropped.bytes += chunk.end - chunk.start
            dropped.events &+= chunk.events
            dropped.newLost +|= chunk.newLost
            for slot in 0..<slots { dropped.lost[slot] +|= chunk.lost[slot] }
            if chunk.names { dropped.names = true }
            memory.give(chunk.base, chunk.size)
        }
        chunks.removeSubrange(keep...)
        queued -= dropped.bytes
        return dropped
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
    /// Losses not yet told to the client, per node (lab stream) or in slot 0 (Cilium stream); while
    /// there are any, its events are lost too (the losses are told first).
    var pendingLost: [UInt64]
    var hasPendingLost = false
    /// Interface names could not be queued: send them all again once there is room.
    var namesPending = false
    /// Its socket refused bytes: nothing is written to it until epoll says it takes more (EPOLLOUT is
    /// watched meanwhile), so a client that does not read costs no send() per event.
    var blocked = false
    /// Its unsent chunks were dropped to make room for others: it gets no new chunk until it takes a
    /// byte again (or its socket takes bytes while its queue is empty).
    var shed = false
    /// When (monotonic ns) it last took a byte, or its empty queue got one: the client that has gone
    /// longest without reading is the one whose queue makes room first.
    var lastProgress: UInt64 = 0
    /// The queue memory's generation when it was last refused a chunk (it asks again after memory came back).
    var refusedAt = UInt64.max
    /// The errno that ends the connection (dropped at the next round).
    var failure: Int32 = 0
    /// Its socket refuses bytes and it has losses to tell: it is out of the per-event loop until epoll
    /// says it is writable, and the events it misses meanwhile are counted from the agent's per-node
    /// counters (`parkedAt`: their values when it was parked), not one by one.
    var parked = false
    var parkedAt: [UInt64] = []
    /// Its series in the agent's metrics (-1: metrics are off), the number in its name, and what its
    /// counters there hold (they never go down, where `sentEvents` can: see `reclaim`).
    var metricsSlot = -1
    var metricsNumber = 0
    var publishedSent: UInt64 = 0
    var publishedLost: UInt64 = 0

    init(fd: Int32, kind: Kind, pid: Int32, queueBytes: Int, memory: QueueMemory, slots: Int) {
        self.fd = fd
        self.kind = kind
        self.pid = pid
        program = ClientProgram.of(pid: pid)
        since = wallClockNanoseconds()
        queue = ClientQueue(limit: queueBytes, memory: memory, slots: slots)
        pendingLost = Array(repeating: 0, count: slots)
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
    /// A descriptor held back for one accept when the process has no other (see `accept`).
    private var reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    public let nodeNames: [String]
    private let options: AgentOptions
    private let paths: LabPaths
    private var listeners: [(fd: Int32, kind: AgentConnection.Kind, path: String)] = []
    private var clients: [AgentConnection] = [] {
        didSet {
            clientCountValue.store(clients.count, ordering: .relaxed)
            metrics?.clients.store(clients.count, ordering: .relaxed)
            activeDirty = true
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
    /// Every client queue's memory, under `options.totalQueueBytes`.
    private let memory: QueueMemory
    /// Events fanned out so far.
    private var clock: UInt64 = 0
    /// Events (lost records: their count) fanned out per node, for the losses of parked clients.
    private var offered: [UInt64]
    /// The clients the per-event loop visits: all but the parked ones (rebuilt when that changes).
    private var active: [AgentConnection] = []
    private var activeDirty = false
    /// send() calls to clients gone.
    private var retiredSendCalls: UInt64 = 0
    /// Events dropped from queues to make room for other clients (counted in their clients' losses too).
    public private(set) var reclaimedEvents: UInt64 = 0
    private var epollTags = [UInt64](repeating: 0, count: 16)
    private var epollEvents = [UInt32](repeating: 0, count: 16)
    /// Where diagnostics go (the agent's log).
    public var log: (String) -> Void = { EventPipeline.diagnostic($0) }
    /// What `/metrics` shows, counted here (nil: metrics are off, and no event is decoded). With
    /// metrics, every node's events stay on, client or not.
    public let metrics: AgentMetrics?
    private var lastMemoPublish: UInt64 = 0
    /// `metrics`, for the reader's hot path (the server holds it for its whole life).
    private let metricsRef: Unmanaged<AgentMetrics>?
    private let metricsFast: AgentMetrics.FastPath?
    private var lastMetricsPublish: UInt64 = 0

    /// Creates the sockets under the lab's state directory (replacing stale ones).
    public init(
        paths: LabPaths, nodeNames: [String], metadata: [(String, String)], options: AgentOptions,
        metrics: AgentMetrics? = nil
    ) throws {
        self.metrics = metrics
        metricsRef = metrics.map { Unmanaged.passUnretained($0) }
        metricsFast = metrics?.fastPath
        self.paths = paths
        self.nodeNames = nodeNames
        self.options = options
        self.metadata = metadata
        memory = QueueMemory(budget: options.totalQueueBytes)
        offered = Array(repeating: 0, count: nodeNames.count)
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
        if reserveFD >= 0 {
            Glibc.close(reserveFD)
            reserveFD = -1
        }
        if registered {
            unlink(paths.agentPIDFile)
            unlink(paths.agentStatus)
            registered = false
        }
        // The reader has stopped: what the sample memo still holds is added to the counters (for an
        // owner that renders them after this; the agent's own server has stopped by now).
        metrics?.publish()
        drain(seconds: 1)
        for client in clients { client.queue.release() }
        clients.removeAll()
        memory.trim()
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
                client.queue.write(to: client.fd).result == .blocked
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
        [(
            kind: String, pid: Int32, program: ClientProgram, since: UInt64, sent: UInt64, lost: UInt64, queued: Int,
            sends: UInt64
        )]
    {
        clients.map { c in
            let kind: String
            switch c.kind {
            case .lab: kind = "vxmon"
            case .node(let i): kind = "cilium:" + nodeNames[i]
            }
            let lost = parkedLosses(c).reduce(c.lostEvents) { $0 +| $1 }
            return (kind, c.pid, c.program, c.since, c.sentEvents, lost, c.queue.queued, c.queue.sendCalls)
        }
    }

    /// send() calls made to clients so far, whether they took bytes or not (polling thread).
    public var sendCalls: UInt64 { clients.reduce(retiredSendCalls) { $0 &+ $1.queue.sendCalls } }

    /// Bytes the client queues hold now, chunks kept for reuse included (never above
    /// `AgentOptions.totalQueueBytes`; polling thread).
    public var queueMemory: Int { memory.held }

    private static let clientTag: UInt64 = 1 << 32

    public func readReady() -> Bool {
        serviceEvents(all: true)
        writeAll()
        let now = monotonicNanoseconds()
        if metrics != nil && now &- lastMetricsPublish >= 100_000_000 {
            lastMetricsPublish = now
            publishClientMetrics()
        }
        publishMemoCounts()
        if now - lastStatus >= 1_000_000_000 {
            lastStatus = now
            writeStatus()
        }
        return false
    }

    /// Handles what epoll reports: new connections and hang-ups (with `all`), and clients whose socket
    /// takes bytes again. Inside a batch of events only the latter (`clients` must not change then).
    private func serviceEvents(all: Bool) {
        // Level-triggered: what is left for later is reported again.
        for _ in 0..<4 {
            let n = Int(vxmon_shim_epoll_wait(pollFD, &epollTags, &epollEvents, 16, 0))
            guard n > 0 else { return }
            for i in 0..<n {
                let tag = epollTags[i]
                if tag < Self.clientTag {
                    if all { accept(Int(tag)) }
                    continue
                }
                let fd = Int32(truncatingIfNeeded: tag - Self.clientTag)
                guard let index = clients.firstIndex(where: { $0.fd == fd }) else { continue }
                let client = clients[index]
                if all && epollEvents[i] & ~UInt32(EPOLLOUT.rawValue) != 0 && readClient(index) { continue }
                if epollEvents[i] & UInt32(EPOLLOUT.rawValue) != 0 && client.blocked { writable(client) }
            }
            if n < 16 { return }
        }
    }

    private func accept(_ listener: Int) {
        guard listener < listeners.count else { return }
        let (lfd, kind, _) = listeners[listener]
        while true {
            let fd = Glibc.accept(lfd, nil, nil)
            if fd < 0 {
                // Out of descriptors: the pending connection would keep the listener readable and the
                // loop busy. The reserve descriptor makes room to accept it and close it at once.
                if errno == EMFILE || errno == ENFILE, reserveFD >= 0 {
                    Glibc.close(reserveFD)
                    let extra = Glibc.accept(lfd, nil, nil)
                    if extra >= 0 { refuse(extra, "the agent is out of descriptors") }
                    reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
                    if extra >= 0 { continue }
                }
                return
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if clients.count >= options.maxClients {
                refuse(fd, "\(options.maxClients) are connected")
                continue
            }
            let slots: Int
            switch kind {
            case .lab: slots = nodeNames.count
            case .node: slots = 1
            }
            let client = AgentConnection(
                fd: fd, kind: kind, pid: Self.peerPID(fd), queueBytes: options.queueBytes, memory: memory, slots: slots)
            guard greet(client) else {
                client.queue.release()
                refuse(-1, "no queue memory left for its first records (--queue-total-mib)")
                continue
            }
            // The client sends nothing; readability means it hung up.
            _ = vxmon_shim_epoll_add(pollFD, fd, UInt32(EPOLLIN.rawValue), Self.clientTag + UInt64(UInt32(bitPattern: fd)))
            if let metrics {
                // The lowest number no connected client of its program has.
                let taken = Set(clients.filter { $0.program == client.program }.map(\.metricsNumber))
                client.metricsNumber = (0...).first { !taken.contains($0) } ?? 0
                client.metricsSlot = metrics.clientSlot(program: client.program, number: client.metricsNumber)
            }
            clients.append(client)
            log("vxmon agent: client connected (\(describe(client)))")
            updateEvents()
        }
    }

    /// Closes `fd` (if any) and logs the refusal, once per 10 s at most.
    private func refuse(_ fd: Int32, _ why: String) {
        if fd >= 0 { Glibc.close(fd) }
        refused &+= 1
        let now = monotonicNanoseconds()
        if now &- lastRefusalLog >= 10_000_000_000 {
            lastRefusalLog = now
            log("vxmon agent: refused \(refused) clients so far: \(why)")
        }
    }

    private func describe(_ c: AgentConnection) -> String {
        switch c.kind {
        case .lab: "vxmon stream, pid \(c.pid), \(c.program.label)"
        case .node(let i): "\(nodeNames[i]) monitor1_2, pid \(c.pid), \(c.program.label)"
        }
    }

    /// What a connection starts with: the stream header and what a reader needs to know first (false:
    /// no memory for it, the client is refused).
    private func greet(_ client: AgentConnection) -> Bool {
        scratch.removeAll()
        switch client.kind {
        case .lab:
            VxrecEncoder.appendFileHeader(to: scratch)
            let now = wallClockNanoseconds()
            for (key, value) in metadata { VxrecEncoder.appendMetadata(key, value, time: now, to: scratch) }
        case .node:
            AgentPayloadEncoder.appendTypeDefinition(to: scratch)
        }
        guard fit(client, scratch.count) else { return false }
        client.queue.append(scratch.bytes)
        client.queue.account(pinned: true)
        if client.kind == .lab { queueNames(client) }
        return true
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
        client.namesPending = !fit(client, scratch.count)
        if !client.namesPending {
            client.queue.append(scratch.bytes)
            client.queue.account(names: true)
        }
        client.currentNode = client.namesPending ? -1 : interfaces.count - 1
    }

    /// Clients only read: readability means a hang-up, an error, or bytes the protocol does not have,
    /// which end the connection (a client writing without end would otherwise keep the loop busy).
    /// Returns whether the client was dropped.
    private func readClient(_ index: Int) -> Bool {
        let client = clients[index]
        let n = readBuffer.withUnsafeMutableBytes { Glibc.read(client.fd, $0.baseAddress, $0.count) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return false }
        drop(index, n > 0 ? "it sent data; the protocol is one-way" : n == 0 ? "hung up" : errnoString(errno))
        return true
    }

    private func drop(_ index: Int, _ why: String) {
        let client = clients.remove(at: index)
        unpark(client)
        // Out of the fan-out list too, so the connection is closed (deinit) now, and leaves the epoll
        // set: a hung-up socket kept there stays readable and would spin the loop until an event came.
        active.removeAll { $0 === client }
        retiredSendCalls &+= client.queue.sendCalls
        // Its memory goes back now (and, with no client left, the chunks kept for reuse too).
        client.queue.release()
        if clients.isEmpty { memory.trim() }
        if metrics != nil {
            publish(client)
            publishClientMetrics()
        }
        log("vxmon agent: client gone (\(describe(client)); \(why); \(client.sentEvents) events sent, \(client.lostEvents) lost)")
        updateEvents()
    }

    /// Writes every client that takes bytes (those waiting for EPOLLOUT are left alone), drops the
    /// connections that failed, and tells clients their losses where there is room.
    private func writeAll() {
        var i = 0
        while i < clients.count {
            let client = clients[i]
            if client.failure == 0 && !client.blocked && (client.queue.queued > 0 || client.shed) { send(client) }
            if client.failure != 0 {
                drop(i, errnoString(client.failure))
                continue
            }
            if !client.blocked { settle(client) }
            i += 1
        }
    }

    /// Writes what `client`'s socket takes: EPOLLOUT is watched while it refuses bytes, and no more
    /// once its queue is empty.
    private func send(_ client: AgentConnection) {
        let (result, progress) = client.queue.write(to: client.fd)
        if progress {
            client.lastProgress = monotonicNanoseconds()
            client.shed = false
        }
        switch result {
        case .drained:
            // It took everything (or its queue was emptied for others): it may have chunks again.
            client.shed = false
            setBlocked(client, false)
        case .blocked: setBlocked(client, true)
        case .failed(let code): client.failure = code
        }
    }

    /// Epoll says `client`'s socket takes bytes again.
    private func writable(_ client: AgentConnection) {
        guard client.failure == 0 else { return }
        unpark(client)
        send(client)
        if !client.blocked { settle(client) }
    }

    /// Takes a client that refuses bytes and has losses to tell out of the per-event loop.
    private func park(_ client: AgentConnection) {
        client.parked = true
        client.parkedAt = offered
        activeDirty = true
    }

    /// Back into the per-event loop, with the events it missed meanwhile counted as its losses.
    private func unpark(_ client: AgentConnection) {
        guard client.parked else { return }
        let missed = parkedLosses(client)
        for slot in missed.indices where missed[slot] > 0 {
            client.pendingLost[slot] +|= missed[slot]
            client.lostEvents +|= missed[slot]
            client.hasPendingLost = true
        }
        client.parked = false
        activeDirty = true
    }

    /// The events a parked client missed since it was parked, per slot (none if it is not parked).
    private func parkedLosses(_ client: AgentConnection) -> [UInt64] {
        guard client.parked else { return [] }
        // `offered` only grows (saturating), so the differences are never negative.
        func since(_ node: Int) -> UInt64 {
            offered[node] >= client.parkedAt[node] ? offered[node] - client.parkedAt[node] : 0
        }
        switch client.kind {
        case .lab: return offered.indices.map(since)
        case .node(let n): return [since(n)]
        }
    }

    private func setBlocked(_ client: AgentConnection, _ blocked: Bool) {
        guard client.blocked != blocked else { return }
        client.blocked = blocked
        let events = UInt32(EPOLLIN.rawValue) | (blocked ? UInt32(EPOLLOUT.rawValue) : 0)
        _ = vxmon_shim_epoll_mod(pollFD, client.fd, events, Self.clientTag + UInt64(UInt32(bitPattern: client.fd)))
    }

    /// Room for `count` more bytes at the end of `client`'s queue (one record, or a node record and its
    /// record): within its own limit, and within the budget of all queues, made by dropping the unsent
    /// chunks of a client that has gone longer without reading if need be. False: it does not fit
    /// (the caller counts the loss).
    private func fit(_ client: AgentConnection, _ count: Int) -> Bool {
        if client.queue.queued == 0 { client.lastProgress = monotonicNanoseconds() }
        switch client.queue.room(for: count) {
        case .ready: return true
        case .overLimit: return false
        case .needsChunk:
            if client.shed { return false }
            // Once a chunk (64 KiB) at most: the clock is read here, not per event.
            let now = monotonicNanoseconds()
            let stalled = isStalled(client, now)
            if client.queue.grow(for: count, reuse: !stalled) { return true }
            // A stalled client takes nothing from others; one refused before, with no memory given
            // back since, is refused again without a search.
            guard !stalled, client.refusedAt != memory.generation else { return false }
            if reclaim(for: client, now: now) && client.queue.grow(for: count, reuse: true) { return true }
            client.refusedAt = memory.generation
            return false
        }
    }

    /// A client whose socket refuses bytes and that has taken none for this long is stalled: it gets no
    /// chunk kept for reuse, takes no room from others, and its unsent chunks may be dropped for a client
    /// that reads (100 ms: a reading client takes bytes far more often; a momentary lag is not a stall).
    static let stalledAfterNanoseconds: UInt64 = 100_000_000

    private func isStalled(_ client: AgentConnection, _ now: UInt64) -> Bool {
        client.blocked && now > client.lastProgress && now - client.lastProgress >= Self.stalledAfterNanoseconds
    }

    /// Makes room in the budget for `requester`: drops the chunks nothing of which was sent from the
    /// queue of the stalled client that has gone longest without taking a byte, counts their events as
    /// that client's losses (told to it once it reads again), and gives it no new chunk until it takes
    /// a byte. False if there is no such client.
    private func reclaim(for requester: AgentConnection, now: UInt64) -> Bool {
        var victim: AgentConnection?
        for c in clients
        where c !== requester && c.lastProgress < requester.lastProgress && c.queue.canDrop && isStalled(c, now) {
            // The oldest; of two as old, the one with more queued.
            if let v = victim,
                v.lastProgress < c.lastProgress || (v.lastProgress == c.lastProgress && v.queue.queued >= c.queue.queued)
            {
                continue
            }
            victim = c
        }
        guard let victim else { return false }
        let dropped = victim.queue.dropUnsent()
        victim.shed = true
        victim.currentNode = -1
        victim.sentEvents = victim.sentEvents >= dropped.events ? victim.sentEvents - dropped.events : 0
        victim.lostEvents +|= dropped.newLost
        reclaimedEvents +|= dropped.newLost
        for slot in dropped.lost.indices where dropped.lost[slot] > 0 {
            victim.pendingLost[slot] +|= dropped.lost[slot]
            victim.hasPendingLost = true
        }
        if dropped.names { victim.namesPending = true }
        return true
    }

    /// Tells a client about its losses (and resends names) once its queue has room again.
    private func settle(_ client: AgentConnection) {
        if client.namesPending && client.queue.room > client.queue.limit / 2 { queueNames(client) }
        guard client.hasPendingLost, client.queue.room > client.queue.limit / 4 else { return }
        let now = wallClockNanoseconds()
        for slot in client.pendingLost.indices where client.pendingLost[slot] > 0 {
            let count = client.pendingLost[slot]
            scratch.removeAll()
            switch client.kind {
            case .lab:
                scratch.append(nodeRecords[slot])
                VxrecEncoder.appendLost(cpu: 0, count: count, time: now, to: scratch)
            case .node:
                AgentPayloadEncoder.appendPayload(
                    data: UnsafeRawBufferPointer(start: nil, count: 0), cpu: 0, lost: count,
                    type: AgentPayloadEncoder.lostType, to: scratch)
            }
            guard fit(client, scratch.count) else { return }
            client.queue.append(scratch.bytes)
            client.queue.account(slot: slot, lost: count)
            client.currentNode = client.kind == .lab ? slot : -1
            client.pendingLost[slot] = 0
        }
        client.hasPendingLost = false
    }

    /// Events on for the nodes some client reads (every node while metrics count them), off for the
    /// others.
    public func updateEvents() {
        for node in nodeNames.indices {
            let wanted = metrics != nil || hasLabClients || hasClients(of: node)
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
    /// client that wants node `node`'s events; a client without room loses it, counted. A client whose
    /// socket refused bytes costs a few comparisons per event here, no system call.
    private func fanOut(node: Int, lab: OutputBuffer?, cilium: OutputBuffer?, countsAsEvent: UInt64) {
        clock &+= 1
        offered[node] +|= countsAsEvent
        // The ring source hands over thousands of events at a time: now and then, one epoll_wait for
        // every client gives those whose socket drained more, instead of waiting for the next tick.
        if clock & 255 == 0 { serviceEvents(all: false) }
        if activeDirty {
            active = clients.filter { !$0.parked }
            activeDirty = false
        }
        // Parked clients are not visited: their losses are the counters' growth (see `park`).
        for client in active {
            let bytes: OutputBuffer
            switch client.kind {
            case .lab:
                guard let lab else { continue }
                bytes = lab
            case .node(let n):
                guard n == node, let cilium else { continue }
                bytes = cilium
            }
            let slot = client.kind == .lab ? node : 0
            if (client.hasPendingLost || client.namesPending) && !client.blocked { settle(client) }
            var fits = !client.hasPendingLost && client.failure == 0
            if fits {
                let nodeRecord = client.kind == .lab && client.currentNode != node
                fits = fit(client, bytes.count + (nodeRecord ? nodeRecords[node].count : 0))
                if fits {
                    if nodeRecord {
                        client.queue.append(nodeRecords[node].bytes)
                        client.currentNode = node
                    }
                    client.queue.append(bytes.bytes)
                    client.queue.account(events: 1, slot: slot, lost: countsAsEvent, newLost: countsAsEvent)
                    client.sentEvents &+= 1
                }
            }
            if !fits {
                client.pendingLost[slot] +|= countsAsEvent
                client.hasPendingLost = true
                client.lostEvents +|= countsAsEvent
                if client.blocked { park(client) }
            }
            // A client that reads gets its bytes a chunk at a time, not only at the next tick.
            if !client.blocked && client.failure == 0 && client.queue.queued >= QueueMemory.chunkBytes { send(client) }
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
        // A client whose names are pending gets them all again later.
        for client in clients where client.kind == .lab && !client.namesPending {
            if client.parked {
                client.namesPending = true
                continue
            }
            let nodeRecord = client.currentNode != node
            guard fit(client, record.count + (nodeRecord ? nodeRecords[node].count : 0)) else {
                client.namesPending = true
                continue
            }
            if nodeRecord {
                client.queue.append(nodeRecords[node].bytes)
                client.currentNode = node
            }
            client.queue.append(record.bytes)
            client.queue.account(names: true)
        }
    }

    public func sample(node: Int, cpu: Int, bytes: UnsafeRawBufferPointer, time: UInt64) {
        samples &+= 1
        let lab = hasLabClients
        let cilium = hasClients(of: node)
        if lab || cilium {
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
        // After the sample is copied for the clients (its bytes are in the cache then), through an
        // unretained reference: a retain and a release per sample cost more than counting it.
        // A sample the memo counts needs no more than `metricsFast` (pointers); the rest goes to the
        // metrics object.
        if let fast = metricsFast {
            let left = fast.sample(node: node, cpu: cpu, bytes: bytes)
            if left != .nothing, let metricsRef {
                metricsRef._withUnsafeGuaranteedRef { $0.sample(node: node, cpu: cpu, bytes: bytes, time: time, left: left) }
            }
        }
    }

    public func lost(node: Int, cpu: Int, count: UInt64, time: UInt64) {
        lost +|= count
        metrics?.lost(node: node, cpu: cpu, count: count, time: time)
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
        serviceEvents(all: false)
        writeAll()
        publishMemoCounts()
        return true
    }

    /// The counts of samples the metrics' sample memo counted reach the exposition about 60 ms late at
    /// most: published when 50 ms have passed, checked from `readReady` (every poll round, 10 ms)
    /// and from `flush` (every housekeeping tick).
    private func publishMemoCounts() {
        guard let metrics else { return }
        let now = monotonicNanoseconds()
        if now &- lastMemoPublish >= 50_000_000 {
            lastMemoPublish = now
            metrics.publish()
        }
    }

    // MARK: Metrics

    /// Adds what `client` sent and lost since the last time to its series' counters.
    private func publish(_ client: AgentConnection) {
        guard let metrics, client.metricsSlot >= 0 else { return }
        if client.sentEvents > client.publishedSent {
            metrics.clientSent.add(client.metricsSlot, client.sentEvents - client.publishedSent)
            client.publishedSent = client.sentEvents
        }
        let lost = parkedLosses(client).reduce(client.lostEvents) { $0 +| $1 }
        if lost > client.publishedLost {
            metrics.clientLost.addSaturating(client.metricsSlot, lost - client.publishedLost)
            client.publishedLost = lost
        }
    }

    /// Every client's counters, and the queue gauges: the bytes queued for the clients of each series
    /// (a series without a connected client is not shown).
    private func publishClientMetrics() {
        guard let metrics else { return }
        var queued: [Int: UInt64] = [:]
        for client in clients where client.metricsSlot >= 0 {
            publish(client)
            queued[client.metricsSlot, default: 0] += UInt64(client.queue.queued)
        }
        for slot in 0..<metrics.clientQueue.seriesCount {
            metrics.clientQueue.set(slot, queued[slot] ?? MetricTable.absent)
        }
    }

    // MARK: Status

    /// Writes the status file `vxmon lab status` shows.
    public func writeStatus() {
        var text = "pid \(getpid())\nstarted \(started)\nevents \(samples)\nlost \(lost)\n"
        // Queue memory held now, its budget, and the events dropped from stalled clients' queues for others.
        text += "queues \(memory.held) budget \(options.totalQueueBytes) reclaimed \(reclaimedEvents)\n"
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
