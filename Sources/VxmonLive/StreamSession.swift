import Glibc
import Synchronization
import VxmonCore

/// Reads events from a socket: the lab-wide stream of a vxmon agent (`.vxrec` records with nodes,
/// interface names, kernel times and lost records) or a Cilium agent's monitor socket (protocol 1.2,
/// gob payloads; events get the time they were received). Parsing is the byte parsers' job; this type
/// owns the connection, the poll loop and reconnecting.
public final class StreamSession: LiveEventSource, PollLoopDelegate, @unchecked Sendable {
    public enum Format: Sendable {
        /// vxmon's agent: a `.vxrec` stream.
        case vxrec
        /// Cilium's monitor socket, listener protocol 1.2.
        case cilium
    }

    public struct Options: Sendable {
        public var path: String
        public var format: Format
        /// Nodes whose events are delivered (indexes of the sink's calls). A Cilium socket is one node:
        /// its events are delivered as node 0.
        public var nodeNames: [String]
        /// Stop by itself after this many seconds.
        public var duration: Double?
        /// A descriptor whose error/hangup ends the session (stdout).
        public var watchFD: Int32?
        /// When the agent goes away, wait for it and go on instead of ending with a failure.
        public var reconnect = false
        /// The sink is flushed this often (a monitor's output; the Hubble observers' wake-up of their
        /// followers, which want 10).
        public var flushMilliseconds: Int32 = 100
        /// How the peer is named in messages ("the agent of lab 'x'").
        public var peer: String

        public init(path: String, format: Format, nodeNames: [String], peer: String) {
            self.path = path
            self.format = format
            self.nodeNames = nodeNames
            self.peer = peer
        }
    }

    public let options: Options
    private let sink: any LiveSink
    private let stopFlag = Atomic<Bool>(false)
    private var loop: PollLoop?
    private var connection: Connection?
    private var counts = LiveStats()
    /// Set when the connection ended (peer closed, read error, malformed stream).
    fileprivate var connectionEnded: String?
    fileprivate var now: UInt64 = 0
    public var log: (String) -> Void = { EventPipeline.diagnostic($0) }
    /// Malformed records seen in the whole session (their lines are capped across reconnects).
    var reportedMalformed = 0

    public init(options: Options, sink: any LiveSink) {
        self.options = options
        self.sink = sink
    }

    public func announceInterfaces() {}

    public func requestStop() {
        stopFlag.store(true, ordering: .relaxed)
        loop?.requestStop()
    }

    public func close() { connection = nil }

    private var stopping: Bool { stopFlag.load(ordering: .relaxed) || stopRequested.load(ordering: .relaxed) }

    /// Connects (waiting for the peer with `reconnect`), reads until stopped; with `reconnect` goes on
    /// across the peer's restarts, saying so on stderr. Without it, a peer that goes away ends the
    /// session with `failure` set.
    public func run() throws -> LiveStats {
        let start = monotonicNanoseconds()
        func remaining() -> Double? {
            options.duration.map { max($0 - Double(monotonicNanoseconds() - start) / 1e9, 0) }
        }
        var connections = 0
        var endReason = "stopped"
        var saidWaiting = false
        while !stopping {
            if let left = remaining(), left <= 0 {
                endReason = "duration reached"
                break
            }
            let fd: Int32
            do {
                fd = try Self.connect(options.path)
            } catch {
                if !options.reconnect || error is PermissionDenied {
                    if connections == 0 { throw error }
                    counts.failure = "\(options.peer) went away and could not be reached again: \(error)"
                    endReason = "connection lost"
                    break
                }
                if !saidWaiting {
                    log("vxmon: waiting for \(options.peer) (\(error))")
                    saidWaiting = true
                }
                sleepInterruptibly(1.0)
                continue
            }
            if connections > 0 { log("vxmon: reconnected to \(options.peer)") }
            saidWaiting = false
            connections += 1
            connectionEnded = nil
            let parser: any ByteStreamParser = options.format == .vxrec ? VxrecParser() : AgentStreamParser()
            let forwarder = Forwarder(session: self, sink: sink, nodeNames: options.nodeNames, format: options.format)
            let source = Connection(fd: fd, parser: parser, forwarder: forwarder, session: self)
            connection = source
            var schedule = PollSchedule()
            schedule.duration = remaining()
            schedule.housekeepingMilliseconds = options.flushMilliseconds
            schedule.watchFD = options.watchFD
            let loop = PollLoop(sources: [source], schedule: schedule)
            self.loop = loop
            if stopping { break }
            let end = try loop.run(self)
            counts.samples &+= forwarder.samples
            counts.lost +|= forwarder.lost
            counts.malformed &+= forwarder.malformed
            self.loop = nil
            connection = nil
            // A connection that ended stops its loop at once (see `Connection.readReady`).
            guard let ended = connectionEnded, end == .finished(ended) || end == .stopped, !stopping else {
                endReason = end.description
                break
            }
            if options.reconnect {
                counts.reconnects &+= 1
                log("vxmon: \(options.peer) closed the connection (\(ended)); reconnecting")
                // A peer that closes at once (an agent refusing clients) is not hammered.
                sleepInterruptibly(forwarder.samples == 0 && forwarder.lost == 0 ? 1.0 : 0.1)
                continue
            }
            counts.failure = "\(options.peer) closed the connection (\(ended))"
            endReason = "connection lost"
            break
        }
        _ = sink.flush()
        counts.endReason = endReason
        return counts
    }

