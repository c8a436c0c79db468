import Foundation
import Testing
import VxmonCore

// A usage error names the subcommand that was run in its usage line, whether ArgumentParser found it
// while parsing or the command found it once it read its values (a bad filter value, node name, ...),
// and for the default subcommand too: `vxmon --port x` is `vxmon monitor`'s error, `vxmon FILE ...`
// replay's.

@Suite("usage errors name the subcommand")
struct UsageLineTests {
    static let recording = CLIFixtures.packageRoot + "/samples/cross_node_ping.vxrec"

    @Test(
        "exit 64; stderr: the error, then `Usage: vxmon <subcommand> ...` and `See 'vxmon <subcommand> --help'`",
        arguments: [
            // Found by the command (its filter, read in run()).
            (["--port", "x"], "monitor"), (["monitor", "--port", "x"], "monitor"), (["--node", "BAD"], "monitor"),
            (["monitor", "--ip", "10.1.2.300"], "monitor"), ([recording, "--port", "0"], "replay"),
            (["replay", recording, "--port", "0"], "replay"), (["stats", recording, "--protocol", "gre"], "stats"),
            (["record", "-w", "/dev/null", "--vni", "x"], "record"),
            // Found while parsing.
            (["monitor", "--count", "0"], "monitor"), (["--count", "0"], "monitor"), (["replay", "x", "--port", "-1"], "replay"),
            (["record", "--bogus"], "record"), (["stats", "--bogus"], "stats"), (["agent", "--queue-mib", "0"], "agent"),
            (["lab", "up", "--pods", "0"], "lab up"), (["tunnel", "list", "--bogus"], "tunnel list"),
        ])
    func usageLine(_ arguments: [String], _ subcommand: String) throws {
        let r = try run(Binary.vxmon, arguments)
        #expect(r.status == 64, "\(arguments): \(r.stderr)")
        #expect(r.stdout == "")
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("Error: ") == true, "\(arguments): \(r.stderr)")
        #expect(lines.contains { $0.hasPrefix("Usage: vxmon \(subcommand) ") }, "\(arguments): \(r.stderr)")
        #expect(lines.contains("  See 'vxmon \(subcommand) --help' for more information."), "\(arguments): \(r.stderr)")
        #expect(!r.stderr.contains("Usage: vxmon <subcommand>"), "\(arguments): \(r.stderr)")
    }

    @Test("errors that are not usage errors keep their form and status; help still works")
    func otherErrors() throws {
        let missing = try run(Binary.vxmon, ["replay", "/nonexistent/x.vxrec"])
        #expect(missing.status == 1, "\(missing.stderr)")
        #expect(missing.stderr.hasPrefix("Error: ") && !missing.stderr.contains("Usage:"), "\(missing.stderr)")
        let help = try run(Binary.vxmon, ["help", "replay"])
        #expect(help.status == 0 && help.stdout.contains("USAGE: vxmon replay"), "\(help.stdout)\(help.stderr)")
    }
}
