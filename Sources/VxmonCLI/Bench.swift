import ArgumentParser
import CVxmonABI
import CVxmonSystem
import Glibc
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive

extension LabCommand {
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Measure what live monitoring costs: a cross-node UDP flood, events off versus vxmon consuming.",
            discussion: """
                Floods UDP (sendmmsg, sender pinned to --flood-cpu) from a pod on worker2 to a pod on worker \
                for the whole run, with an in-process vxmon monitor attached (decode + render to /dev/null with \
                the given output options, or --record), and switches the datapath's events off and on under \
                it: each round measures the receiver's packets per second (destination pod's eth0 counters) in \
                one window with events off and one with events on, in alternating order. Prints both, the \
                cost, the events/s received, the consumer's CPU and the samples lost per round, and the \
                medians. Brings the lab up (and down again) if it is not up.
                """)

        @OptionGroup var labOptions: LabOptions
        @OptionGroup var output: OutputOptions

        @Option(parsing: .unconditional, help: "Seconds measured per window (short windows, alternated, cancel the host's drift).")
        var seconds: Double = 0.25

        @Option(parsing: .unconditional, help: "Rounds of (events off, consuming) windows.")
        var rounds = 80

        @Option(help: "Event buffer: ring or perf (default: as vxmon monitor).")
        var buffer: BufferKind = LiveOptions().buffer

        @Option(parsing: .unconditional, help: "UDP payload bytes.")
        var size = 18

        @Option(parsing: .unconditional, help: "Offered load in datagrams per second (default: as fast as one sender can).")
        var rate = 0

        @Option(parsing: .unconditional, help: "Perf buffer size per CPU, in pages (default: as vxmon monitor).")
        var perfPages: Int?

        @Option(help: "Perf samples per reader wakeup (default: as vxmon monitor, a watermark).")
        var perfWakeup: UInt32?

        @Option(parsing: .unconditional, help: "CPU the flood's sender (and so the datapath it drives) is pinned to; -1: not pinned.")
        var floodCPU = 0

        @Flag(help: "Trace the underlay during the run too (from-network on eth0: one more event per packet).")
        var traceUnderlay = false

        @Flag(help: "Consume like `vxmon record -w /dev/null` (no decoding or rendering) instead of like the monitor.")
        var record = false

        @Option(help: "The BPF object, if the lab has to be brought up.")
        var bpfObject: String?

        @Option(
            parsing: .unconditional,
            help: """
                Consume through the agent: this process serves the agent's sockets and N `vxmon monitor` \
                processes (text to /dev/null) read them; CONSUMER CPU then adds up the agent and its clients. \
                0: read the buffers directly.
                """)
        var clients = 0

        @Option(
            help: ArgumentHelp(
                "With --clients: the agent also counts Prometheus metrics and serves them on ADDRESS, as `vxmon agent --metrics`.",
                valueName: "address"))
        var metrics: String?

        @Flag(help: "With --metrics, the agent also builds journeys for its hop latency histograms (vxmon agent --metrics-journeys).")
        var metricsJourneys = false

        func validate() throws {
            if metricsJourneys && metrics == nil { throw ValidationError("--metrics-journeys needs --metrics") }
            if !(0...16).contains(clients) { throw ValidationError("--clients: expected 0 to 16") }
            if let metrics {
                if clients == 0 { throw ValidationError("--metrics is the agent's: it needs --clients") }
                if case .failure(let problem) = MetricsAddress.parse(metrics) {
                    throw ValidationError("--metrics \(sanitizedArgument(metrics)): \(problem)")
                }
            }
            if clients > 0 && record { throw ValidationError("--clients and --record: the agent's clients are monitors") }
            if !(seconds.isFinite && seconds >= 0.2 && seconds <= 60) {
                throw ValidationError("--seconds: expected 0.2 to 60")
            }
            if !(1...10_000).contains(rounds) { throw ValidationError("--rounds: expected 1 to 10000") }
            if !(1...1400).contains(size) { throw ValidationError("--size: expected 1 to 1400") }
            if !(0...10_000_000).contains(rate) { throw ValidationError("--rate: expected 0 to 10000000") }
            if !(-1...4095).contains(floodCPU) { throw ValidationError("--flood-cpu: expected -1 to 4095") }
            if let perfPages, perfPages < 1 || perfPages > 65536 || perfPages & (perfPages - 1) != 0 {
                throw ValidationError("--perf-pages must be a power of two from 1 to 65536")
            }
        }

        func run() throws {
            try Preflight.requirePrivileged("lab bench")
            let port: UInt16 = 9
            let flooded = try FloodLab(labOptions, bpfObject: bpfObject, port: port, purpose: "the benchmark")
            defer { flooded.close() }
            let (lab, topology, source, destination) = (flooded.lab, flooded.topology, flooded.source, flooded.destination)
            for node in topology.nodes {
                try NodeMaps(paths: lab.paths, node: node.name).setEventsMode(UInt32(VXMON_EVENTS_OFF))
            }

            var live = LiveOptions()
            live.buffer = buffer
            live.perfPagesPerCPU = perfPages ?? LiveOptions.defaultPerfPages
            live.perfWakeupEvents = perfWakeup ?? 0
            let wakeup = perfWakeup.map { "every \($0) samples" } ?? "at 1/4 full"
            let bufferText =
                buffer == .perf
                ? "perf, \(live.perfPagesPerCPU) pages/CPU, wakeup \(wakeup)"
                : "ring, \(Int(VXMON_RINGBUF_SIZE) >> 20) MiB, wakeup per \(Lab.ringWakeupBytes >> 10) KiB written"
            print(
                "vxmon lab bench: UDP \(source.name) (\(source.ip)) -> "
                    + "\(destination.name) (\(destination.ip)):\(port), "
                    + "\(size)-byte payload, \(rate > 0 ? "\(grouped(Double(rate))) pps offered" : "unpaced"), "
                    + (traceUnderlay ? "underlay traced, " : "")
                    + "\(rounds) rounds of \(Int((seconds * 1000).rounded())) ms windows, flood on CPU \(floodCPU), buffer \(bufferText), "
                    + (clients > 0
                        ? "consumer: the agent\(metrics.map { " with metrics on \($0)\(metricsJourneys ? " and journeys" : "")" } ?? "") and \(clients) text monitors reading it, to /dev/null"
                        : record
                        ? "consumer: record to /dev/null"
                        : "consumer: monitor to /dev/null, output \(output.format.rawValue)")
            )
            let modeOn = buffer.eventsMode
            let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
            defer { close(devNull) }
            let pipeline = output.makePipeline(fd: devNull, flushEachRecord: false)
            let nodes = topology.nodes.map(\.name)
            let counters =
                metrics != nil ? AgentMetrics(nodeNames: nodes, release: output.cilium, journeys: metricsJourneys) : nil
            var metricsServer: MetricsServer?
            if let metrics, let counters, case .success(let address) = MetricsAddress.parse(metrics) {
                metricsServer = try MetricsServer(address: address) { format, out in counters.render(format, into: out) }
                try metricsServer?.start()
            }
            defer { metricsServer?.stop() }
            let agent =
                clients > 0
                ? try AgentServer(
                    paths: lab.paths, nodeNames: nodes, metadata: [("lab", lab.name)], options: AgentOptions(), metrics: counters)
                : nil
            defer { agent?.close() }
            let sink: any LiveSink
            if let agent {
                sink = agent
            } else if record {
                sink = RecorderSink(fd: devNull, nodeNames: nodes)
            } else {
                sink = PipelineSink(pipeline: pipeline, nodeNames: nodes)
            }
            let maps = try topology.nodes.map { try NodeMaps(paths: lab.paths, node: $0.name) }
            func setEvents(_ mode: UInt32) throws { for node in maps { try node.setEventsMode(mode) } }
            // Before the session starts: both rewrite the whole config, so they must not overlap.
            let underlayBefore = maps.map { $0.readConfig().flags & UInt32(VXMON_CFG_TRACE_UNDERLAY) != 0 }
            if traceUnderlay { for node in maps { try node.setTraceUnderlay(true) } }
            defer { for (node, on) in zip(maps, underlayBefore) { try? node.setTraceUnderlay(on) } }
            // With the agent, the windows below switch events; its clients connecting do not.
            live.eventsOnDemand = agent != nil
            let session = try LiveSession(
                topology: topology, options: live, sink: sink, extraSources: agent.map { [$0] } ?? [])
            session.announceInterfaces()
            let thread = try BackgroundThread { _ = try session.run() }
            // Stopped before anything else is torn down (the agent's metrics among it), also when a
            // step below throws; the stops and joins further down are then no-ops.
            defer {
                session.requestStop()
                try? thread.join()
                // The reader lock goes with it, before the lab's agent is started again.
                session.close()
            }
            guard let exe = Preflight.executablePath else { throw CLIError("cannot find the vxmon executable") }
            var readers: [ChildProcess] = []
            let readerErrors = (0..<clients).map { "\(LabPaths(lab: lab.name).stateDirectory)/bench-client\($0).err" }
            defer { for path in readerErrors { unlink(path) } }
            // The clients find this process's agent as the lab's (it holds the reader lock).
            try agent?.register(arguments: nil)
            for i in 0..<clients {
                readers.append(
                    try Shell.spawn([exe, "--lab", lab.name, "--reconnect"], quiet: true, errorFile: readerErrors[i]))
            }
            defer { for reader in readers { reader.stop() } }
            if let agent {
                // The lab's Hubble observers reconnect to this agent too: wait for them as well (up to
                // the same 5 s), so the window does not start with a monitor still connecting.
                let others = HubbleDaemon.running(lab.paths) != nil ? 1 : 0
                var waited = 0
                while agent.clientCount < clients + others && waited < 100 {
                    usleep(50_000)
                    waited += 1
                }
                if agent.clientCount < clients {
                    let why = (try? FileSystem.read(readerErrors[0]))?.split(separator: "\n").last.map { ": \($0)" } ?? ""
                    throw CLIError("only \(agent.clientCount) of \(clients) clients connected to the agent\(why)")
                }
            }
            func consumerCPU() -> Double { processCPUSeconds() + readers.reduce(0) { $0 + childCPUSeconds($1.pid) } }

            // One flood for the whole run; events are switched off and on under it, so the two sides of
            // a round are measured a window apart on the same sender and the same consumer.
            let settle = min(0.3, seconds / 5)
            let warmup = 1.0
            let total = warmup + Double(rounds) * 2 * (seconds + settle) + 1
            let floodErrors = "\(LabPaths(lab: lab.name).stateDirectory)/bench-flood.err"
            defer { unlink(floodErrors) }
            let flood = try Shell.spawn(
                [
                    exe, "_flood", "--netns", source.namespace, "--to", destination.ip, "--port", "\(port)",
                    "--size", "\(size)", "--seconds", "\(total)", "--rate", "\(rate)",
                ] + (floodCPU >= 0 ? ["--cpu", "\(floodCPU)"] : []), quiet: true, errorFile: floodErrors)
            defer {
                flood.stop()
                try? setEvents(UInt32(VXMON_EVENTS_OFF))
                session.requestStop()
                try? thread.join()
                // The reader lock goes now, not whenever the session is freed: the lab's agent, stopped
                // for the run, is started again right after and needs it.
                session.close()
            }
            sleepSeconds(warmup)

            // With metrics and events on: 2 * sliceCount slices, counting in every other one.
            let sliceCount = 5
            func window(_ mode: UInt32, slicesFirstCounting: Bool? = nil) throws -> PhaseResult {
                try setEvents(mode)
                sleepSeconds(settle)
                let rx0 = try Traffic.counters(namespace: destination.namespace, interface: "eth0").rxPackets
                let t0 = monotonicSeconds()
                let own0 = processCPUSeconds()
                let cpu0 = consumerCPU()
                let s0 = session.stats
                var sliced = SliceTotals()
                if let counters, let first = slicesFirstCounting {
                    var last = (cpu: thread.cpuSeconds, events: session.stats.samples)
                    var pair = (counting: SliceTotals.Side(), notCounting: SliceTotals.Side())
                    for i in 0..<(2 * sliceCount) {
                        let counting = (i % 2 == 0) == first
                        counters.setCounting(counting)
                        sleepSeconds(seconds / Double(2 * sliceCount))
                        let now = (cpu: thread.cpuSeconds, events: session.stats.samples)
                        let side = SliceTotals.Side(cpuSeconds: now.cpu - last.cpu, events: UInt64(max(now.events - last.events, 0)))
                        if counting { pair.counting = side } else { pair.notCounting = side }
                        if i % 2 == 1 { sliced.addPair(pair.counting, pair.notCounting) }
                        last = now
                    }
                    counters.setCounting(true)
                } else {
                    sleepSeconds(seconds)
                }
                let rx1 = try Traffic.counters(namespace: destination.namespace, interface: "eth0").rxPackets
                let t1 = monotonicSeconds()
                let cpu1 = consumerCPU()
                let own1 = processCPUSeconds()
                let s1 = session.stats
                let dt = t1 - t0
                return PhaseResult(
                    pps: Double(rx1 - rx0) / dt, eventsPerSecond: Double(s1.samples - s0.samples) / dt,
                    lost: max(s1.lost - s0.lost, s1.perfOutputFailures - s0.perfOutputFailures),
                    consumerCPU: (cpu1 - cpu0) / dt, ownCPU: (own1 - own0) / dt, slices: sliced)
            }

            // With the agent, its own CPU (this process: the reader thread) per event too.
            // With --metrics, the on-window is cut into slices in which the agent counts and does not
            // count, in turn (`AgentMetrics.setCounting`): the metrics' cost is the reader thread's CPU per
            // event while counting against while not, over the same window. Slices in turn cancel the
            // host's drift, which on a shared machine is larger than the cost being measured.
            var table = Table(
                ["ROUND", "EVENTS OFF PPS", "CONSUMING PPS", "COST", "EVENTS/S", "CONSUMER CPU", "LOST"]
                    + (agent != nil ? ["AGENT CPU", "AGENT NS/EVENT"] : [])
                    + (counters != nil ? ["READER NS/EVENT COUNTING", "NOT COUNTING", "METRICS COST"] : []))
            var results: [(off: PhaseResult, on: PhaseResult)] = []
            var slices = SliceTotals()
            for round in 1...rounds {
                // Alternate which side goes first, so a drift in the host's speed does not favour one.
                var off: PhaseResult
                var on: PhaseResult
                if round % 2 == 1 {
                    off = try window(UInt32(VXMON_EVENTS_OFF))
                    on = try window(modeOn, slicesFirstCounting: true)
                } else {
                    on = try window(modeOn, slicesFirstCounting: false)
                    off = try window(UInt32(VXMON_EVENTS_OFF))
                }
                if stopRequested.load(ordering: .relaxed) || flood.hasExited { break }
                results.append((off, on))
                var row = [
                    "\(round)", grouped(off.pps), grouped(on.pps), percent(1 - on.pps / off.pps),
                    grouped(on.eventsPerSecond), percent(on.consumerCPU), "\(on.lost)",
                ]
                if agent != nil { row += [percent(on.ownCPU), String(format1: on.ownNanosecondsPerEvent)] }
                if counters != nil {
                    slices.add(on.slices)
                    row += [
                        String(format1: on.slices.counting.nanosecondsPerEvent),
                        String(format1: on.slices.notCounting.nanosecondsPerEvent), percent(on.slices.cost),
                    ]
                }
                table.add(row)
            }
            try setEvents(UInt32(VXMON_EVENTS_OFF))
            sleepSeconds(0.2)
            let final = session.stats
            guard !results.isEmpty else {
                let why = (try? FileSystem.read(floodErrors))?.split(separator: "\n").last.map { ": \($0)" } ?? ""
                throw CLIError("the flood ended before a round was measured\(why)")
            }
            func median(_ values: [Double]) -> Double {
                let sorted = values.sorted()
                return sorted.count % 2 == 1
                    ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            }
            let off = median(results.map(\.off.pps))
            let on = median(results.map(\.on.pps))
            let cost = median(results.map { 1 - $0.on.pps / $0.off.pps })
            // Everything lost while the session ran counts, not only inside the windows.
            let lost = max(final.lost, final.perfOutputFailures)
            let events = median(results.map(\.on.eventsPerSecond))
            table.add(
                [
                    "median", grouped(off), grouped(on), percent(cost), grouped(events),
                    percent(median(results.map(\.on.consumerCPU))), "\(lost) (total)",
                ]
                    + (agent != nil
                        ? [percent(median(results.map(\.on.ownCPU))), String(format1: median(results.map(\.on.ownNanosecondsPerEvent)))]
                        : [])
                    + (counters != nil
                        ? [
                            String(format1: median(results.map(\.on.slices.counting.nanosecondsPerEvent))),
                            String(format1: median(results.map(\.on.slices.notCounting.nanosecondsPerEvent))),
                            percent(median(results.map(\.on.slices.cost))),
                        ] : []))
            print(table.render(), terminator: "")
            var clientLost: UInt64 = 0
            if let agent {
                // The clients' own losses (their queues in the agent), read once the session has ended.
                session.requestStop()
                try? thread.join()
                // The verdict counts the bench's own monitors; other clients (the Hubble observers) are
                // shown, their losses their own.
                let pids = Set(readers.map(\.pid))
                let connections = agent.connections
                let own = connections.filter { pids.contains($0.pid) }
                clientLost = own.reduce(0) { $0 +| $1.lost }
                print(
                    "agent clients: " + own.map { "pid \($0.pid) \(grouped(Double($0.sent))) events, \($0.lost) lost" }
                        .joined(separator: "; "))
                let other = connections.filter { !pids.contains($0.pid) }
                if !other.isEmpty {
                    print(
                        "other agent clients: " + other.map { "pid \($0.pid) \(grouped(Double($0.sent))) events, \($0.lost) lost" }
                            .joined(separator: "; "))
                }
            }
            if let counters, slices.pairs == 0 || slices.counting.events == 0 || slices.notCounting.events == 0 {
                print("metrics: no pair of slices had events on both sides (windows too short for the reader): no cost measured")
            } else if let counters {
                let decoded = counters.hubble.memoMisses
                print(
                    "metrics: the reader's CPU per event counting is \(percent(slices.cost)) above not counting over all "
                        + "\(slices.pairs) pairs of slices (\(String(format1: slices.counting.nanosecondsPerEvent)) ns against "
                        + "\(String(format1: slices.notCounting.nanosecondsPerEvent)) ns; median of rounds \(percent(median(results.map(\.on.slices.cost)))), "
                        + "quartiles of pairs \(percent(slices.quartiles.0)) to \(percent(slices.quartiles.1))); "
                        + (metricsJourneys
                            ? "every sample decoded (journeys are built from every event)"
                            : "of the samples counted, \(grouped(Double(decoded))) were decoded, the others counted from the sample memo"))
            }
            let met = cost <= 0.10 && lost == 0 && clientLost == 0
            print(
                "target (median cost <= 10%, nothing lost): \(met ? "met" : "NOT met"); "
                    + "\(String(format1: events / max(on, 1))) events per packet")
        }

        struct PhaseResult {
            var pps: Double
            var eventsPerSecond: Double
            var lost: UInt64
            /// CPU time of this process (the consumer thread) per second of the window.
            var consumerCPU: Double
            /// CPU time of this process alone (with --clients, the agent without its clients).
            var ownCPU: Double = 0
            var ownNanosecondsPerEvent: Double { eventsPerSecond > 0 ? ownCPU / eventsPerSecond * 1e9 : 0 }
            /// With --metrics: the reader thread's CPU and events in slices counting and not counting.
            var slices = SliceTotals()
        }

        /// The reader thread's CPU and events over slices with the agent counting metrics, and over
        /// slices without, and each pair's cost.
        struct SliceTotals {
            struct Side {
                var cpuSeconds: Double = 0
                var events: UInt64 = 0
                var nanosecondsPerEvent: Double { events > 0 ? cpuSeconds / Double(events) * 1e9 : 0 }
            }
            var counting = Side()
            var notCounting = Side()
            /// Each pair's counting / not counting CPU per event, minus 1.
            var pairCosts: [Double] = []
            var pairs: Int { pairCosts.count }
            /// Counting against not counting over every slice.
            var cost: Double {
                notCounting.nanosecondsPerEvent > 0 ? counting.nanosecondsPerEvent / notCounting.nanosecondsPerEvent - 1 : 0
            }
            var quartiles: (Double, Double) {
                let s = pairCosts.sorted()
                guard !s.isEmpty else { return (0, 0) }
                return (s[s.count / 4], s[(3 * s.count) / 4])
            }

            mutating func addPair(_ c: Side, _ n: Side) {
                counting.cpuSeconds += c.cpuSeconds
                counting.events &+= c.events
                notCounting.cpuSeconds += n.cpuSeconds
                notCounting.events &+= n.events
                if c.events > 0 && n.events > 0 && n.nanosecondsPerEvent > 0 {
                    pairCosts.append(c.nanosecondsPerEvent / n.nanosecondsPerEvent - 1)
                }
            }

            mutating func add(_ other: SliceTotals) {
                counting.cpuSeconds += other.counting.cpuSeconds
                counting.events &+= other.counting.events
                notCounting.cpuSeconds += other.notCounting.cpuSeconds
                notCounting.events &+= other.notCounting.events
                pairCosts += other.pairCosts
            }
        }
    }
}

