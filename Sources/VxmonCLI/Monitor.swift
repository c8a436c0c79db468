import ArgumentParser
import CVxmonABI
import Glibc
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive

/// Options of the commands that read the lab's event buffers live (monitor, record).
struct LiveCommandOptions: ParsableArguments {
    @OptionGroup var labOptions: LabOptions

    @Option(
        help: ArgumentHelp(
            "Only this node's events (repeatable: control-plane, worker, worker2); after --not, every other node's.",
            valueName: "node"))
    var node: [String] = []

    @Option(
        help: """
            Event buffer: ring (the lab's BPF ring buffer, all nodes in order; cheapest) or perf \
            (each node's cilium_events perf array, Cilium's own transport).
            """)
    var buffer: BufferKind = LiveOptions().buffer

    @Option(parsing: .unconditional, help: "Stop after this many seconds (0 to 31536000).")
    var duration: Double?

    @Option(parsing: .unconditional, help: "Perf buffer size per CPU, in pages (a power of two; default: 8 MiB per node, 64 to 1024 pages).")
    var perfPages: Int?

    @Option(
        parsing: .unconditional,
        help: """
            Perf samples per reader wakeup (default: wake when a quarter of a CPU's ring is pending; \
            every buffer is also drained every 10 ms).
            """)
    var perfWakeup: UInt32?

    func validate() throws {
        if let duration, !(duration.isFinite && duration >= 0 && duration <= 31_536_000) {
            throw ValidationError("--duration: \(duration) is out of range; expected seconds from 0 to 31536000")
        }
        if let perfPages, perfPages < 1 || perfPages > 65536 || perfPages & (perfPages - 1) != 0 {
            throw ValidationError("--perf-pages must be a power of two from 1 to 65536")
        }
        if let perfWakeup, perfWakeup < 1 || perfWakeup > 1_000_000 {
            throw ValidationError("--perf-wakeup must be from 1 to 1000000")
        }
        for node in node { try validateNodeName(node, "--node") }
        _ = try ciliumSockets()
    }

    /// The options of a live session that reads the nodes whose events `filter` can pass (its `--node`
    /// flags are a filter, as on replay: `--not --node worker` reads the other nodes).
    func liveOptions(reading filter: EventFilter, allNodes: Bool = false) -> LiveOptions {
        var o = LiveOptions()
        o.buffer = buffer
        o.nodes = allNodes ? nil : filter.nodesToRead
        o.duration = duration
        o.perfPagesPerCPU = perfPages ?? LiveOptions.defaultPerfPages
        o.perfWakeupEvents = perfWakeup ?? 0
        return o
    }

    @Option(
        help: ArgumentHelp(
            """
            Read a Cilium agent's monitor socket (listener protocol 1.2) instead of the lab, as `cilium monitor \
            --monitor-socket` does (default: $CILIUM_MONITOR_SOCK). NODE=PATH names the node the agent runs on; \
            repeat it to read several nodes at once (NODE= on each: `vxmon journey` follows packets across \
            them). vxmon reconnects when an agent restarts.
            """, valueName: "[node=]path"))
    var monitorSocket: [String] = []

    @Flag(help: "When the lab's agent goes away, say so, wait for it and go on (default: exit with status 1).")
    var reconnect = false

    /// Sockets read at most at once (a thread and a connection each).
    static let maxSockets = 256

