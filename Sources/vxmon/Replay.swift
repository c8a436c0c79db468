import ArgumentParser
import Glibc
import VxmonCore

struct Replay: ParsableCommand {
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

    @Flag(
        help: """
            For agent monitor-socket streams: keep fields absent from a gob message from the previous \
            message, as cilium monitor does (a CPU 0 event after a CPU N event then prints CPU N).
            """)
    var ciliumCLIQuirks = false

    @Option(help: "Rendering threads when output is not a terminal (default: one per core, at most 4).")
    var threads: Int?

    func run() throws {
        let fd: Int32
        if file == "-" {
            fd = 0
        } else {
            fd = open(file, O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                throw CLIError("cannot open \(file): \(String(cString: strerror(errno)))")
            }
        }
        defer { if fd > 0 { close(fd) } }
        signal(SIGPIPE, SIG_IGN)
        // A terminal gets every record as it is rendered; files and pipes get the parallel renderer,
        // which keeps record order and uses every core.
        if isatty(1) != 0 || workers <= 1 {
            var consumer = options.makePipeline(flushEachRecord: isatty(1) != 0)
            let failure = read(fd, into: &consumer)
            consumer.flush()
            try finish(consumer.stats, consumer.summaryLine(), failure, outputClosed: consumer.outputClosed)
        } else {
            let names = InterfaceNames()
            var consumer = ParallelPipeline(workers: workers, fd: 1, names: names) { names in
                options.makePipeline(fd: -1, flushEachRecord: false, names: names)
            }
            let failure = read(fd, into: &consumer)
            consumer.finish()
            try finish(consumer.stats, consumer.summaryLine(), failure, outputClosed: consumer.outputClosed)
        }
    }

    var workers: Int {
        if let threads { return max(threads, 1) }
        return min(max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1), 4)
    }

    func finish(_ stats: PipelineStats, _ summary: String, _ failure: RecordingError?, outputClosed: Bool) throws {
        if stats.decodeErrors > 0 || stats.lostSamples > 0 || stats.malformedRecords > 0 {
            EventPipeline.standardError(summary)
        }
        if let failure {
            throw CLIError("\(file == "-" ? "<stdin>" : file): \(failure)")
        }
    }

    func read<C: RecordConsumer>(_ fd: Int32, into consumer: inout C) -> RecordingError? {
        var failure: RecordingError?
        do {
            // A .vxrec starts with VXMONREC; a capture of a Cilium agent's monitor socket with a gob
            // type definition.
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
                reader.carryOverFields = ciliumCLIQuirks
                try reader.run(&consumer)
            } else {
                try VxrecReader(fd: fd, prefix: prefix).run(&consumer)
            }
        } catch {
            failure = error
        }
        return failure
    }
}
