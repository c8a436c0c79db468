import ArgumentParser
import VxmonCore

@main
struct Vxmon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vxmon",
        abstract: "Watch a Cilium-style VXLAN datapath: decode and render its monitor events.",
        subcommands: [Replay.self],
        defaultSubcommand: Replay.self)
}

/// A runtime failure: printed as `Error: <message>` on stderr, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
