import ArgumentParser
import Glibc
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive

/// The root command. The `vxmon` executable calls `main()`; tests parse a command line in-process
/// with `parse(_:)` and run what it returns.
public struct Vxmon: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "vxmon",
        abstract: "Watch a Cilium-style VXLAN datapath: decode and render its monitor events.",
        discussion: """
            With no subcommand, vxmon runs `monitor`: `vxmon -vv` prints the lab's events live.
            Exit status: 0 success, 1 runtime failure, 64 usage error.
            """,
        subcommands: [
            Monitor.self, Record.self, Replay.self, Stats.self, JourneyCommand.self, LabCommand.self, AgentCommand.self, Tunnel.self, EndpointCommand.self,
            IdentityCommand.self, Policy.self, Flood.self,
        ],
        defaultSubcommand: Monitor.self)

    public init() {}

    /// The most words ArgumentParser is given: its parsing is quadratic in them (50,000 words took
    /// minutes). Repeated filter flags do not count (see `forArgumentParser`): `FilterParser` reads all
    /// of them in one pass, so a filter of 100,000 addresses parses in linear time.
    public static let maxWords = 2048

    /// Parses `arguments` (the words after the program's name) into the command they ask for, as
    /// `vxmon` does, and hands the words to a command that reads them again (`CommandWords`: the
    /// filters, in order). `--timestamps` takes an optional value, which ArgumentParser options cannot:
    /// a bare one (or one followed by a format name as a separate word) is rewritten to
    /// `--timestamps=FORMAT` first. Throws what ArgumentParser throws (`exit(withError:)` reports it).
    public static func parse(_ arguments: [String]) throws -> ParsableCommand {
        var words: [String] = []
        words.reserveCapacity(arguments.count)
        var rest = arguments[...]
        while let word = rest.popFirst() {
            if word == "--timestamps" {
                if let next = rest.first, TimeFormat(name: next) != nil {
                    words.append("--timestamps=" + rest.removeFirst())
                } else {
                    words.append("--timestamps=" + TimeFormat.stampMilli.rawValue)
                }
            } else {
                words.append(word)
            }
        }
        let parsed = forArgumentParser(words)
        guard parsed.count <= maxWords else {
            throw ValidationError("\(parsed.count) command-line words besides repeated filter flags; vxmon takes at most \(maxWords)")
        }
        let command = try parseAsRoot(parsed)
        guard var reader = command as? any CommandWords else { return command }
        reader.words = words
        return reader
    }

    /// `words` with every filter flag after its first occurrence left out, with its value and a
    /// `--not` before it: what ArgumentParser needs to check and document them. `FilterParser` reads
    /// the filter from all of the words, in order, and checks every value. Stops at `--`.
    /// Only for the commands that take filters (monitor, the default, record, replay and stats), and
    /// not `--node`, which monitor, replay and stats also read as their own option.
    static func forArgumentParser(_ words: [String]) -> [String] {
        let others = configuration.subcommands.filter { !($0 is any CommandWords.Type) }.map { $0._commandName }
        if let first = words.first, others.contains(first) { return words }
        let filterFlags = Set(FilterParser.flags.map(\.name).filter { $0 != "--node" } + ["-t"])
        var seen = Set<String>()
        var kept: [String] = []
        kept.reserveCapacity(min(words.count, 4 * maxWords))
        // Whether the last word kept is an option that may still wait for its value (`-w`, `--lab`):
        // a repeated filter flag right after it is kept, or leaving it out would hand the option the
        // word after it (`-w --ip B keep.vxrec` must stay a usage error, not write keep.vxrec).
        var afterOption = false
        var i = 0
        while i < words.count {
            let word = words[i]
            if word == "--" {
                kept += words[i...]
                break
            }
            // A filter flag (and its value, unless given as --flag=value), perhaps negated.
            var at = i
            if word == "--not", i + 1 < words.count { at = i + 1 }
            let flagWord = words[at]
            let name = flagWord.hasPrefix("--") ? String(flagWord.prefix { $0 != "=" }) : flagWord
            guard filterFlags.contains(name) else {
                kept.append(word)
                afterOption = word.hasPrefix("-") && word.count > 1 && !word.contains("=") && word != "--not"
                i += 1
                continue
            }
            let end = min(flagWord.contains("=") && flagWord.hasPrefix("--") ? at + 1 : at + 2, words.count)
            if seen.insert(name == "-t" ? "--type" : name).inserted || afterOption { kept += words[i..<end] }
            afterOption = false
            i = end
        }
        return kept
    }

    /// Parses the process's command line and runs the command, with ArgumentParser's exit statuses
    /// and messages (see `exit(withError:in:)`).
    public static func main() {
        // A file size limit then fails the write (EFBIG, reported) instead of killing vxmon.
        signal(SIGXFSZ, SIG_IGN)
        let command: ParsableCommand
        do {
            command = try parse(Array(CommandLine.arguments.dropFirst()))
        } catch {
            exit(withError: error)
        }
        do {
            var command = command
            try command.run()
            reportHeldBackDiagnostics()
        } catch {
            reportHeldBackDiagnostics()
            // `vxmon FILE` (monitor's hidden argument) runs replay.
            exit(withError: error, in: (command as? Monitor)?.recording != nil ? Replay.self : type(of: command))
        }
    }

    /// The last line on stderr when the process's diagnostic budget held lines back: how many.
    static func reportHeldBackDiagnostics() {
        let held = DiagnosticBudget.process.suppressed
        guard held > 0 else { return }
        EventPipeline.standardError(
            "vxmon: \(held) diagnostic lines were not shown (stderr is limited to \(DiagnosticBudget.burst) lines, "
                + "then \(DiagnosticBudget.perSecond) a second)")
    }

    /// Ends with `error` thrown by the `run()` of `command`. ArgumentParser's own `main` reports a usage
    /// error thrown there (a `ValidationError`: a bad filter, node or pod, found once the values are
    /// read) with the root's usage, `vxmon <subcommand>`; the usage of the command that ran is the one
    /// that helps (`vxmon monitor ...`, `vxmon replay ...`), as for the errors found while parsing.
    /// Exit status 64, as ArgumentParser's. Any other error is reported as ArgumentParser does.
    static func exit(withError error: Error, in command: ParsableCommand.Type) -> Never {
        let path = commandPath(to: command)
        guard exitCode(for: error) == .validationFailure, path.count > 1 else { exit(withError: error) }
        let usage = usageString(for: command).split(separator: "\n", omittingEmptySubsequences: false)
            .joined(separator: "\n       ")
        EventPipeline.standardError(
            "\(_errorPrefix)\(message(for: error))\nUsage: \(usage)\n"
                + "  See '\(path.joined(separator: " ")) --help' for more information.")
        Glibc.exit(ExitCode.validationFailure.rawValue)
    }

    /// The command names from the root to `command` (`["vxmon", "lab", "up"]`), or just the root's
    /// name if `command` is not in the tree.
    static func commandPath(to command: ParsableCommand.Type) -> [String] {
        func search(_ node: ParsableCommand.Type, _ path: [String]) -> [String]? {
            let path = path + [node._commandName]
            if ObjectIdentifier(node) == ObjectIdentifier(command) { return path }
            for child in node.configuration.subcommands {
                if let found = search(child, path) { return found }
            }
            return nil
        }
        return search(self, []) ?? [_commandName]
    }
}

/// A runtime failure: printed as `Error: <message>` on stderr, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension BufferKind: ExpressibleByArgument {}

/// Selects the lab every lab-related command works on.
struct LabOptions: ParsableArguments {
    @Option(help: "The lab to use (default: $VXMON_LAB, else vxmon).")
    var lab: String?

    func validate() throws {
        do {
            try LabTopology.validate(labName: Lab.resolveName(lab))
        } catch {
            throw ValidationError(
                "--lab (or VXMON_LAB): \(sanitizedArgument(Lab.resolveName(lab))) is not a lab name; use up to 32 "
                    + "lowercase letters, digits and dashes, starting with a letter")
        }
    }

    /// The lab, with its name validated.
    func open() throws -> Lab {
        try Lab(name: Lab.resolveName(lab), log: { EventPipeline.standardError($0) })
    }
}

/// A command-line word or file name, safe to print on a terminal.
func sanitizedArgument(_ s: String) -> String {
    let out = OutputBuffer(capacity: 64)
    out.appendSanitized(s)
    return out.string
}
