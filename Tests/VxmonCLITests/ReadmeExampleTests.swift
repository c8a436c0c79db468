import Foundation
import Testing

// The README's examples are checked, not copied: every `$ vxmon replay ...` / `$ vxmon stats ...` line
// in a ```text block of README.md (a command that needs no lab: it reads `samples/` or the vectors) is
// run through /bin/sh, with `vxmon` resolved to the built binary and the package root as the working
// directory, and its standard output is compared with the lines the README shows under it. A line of
// just `...` stands for any number of lines (the README elides the rest, or a middle part); otherwise
// the comparison is exact. Live transcripts (lab commands) come from scripts/readme-examples.sh.

/// One command of a README ```text block and the output the README shows for it.
struct ReadmeExample: Sendable, CustomTestStringConvertible {
    /// 1-based line of the `$ ` line in README.md.
    var line: Int
    /// The command line after `$ ` (a shell pipeline).
    var command: String
    /// The lines the README shows below the command, up to the next `$ ` line or the block's end.
    var expected: [String]

    var testDescription: String { "README.md:\(line): \(command)" }

    /// The README's examples that replay-only commands produce (no lab, no root).
    static let all: [ReadmeExample] = parse(CLIFixtures.text(CLIFixtures.packageRoot + "/README.md") ?? "")

    /// How many such examples README.md holds today: fewer found means the parser (or the README) broke.
    static let minimumCount = 6

    static func parse(_ readme: String) -> [ReadmeExample] {
        var examples: [ReadmeExample] = []
        var inText = false
        var current: ReadmeExample?
        func close() {
            if let c = current, isReplayOnly(c.command) { examples.append(c) }
            current = nil
        }
        for (index, raw) in readme.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            if line.hasPrefix("```") {
                if inText { close() }
                inText = !inText && line == "```text"
                continue
            }
            guard inText else { continue }
            if line.hasPrefix("$ ") {
                close()
                current = ReadmeExample(line: index + 1, command: String(line.dropFirst(2)), expected: [])
            } else {
                current?.expected.append(line)
            }
        }
        return examples
    }

    /// A command whose output comes from a recording alone: `vxmon replay`, `vxmon stats` or `vxmon
    /// journey FILE` (possibly piped through jq, head, ...), never a lab command or a live monitor.
    static func isReplayOnly(_ command: String) -> Bool {
        let words = command.split(separator: " ", omittingEmptySubsequences: true)
        guard words.count >= 2, words[0] == "vxmon" else { return false }
        if words[1] == "journey" { return words.count >= 3 && words[2].hasSuffix(".vxrec") }
        return words[1] == "replay" || words[1] == "stats"
    }

    /// Whether `actual` (the command's output lines) is what the README shows: equal, where `...`
    /// lines match any run of lines (including none).
    static func matches(_ expected: [String], _ actual: [String]) -> Bool {
        let segments = expected.split(separator: "...", omittingEmptySubsequences: false).map(Array.init)
        if segments.count == 1 { return expected == actual }
        var rest = actual[...]
        // The first segment is a prefix, the last a suffix, the ones between appear in order.
        guard rest.starts(with: segments[0]) else { return false }
        rest = rest.dropFirst(segments[0].count)
        let last = segments[segments.count - 1]
        guard rest.count >= last.count, Array(rest.suffix(last.count)) == last else { return false }
        rest = rest.dropLast(last.count)
        for segment in segments.dropFirst().dropLast() where !segment.isEmpty {
            var at = rest.startIndex
            while at + segment.count <= rest.endIndex && !rest[at..<(at + segment.count)].elementsEqual(segment) { at += 1 }
            guard at + segment.count <= rest.endIndex else { return false }
            rest = rest[(at + segment.count)...]
        }
        return true
    }
}

/// Runs `command` through /bin/sh in the package root, with the built vxmon first on PATH.
func runShell(_ command: String) throws -> ProcessResult {
    var environment = ProcessInfo.processInfo.environment
    environment["PATH"] = Binary.directory + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
    environment["NO_COLOR"] = "1"
    return try run("/bin/sh", ["-c", command], directory: CLIFixtures.packageRoot, environment: environment)
}

@Suite("README examples")
struct ReadmeExampleTests {
    @Test("the README's replay examples are all found")
    func found() throws {
        #expect(Binary.exists, "no vxmon at \(Binary.vxmon)")
        let examples = ReadmeExample.all
        #expect(
            examples.count >= ReadmeExample.minimumCount,
            "found \(examples.count) replay examples in README.md, expected at least \(ReadmeExample.minimumCount): \(examples.map(\.testDescription))"
        )
        for example in examples {
            #expect(!example.expected.isEmpty, "\(example.testDescription) shows no output")
            #expect(example.expected.contains { $0 != "..." }, "\(example.testDescription) shows only an elision")
        }
    }

    @Test("each replay example prints what the README shows", arguments: ReadmeExample.all)
    func example(_ example: ReadmeExample) throws {
        let r = try runShell(example.command)
        #expect(r.status == 0, "\(example.testDescription): exit \(r.status), stderr: \(r.stderr)")
        #expect(r.stderr == "", "\(example.testDescription): stderr: \(r.stderr)")
        var actual = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if actual.last == "" { actual.removeLast() }
        #expect(
            ReadmeExample.matches(example.expected, actual),
            """
            \(example.testDescription): the README shows
            \(example.expected.joined(separator: "\n"))
            but the command prints
            \(actual.joined(separator: "\n"))
            """)
    }

    @Test("the matcher: exact, prefix, suffix and middle elisions; drift fails")
    func matcher() {
        let out = ["a", "b", "c", "d"]
        #expect(ReadmeExample.matches(["a", "b", "c", "d"], out))
        #expect(!ReadmeExample.matches(["a", "b", "c"], out))
        #expect(!ReadmeExample.matches(["a", "b", "c", "d", "e"], out))
        #expect(ReadmeExample.matches(["a", "b", "..."], out))
        #expect(!ReadmeExample.matches(["a", "c", "..."], out))
        #expect(ReadmeExample.matches(["...", "d"], out))
        #expect(ReadmeExample.matches(["a", "...", "d"], out))
        #expect(ReadmeExample.matches(["a", "...", "c", "...", "d"], out))
        #expect(ReadmeExample.matches(["a", "b", "...", "c", "d"], out))
        #expect(!ReadmeExample.matches(["a", "...", "b", "...", "a"], out))
        #expect(!ReadmeExample.matches(["a", "b", "c", "...", "c", "d"], out))
        #expect(ReadmeExample.matches(["a", "b", "c", "d", "..."], out))
        let readme = """
            text
            ```text
            $ vxmon replay x.vxrec | head -1
            line 1
            ...
            $ vxmon lab up
            $ vxmon stats x.vxrec
            total
            ```
            ```sh
            $ vxmon replay y.vxrec
            ```
            """
        let parsed = ReadmeExample.parse(readme)
        #expect(parsed.map(\.command) == ["vxmon replay x.vxrec | head -1", "vxmon stats x.vxrec"])
        #expect(parsed.map(\.expected) == [["line 1", "..."], ["total"]])
        #expect(parsed.map(\.line) == [3, 7])
    }
}
