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
            Every node gets a gRPC server on its own IP, port 4244, inside its network namespace: \
            observer.Observer (GetFlows, ServerStatus, GetNodes), peer.Peer (Notify: every node of the lab) and \
            grpc.health.v1.Health. Flows come from the lab's agent (one client of its socket); each node keeps \
            its last --buffer-size flows.

            TLS as Cilium's agent serves Hubble: --tls-cert-file and --tls-key-file, and the clients' CAs in \
            --tls-client-ca-files (mutual TLS: a client must present a certificate one of them signed). TLS \
            without client certificates needs --tls-no-client-auth. Without TLS flags the servers speak \
            plaintext (they listen inside the lab's namespaces only); --disable-tls says so explicitly.
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

    @Option(help: ArgumentHelp("The servers' certificate (PEM, then any intermediates): TLS.", valueName: "file"))
    var tlsCertFile: String?

    @Option(help: ArgumentHelp("The certificate's private key (PEM).", valueName: "file"))
    var tlsKeyFile: String?

    @Option(
        help: ArgumentHelp(
            "CA certificates (PEM) of the clients: mutual TLS. Repeat it or give a comma-separated list.",
            valueName: "files"))
    var tlsClientCaFiles: [String] = []

    @Flag(help: "TLS without client certificates (instead of mutual TLS).")
    var tlsNoClientAuth = false

    @Flag(help: "Plaintext (the default without TLS flags; a TLS flag with it is an error).")
    var disableTls = false

    @Option(help: ArgumentHelp("Open connections per node's server (1 to 1000000); one more is closed at once.", valueName: "n"))
    var maxConnections = HubbleConnectionLimits().maxConnections

    var tlsFlags: HubbleTLSFlags {
        HubbleTLSFlags(
            certFile: tlsCertFile, keyFile: tlsKeyFile, clientCAFiles: tlsClientCaFiles, noClientAuth: tlsNoClientAuth,
            disable: disableTls)
    }

    func validate() throws {
        if !(1...1000).contains(rounds) { throw ValidationError("--rounds must be from 1 to 1000") }
        if !(1...65535).contains(port) { throw ValidationError("--port must be from 1 to 65535") }
        if !(1...1_048_575).contains(bufferSize) { throw ValidationError("--buffer-size must be from 1 to 1048575") }
        if !(1...1_000_000).contains(maxConnections) { throw ValidationError("--max-connections must be from 1 to 1000000") }
        if let problem = tlsFlags.problem() { throw ValidationError(problem) }
    }

    /// The TLS the flags ask for (validated), or nil for plaintext.
    var tls: HubbleTLS? {
        let flags = tlsFlags
        guard flags.enabled, let cert = flags.certFile, let key = flags.keyFile else { return nil }
        return HubbleTLS(certificateFile: cert, keyFile: key, clientCAFiles: flags.caFiles, clientAuth: !flags.noClientAuth)
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
        options.tls = tls
        options.limits.maxConnections = maxConnections
        do {
            try await HubbleServers.run(lab: lab, options: options, log: { EventPipeline.standardError($0) })
        } catch {
            EventPipeline.standardError("vxmon-hubble: \(EventPipeline.sanitized(String(describing: error)))")
            throw ExitCode(1)
        }
    }
}
