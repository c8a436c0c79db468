import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Glibc
import NIOPosix
import Synchronization
import VxmonCore
import VxmonLab
import VxmonLive

/// Options of a lab's observer servers.
public struct HubbleOptions: Sendable {
    /// The port every node's observer listens on, on the node's IP inside its namespace.
    public var port: UInt16 = 4244
    /// Flows kept per node (Hubble's event buffer holds 4095 by default).
    public var capacity = 4095
    /// How often the lab's topology is read again for Peer/Notify changes, in seconds.
    public var peerRefreshSeconds = 2.0
    /// TLS (nil: plaintext, the default only because the servers listen inside the lab's namespaces).
    public var tls: HubbleTLS?
    /// Connections and streams per node's server.
    public var limits = HubbleConnectionLimits()

    public init() {}
}

/// A lab's Hubble side: one gRPC server per node (Observer, Peer, Health) on `<node ip>:4244` inside
/// the node's network namespace, fed by one client of the lab's agent.
///
/// The listening sockets are made on a thread that entered the node's namespace; the gRPC servers
/// then serve them from this process's own threads (a socket stays in the namespace it was made in).
public enum HubbleServers {
    public static let version = "vxmon-hubble 0.10 (observer API of Cilium 1.13+)"

    /// A listening TCP socket on `ip:port` inside network namespace `namespace`.
    public static func listen(namespace: String, ip: String, port: UInt16) throws -> Int32 {
        try NetworkNamespace.run(in: namespace) {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            guard inet_pton(AF_INET, ip, &address.sin_addr) == 1 else { throw VxmonError("not an IPv4 address: \(ip)") }
            // SOCK_STREAM (1) | SOCK_CLOEXEC | SOCK_NONBLOCK, by number (see platform notes).
            let fd = socket(AF_INET, 1 | Int32(O_CLOEXEC) | Int32(O_NONBLOCK), 0)
            if fd < 0 { throw VxmonError("socket in \(namespace): \(errnoString(errno))") }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if rc != 0 || Glibc.listen(fd, 128) != 0 {
                let code = errno
                close(fd)
                throw VxmonError("cannot listen on \(ip):\(port) in \(namespace): \(errnoString(code))")
            }
            return fd
        }
    }