    /// The Cilium sockets to read, if any: the flags (`NODE=PATH` or a bare `PATH`), else
    /// $CILIUM_MONITOR_SOCK (a path). Several sockets each name their node, every node and path once.
    func ciliumSockets() throws -> [CiliumSocket] {
        if monitorSocket.isEmpty {
            guard let env = getenv("CILIUM_MONITOR_SOCK") else { return [] }
            let path = String(cString: env)
            return path.isEmpty ? [] : [CiliumSocket(node: "", path: path)]
        }
        let flag = "--monitor-socket"
        guard monitorSocket.count <= Self.maxSockets else {
            throw ValidationError("\(flag): \(monitorSocket.count) sockets; at most \(Self.maxSockets) are read at once")
        }
        var sockets: [CiliumSocket] = []
        for value in monitorSocket {
            // NODE=PATH; a path with `=` before its first `/` is given as ./PATH (a node name has no `/`).
            var socket = CiliumSocket(node: "", path: value)
            if let equals = value.firstIndex(of: "="), !value[..<equals].contains("/") {
                socket = CiliumSocket(node: String(value[..<equals]), path: String(value[value.index(after: equals)...]))
                if socket.node.isEmpty {
                    throw ValidationError("\(flag): \(sanitizedArgument(value)) names no node before its =; expected NODE=PATH")
                }
                try validateNodeName(socket.node, flag)
            }
            if socket.path.isEmpty {
                throw ValidationError("\(flag): \(sanitizedArgument(value)) names no socket; expected [NODE=]PATH")
            }
            if monitorSocket.count > 1 && socket.node.isEmpty {
                throw ValidationError(
                    "\(flag): \(sanitizedArgument(value)): with several sockets, name each one's node: NODE=PATH")
            }
            if let twin = sockets.first(where: { $0.node == socket.node || $0.path == socket.path }) {
                let what = twin.node == socket.node ? "node \(socket.node)" : "socket \(sanitizedArgument(socket.path))"
                throw ValidationError("\(flag): \(what) is given twice")
            }
            sockets.append(socket)
        }
        return sockets
    }

    /// Where a live command reads: a Cilium agent's socket, the lab's agent (when it runs), or the
    /// lab's buffers directly (checking the machine and the capabilities that needs).
    /// `allNodes`: read every node whatever the filter's `--node` says (journeys cross nodes: the
    /// filter selects whole journeys).
    func input(_ command: String, _ filter: EventFilter, allNodes: Bool = false) throws -> LiveInput {
        let sockets = try ciliumSockets()
        if !sockets.isEmpty {
            // A Cilium agent's stream names no pod, nor a node unless NODE=PATH named it: such filters
            // match nothing there; a node no socket is named after is a usage error.
            let named = sockets.map(\.node).filter { !$0.isEmpty }
            for (flag, names) in [("--node", filter.nodeNames), ("--pod", filter.podNames)] where !names.isEmpty {
                if flag == "--node" && !named.isEmpty {
                    for name in names where !named.contains(name) {
                        throw ValidationError(
                            "--node: no --monitor-socket is named after node \(sanitizedArgument(name)); their nodes: "
                                + named.joined(separator: ", "))
                    }
                    continue
                }
                EventPipeline.standardError(
                    "vxmon: warning: \(flag) \(names.map(sanitizedArgument).joined(separator: ", ")): a Cilium agent's "
                        + "monitor socket names no \(flag == "--node" ? "nodes" : "pods"): nothing will match")
            }
            StopSignals.install()
            return LiveInput(topology: nil, nodes: sockets.map(\.node), agent: nil, sockets: sockets)
        }
        let lab = try labOptions.open()
        if AgentStatus.runningAgent(lab.paths) != nil, let topology = lab.recordedTopology(), topology.phase == "up" {
            // Through the agent, the socket's permissions are all a client needs.
            StopSignals.install()
            try check(filter, topology, lab)
            let nodes = try LiveSession.selectedNodes(topology, liveOptions(reading: filter, allNodes: allNodes)).map(\.name)
            return LiveInput(topology: topology, nodes: nodes, agent: lab.paths.agentSocket, sockets: [])
        }
        try Preflight.requirePrivileged(command)
        let topology = try lab.requireUp()
        Libbpf.routeLogs()
        StopSignals.install()
        try check(filter, topology, lab)
        let nodes = try LiveSession.selectedNodes(topology, liveOptions(reading: filter, allNodes: allNodes)).map(\.name)
        return LiveInput(topology: topology, nodes: nodes, agent: nil, sockets: [])
    }

