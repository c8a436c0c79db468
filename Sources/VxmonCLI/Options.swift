import ArgumentParser
import Glibc
import VxmonCore
import VxmonLive
import VxmonWire

extension OutputFormat: ExpressibleByArgument {}

/// The UDP ports decoded as VXLAN and Geneve (every command that decodes packets).
struct TunnelPortOptions: ParsableArguments {
    @Option(help: "UDP destination ports decoded as VXLAN (comma-separated).")
    var vxlanPorts: String = "8472,4789"

    @Option(help: "UDP destination ports decoded as Geneve (comma-separated).")
    var genevePorts: String = "6081"

    func validate() throws {
        _ = try Self.ports(vxlanPorts, "--vxlan-ports")
        _ = try Self.ports(genevePorts, "--geneve-ports")
    }

    static func ports(_ text: String, _ flag: String) throws -> [UInt16] {
        if text.isEmpty { return [] }
        return try text.split(separator: ",", omittingEmptySubsequences: false).map {
            guard let p = UInt16(String($0.filter { $0 != " " })), p > 0 else {
                throw ValidationError("\(flag): \(sanitizedArgument(String($0))) is not a port; expected numbers from 1 to 65535, comma-separated")
            }
            return p
        }
    }

    var tunnelPorts: TunnelPorts {
        TunnelPorts(vxlan: (try? Self.ports(vxlanPorts, "")) ?? [], geneve: (try? Self.ports(genevePorts, "")) ?? [])
    }
}
extension CiliumRelease: ExpressibleByArgument {}

