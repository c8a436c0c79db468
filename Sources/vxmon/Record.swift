import ArgumentParser
import Glibc
import VxmonBPF
import VxmonCore

struct Record: ParsableCommand {
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

    func run() throws {
        let topology = try live.prepare("record")
        var options = live.liveOptions
        let fd: Int32
        if write == "-" {
            fd = 1
            options.watchFD = 1
        } else {
            fd = open(write, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd < 0 { throw CLIError("cannot create \(write): \(String(cString: strerror(errno)))") }
        }
        defer { if fd != 1 { close(fd) } }
        let nodes = try LiveSession.selectedNodes(topology, options).map(\.name)
        let sink = RecorderSink(
            fd: fd, nodeNames: nodes,
            metadata: [("source", "vxmon"), ("lab", topology.lab), ("buffer", options.buffer.rawValue)])
        let session = try LiveSession(topology: topology, options: options, sink: sink)
        session.announceInterfaces()
        let stats = try DedicatedThread.run { try session.run() }
        if !sink.flush() { throw CLIError("writing \(write) failed: \(String(cString: strerror(errno)))") }
        EventPipeline.standardError(
            LiveCommandOptions.summary(stats, events: "recorded \(sink.samples) events to \(write)"))
    }
}
