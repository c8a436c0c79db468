import ArgumentParser
import Glibc
import VxmonCore
import VxmonLive

struct Record: CommandWords {
    static let configuration = CommandConfiguration(
        abstract: "Record the lab's datapath events live to a .vxrec file for vxmon replay.",
        discussion: """
            The recording holds every sample with its receive time, per node a node=<name> record \
            whenever the node changes, and the nodes' interface names, so that `vxmon replay` prints \
            names and node_name.
            """)

    @Option(name: .shortAndLong, help: "The recording to write (- for standard output).")
    var write: String

    @OptionGroup var live: LiveCommandOptions
    @OptionGroup var filters: FilterOptions

    @Flag(help: "At the end, print totals (by type, observation point, drop reason, node, CPU, VNI, top flows, lost) to stderr.")
    var summary = false

    @Flag(help: "Exit with status 1 if any sample was lost.")
    var failOnLost = false

    @Option(help: ArgumentHelp("Also write every captured packet (of the events recorded) to this pcapng file.", valueName: "file"))
    var writePcap: String?

    var words: [String] = []

    func run() throws {
        if let writePcap, write != "-", sameFile(write, writePcap) {
            throw ValidationError("--write-pcap: \(sanitizedArgument(writePcap)) is the recording (-w); name another file")
        }
        let parsed = try filters.makeFilter(words)
        let input = try live.input("record", parsed)
        var options = live.liveOptions(reading: parsed)
        let fd: Int32
        if write == "-" {
            fd = 1
            options.watchFD = 1
        } else {
            fd = open(write, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd < 0 { throw CLIError("cannot create \(write): \(String(cString: strerror(errno)))") }
        }
        defer { if fd != 1 { close(fd) } }
        let nodes = input.nodes
        let filter = try live.filter(parsed, input.topology)
        var metadata = [("source", "vxmon")]
        if let topology = input.topology { metadata.append(("lab", topology.lab)) }
        metadata.append(("buffer", input.bufferName(options)))
        metadata += (input.topology?.pods ?? []).map { ("pod", $0.info.metadataValue) }
        // Unfiltered, the recorder writes samples as read, without decoding them; a filter or the
        // summary needs each event decoded, so the pipeline writes the recording then.
        let sink: any LiveSink
        let pipeline: EventPipeline?
        let recorder: VxrecSink?
        if filter.isEmpty && !summary && writePcap == nil {
            sink = RecorderSink(fd: fd, nodeNames: nodes, metadata: metadata)
            pipeline = nil
            recorder = nil
        } else {
            let p = EventPipeline(format: .none, filter: filter, diagnostics: EventPipeline.diagnostic)
            for pod in input.topology?.pods ?? [] { p.learn(pod.info) }
            if summary { p.counters = FlowCounters() }
            let r = VxrecSink(output: FileOutput(fd: fd), metadata: metadata, time: wallClockNanoseconds())
            p.add(r)
            if let writePcap {
                let pcapFD = open(writePcap, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                if pcapFD < 0 {
                    throw CLIError("cannot create \(sanitizedArgument(writePcap)): \(String(cString: strerror(errno)))")
                }
                p.add(PcapngSink(output: FileOutput(fd: pcapFD), names: p.names))
            }
            sink = PipelineSink(pipeline: p, nodeNames: nodes)
            pipeline = p
            recorder = r
        }
        let session = try input.source(options, sink: sink, reconnect: live.reconnect)
        session.announceInterfaces()
        let stats = try DedicatedThread.run { try session.run() }
        if !sink.flush() || stats.endReason == "output closed" {
            // Only EPIPE means the reader went away; any other write error is an error with its errno.
            if case .failed(let failure) = (sink as? RecorderSink)?.writer.status ?? recorder?.writer.status ?? .ok {
                throw CLIError("writing \(sanitizedArgument(write)) failed: \(String(cString: strerror(failure)))")
            }
        }
        let written = (sink as? RecorderSink)?.writer.samples ?? recorder?.writer.samples ?? 0
        EventPipeline.standardError(
            LiveCommandOptions.summary(stats, events: "recorded \(written) events to \(sanitizedArgument(write))"))
        if let pipeline, let counters = pipeline.counters {
            EventPipeline.standardError(counters.table(pipeline.stats))
        }
        if let failure = stats.failure { throw CLIError(failure) }
        if failOnLost && stats.lost > 0 { throw CLIError("\(stats.lost) samples were lost (--fail-on-lost)") }
    }
}

/// Whether two paths name one file: the same inode when both exist, else the same directory and name.
func sameFile(_ a: String, _ b: String) -> Bool {
    var sa = stat()
    var sb = stat()
    if stat(a, &sa) == 0 && stat(b, &sb) == 0 { return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino }
    func normalized(_ path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard let resolved = realpath(directory.isEmpty ? "/" : directory, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved) + "/" + name
    }
    return normalized(a) == normalized(b)
}
