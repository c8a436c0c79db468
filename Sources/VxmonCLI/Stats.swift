import ArgumentParser
import Glibc
import VxmonCore
import VxmonLive

struct Stats: CommandWords {
    static let configuration = CommandConfiguration(
        abstract: "Print a recording's totals: by type, observation point, drop reason, node, CPU, VNI, top flows, lost.",
        discussion: """
            The same counters as `--summary`, as the command's output: a table, or one JSON object \
            (`-o json`). Filters apply as in replay (the totals then say how many were filtered out).
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text
        case json
    }

    @Argument(help: "The .vxrec recording (or agent-socket capture), or - for standard input.")
    var file: String

    @Option(name: .shortAndLong, help: "Output format: text (tables) or json.")
    var output: Format = .text

    @Option(help: "Cilium release whose name tables to use: 1.13 or latest.")
    var cilium: CiliumRelease = .v1_13

    @OptionGroup var filters: FilterOptions

    @Option(help: ArgumentHelp("Only this node's events (repeatable).", valueName: "node"))
    var node: [String] = []

    var words: [String] = []

    func run() throws {
        let fd: Int32 = file == "-" ? 0 : open(file, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw CLIError("cannot open \(sanitizedArgument(file)): \(String(cString: strerror(errno)))") }
        defer { if fd > 0 { close(fd) } }
        var pipeline = EventPipeline(
            format: .none, release: cilium, filter: try filters.makeFilter(words), diagnostics: EventPipeline.diagnostic)
        pipeline.counters = FlowCounters()
        let failure = readRecording(fd, into: &pipeline, carryOverFields: false)
        let out = OutputBuffer(capacity: 1 << 12)
        switch output {
        case .json: pipeline.counters!.renderJSON(pipeline.stats, release: cilium, into: out)
        case .text:
            out.append(pipeline.counters!.table(pipeline.stats, release: cilium))
            out.append(byte: 10)
        }
        signal(SIGPIPE, SIG_IGN)
        if case .failed(let e) = out.flush(to: FileOutput(fd: 1)) {
            throw CLIError("writing the output failed: \(String(cString: strerror(e)))")
        }
        if let failure { throw CLIError("\(file == "-" ? "<stdin>" : sanitizedArgument(file)): \(failure)") }
    }
}