    /// What the lab cannot emit, said before anything is read: a node it does not have is a usage
    /// error; flags that match only underlay packets on a lab that does not trace them get a warning
    /// with the fix (as root: the datapath's configuration is read from its pinned map).
    func check(_ filter: EventFilter, _ topology: LabTopology, _ lab: Lab) throws {
        for name in filter.nodeNames where topology.node(named: name) == nil {
            throw ValidationError(
                "--node: lab '\(topology.lab)' has no node \(sanitizedArgument(name)); its nodes: "
                    + topology.nodes.map(\.name).joined(separator: ", "))
        }
        let flags = filter.underlayOnlyFlags
        guard !flags.isEmpty, let node = topology.nodes.first,
            let config = try? NodeMaps(paths: lab.paths, node: node.name).readConfig(),
            config.flags & UInt32(VXMON_CFG_TRACE_UNDERLAY) == 0
        else { return }
        EventPipeline.standardError(
            "vxmon: warning: \(flags.joined(separator: ", ")) can match only VXLAN packets on the underlay, and lab "
                + "'\(topology.lab)' does not trace them: nothing will match. Bring the lab up with underlay traces: "
                + "vxmon lab down\(labFlag(topology.lab)) && vxmon lab up\(labFlag(topology.lab)) --trace-underlay")
    }

    func labFlag(_ lab: String) -> String { lab == Lab.defaultName ? "" : " --lab \(lab)" }

    /// The filter, checked against the lab: a pod the lab does not have is a usage error. (The
    /// pipeline learns the lab's pods: `EventPipeline.learn`.)
    func filter(_ filter: EventFilter, _ topology: LabTopology?) throws -> EventFilter {
        guard let topology else { return filter }
        for selector in filter.podSelectors where !topology.pods.contains(where: { selector.matches($0.info) }) {
            throw ValidationError(
                "--pod: lab '\(topology.lab)' has no pod \(sanitizedArgument(selector.text)); its pods: "
                    + topology.pods.map(\.name).joined(separator: ", "))
        }
        return filter
    }

    /// One line for stderr at the end.
    static func summary(_ stats: LiveStats, events: String) -> String {
        var line = "vxmon: \(events), \(stats.lost) samples lost"
        if stats.perfOutputFailures > 0 {
            // A full perf ring is counted twice (a lost record here, a failed output in the datapath);
            // the datapath count also includes outputs that found no reader.
            line += " (the datapath counted \(stats.perfOutputFailures) failed perf outputs)"
        }
        if stats.unattributed > 0 { line += ", \(stats.unattributed) ring records of no node read" }
        if stats.malformed > 0 { line += ", \(stats.malformed) malformed records skipped" }
        if stats.reconnects > 0 { line += ", \(stats.reconnects) reconnects" }
        return line + "; \(stats.endReason)"
    }
}

/// A Cilium agent's monitor socket to read, and the node it serves ("": not named).
struct CiliumSocket: Equatable {
    var node: String
    var path: String

    /// How the agent is named in messages (everything from the command line sanitised).
    var peer: String {
        "the Cilium agent " + (node.isEmpty ? "" : "of node \(sanitizedArgument(node)) ") + "at \(sanitizedArgument(path))"
    }
}

/// What a live command reads from (see `LiveCommandOptions.input`).
struct LiveInput {
    /// The lab's topology (nil for Cilium sockets).
    var topology: LabTopology?
    /// The node names the sink's node indexes refer to (for Cilium sockets, the names they were given,
    /// in order; "" for an unnamed one: no node name).
    var nodes: [String]
    /// The lab agent's socket, when the lab is read through its agent.
    var agent: String?
    /// Cilium agents' monitor sockets, one per node.
    var sockets: [CiliumSocket]

    /// What the recording's `buffer` metadata says.
    func bufferName(_ options: LiveOptions) -> String {
        agent != nil ? "agent" : !sockets.isEmpty ? "cilium-monitor-socket" : options.buffer.rawValue
    }

