import ArgumentParser
import Glibc
import VxmonCore
import VxmonLive
import VxmonWire

struct JourneyCommand: CommandWords {
    static let configuration = CommandConfiguration(
        commandName: "journey",
        abstract: "Follow each packet across nodes: its hops with their times, how it ended, its reply.",
        discussion: """
            Groups the events of one packet on every node and observation point into a journey (joined by \
            the inner packet: addresses, ports, IP ID, TCP sequence, ICMP echo id and sequence), prints its \
            path with the time of each hop, pairs requests with replies, and says how it ended: delivered, \
            dropped (with the reason and where), lost (an expected hop never came and samples were lost), \
            or unfinished. Reads the lab live (through its agent), a recording (FILE), or Cilium agents' \
            monitor sockets. Filters select journeys: an exchange is shown when one of its events passes.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text
        case json
        case yaml
        case none
    }

    @Argument(help: "A .vxrec recording (or agent-socket capture) to read instead of the lab; - for standard input.")
    var file: String?

    @Option(name: .shortAndLong, help: "Output format: text, json (one journey record per line), yaml or none.")
    var output: Format = .text

    @Flag(help: "At the end, per path: journeys completed and not, p50/p99/max latency per hop and end to end, where incomplete ones stopped, clock offsets (stderr with text; a journey_summary record with json/yaml).")
    var summary = false

    @Option(help: ArgumentHelp("Draw the journeys as an SVG sequence diagram in this file.", valueName: "file"))
    var svg: String?

    @Option(help: ArgumentHelp("Draw the journeys in an HTML page (no scripts) in this file.", valueName: "file"))
    var html: String?

    @Option(parsing: .unconditional, help: "Exchanges drawn at most (1 to 1000).")
    var draw: Int = 20

    @Option(parsing: .unconditional, help: "Seconds after its first hop a journey is closed, and a request waits for its reply (0.001 to 3600).")
    var timeout: Double = 5

    @Option(parsing: .unconditional, help: "Journeys kept open at most; past it the oldest is closed (evicted, counted). 1 to 10000000.")
    var maxOpen: Int = 65536

    @Option(help: "Cilium release whose tables and layouts to assume: 1.13 or latest.")
    var cilium: CiliumRelease = .v1_13

    @OptionGroup var tunnel: TunnelPortOptions

    @Flag(help: "Exit with status 1 if any sample was lost.")
    var failOnLost = false

    @OptionGroup var live: LiveCommandOptions
    @OptionGroup var filters: FilterOptions

    var words: [String] = []

    func validate() throws {
        guard timeout.isFinite, timeout >= 0.001, timeout <= 3600 else {
            throw ValidationError("--timeout: \(timeout) is out of range; expected seconds from 0.001 to 3600")
        }
        guard (1...10_000_000).contains(maxOpen) else {
            throw ValidationError("--max-open: \(maxOpen) is out of range; expected 1 to 10000000")
        }
        guard (1...1000).contains(draw) else { throw ValidationError("--draw: \(draw) is out of range; expected 1 to 1000") }
        if file != nil && (!live.monitorSocket.isEmpty || live.duration != nil) {
            throw ValidationError("a recording (FILE) is read whole: --monitor-socket and --duration are for live input")
        }
    }

    func run() throws {
        let filter = try filters.makeFilter(words)
        signal(SIGPIPE, SIG_IGN)
        // The drawing files are created before anything is read: a path that cannot be written fails now.
        // Never the recording being read, or one drawing over the other (O_TRUNC would destroy it).
        var inputStat = stat()
        let haveInput = file.map { $0 != "-" && stat($0, &inputStat) == 0 } ?? false
        if let svg, let html, svg == html { throw ValidationError("--svg and --html name the same file") }
        let drawings = try [(svg, false), (html, true)].compactMap { path, isHTML -> (Int32, Bool, String)? in
            guard let path else { return nil }
            var target = stat()
            if haveInput && stat(path, &target) == 0 && target.st_dev == inputStat.st_dev && target.st_ino == inputStat.st_ino {
                throw ValidationError("--\(isHTML ? "html" : "svg"): \(sanitizedArgument(path)) is the recording being read; name another file")
            }
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd < 0 { throw CLIError("cannot create \(sanitizedArgument(path)): \(String(cString: strerror(errno)))") }
            return (fd, isHTML, path)
        }
        defer { for (fd, _, _) in drawings { close(fd) } }

        let tunnelPorts = tunnel.tunnelPorts
        let names = InterfaceNames()
        let pipeline = EventPipeline(
            format: .none, release: cilium, tunnelPorts: tunnelPorts, output: nil, names: names,
            diagnostics: EventPipeline.diagnostic)
        var options = JourneyBuilder.Options()
        options.timeout = UInt64(timeout * 1e9)
        options.maxOpen = maxOpen
        // Live, the builder's clock also follows the wall clock (journeys close on time when nothing
        // comes). Cilium's sockets carry no kernel time: events are stamped when read, and a far node's
        // can be read first, so ended journeys wait a moment for late hops.
        let input = file == nil ? try live.input("journey", filter, allNodes: true) : nil
        if let input {
            options.followWallClock = true
            if !input.sockets.isEmpty { options.settle = JourneyBuilder.socketSettle }
        }
        let builder = JourneyBuilder(options: options, filter: filter, pods: pipeline.pods, names: names, release: cilium)
        let terminal = isatty(1) != 0
        let stdout = FileOutput(fd: 1)
        switch output {
        case .text: builder.add(JourneyTextOutput(output: stdout, flushEachRecord: terminal))
        case .json: builder.add(JourneyStructuredOutput(syntax: .json, output: stdout, flushEachRecord: terminal))
        case .yaml: builder.add(JourneyStructuredOutput(syntax: .yaml, output: stdout, flushEachRecord: terminal))
        case .none: break
        }
        let stats = summary ? JourneyStats() : nil
        if let stats { builder.add(stats) }
        let drawing = drawings.isEmpty ? nil : JourneyDrawing(limit: draw)
        if let drawing { builder.add(drawing) }
        pipeline.add(builder)

        var failure: String?
        var lost: UInt64 = 0
        if let file {
            let fd: Int32 = file == "-" ? 0 : open(file, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw CLIError("cannot open \(sanitizedArgument(file)): \(String(cString: strerror(errno)))") }
            defer { if fd > 0 { close(fd) } }
            var consumer = pipeline
            if let error = readRecording(fd, into: &consumer, carryOverFields: false) {
                failure = "\(file == "-" ? "<stdin>" : sanitizedArgument(file)): \(error)"
            }
            builder.finish()
            pipeline.flush()
            let s = pipeline.stats
            lost = s.lostSamples
            if !summary && (s.decodeErrors > 0 || s.lostSamples > 0 || s.malformedRecords > 0) {
                EventPipeline.standardError(s.summaryLine)
            }
        } else {
            guard let input else { throw CLIError("no input") }
            _ = try live.filter(filter, input.topology)
            var liveOptions = live.liveOptions(reading: filter, allNodes: true)
            liveOptions.watchFD = 1
            for pod in input.topology?.pods ?? [] { pipeline.metadata(key: "pod", value: pod.info.metadataValue) }
            let session = try input.source(
                liveOptions, sink: PipelineSink(pipeline: pipeline, nodeNames: input.nodes), reconnect: live.reconnect)
            session.announceInterfaces()
            let liveStats = try DedicatedThread.run { try session.run() }
            // Samples the datapath could not output and no lost record reported (the kernel writes one
            // only when a later sample fits on that CPU's ring): lost all the same, in the journeys'
            // accounting.
            if liveStats.perfOutputFailures > liveStats.lost {
                pipeline.lost(cpu: -1, count: liveStats.perfOutputFailures - liveStats.lost, timeNanoseconds: 0)
            }
            builder.finish()
            pipeline.flush()
            lost = max(liveStats.lost, pipeline.stats.lostSamples)
            var events = "\(pipeline.stats.events) events"
            if pipeline.stats.decodeErrors > 0 { events += ", \(pipeline.stats.decodeErrors) skipped (undecodable)" }
            EventPipeline.standardError(LiveCommandOptions.summary(liveStats, events: events))
            failure = liveStats.failure
        }

        if let stats {
            switch output {
            case .json, .yaml:
                let out = OutputBuffer(capacity: 1 << 12)
                stats.render(builder, syntax: output == .json ? .json : .yaml, into: out)
                if case .failed(let e) = out.flush(to: stdout) {
                    throw CLIError("writing the summary failed: \(String(cString: strerror(e)))")
                }
            case .text, .none:
                EventPipeline.standardError(stats.table(builder))
            }
        }
        if let drawing {
            for (fd, isHTML, path) in drawings {
                let out = OutputBuffer(capacity: 1 << 16)
                out.append(isHTML ? drawing.html(builder) : drawing.svg(builder))
                if case .failed(let e) = out.flush(to: FileOutput(fd: fd)) {
                    throw CLIError("writing \(sanitizedArgument(path)) failed: \(String(cString: strerror(e)))")
                }
            }
            if drawing.notDrawn > 0 {
                EventPipeline.standardError(
                    "vxmon: drew the first \(drawing.exchanges.count) exchanges; \(drawing.notDrawn) more were not drawn (--draw)")
            }
        }
        if pipeline.outputError != 0 {
            throw CLIError("writing the output failed: \(String(cString: strerror(pipeline.outputError)))")
        }
        if let failure { throw CLIError(failure) }
        if failOnLost && lost > 0 { throw CLIError("\(lost) samples were lost (--fail-on-lost)") }
    }
}
