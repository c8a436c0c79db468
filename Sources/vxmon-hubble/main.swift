import ArgumentParser
import Glibc
import VxmonCore
import VxmonHubble
import VxmonLab
import VxmonLive

/// `vxmon-hubble`: a lab's Hubble observer servers. `vxmon lab up` starts it (after the agent) and
/// `vxmon lab down` stops it; it is its own executable so that the core commands never link gRPC.
@main
struct HubbleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vxmon-hubble",
        abstract: "Serve Hubble's Observer, Peer and Health APIs for every node of a vxmon lab.",
        discussion: """
            Every node gets a gRPC server (plaintext) on its own IP, port 4244, inside its network namespace: \
            observer.Observer (GetFlows, ServerStatus, GetNodes), peer.Peer (Notify: every node of the lab) and \
            grpc.health.v1.Health. Flows come from the lab's agent (one client of its socket); each node keeps \
            its last --buffer-size flows.
            """)

    @Option(help: "The lab (default $VXMON_LAB, else vxmon).")
    var lab: String?

    @Option(help: "Port of every node's observer.")
    var port = 4244

    @Option(help: "Flows kept per node (1 to 1048575).")
    var bufferSize = 4095

    @Option(
        help: ArgumentHelp(
            "Measure ingestion instead of serving: replay this recording ROUNDS times into a ring, on one thread, and print flows per second.",
            valueName: "recording"))
    var benchIngest: String?

    @Option(help: ArgumentHelp("Replays of --bench-ingest's recording.", valueName: "rounds"))
    var rounds = 5

    func validate() throws {
        if !(1...1000).contains(rounds) { throw ValidationError("--rounds must be from 1 to 1000") }
        if !(1...65535).contains(port) { throw ValidationError("--port must be from 1 to 65535") }
        if !(1...1_048_575).contains(bufferSize) { throw ValidationError("--buffer-size must be from 1 to 1048575") }
    }

    func run() async throws {
        if let benchIngest {
            try IngestBench.run(path: benchIngest, rounds: rounds, capacity: bufferSize)
            return
        }
        // Inherited descriptors are closed by whoever spawns it (HubbleDaemon), not here: by now the
        // async runtime has opened its own, and closing "everything above stderr" broke its timers.
        StopSignals.install()
        let lab = try Lab(name: Lab.resolveName(lab))
        var options = HubbleOptions()
        options.port = UInt16(port)
        options.capacity = bufferSize
        do {
            try await HubbleServers.run(lab: lab, options: options, log: { EventPipeline.standardError($0) })
        } catch {
            EventPipeline.standardError("vxmon-hubble: \(EventPipeline.sanitized(String(describing: error)))")
            throw ExitCode(1)
        }
    }
}