    /// Serves until SIGINT/SIGTERM (`stopRequested`) or until the lab is certainly no longer up.
    public static func run(lab: Lab, options: HubbleOptions, log: @escaping @Sendable (String) -> Void) async throws {
        // The TLS files are read before anything else: a bad one ends the start with its name.
        let tlsContext = try options.tls?.makeContext()
        let topology = try lab.requireUp()
        var limits = options.limits
        limits.maxConnections = fitConnections(limits.maxConnections, servers: topology.nodes.count, log: log)
        FlowIngest.warmUp()
        var rings: [String: FlowRing] = [:]
        var nodes: [HubbleLab.Node] = []
        for node in topology.nodes {
            let ring = FlowRing(capacity: options.capacity)
            rings[node.name] = ring
            nodes.append(HubbleLab.Node(name: node.name, address: "\(node.ip):\(options.port)", ring: ring))
        }
        let hubble = HubbleLab(nodes: nodes, version: version, pods: topology.pods.map(\.info), tls: options.tls != nil)
        var made: [GRPCServer<HTTP2ServerTransport.Custom<HubbleListener>>] = []
        var gates: [ConnectionGate] = []
        for (node, served) in zip(topology.nodes, nodes) {
            let fd = try listen(namespace: node.namespace, ip: node.ip, port: options.port)
            let gate = ConnectionGate(limits: limits, name: node.name, log: log)
            let listener = HubbleListener(
                eventLoopGroup: MultiThreadedEventLoopGroup.singletonMultiThreadedEventLoopGroup, descriptor: fd,
                tls: tlsContext, gate: gate)
            let transport = HTTP2ServerTransport.Custom(
                listenerFactory: listener, config: HubbleListener.transportConfig(limits: limits, gate: gate))
            let services: [any RegistrableRPCService] = [
                ObserverService(lab: hubble, node: served), PeerService(lab: hubble), HealthService(),
            ]
            made.append(GRPCServer(transport: transport, services: services))
            gates.append(gate)
        }
        let servers = made

        // The flows: one client of the agent's lab stream, reconnecting when the agent restarts.
        let names = InterfaceNames()
        // Latest's reading throughout, as the flows follow latest's API (the lab's trace and drop v1
        // records read the same in both releases).
        // What comes from outside (undecodable events, the agent's stream) draws on the stderr budget.
        let bounded: (String) -> Void = { DiagnosticBudget.process.write($0, log) }
        let pipeline = EventPipeline(format: .none, release: .latest, names: names, diagnostics: bounded)
        for pod in topology.pods { pipeline.pods.learn(pod.info) }
        let ingest = FlowIngest(rings: rings, pods: pipeline.pods, names: names)
        ingest.diagnostics = bounded
        pipeline.add(ingest)
        let sink = PipelineSink(pipeline: pipeline, nodeNames: topology.nodes.map(\.name))
        var streamOptions = StreamSession.Options(
            path: lab.paths.agentSocket, format: .vxrec, nodeNames: topology.nodes.map(\.name),
            peer: "the agent of lab '\(lab.name)'")
        streamOptions.reconnect = true
        // Followers are woken when the ring is flushed: every 10 ms, not the monitors' 100.
        streamOptions.flushMilliseconds = 10
        let session = StreamSession(options: streamOptions, sink: sink)
        session.log = bounded
        let reader = try BackgroundThread { _ = try session.run() }

        try FileSystem.writeText(lab.paths.hubblePIDFile, "\(getpid())\n")
        let security =
            options.tls.map { $0.clientAuth ? "mutual TLS" : "TLS without client certificates" } ?? "plaintext"
        log(
            "vxmon-hubble: lab '\(lab.name)', pid \(getpid()); observers (\(security)) on "
                + nodes.map { "\($0.name) \($0.address)" }.joined(separator: ", ") + "; ring \(options.capacity) flows per node; "
                + "at most \(limits.maxConnections) connections per node, \(limits.maxConcurrentStreams) streams per connection")
        defer {
            if (try? FileSystem.read(lab.paths.hubblePIDFile))?.trimmingPrefix("\(getpid())\n").isEmpty == true {
                unlink(lab.paths.hubblePIDFile)
            }
        }

        let allRings = rings
        do {
            try await serve(
                servers: servers, hubble: hubble, rings: allRings, session: session, lab: lab.paths,
                watched: LabWatch(topology: topology, paths: lab.paths), options: options, log: log)
        } catch is CancellationError {}
        try reader.join()
        for line in gates.compactMap({ $0.flush() }) { log(line) }
        log(
            "vxmon-hubble: stopped; \(ingest.flows) flows"
                + (ingest.unrouted > 0 ? ", \(ingest.unrouted) of no node served here" : "")
                + (DiagnosticBudget.process.suppressed > 0
                    ? ", \(DiagnosticBudget.process.suppressed) diagnostic lines not shown (stderr limit)" : ""))
    }