/// Output options shared by every command that prints events.
struct OutputOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Verbose output: -v for debug messages, -vv for packet layer lines (like cilium monitor).")
    var verbose: Int

    @Option(
        name: .shortAndLong,
        help: """
            Output format: text (Cilium's), json (one object per line), yaml, jsonpb (Hubble's GetFlowsResponse \
            per line, as `hubble observe -o jsonpb` prints and reads) or none. Default: text, or yaml/json when \
            standard output is a file named *.yaml, *.yml or *.json.
            """)
    var output: OutputFormat?

    @Flag(name: .short, help: "Shorthand for --output json.")
    var json = false

    @Flag(help: "With -vv, print packet bytes as a hex dump instead of layer lines.")
    var hex = false

    @Flag(name: .shortAndLong, help: "Print identities as numbers instead of reserved names.")
    var numeric = false

    @Option(help: "Cilium release whose tables and ambiguous layouts (trace-sock, policy verdict, drop header, flag bits) to assume: 1.13 or latest.")
    var cilium: CiliumRelease = .v1_13

    @OptionGroup var tunnel: TunnelPortOptions

    @Flag(name: .shortAndLong, help: "No rendered output (same as --output none): only --write-pcap, --summary.")
    var quiet = false

    @Option(
        help: ArgumentHelp(
            "Prefix text records with their time: StampMilli (default for a bare --timestamps), RFC3339, RFC3339Milli, RFC3339Micro, RFC3339Nano or unix.",
            valueName: "format"))
    var timestamps: String?

    @Option(help: "Colour text on a terminal: auto (a terminal, unless NO_COLOR is set), always or never.")
    var color: ColorMode = .auto

    @Flag(help: "At the end, print totals (by type, observation point, drop reason, node, CPU, VNI, top flows, lost) to stderr; a final summary record with -o json|yaml.")
    var summary = false

    @Option(parsing: .unconditional, help: "Stop after this many events were shown (after filtering).")
    var count: Int?

    @Flag(help: "Exit with status 1 if any sample was lost.")
    var failOnLost = false

    @Option(help: ArgumentHelp("Also write every captured packet (of the events that pass the filter) to this pcapng file, for Wireshark.", valueName: "file"))
    var writePcap: String?

    var format: OutputFormat { quiet ? .none : json ? .json : output ?? standardOutputFileFormat ?? .text }

    var timeFormat: TimeFormat? { timestamps.flatMap { TimeFormat(name: $0) } }

    /// Text decorations for output to `fd`; `nodeLabels` when the stream interleaves several nodes.
    func decorations(fd: Int32, nodeLabels: Bool) -> TextDecorations {
        TextDecorations(
            timestamps: timeFormat.map { TimeFormatter(format: $0) }, nodeLabels: nodeLabels,
            color: color.enabled(fd: fd))
    }

    var verbosity: Verbosity {
        switch verbose {
        case 0: .info
        case 1: .debug
        default: .verbose
        }
    }

    func validate() throws {
        if json, let output, output != .text && output != .json {
            throw ValidationError("-j conflicts with --output \(output.rawValue)")
        }
        if let timestamps, TimeFormat(name: timestamps) == nil {
            throw ValidationError(
                "--timestamps: unknown format; expected one of "
                    + TimeFormat.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    var tunnelPorts: TunnelPorts { tunnel.tunnelPorts }

    func makePipeline(
        fd: Int32? = 1, flushEachRecord: Bool, names: InterfaceNames = InterfaceNames(),
        filter: EventFilter = EventFilter(), nodeLabels: Bool = false
    ) -> EventPipeline {
        let pipeline = EventPipeline(
            format: format, verbosity: verbosity, hex: hex, numeric: numeric, release: cilium,
            tunnelPorts: tunnelPorts, output: fd.map { FileOutput(fd: $0) }, flushEachRecord: flushEachRecord,
            names: names, decorations: decorations(fd: fd ?? -1, nodeLabels: nodeLabels), filter: filter,
            diagnostics: EventPipeline.diagnostic)
        if summary { pipeline.counters = FlowCounters() }
        pipeline.maxEvents = count
        return pipeline
    }

    /// Adds the `--write-pcap` sink to `pipeline`; returns the file's descriptor (to close at the end).
    /// `inUse`: descriptors the command reads or writes (the recording replayed, standard output):
    /// a capture file that is one of them is refused before anything is truncated.
    func addPcapSink(to pipeline: EventPipeline, inUse: [(fd: Int32, what: String)] = [(1, "standard output")]) throws
        -> Int32?
    {
        guard let writePcap else { return nil }
        var target = stat()
        if stat(writePcap, &target) == 0 {
            for (fd, what) in inUse {
                var st = stat()
                if fstat(fd, &st) == 0 && st.st_dev == target.st_dev && st.st_ino == target.st_ino {
                    throw ValidationError("--write-pcap: \(sanitizedArgument(writePcap)) is \(what); name another file")
                }
            }
        }
        let fd = open(writePcap, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 {
            throw CLIError("cannot create \(sanitizedArgument(writePcap)): \(String(cString: strerror(errno)))")
        }
        pipeline.add(PcapngSink(output: FileOutput(fd: fd), names: pipeline.names, release: cilium, numeric: numeric))
        return fd
    }

    /// The summary for the end of a run: a table on stderr, or a final record with -o json|yaml.
    func printSummary(_ counters: FlowCounters?, _ stats: PipelineStats, fd: Int32 = 1) throws {
        guard let counters else { return }
        switch format {
        case .json, .yaml:
            let out = OutputBuffer(capacity: 1 << 12)
            if format == .json {
                counters.renderJSON(stats, release: cilium, into: out)
            } else {
                counters.renderYAML(stats, release: cilium, into: out)
            }
            // Only EPIPE means the reader went away; any other write error is an error.
            if case .failed(let e) = out.flush(to: FileOutput(fd: fd)) {
                throw CLIError("writing the summary failed: \(String(cString: strerror(e)))")
            }
        case .text, .none, .jsonpb:
            // jsonpb output holds only GetFlowsResponse lines (what Hubble reads): the table goes to stderr.
            EventPipeline.standardError(counters.table(stats, release: cilium))
        }
    }
}

/// The format a regular file on standard output asks for by its name (`vxmon -vv > cni_monitor.yaml`):
/// YAML for `*.yaml`/`*.yml`, JSON for `*.json`, nil otherwise (a terminal, a pipe, another name).
/// Said once on stderr, with the flag that keeps Cilium's text.
let standardOutputFileFormat: OutputFormat? = {
    var st = stat()
    guard fstat(1, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/fd/1", &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    let path = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let name = path.split(separator: "/").last.map(String.init) ?? path
    let lower = name.lowercased()
    let format: OutputFormat
    if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") {
        format = .yaml
    } else if lower.hasSuffix(".json") {
        format = .json
    } else {
        return nil
    }
    EventPipeline.standardError(
        "vxmon: standard output is \(sanitizedArgument(name)): writing "
            + (format == .yaml ? "YAML (one document per event)" : "JSON (one object per line)")
            + "; -o text writes Cilium's text")
    return format
}()

enum ColorMode: String, ExpressibleByArgument, CaseIterable {
    case auto
    case always
    case never

    /// Colour for output to `fd`: `always`, or `auto` on a terminal without NO_COLOR (any value).
    func enabled(fd: Int32) -> Bool {
        switch self {
        case .always: return true
        case .never: return false
        case .auto: return isatty(fd) != 0 && getenv("NO_COLOR") == nil
        }
    }
}