/// What the bench and the soak share: the lab (brought up for the run if it is not up, and down again
/// by `close()`), a pod on worker2 to flood from, and a pod on worker with a UDP sink on `port`.
final class FloodLab {
    let lab: Lab
    let topology: LabTopology
    let source: LabTopology.Pod
    let destination: LabTopology.Pod
    private let udpSink: Int32
    private let builtHere: Bool
    private var pausedAgent = false

    init(_ options: LabOptions, bpfObject: String?, port: UInt16, purpose: String) throws {
        lab = try options.open()
        var built = false
        if case .up(let t) = lab.state() {
            topology = t
        } else {
            lab.log = { _ in }
            topology = try lab.up(podsPerNode: 2, objectPath: try Preflight.locateObject(explicit: bpfObject))
            built = true
            EventPipeline.standardError("vxmon: lab '\(lab.name)' brought up for \(purpose)")
        }
        builtHere = built
        Libbpf.routeLogs()
        StopSignals.install()
        guard let source = topology.pods.first(where: { $0.node == "worker2" }),
            let destination = topology.pods.first(where: { $0.node == "worker" })
        else {
            if built { _ = try? lab.down() }
            throw CLIError("the lab needs a pod on worker2 and on worker")
        }
        self.source = source
        self.destination = destination
        do {
            udpSink = try Traffic.openSink(namespace: destination.namespace, port: port)
        } catch {
            if built { _ = try? lab.down() }
            throw error
        }
        // The lab's agent reads the buffers the run measures: it is stopped for the run, started again after.
        if AgentStatus.runningAgent(lab.paths) != nil {
            AgentDaemon.stop(lab.paths)
            pausedAgent = true
            EventPipeline.standardError("vxmon: the agent of lab '\(lab.name)' is stopped for \(purpose), and started again after")
        }
    }