    func source(_ options: LiveOptions, sink: any LiveSink, reconnect: Bool) throws -> any LiveEventSource {
        if !sockets.isEmpty {
            // Each socket is one node, delivered as node 0 of its session (several: `MergedSource`
            // puts them in `nodes`' order).
            let sources = sockets.map { socket in
                var o = StreamSession.Options(path: socket.path, format: .cilium, nodeNames: [socket.node], peer: socket.peer)
                o.duration = options.duration
                o.watchFD = options.watchFD
                o.reconnect = true
                return o
            }
            if sources.count == 1 { return StreamSession(options: sources[0], sink: sink) }
            return MergedSource(sources: sources, sink: sink)
        }
        guard let topology else { throw CLIError("no lab") }
        if let agent {
            var o = StreamSession.Options(path: agent, format: .vxrec, nodeNames: nodes, peer: "the agent of lab '\(topology.lab)'")
            o.duration = options.duration
            o.watchFD = options.watchFD
            o.reconnect = reconnect
            return StreamSession(options: o, sink: sink)
        }
        return try LiveSession(topology: topology, options: options, sink: sink)
    }
}

struct Monitor: CommandWords {
    static let configuration = CommandConfiguration(
        abstract: "Print the lab's datapath events live, as cilium monitor does.",
        discussion: """
            Reads every node's event buffer (or one with --node) until interrupted. Output is flushed per \
            event on a terminal and in blocks otherwise; a lost/decode summary goes to stderr at the end.
            """)

    @OptionGroup var output: OutputOptions
    @OptionGroup var live: LiveCommandOptions
    @OptionGroup var filters: FilterOptions

    /// `vxmon FILE` (replay's form from before monitor became the default) still replays FILE.
    @Argument(help: .hidden)
    var recording: String?

    var words: [String] = []

    /// The replay `vxmon FILE` runs: FILE and the same options and filters, parsed as `vxmon replay`
    /// would parse them; nil when no recording was given.
    func replay() throws -> Replay? {
        guard recording != nil else { return nil }
        // Only a leading `monitor` is the subcommand's name (a filter value may be "monitor").
        let words = self.words.first == "monitor" ? Array(self.words.dropFirst()) : self.words
        var replay = try Replay.parse(Vxmon.forArgumentParser(["replay"] + words).dropFirst().map { $0 })
        replay.words = words
        return replay
    }

    func run() throws {
        if let replay = try replay() {
            try replay.run()
            return
        }
        let parsed = try filters.makeFilter(words)
        let input = try live.input("monitor", parsed)
        let filter = try live.filter(parsed, input.topology)
        var options = live.liveOptions(reading: parsed)
        options.watchFD = 1
        let pipeline = output.makePipeline(
            flushEachRecord: isatty(1) != 0, filter: filter, nodeLabels: input.nodes.count > 1)
        // The lab's pods name the source and destination of Hubble flows (-o jsonpb).
        for pod in input.topology?.pods ?? [] { pipeline.metadata(key: "pod", value: pod.info.metadataValue) }
        let pcap = try output.addPcapSink(to: pipeline)
        defer { if let pcap { close(pcap) } }
        let session = try input.source(
            options, sink: PipelineSink(pipeline: pipeline, nodeNames: input.nodes), reconnect: live.reconnect)
        session.announceInterfaces()
        let stats = try DedicatedThread.run { try session.run() }
        pipeline.flush()
        var events = "\(pipeline.stats.events) events"
        if pipeline.stats.filtered > 0 { events += " (\(pipeline.stats.matched) matched the filter)" }
        if pipeline.stats.decodeErrors > 0 { events += ", \(pipeline.stats.decodeErrors) skipped (undecodable)" }
        EventPipeline.standardError(LiveCommandOptions.summary(stats, events: events))
        try output.printSummary(pipeline.counters, pipeline.stats)
        if pipeline.outputError != 0 {
            throw CLIError("writing the output failed: \(String(cString: strerror(pipeline.outputError)))")
        }
        if let failure = stats.failure { throw CLIError(failure) }
        if output.failOnLost && (stats.lost > 0 || pipeline.stats.lostSamples > 0) {
            throw CLIError("\(max(stats.lost, pipeline.stats.lostSamples)) samples were lost (--fail-on-lost)")
        }
    }
}

/// A node name from the command line: what a lab node can be called (exit 64 otherwise).
func validateNodeName(_ name: String, _ flag: String) throws {
    let ok = !name.isEmpty && name.utf8.count <= 63
        && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
    if !ok {
        throw ValidationError(
            "\(flag): \(sanitizedArgument(name)) is not a node name; use up to 63 lowercase letters, digits and dashes")
    }
}
