import ArgumentParser
import Glibc
import VxmonCore
import VxmonLive

struct Replay: CommandWords {
    static let configuration = CommandConfiguration(
        abstract: "Render a recording as cilium monitor would.",
        discussion: """
            FILE is a .vxrec recording (vxmon record) or a capture of a Cilium agent's monitor socket \
            stream (listener protocol 1.2); the format is detected from the first bytes. Use - for \
            standard input.
            """)

    @Argument(help: "The .vxrec recording to replay, or - for standard input.")
    var file: String

    @OptionGroup var options: OutputOptions
    @OptionGroup var filters: FilterOptions

    @Option(
        help: ArgumentHelp(
            "Only this node's events (repeatable). Text then stays exactly Cilium's; without it, text from a recording of several nodes names each record's node.",
            valueName: "node"))
    var node: [String] = []

    @Flag(
        help: """
            For agent monitor-socket streams: keep fields absent from a gob message from the previous \
            message, as cilium monitor does (a CPU 0 event after a CPU N event then prints CPU N).
            """)
    var ciliumCLIQuirks = false

    @Option(parsing: .unconditional, help: "Rendering threads when output is not a terminal (1 to 64; default: one per core, at most 4).")
    var threads: Int?

    var words: [String] = []

    func validate() throws {
        if let threads, !(1...64).contains(threads) {
            throw ValidationError("--threads: \(threads) is out of range; expected 1 to 64")
        }
    }

    func run() throws { try run(output: 1) }

    /// Renders to `output` (standard output when run as a command; a file in the in-process tests).
    func run(output: Int32) throws {
        let filter = try filters.makeFilter(words)
        let fd: Int32
        if file == "-" {
            fd = 0
        } else {
            fd = open(file, O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                throw CLIError("cannot open \(sanitizedArgument(file)): \(String(cString: strerror(errno)))")
            }
        }
        defer { if fd > 0 { close(fd) } }
        signal(SIGPIPE, SIG_IGN)
        let nodeLabels = node.isEmpty
        // A terminal gets every record as it is rendered; files and pipes get the parallel renderer,
        // which keeps record order and uses every core.
        let stats: PipelineStats
        let counters: FlowCounters?
        let pods: PodDirectory
        // Sinks other than the renderer (--write-pcap) take records in order on one thread.
        if isatty(output) != 0 || workers <= 1 || options.count != nil || options.writePcap != nil {
            var consumer = options.makePipeline(
                fd: output, flushEachRecord: isatty(output) != 0, filter: filter, nodeLabels: nodeLabels)
            let pcap = try options.addPcapSink(
                to: consumer, inUse: [(fd, "the recording being read"), (output, "standard output")])
            defer { if let pcap { close(pcap) } }
            let failure = read(fd, into: &consumer)
            consumer.flush()
            stats = consumer.stats
            counters = consumer.counters
            pods = consumer.pods
            try finish(stats, failure, outputError: consumer.outputError)
        } else {
            let names = InterfaceNames()
            var consumer = ParallelPipeline(workers: workers, output: FileOutput(fd: output), names: names) { names in
                // Each worker renders into its batch's buffer; the reading thread writes batches in order.
                options.makePipeline(fd: nil, flushEachRecord: false, names: names, filter: filter, nodeLabels: nodeLabels)
            }
            if consumer.threadFailures > 0 {
                EventPipeline.standardError(
                    "vxmon: could not start \(consumer.threadFailures) of \(workers) worker threads "
                        + "(\(String(cString: strerror(consumer.threadError)))); rendering on "
                        + (consumer.threadFailures == workers ? "the reading thread" : "the others"))
            }
            let failure = read(fd, into: &consumer)
            consumer.finish()
            stats = consumer.stats
            counters = consumer.mergedCounters()
            pods = consumer.pods
            try finish(stats, failure, outputError: consumer.outputError)
        }
        var warned: Set<String> = []
        for selector in filter.podSelectors where pods.pods(matching: selector).isEmpty && warned.insert(selector.text).inserted {
            let all = pods.all
            EventPipeline.standardError(
                "vxmon: --pod \(sanitizedArgument(selector.text)): "
                    + (all.isEmpty
                        ? "the recording names no pods (recordings made before pod records matched nothing)"
                        : "no such pod in the recording (it names \(Set(all.map(\.name)).sorted().map(sanitizedArgument).joined(separator: ", ")))"))
        }
        try options.printSummary(counters, stats, fd: output)
        if options.failOnLost && stats.lostSamples > 0 {
            throw CLIError("\(stats.lostSamples) samples were lost (--fail-on-lost)")
        }
    }

    var workers: Int {
        if let threads { return max(threads, 1) }
        return min(max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1), 4)
    }

    func finish(_ stats: PipelineStats, _ failure: RecordingError?, outputError: Int32) throws {
        if !options.summary && (stats.decodeErrors > 0 || stats.lostSamples > 0 || stats.malformedRecords > 0) {
            EventPipeline.standardError(stats.summaryLine)
        }
        if let failure {
            throw CLIError("\(file == "-" ? "<stdin>" : sanitizedArgument(file)): \(failure)")
        }
        if outputError != 0 {
            throw CLIError("writing the output failed: \(String(cString: strerror(outputError)))")
        }
    }

    func read<C: RecordConsumer>(_ fd: Int32, into consumer: inout C) -> RecordingError? {
        readRecording(fd, into: &consumer, carryOverFields: ciliumCLIQuirks)
    }
}

/// Reads a recording from `fd` into `consumer`: a `.vxrec` (it starts with VXMONREC) or a capture of
/// a Cilium agent's monitor socket (it starts with a gob type definition). Returns what ended it early.
func readRecording<C: RecordConsumer>(_ fd: Int32, into consumer: inout C, carryOverFields: Bool) -> RecordingError? {
    var failure: RecordingError?
    do {
        var prefix = [UInt8](repeating: 0, count: 8)
        var have = 0
        while have < 8 {
            let r = prefix.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + have, 8 - have) }
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { break }
            have += r
        }
        prefix.removeLast(8 - have)
        if prefix.count == 8 && prefix != Vxrec.magic && AgentStreamReader.looksLikeAgentStream(prefix) {
            let reader = AgentStreamReader(fd: fd, prefix: prefix)
            reader.carryOverFields = carryOverFields
            try reader.run(&consumer)
        } else {
            try VxrecReader(fd: fd, prefix: prefix).run(&consumer)
        }
    } catch {
        failure = error
    }
    return failure
}
