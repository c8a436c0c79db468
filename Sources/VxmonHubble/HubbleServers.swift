import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Glibc
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

    /// Serves until SIGINT/SIGTERM (`stopRequested`) or until the lab is no longer up.
    public static func run(lab: Lab, options: HubbleOptions, log: @escaping @Sendable (String) -> Void) async throws {
        let topology = try lab.requireUp()
        FlowIngest.warmUp()
        var rings: [String: FlowRing] = [:]
        var nodes: [HubbleLab.Node] = []
        for node in topology.nodes {
            let ring = FlowRing(capacity: options.capacity)
            rings[node.name] = ring
            nodes.append(HubbleLab.Node(name: node.name, address: "\(node.ip):\(options.port)", ring: ring))
        }
        let hubble = HubbleLab(nodes: nodes, version: version, pods: topology.pods.map(\.info))
        var made: [GRPCServer<HTTP2ServerTransport.Posix>] = []
        for (node, served) in zip(topology.nodes, nodes) {
            let fd = try listen(namespace: node.namespace, ip: node.ip, port: options.port)
            let transport = HTTP2ServerTransport.Posix(listeningSocketDescriptor: Int(fd), transportSecurity: .plaintext)
            let services: [any RegistrableRPCService] = [
                ObserverService(lab: hubble, node: served), PeerService(lab: hubble), HealthService(),
            ]
            made.append(GRPCServer(transport: transport, services: services))
        }
        let servers = made

        // The flows: one client of the agent's lab stream, reconnecting when the agent restarts.
        let names = InterfaceNames()
        // Latest's reading throughout, as the flows follow latest's API (the lab's trace and drop v1
        // records read the same in both releases).
        let pipeline = EventPipeline(format: .none, release: .latest, names: names, diagnostics: { log($0) })
        for pod in topology.pods { pipeline.pods.learn(pod.info) }
        let ingest = FlowIngest(rings: rings, pods: pipeline.pods, names: names)
        ingest.diagnostics = { log($0) }
        pipeline.add(ingest)
        let sink = PipelineSink(pipeline: pipeline, nodeNames: topology.nodes.map(\.name))
        var streamOptions = StreamSession.Options(
            path: lab.paths.agentSocket, format: .vxrec, nodeNames: topology.nodes.map(\.name),
            peer: "the agent of lab '\(lab.name)'")
        streamOptions.reconnect = true
        // Followers are woken when the ring is flushed: every 10 ms, not the monitors' 100.
        streamOptions.flushMilliseconds = 10
        let session = StreamSession(options: streamOptions, sink: sink)
        session.log = { log($0) }
        let reader = try BackgroundThread { _ = try session.run() }

        try FileSystem.writeText(lab.paths.hubblePIDFile, "\(getpid())\n")
        log(
            "vxmon-hubble: lab '\(lab.name)', pid \(getpid()); observers on "
                + nodes.map { "\($0.name) \($0.address)" }.joined(separator: ", ") + "; ring \(options.capacity) flows per node")
        defer {
            if (try? FileSystem.read(lab.paths.hubblePIDFile))?.trimmingPrefix("\(getpid())\n").isEmpty == true {
                unlink(lab.paths.hubblePIDFile)
            }
        }

        let labName = lab.name
        let allRings = rings
        do {
            try await serve(servers: servers, hubble: hubble, rings: allRings, session: session, labName: labName, options: options, log: log)
        } catch is CancellationError {}
        try reader.join()
        log(
            "vxmon-hubble: stopped; \(ingest.flows) flows"
                + (ingest.unrouted > 0 ? ", \(ingest.unrouted) of no node served here" : ""))
    }

    static func serve(
        servers: [GRPCServer<HTTP2ServerTransport.Posix>], hubble: HubbleLab, rings: [String: FlowRing],
        session: StreamSession, labName: String, options: HubbleOptions, log: @escaping @Sendable (String) -> Void
    ) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for server in servers { group.addTask { try await server.serve() } }
            group.addTask {
                var sinceRefresh = 0.0
                while !stopRequested.load(ordering: .relaxed) {
                    try? await Task.sleep(for: .milliseconds(100))
                    sinceRefresh += 0.1
                    guard sinceRefresh >= options.peerRefreshSeconds else { continue }
                    sinceRefresh = 0
                    guard let current = try? Lab(name: labName), case .up(let now) = current.state() else {
                        log("vxmon-hubble: lab '\(labName)' is no longer up; stopping")
                        break
                    }
                    hubble.updatePeers(Dictionary(uniqueKeysWithValues: now.nodes.map { ($0.name, "\($0.ip):\(options.port)") }))
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
}
