import ArgumentParser
import Glibc
import VxmonBPF
import VxmonCore
import VxmonWire

/// Options of the commands that read the lab's event buffers live (monitor, record).
struct LiveCommandOptions: ParsableArguments {
    @OptionGroup var labOptions: LabOptions

    @Option(help: "Read only this node's events (control-plane, worker, worker2).")
    var node: String?

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
        if let node { try validateNodeName(node, "--node") }
    }

    var liveOptions: LiveOptions {
        var o = LiveOptions()
        o.buffer = buffer
        o.nodes = node.map { [$0] }
        o.duration = duration
        o.perfPagesPerCPU = perfPages ?? LiveOptions.defaultPerfPages
        o.perfWakeupEvents = perfWakeup ?? 0
        return o
    }

    /// Checks the machine and the lab, then returns the lab's topology.
    func prepare(_ command: String) throws -> LabTopology {
        try Preflight.requirePrivileged(command)
        let topology = try labOptions.open().requireUp()
        Libbpf.routeLogs()
        StopSignals.install()
        return topology
    }

    /// The filter, with the lab's pods known to it; a pod the lab does not have is a usage error.
    func filter(_ filters: FilterOptions, _ topology: LabTopology) throws -> EventFilter {
        var filter = try filters.makeFilter()
        for pod in topology.pods { filter.learn(pod.info) }
        for name in filter.podNames where filter.pods[name] == nil {
            throw ValidationError(
                "--pod: lab '\(topology.lab)' has no pod \(sanitizedArgument(name)); its pods: "
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
        return line + "; \(stats.endReason)"
    }
}

struct Monitor: ParsableCommand {
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

    func run() throws {
        if recording != nil {
            let replay = try Replay.parse(parsedArguments.filter { $0 != "monitor" })
            try replay.run()
            return
        }
        let topology = try live.prepare("monitor")
        let filter = try live.filter(filters, topology)
        var options = live.liveOptions
        options.watchFD = 1
        let nodes = try LiveSession.selectedNodes(topology, options).map(\.name)
        let pipeline = output.makePipeline(flushEachRecord: isatty(1) != 0, filter: filter, nodeLabels: nodes.count > 1)
        let pcap = try output.addPcapSink(to: pipeline)
        defer { if let pcap { close(pcap) } }
        let session = try LiveSession(
            topology: topology, options: options, sink: PipelineSink(pipeline: pipeline, nodeNames: nodes))
        session.announceInterfaces()
        let stats = try DedicatedThread.run { try session.run() }
        pipeline.flush()
        var events = "\(pipeline.stats.events) events"
        if pipeline.stats.filtered > 0 { events += " (\(pipeline.stats.matched) matched the filter)" }
        if pipeline.stats.decodeErrors > 0 { events += ", \(pipeline.stats.decodeErrors) skipped (undecodable)" }
        EventPipeline.standardError(LiveCommandOptions.summary(stats, events: events))
        output.printSummary(pipeline.counters, pipeline.stats)
        if pipeline.outputError != 0 {
            throw CLIError("writing the output failed: \(String(cString: strerror(pipeline.outputError)))")
        }
        if output.failOnLost && (stats.lost > 0 || pipeline.stats.lostSamples > 0) {
            throw CLIError("\(max(stats.lost, pipeline.stats.lostSamples)) samples were lost (--fail-on-lost)")
        }
    }
}

extension LabTopology.Pod {
    /// What filters and recordings know of a pod.
    var info: PodInfo {
        PodInfo(
            name: name, namespace: namespace,
            ip: FilterParser.parseIP(Substring(ip)) ?? .v4(IPv4Address(rawValue: 0)), identity: identity, node: node)
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