    private func sleepInterruptibly(_ seconds: Double) {
        var left = seconds
        while left > 0 && !stopping {
            usleep(50_000)
            left -= 0.05
        }
    }

    /// A socket whose permissions refuse this user: waiting does not change that, so it ends the
    /// session (with the hint of what to do) even when reconnecting.
    public struct PermissionDenied: Error, CustomStringConvertible {
        public var description: String
    }

    /// A connected, non-blocking Unix stream socket to `path`.
    public static func connect(_ path: String) throws -> Int32 {
        var address = try unixAddress(path)
        let fd = socket(AF_UNIX, 1 | 0o2000000, 0)
        if fd < 0 { throw VxmonError("socket: \(errnoString(errno))") }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            let code = errno
            Glibc.close(fd)
            let message = "cannot connect to \(sanitizedForLog(path)): \(errnoString(code))"
            if code == EACCES || code == EPERM { throw PermissionDenied(description: message + permissionHint(path)) }
            throw VxmonError(message)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }

    /// Why a connection to `path` was refused by its permissions, and what to do: the socket's mode and
    /// group (its name from the group database, else the number), and for a vxmon agent's socket (under
    /// `/run/vxmon/`) the agent's `--socket-group`. Everything from outside (the path, the group's
    /// name) is sanitised.
    static func permissionHint(_ path: String) -> String {
        var st = stat()
        guard stat(path, &st) == 0 else {
            return ": cannot stat it either (\(errnoString(errno))): a directory on its path is closed to this user"
        }
        let mode = String(st.st_mode & 0o7777, radix: 8)
        let group = sanitizedForLog(String(groupName(st.st_gid).prefix(64)))
        var hint = ": the socket is mode \(String(repeating: "0", count: max(0, 4 - mode.count)) + mode), group \(group)"
        if processInGroup(st.st_gid) {
            hint +=
                " (this user is in group \(group): the mode closes the socket to the group, or a directory on its path "
                + "is closed)"
        } else {
            hint += "; run as root or as a member of group \(group)"
        }
        let root = LabPaths.stateRoot + "/"
        if path.hasPrefix(root) {
            let lab = path.dropFirst(root.count).split(separator: "/").first.map { sanitizedForLog(String($0)) } ?? "LAB"
            hint +=
                ", or have the lab's agent give it to a group of yours: `vxmon agent --lab \(lab) --socket-group GROUP` "
                + "(on a lab up with `--no-agent`, or once its agent is stopped; `lab up` keeps the option when it "
                + "restarts the agent)"
        }
        return hint
    }

    /// The name of group `gid`, or its number.
    static func groupName(_ gid: gid_t) -> String {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getgrgid_r(gid, &entry, &buffer, buffer.count, &result)
        guard rc == 0, result != nil, let name = entry.gr_name else { return "\(gid)" }
        return String(cString: name)
    }

    /// Whether this process has `gid` as its effective or a supplementary group.
    static func processInGroup(_ gid: gid_t) -> Bool {
        if getegid() == gid { return true }
        let count = getgroups(0, nil)
        guard count > 0 else { return false }
        var groups = [gid_t](repeating: 0, count: Int(count))
        let n = getgroups(count, &groups)
        return n > 0 && groups.prefix(Int(n)).contains(gid)
    }

    // MARK: PollLoopDelegate (polling thread)

    public func roundStarting() { now = wallClockNanoseconds() }
    public func roundFinished() {}
    public func tick() {}

    public func housekeeping() -> PollLoop.End? {
        if !sink.flush() { return sink.stopReason.map { .finished($0) } ?? .outputClosed }
        if let connectionEnded { return .finished(connectionEnded) }
        return nil
    }

    public func slowCheck() -> PollLoop.End? { nil }

