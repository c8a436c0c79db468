import ArgumentParser
import Glibc
import VxmonCore

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a recorded .vxrec file (or - for standard input) as cilium monitor would.")

    @Argument(help: "The .vxrec recording to replay, or - for standard input.")
    var file: String

    @OptionGroup var options: OutputOptions

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
        let pipeline = options.makePipeline(flushEachRecord: isatty(1) != 0)
        let reader = VxrecReader(fd: fd)
        var consumer = pipeline
        var failure: RecordingError?
        do {
            try reader.run(&consumer)
        } catch {
            failure = error
        }
        pipeline.flush()
        if pipeline.stats.decodeErrors > 0 || pipeline.stats.lostSamples > 0 || pipeline.stats.malformedRecords > 0 {
            EventPipeline.standardError(pipeline.summaryLine())
        }
        if let failure {
            throw CLIError("\(file == "-" ? "<stdin>" : file): \(failure)")
        }
        if pipeline.outputClosed { throw ExitCode.success }
    }
}
