import ArgumentParser
import VxmonCore
import VxmonWire

extension OutputFormat: ExpressibleByArgument {}
extension CiliumRelease: ExpressibleByArgument {}

/// Output options shared by every command that prints events.
struct OutputOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Verbose output: -v for debug messages, -vv for packet layer lines (like cilium monitor).")
    var verbose: Int

    @Option(name: .shortAndLong, help: "Output format: text (Cilium's), json (one object per line) or yaml.")
    var output: OutputFormat = .text

    @Flag(name: .short, help: "Shorthand for --output json.")
    var json = false

    @Flag(help: "With -vv, print packet bytes as a hex dump instead of layer lines.")
    var hex = false

    @Flag(name: .shortAndLong, help: "Print identities as numbers instead of reserved names.")
    var numeric = false

    @Option(help: "Cilium release whose tables and ambiguous layouts (trace-sock, policy verdict, drop header, flag bits) to assume: 1.13 or latest.")
    var cilium: CiliumRelease = .v1_13

    @Option(help: "UDP destination ports decoded as VXLAN (comma-separated).")
    var vxlanPorts: String = "8472,4789"

    @Option(help: "UDP destination ports decoded as Geneve (comma-separated).")
    var genevePorts: String = "6081"

    var format: OutputFormat { json ? .json : output }

    var verbosity: Verbosity {
        switch verbose {
        case 0: .info
        case 1: .debug
        default: .verbose
        }
    }

    func validate() throws {
        _ = try ports(vxlanPorts, "--vxlan-ports")
        _ = try ports(genevePorts, "--geneve-ports")
        if json && output != .text && output != .json {
            throw ValidationError("-j conflicts with --output \(output.rawValue)")
        }
    }

    func ports(_ text: String, _ flag: String) throws -> [UInt16] {
        if text.isEmpty { return [] }
        return try text.split(separator: ",").map {
            guard let p = UInt16(String($0.filter { $0 != " " })) else {
                throw ValidationError("\(flag): '\($0)' is not a port number")
            }
            return p
        }
    }

    var tunnelPorts: TunnelPorts {
        TunnelPorts(vxlan: (try? ports(vxlanPorts, "")) ?? [], geneve: (try? ports(genevePorts, "")) ?? [])
    }

    func makePipeline(fd: Int32 = 1, flushEachRecord: Bool, names: InterfaceNames = InterfaceNames()) -> EventPipeline {
        EventPipeline(
            format: format, verbosity: verbosity, hex: hex, numeric: numeric, release: cilium,
            tunnelPorts: tunnelPorts, fd: fd, flushEachRecord: flushEachRecord, names: names)
    }
}