    /// Closes the sink and takes down a lab brought up for the run.
    func close() {
        Glibc.close(udpSink)
        if builtHere { _ = try? lab.down() }
        if pausedAgent, let exe = Preflight.executablePath {
            do { try AgentDaemon.start(lab: lab.name, executable: exe) } catch {
                EventPipeline.standardError("vxmon: \(error)")
            }
        }
    }
}

/// Hidden helper for the benchmark: floods UDP from inside a pod's namespace.
struct Flood: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_flood", abstract: "Send a UDP flood from a network namespace (lab bench helper).",
        shouldDisplay: false)

    @Option(help: "Network namespace to send from.")
    var netns: String

    @Option(help: "Destination IPv4 address.")
    var to: String

    @Option(help: "Destination UDP port.")
    var port: UInt16 = 9

    @Option(help: "Payload bytes.")
    var size = 18

    @Option(help: "Seconds to send for.")
    var seconds: Double = 5

    @Option(help: "Datagrams per second (0: unpaced).")
    var rate = 0

    @Option(help: "CPU to pin the sender to (default: not pinned).")
    var cpu: Int?

    func run() throws {
        // Die with the benchmark that started us, even if it is killed with SIGKILL.
        let parent = getppid()
        _ = vxmon_shim_set_parent_death_signal(SIGKILL)
        if getppid() != parent { return }  // the parent is already gone
        if let cpu {
            let rc = vxmon_shim_pin_to_cpu(Int32(cpu))
            if rc != 0 { throw CLIError("cannot pin the flood to CPU \(cpu): \(String(cString: strerror(-rc)))") }
        }
        try NetworkNamespace.enter(netns)
        let sent = try Traffic.flood(to: to, port: port, payload: size, seconds: seconds, rate: rate)
        print("sent \(sent) datagrams in \(seconds) s")
    }
}

func sleepSeconds(_ seconds: Double) {
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR && !stopRequested.load(ordering: .relaxed) {
        request = remaining
    }
}

/// User + system CPU time of child `pid` so far (/proc/<pid>/stat), 0 if it cannot be read.
func childCPUSeconds(_ pid: pid_t) -> Double {
    guard let text = try? FileSystem.read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return 0 }
    // After the command's closing parenthesis: state is field 3; utime and stime are fields 14 and 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// User + system CPU time of this process.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

extension String {
    /// One decimal, without Foundation.
    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(abs(tenths) % 10)"
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func grouped(_ value: Double) -> String {
    let n = Int(value.rounded())
    var digits = String(abs(n))
    var out = ""
    while digits.count > 3 {
        out = "," + digits.suffix(3) + out
        digits.removeLast(3)
    }
    return (n < 0 ? "-" : "") + digits + out
}

func percent(_ fraction: Double) -> String {
    let tenths = Int((fraction * 1000).rounded())
    let sign = tenths < 0 ? "-" : ""
    return "\(sign)\(abs(tenths) / 10).\(abs(tenths) % 10)%"
}
