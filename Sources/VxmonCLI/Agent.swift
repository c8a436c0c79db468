import ArgumentParser
import Glibc
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive

/// `vxmon agent`: the one reader of a lab's event buffers, serving every client on sockets.
struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Read the lab's events once and serve them to any number of clients (lab up starts it).",
        discussion: """
            Sockets under /run/vxmon/<lab>/: vxmon.sock (vxmon's own stream: the .vxrec records, with nodes, \
            interface names, kernel times and lost records; what `vxmon monitor` and `vxmon record` read) and \
            <node>/monitor1_2.sock per node (Cilium's monitor protocol 1.2: `cilium monitor --monitor-socket` \
            works on it). Every client has its own bounded queue, and all queues share one budget: one that stops \
            reading loses its own events (counted, and told to it as lost records), never the others', and is not \
            written to again until its socket takes bytes. Events are on while a client reads.

            With --metrics, it serves Prometheus metrics on http://ADDRESS/metrics: Hubble's flow metrics \
            (hubble_flows_processed_total, hubble_drop_total, hubble_tcp_flags_total, hubble_icmp_total, \
            hubble_port_distribution_total, hubble_lost_events_total; Cilium's names, labels and values for \
            --cilium, plus a node label) and its own health (vxmon_*, process_*). Every event is then counted \
            (decoded once, or found equal to an earlier packet of its flow in every byte a label depends on), \
            and events stay on for every node.
            """)

    @OptionGroup var labOptions: LabOptions

    @Flag(help: "Run in this terminal (logging to stderr) instead of as a daemon.")
    var foreground = false

    @Option(help: "Event buffer the agent reads: ring or perf.")
    var buffer: BufferKind = LiveOptions().buffer

    @Option(help: "Group owning the sockets (mode 0660, owner root); default root.")
    var socketGroup: String?

    @Option(parsing: .unconditional, help: "Bytes queued per client at most, in MiB (1 to 1024).")
    var queueMib = 16

    @Option(
        parsing: .unconditional,
        help: """
            Bytes queued for all clients together at most, in MiB (8 to 65536); when they are used up, the \
            client that has gone longest without reading loses its queued events first.
            """)
    var queueTotalMib = 64

    @Option(
        help: ArgumentHelp(
            "Serve Prometheus metrics on http://ADDRESS/metrics: an IPv4 or [IPv6] address and a port, e.g. 127.0.0.1:9965 (off by default).",
            valueName: "address"))
    var metrics: String?

    @Option(help: "Cilium release whose Hubble metric label values to give (--metrics): 1.13 or latest.")
    var cilium: CiliumRelease = .v1_13

    @Flag(
        help: "With --metrics, also build every packet's journey (as vxmon journey does) for the vxmon_journey_hop_latency_seconds histograms: more CPU per event.")
    var metricsJourneys = false

    func validate() throws {
        if !(1...1024).contains(queueMib) { throw ValidationError("--queue-mib must be from 1 to 1024") }
        if !(8...65536).contains(queueTotalMib) { throw ValidationError("--queue-total-mib must be from 8 to 65536") }
        if let socketGroup, getgrnam(socketGroup) == nil {
            throw ValidationError("--socket-group: no group \(sanitizedArgument(socketGroup))")
        }
        if let metrics, case .failure(let problem) = MetricsAddress.parse(metrics) {
            throw ValidationError("--metrics \(sanitizedArgument(metrics)): \(problem)")
        }
        if metricsJourneys && metrics == nil { throw ValidationError("--metrics-journeys needs --metrics") }
    }

    var forwardedArguments: [String] {
        // --queue-mib last: `lab bench` tests check that the restarted agent keeps it.
        ["--buffer", buffer.rawValue, "--queue-total-mib", "\(queueTotalMib)", "--queue-mib", "\(queueMib)"]
            + (socketGroup.map { ["--socket-group", $0] } ?? [])
            + (metrics.map { ["--metrics", $0, "--cilium", cilium.rawValue] } ?? [])
            + (metricsJourneys ? ["--metrics-journeys"] : [])
    }

    func run() throws {
        if foreground { AgentDaemon.closeInheritedDescriptors() }
        try Preflight.requirePrivileged("agent")
        let lab = try labOptions.open()
        let topology = try lab.requireUp()
        if !foreground {
            guard let exe = Preflight.executablePath else { throw CLIError("cannot find the vxmon executable") }
            let (pid, started) = try AgentDaemon.start(lab: lab.name, executable: exe, arguments: forwardedArguments)
            print("agent of lab '\(lab.name)' \(started ? "started" : "already running") (pid \(pid)); log \(lab.paths.agentLog)")
            return
        }
        Libbpf.routeLogs()
        StopSignals.install()
        var agentOptions = AgentOptions()
        agentOptions.queueBytes = queueMib << 20
        agentOptions.totalQueueBytes = queueTotalMib << 20
        if let socketGroup, let group = getgrnam(socketGroup) { agentOptions.socketGroup = group.pointee.gr_gid }
        var live = LiveOptions()
        live.buffer = buffer
        live.eventsOnDemand = true
        let nodes = topology.nodes.map(\.name)
        var metadata = [("source", "vxmon-agent"), ("lab", topology.lab), ("buffer", buffer.rawValue)]
        metadata += topology.pods.map { ("pod", $0.info.metadataValue) }
        // One agent per lab: while this one starts, another waits on the lab lock, and a lab that
        // already has a reader (an agent, a monitor) is refused before any socket of it is touched.
        var startLock: LabLock? = try LabLock(lab: lab.name, waitSeconds: 10)
        if let reader = MonitorLock.holder(paths: lab.paths) {
            throw CLIError(
                "lab '\(lab.name)' already has a reader (pid \(reader)\(AgentStatus.runningAgent(lab.paths) == reader ? ", its agent" : "")); "
                    + "stop it first")
        }
        let counters = metrics != nil ? AgentMetrics(nodeNames: nodes, release: cilium, journeys: metricsJourneys) : nil
        var metricsServer: MetricsServer?
        if let metrics, let counters, case .success(let address) = MetricsAddress.parse(metrics) {
            metricsServer = try MetricsServer(address: address) { format, out in counters.render(format, into: out) }
        }
        defer { metricsServer?.stop() }
        let server = try AgentServer(
            paths: lab.paths, nodeNames: nodes, metadata: metadata, options: agentOptions, metrics: counters)
        defer { server.close() }
        let session = try LiveSession(topology: topology, options: live, sink: server, extraSources: [server])
        server.switchEvents = { [unowned session] node, on in session.setEvents(node: node, on: on) }
        // Off until a client connects, whatever a killed reader left behind.
        for node in nodes.indices { session.setEvents(node: node, on: false) }
        // With metrics, on for every node from now on.
        server.updateEvents()
        // With how it was started, so that `lab up` and the bench start it again the same way.
        try server.register(arguments: forwardedArguments)
        startLock = nil
        session.announceInterfaces()
        server.writeStatus()
        try metricsServer?.start()
        EventPipeline.standardError(
            "vxmon agent: lab '\(lab.name)', pid \(getpid()), buffer \(buffer.rawValue); serving \(lab.paths.agentSocket) "
                + "and \(nodes.map { lab.paths.ciliumSocket($0) }.joined(separator: ", "))"
                + (metricsServer.map { "; metrics on http://\($0.address)/metrics (Cilium \(cilium.rawValue))" } ?? ""))
        // The lab's Hubble observers, started again if they stop (killed, crashed) while the lab is up.
        let keeper = HubbleKeeper(lab: lab.name, log: { EventPipeline.standardError($0) })
        let keeperThread = try BackgroundThread { keeper.run() }
        defer {
            keeper.stop()
            try? keeperThread.join()
        }
        let stats = try DedicatedThread.run { try session.run() }
        // Sockets first, then the reader lock: whoever sees the lock free finds no socket of ours
        // (an agent started at once after this one binds the same metrics address).
        metricsServer?.stop()
        server.close()
        session.close()
        withExtendedLifetime(startLock) {}
        EventPipeline.standardError(
            "vxmon agent: stopped (\(stats.endReason)); \(server.samples) events read, \(server.lost) lost")
    }
}
