import ArgumentParser
import CVxmonABI
import Glibc
import VxmonBPF
import VxmonCore

extension LabCommand {
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Measure what live monitoring costs: a cross-node UDP flood, events off versus vxmon consuming.",
            discussion: """
                Floods UDP (sendmmsg) from a pod on worker2 to a pod on worker and measures the receiver's \
                packets per second from the destination pod's eth0 counters, alternating rounds with events \
                off and with an in-process vxmon monitor (decode + render to /dev/null with the given output \
                options). Prints pps for both, the cost, events/s received and samples lost. Brings the lab \
                up (and down again) if it is not up.
                """)

        @OptionGroup var labOptions: LabOptions
        @OptionGroup var output: OutputOptions

        @Option(help: "Seconds measured per phase.")
        var seconds: Double = 5

        @Option(help: "Rounds of (events off, consuming).")
        var rounds = 2

        @Option(help: "Event buffer: perf or ring.")
        var buffer: BufferKind = .perf

        @Option(help: "UDP payload bytes.")
        var size = 18

        @Option(help: "Offered load in datagrams per second (default: as fast as one sender can).")
        var rate = 0

        @Option(help: "Perf buffer size per CPU, in pages (default: as vxmon monitor).")
        var perfPages: Int?

        @Option(help: "Perf samples per reader wakeup.")
        var perfWakeup: UInt32 = LiveOptions().perfWakeupEvents

        @Flag(help: "Consume like `vxmon record -w /dev/null` (no decoding or rendering) instead of like the monitor.")
        var record = false

        @Option(help: "The BPF object, if the lab has to be brought up.")
        var bpfObject: String?

        func validate() throws {
            if seconds < 1 { throw ValidationError("--seconds must be at least 1") }
            if rounds < 1 { throw ValidationError("--rounds must be at least 1") }
            if !(1...1400).contains(size) { throw ValidationError("--size must be 1...1400") }
            if rate < 0 { throw ValidationError("--rate must not be negative") }
        }

        func run() throws {
            try Preflight.requirePrivileged("lab bench")
            let lab = try labOptions.open()
            var builtHere = false
            let topology: LabTopology
            if case .up(let t) = lab.state() {
                topology = t
            } else {
                lab.log = { _ in }
                topology = try lab.up(podsPerNode: 2, objectPath: try Preflight.locateObject(explicit: bpfObject))
                builtHere = true
                EventPipeline.standardError("vxmon: lab '\(lab.name)' brought up for the benchmark")
            }
            defer {
                if builtHere { _ = try? lab.down() }
            }
            Libbpf.routeLogs()
            StopSignals.install()

            guard let source = topology.pods.first(where: { $0.node == "worker2" }),
                let destination = topology.pods.first(where: { $0.node == "worker" })
            else { throw CLIError("the lab needs a pod on worker2 and on worker") }
            let port: UInt16 = 9
            let sink = try Traffic.openSink(namespace: destination.namespace, port: port)
            defer { close(sink) }
            for node in topology.nodes {
                try NodeMaps(paths: lab.paths, node: node.name).setEventsMode(UInt32(VXMON_EVENTS_OFF))
            }

            var live = LiveOptions()
            live.buffer = buffer
            live.perfPagesPerCPU = perfPages ?? LiveOptions.defaultPerfPages
            live.perfWakeupEvents = perfWakeup
            let bufferText =
                buffer == .perf ? "perf, \(live.perfPagesPerCPU) pages/CPU, wakeup every \(perfWakeup) samples" : "ring, 4 MiB"
            print(
                "vxmon lab bench: UDP \(source.name) (\(source.ip)) -> "
                    + "\(destination.name) (\(destination.ip)):\(port), "
                    + "\(size)-byte payload, \(rate > 0 ? "\(grouped(Double(rate))) pps offered" : "unpaced"), "
                    + "\(Int(seconds)) s per phase, buffer \(bufferText), "
                    + (record
                        ? "consumer: record to /dev/null"
                        : "consumer: monitor to /dev/null, output \(output.format.rawValue)")
            )
            var table = Table(["ROUND", "EVENTS OFF PPS", "CONSUMING PPS", "COST", "EVENTS/S", "CONSUMER CPU", "LOST"])
            var results: [(off: PhaseResult, on: PhaseResult)] = []
            for round in 1...rounds {
                let off = try phase(topology, source, destination, port, consuming: nil)
                if stopRequested.load(ordering: .relaxed) { break }
                let on = try phase(topology, source, destination, port, consuming: live)
                if stopRequested.load(ordering: .relaxed) { break }
                results.append((off, on))
                table.add([
                    "\(round)", grouped(off.pps), grouped(on.pps), percent(1 - on.pps / off.pps),
                    grouped(on.eventsPerSecond), percent(on.consumerCPU), "\(on.lost)",
                ])
            }
            guard !results.isEmpty else { return }
            func median(_ values: [Double]) -> Double {
                let sorted = values.sorted()
                return sorted.count % 2 == 1
                    ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            }
            let off = median(results.map(\.off.pps))
            let on = median(results.map(\.on.pps))
            let cost = median(results.map { 1 - $0.on.pps / $0.off.pps })
            let lost = results.reduce(0) { $0 + $1.on.lost }
            let events = median(results.map(\.on.eventsPerSecond))
            table.add([
                "median", grouped(off), grouped(on), percent(cost), grouped(events),
                percent(median(results.map(\.on.consumerCPU))), "\(lost) (total)",
            ])
            print(table.render(), terminator: "")
            let met = cost <= 0.10 && lost == 0
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
        }

        /// One measured flood, with a live session when `consuming` is set.
        func phase(
            _ topology: LabTopology, _ source: LabTopology.Pod, _ destination: LabTopology.Pod, _ port: UInt16,
            consuming: LiveOptions?
        ) throws -> PhaseResult {
            var session: LiveSession?
            var thread: BackgroundThread?
            var pipeline: EventPipeline?
            let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
            defer { close(devNull) }
            if let consuming {
                let p = output.makePipeline(fd: devNull, flushEachRecord: false)
                let nodes = topology.nodes.map(\.name)
                let sink: any LiveSink =
                    record ? RecorderSink(fd: devNull, nodeNames: nodes) : PipelineSink(pipeline: p, nodeNames: nodes)
                let s = try LiveSession(topology: topology, options: consuming, sink: sink)
                s.announceInterfaces()
                pipeline = p
                session = s
                thread = try BackgroundThread { _ = try s.run() }
            }
            let warmup = 1.0
            guard let exe = Preflight.executablePath else { throw CLIError("cannot find the vxmon executable") }
            let flood = try Shell.spawn(
                [
                    exe, "_flood", "--netns", source.namespace, "--to", destination.ip, "--port", "\(port)",
                    "--size", "\(size)", "--seconds", "\(warmup + seconds + 0.5)", "--rate", "\(rate)",
                ], quiet: true)
            sleepSeconds(warmup)
            let rx0 = try Traffic.counters(namespace: destination.namespace, interface: "eth0").rxPackets
            let t0 = monotonicSeconds()
            let cpu0 = processCPUSeconds()
            let s0 = session?.stats
            sleepSeconds(seconds)
            let rx1 = try Traffic.counters(namespace: destination.namespace, interface: "eth0").rxPackets
            let t1 = monotonicSeconds()
            let cpu1 = processCPUSeconds()
            let s1 = session?.stats
            flood.wait()
            session?.requestStop()
            try thread?.join()
            _ = pipeline
            let dt = t1 - t0
            var result = PhaseResult(
                pps: Double(rx1 - rx0) / dt, eventsPerSecond: 0, lost: 0, consumerCPU: (cpu1 - cpu0) / dt)
            if let s0, let s1, let final = session?.stats {
                result.eventsPerSecond = Double(s1.samples - s0.samples) / dt
                // Everything lost during the whole phase counts, including the tail after the window. A
                // full perf ring shows up both as a lost record and as an output failure: count the larger.
                result.lost = max(final.lost, final.perfOutputFailures)
            }
            return result
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

    func run() throws {
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