    static func serve(
        servers: [GRPCServer<HTTP2ServerTransport.Custom<HubbleListener>>], hubble: HubbleLab, rings: [String: FlowRing],
        session: StreamSession, lab: LabPaths, watched: LabWatch, options: HubbleOptions,
        log: @escaping @Sendable (String) -> Void
    ) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for server in servers { group.addTask { try await server.serve() } }
            group.addTask {
                var sinceRefresh = 0.0
                var lastUnknown: UInt64?
                while !stopRequested.load(ordering: .relaxed) {
                    try? await Task.sleep(for: .milliseconds(100))
                    sinceRefresh += 0.1
                    guard sinceRefresh >= options.peerRefreshSeconds else { continue }
                    sinceRefresh = 0
                    switch watched.check() {
                    case .gone(let why):
                        log("vxmon-hubble: lab '\(lab.lab)' is no longer up (\(why)); stopping")
                    case .unknown(let why):
                        // Not an answer (no descriptor to be had, say): the servers go on. Said at most
                        // once a minute.
                        let now = monotonicNanoseconds()
                        if lastUnknown.map({ now - $0 >= 60_000_000_000 }) ?? true {
                            lastUnknown = now
                            log("vxmon-hubble: cannot tell whether lab '\(lab.lab)' is up (\(why)); serving on")
                        }
                        continue
                    case .up(let now):
                        if let now {
                            hubble.updatePeers(
                                Dictionary(uniqueKeysWithValues: now.nodes.map { ($0.name, "\($0.ip):\(options.port)") }))
                        }
                        continue
                    }
                    break
                }
                // Peers are told every node is gone, followers get the end of their streams, then
                // the servers close; whatever is still running half a second later is cancelled.
                hubble.close()
                for ring in rings.values { ring.close() }
                for server in servers { server.beginGracefulShutdown() }
                session.requestStop()
                try? await Task.sleep(for: .milliseconds(500))
                throw CancellationError()
            }
        }
    }

    /// The connection limit per server, lowered if the servers' share of RLIMIT_NOFILE (its soft limit,
    /// raised to the hard one first) cannot hold that many: 128 descriptors are kept for everything
    /// else (the event loops, the agent's socket, files). With the limit within the budget a flood of
    /// connections is refused at the limit and never exhausts the descriptors.
    static func fitConnections(_ wanted: Int, servers: Int, log: (String) -> Void) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return wanted }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let reserve: UInt = 128
        // rlim_cur may be RLIM_INFINITY (all ones): clamp before the arithmetic.
        let budget = Int(clamping: min(UInt(limit.rlim_cur), UInt(Int32.max)))
        let share = max(1, (budget - Int(reserve)) / max(servers, 1))
        if share < wanted {
            log(
                "vxmon-hubble: at most \(share) connections per node (not \(wanted)): "
                    + "the descriptor limit is \(limit.rlim_cur) for \(servers) servers")
            return share
        }
        return wanted
    }
}

/// Whether the lab is still up, answered without needing a new descriptor for the answer that stops
/// the servers: `lstat` of the lab's state file, its namespaces and its nodes' map pins. Only a
/// definite answer (a file that is gone, or lab.json saying the lab is not up) stops them; an error
/// (EMFILE while the descriptors are exhausted, EACCES...) is not an answer.
struct LabWatch: Sendable {
    enum Answer {
        /// Up; the topology when lab.json could be read (for the peers), else nil.
        case up(LabTopology?)
        case gone(String)
        case unknown(String)
    }

    let paths: LabPaths
    /// What must exist while the lab is up.
    let required: [String]

    init(topology: LabTopology, paths: LabPaths) {
        self.paths = paths
        required =
            [paths.stateFile] + topology.namespaces.map(NetworkNamespace.path)
            + topology.nodes.map { paths.mapPins($0.name) }
    }

    func check() -> Answer {
        for path in required {
            var st = stat()
            if lstat(path, &st) != 0 {
                let code = errno
                if code == ENOENT || code == ENOTDIR { return .gone("\(path) is gone") }
                return .unknown("\(path): \(errnoString(code))")
            }
        }
        // Reading lab.json takes a descriptor: when there is none, the peers wait for the next round.
        let text: String
        do { text = try FileSystem.read(paths.stateFile) } catch { return .up(nil) }
        guard let topology = try? LabTopology.decode(text) else { return .up(nil) }
        guard topology.phase == "up" else {
            return .gone("lab.json says \(EventPipeline.sanitized(String(topology.phase.prefix(32))))")
        }
        return .up(topology)
    }
}