    /// Marks the connection ended and stops its loop now (its descriptor would stay readable).
    fileprivate func endConnection(_ why: String) {
        connectionEnded = why
        loop?.requestStop()
    }

    /// The socket as a poll source: reads what is there into the parser.
    final class Connection: PollSource {
        let fd: Int32
        let parser: any ByteStreamParser
        var forwarder: Forwarder
        unowned let session: StreamSession
        private var chunk = [UInt8](repeating: 0, count: 1 << 18)
        /// Bytes read on this connection.
        private var received = 0

        init(fd: Int32, parser: any ByteStreamParser, forwarder: Forwarder, session: StreamSession) {
            self.fd = fd
            self.parser = parser
            self.forwarder = forwarder
            self.session = session
        }

        deinit { Glibc.close(fd) }

        var pollFD: Int32 { fd }

        func readReady() -> Bool {
            guard session.connectionEnded == nil else { return false }
            // A budget per call, so the loop's housekeeping (flushing the output) keeps its cadence.
            for _ in 0..<32 {
                let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { return false }
                    session.endConnection("read: \(errnoString(errno))")
                    return false
                }
                if n == 0 {
                    // Closed before a single byte: refused (a vxmon agent at its client limit closes
                    // new connections at once), not a broken stream.
                    guard received > 0 else {
                        session.endConnection(
                            "closed at once, before sending anything (a vxmon agent serving its most clients refuses more: "
                                + "`vxmon lab status` lists them)")
                        return false
                    }
                    do {
                        try parser.finish()
                        session.endConnection("end of stream")
                    } catch {
                        session.endConnection("\(error)")
                    }
                    return false
                }
                received &+= n
                chunk.withUnsafeBytes { parser.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                do {
                    try parser.parse(into: &forwarder)
                } catch {
                    session.endConnection("malformed stream: \(error)")
                    return false
                }
            }
            return true
        }
    }

    /// Hands parsed records to the sink, with node indexes and times.
    final class Forwarder: RecordConsumer {
        unowned let session: StreamSession
        let sink: any LiveSink
        let nodeIndex: [String: Int]
        var current: Int
        var samples = 0
        var lost: UInt64 = 0
        var malformed = 0

        init(session: StreamSession, sink: any LiveSink, nodeNames: [String], format: Format) {
            self.session = session
            self.sink = sink
            var index: [String: Int] = [:]
            for (i, name) in nodeNames.enumerated() { index[name] = i }
            nodeIndex = index
            current = format == .cilium ? 0 : -1
        }

        func sample(_ body: RawSpan, cpu: Int, timeNanoseconds: UInt64, index: Int, offset: Int) {
            guard current >= 0 else { return }
            samples &+= 1
            let time = timeNanoseconds != 0 ? timeNanoseconds : session.now
            body.withUnsafeBytes { sink.sample(node: current, cpu: cpu, bytes: $0, time: time) }
        }

        func lost(cpu: Int, count: UInt64, timeNanoseconds: UInt64) {
            guard current >= 0 else { return }
            lost +|= count
            sink.lost(node: current, cpu: cpu, count: count, time: timeNanoseconds != 0 ? timeNanoseconds : session.now)
        }

        func interfaceName(ifindex: UInt32, name: String) {
            guard current >= 0 else { return }
            sink.interfaceName(node: current, ifindex: ifindex, name: name, time: session.now)
        }

        func metadata(key: String, value: String) {
            if case .some(let node) = Vxrec.node(fromMetadata: key, value) {
                current = node.flatMap { nodeIndex[$0] } ?? -1
            }
        }

        /// Reported one by one up to 10 per session, whatever the number of connections (a hostile peer
        /// that reconnects must not flood stderr), all counted.
        func malformedRecord(index: Int, offset: Int, reason: String) {
            malformed &+= 1
            session.reportedMalformed &+= 1
            if session.reportedMalformed <= 10 {
                session.log(
                    "vxmon: skipped a malformed record at offset \(offset) of the stream from \(session.options.peer): \(reason)"
                        + (session.reportedMalformed == 10 ? " (further ones are only counted)" : ""))
            }
        }
    }
}

/// The address of the Unix socket at `path` (a file system path, not an abstract name).
func unixAddress(_ path: String) throws -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
        throw VxmonError("socket path too long: \(sanitizedForLog(path))")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { p in
        for (i, b) in bytes.enumerated() { p[i] = b }
    }
    return address
}

/// `s` with control and bidi characters replaced, for diagnostics.
func sanitizedForLog(_ s: String) -> String {
    let out = OutputBuffer(capacity: s.utf8.count + 8)
    out.appendSanitized(s)
    return out.string
}
