import Foundation
import Testing
import VxmonLive
import VxmonCore

// End-to-end runs of the built `vxmon` executable. SwiftPM puts it in the same directory as the test
// bundle (`.build/<triple>/<config>/`), which is where this process's executable lives.

enum Binary {
    static let directory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // On Darwin the bundle is `vxmonPackageTests.xctest/Contents/MacOS/...`.
        while dir.path.contains(".xctest") { dir = dir.deletingLastPathComponent() }
        return dir.path
    }()
    static var vxmon: String { directory + "/vxmon" }
    static var exists: Bool { FileManager.default.isExecutableFile(atPath: vxmon) }
}

@Suite("vxmon executable")
struct CLITests {
    let vector = "\(CLIFixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"

    @Test("the binary is next to the test bundle")
    func binaryFound() {
        #expect(Binary.exists, "no vxmon at \(Binary.vxmon)")
    }

    @Test("vxmon replay FILE prints exactly what cilium monitor printed")
    func replay() throws {
        let r = try run(Binary.vxmon, ["replay", vector])
        #expect(r.status == 0)
        #expect(r.stdout == CLIFixtures.text("\(CLIFixtures.vectors)/trace_v1_to_overlay_icmp.default.txt"))
        #expect(r.stderr == "")
    }

    @Test("`vxmon FILE` replays FILE (monitor is the default subcommand); the verbosity flags work")
    func flags() throws {
        let drop = "\(CLIFixtures.vectors)/drop_policy_denied_tcp.vxrec"
        let r = try run(Binary.vxmon, [drop])
        #expect(r.status == 0)
        #expect(r.stdout == CLIFixtures.text("\(CLIFixtures.vectors)/drop_policy_denied_tcp.default.txt"))
        let n = try run(Binary.vxmon, ["replay", "-n", drop])
        #expect(n.stdout == CLIFixtures.text("\(CLIFixtures.vectors)/drop_policy_denied_tcp.n.txt"))
        // -vv: difference (1), the header right after the separator.
        let vv = try run(Binary.vxmon, ["replay", "-vv", vector])
        let expected = try #require(CLIFixtures.text("\(CLIFixtures.vectors)/trace_v1_to_overlay_icmp.vv.txt"))
        var lines = expected.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = lines.remove(at: lines.count - 2)
        lines.insert(header, at: 1)
        #expect(vv.stdout == lines.joined(separator: "\n"))
        let debug = try run(Binary.vxmon, ["replay", "-v", "\(CLIFixtures.vectors)/debug_ct_created4.vxrec"])
        #expect(debug.stdout == CLIFixtures.text("\(CLIFixtures.vectors)/debug_ct_created4.v.txt"))
    }

    @Test("-j and -o json print the library's JSON; -o yaml its YAML")
    func structured() throws {
        let file = CLIFixtures.bytes(vector)
        let (json, _) = try render(file, .json)
        let (yaml, _) = try render(file, .yaml)
        #expect(try run(Binary.vxmon, ["replay", "-j", vector]).stdout == json)
        #expect(try run(Binary.vxmon, ["replay", "-o", "json", vector]).stdout == json)
        #expect(try run(Binary.vxmon, ["replay", "-o", "yaml", vector]).stdout == yaml)
    }

    @Test("vxmon replay - reads the recording from standard input")
    func stdin() throws {
        let r = try run(Binary.vxmon, ["replay", "-"], stdin: CLIFixtures.bytes(vector))
        #expect(r.status == 0)
        #expect(r.stdout == CLIFixtures.text("\(CLIFixtures.vectors)/trace_v1_to_overlay_icmp.default.txt"))
        #expect(r.stderr == "")
        // A large recording through a pipe.
        let bulk = try run(Binary.vxmon, ["replay", "-"], stdin: CLIFixtures.bytes("\(CLIFixtures.vectors)/bulk_2k.vxrec"))
        #expect(bulk.status == 0)
        #expect(bulk.stdout.split(separator: "\n").count == 2000)
    }

    @Test("a missing file: exit 1, one line on stderr, nothing on stdout")
    func missingFile() throws {
        let path = "/nonexistent/vxmon-\(UUID().uuidString).vxrec"
        let r = try run(Binary.vxmon, ["replay", path])
        #expect(r.status == 1)
        #expect(r.stdout == "")
        let errLines = r.stderr.split(separator: "\n")
        #expect(errLines.count == 1, "stderr: \(r.stderr)")
        #expect(r.stderr.contains(path))
    }

    @Test("a truncated recording prints its complete records, then fails with a clear message")
    func truncated() throws {
        let a = records(CLIFixtures.bytes(vector))
        let b = records(CLIFixtures.bytes("\(CLIFixtures.vectors)/drop_policy_denied_tcp.vxrec"))
        let full = vxrec(a + b)
        let cut = Array(full.prefix(full.count - 20))
        let r = try run(Binary.vxmon, ["replay", "-"], stdin: cut)
        #expect(r.status != 0)
        #expect(r.stdout == CLIFixtures.text("\(CLIFixtures.vectors)/trace_v1_to_overlay_icmp.default.txt"))
        #expect(r.stderr.contains("truncated"), "stderr: \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count <= 2, "stderr: \(r.stderr)")
    }

    @Test("not a recording: a clear error, nothing on stdout")
    func notARecording() throws {
        let r = try run(Binary.vxmon, ["replay", "\(CLIFixtures.vectors)/README.md"])
        #expect(r.status != 0)
        #expect(r.stdout == "")
        #expect(r.stderr.contains("not a vxmon recording"), "stderr: \(r.stderr)")
    }

    @Test("an undecodable event goes to stderr with its position; stdout keeps the rest")
    func decodeError() throws {
        let r = try run(Binary.vxmon, ["replay", "\(CLIFixtures.vectors)/trace_unknown_version.vxrec"])
        #expect(r.stdout == "")
        #expect(r.stderr.contains("Unrecognized trace event (version 7)"))
        #expect(r.stderr.contains("record 1"))
    }
}

@Suite("files a command must not overwrite")
struct OutputOverInputTests {
    /// The bytes of the file on disk are the oracle: nothing may have been truncated.
    @Test("--write-pcap naming the recording replayed, or the recording record writes, is refused (64) and nothing is truncated")
    func captureOverInput() throws {
        let dir = NSTemporaryDirectory() + "vxmon-same-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = dir + "/in.vxrec"
        let original = CLIFixtures.bytes("\(CLIFixtures.vectors)/trace_v1_to_overlay_icmp.vxrec")
        try Data(original).write(to: URL(fileURLWithPath: input))
        let replay = try run(Binary.vxmon, ["replay", input, "--write-pcap", input, "-q"])
        #expect(replay.status == 64 && replay.stderr.contains("is the recording being read"), "\(replay.stderr)")
        #expect(CLIFixtures.bytes(input) == original)
        // `record` checks before it needs a lab: the same file under two spellings.
        let record = try run(Binary.vxmon, ["record", "-w", dir + "/r.vxrec", "--write-pcap", "r.vxrec"], directory: dir)
        #expect(record.status == 64 && record.stderr.contains("is the recording (-w)"), "\(record.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/r.vxrec"))
    }
}

@Suite("command lines beyond any real one")
struct LongCommandLineTests {
    @Test("more than 2048 words besides repeated filter flags is a usage error naming the bound (ArgumentParser would take minutes on them)")
    func tooManyWords() throws {
        let file = "\(CLIFixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"
        let words = ["replay", file, "-q"] + Array(repeating: "-v", count: 2046)
        let refused = try run(Binary.vxmon, words)
        #expect(
            refused.status == 64 && refused.stderr.contains("2049 command-line words besides repeated filter flags; vxmon takes at most 2048"),
            "\(refused.stderr)")
        let taken = try run(Binary.vxmon, Array(words.dropLast(1)))
        #expect(taken.status == 0, "\(taken.stderr)")
    }

    @Test("50,000 --ip values (and negated --port values) parse in one pass: the filter keeps exactly the records with that address, by the records' own JSON")
    func manyFilterValues() throws {
        let file = CLIFixtures.packageRoot + "/samples/tcp_udp.vxrec"
        // The oracle: the unfiltered records whose inner source or destination is the address.
        let all = try run(Binary.vxmon, ["replay", file, "-o", "json"])
        #expect(all.status == 0, "\(all.stderr)")
        let wanted = all.stdout.split(separator: "\n").filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let ip = object["IP"] as? [String: Any]
            else { return false }
            return ip["source"] as? String == "10.0.1.10" || ip["destination"] as? String == "10.0.1.10"
        }
        try #require(!wanted.isEmpty)
        var words = ["replay", file, "-o", "json"]
        words.reserveCapacity(50_310)
        // One word each (--ip=...), to stay inside the kernel's limit on a command line's size.
        for i in 0..<49_999 { words.append("--ip=100.64.\(i / 256 % 256).\(i % 256)") }
        words += ["--ip", "10.0.1.10"]
        // Ports no record has, negated: each is true for every record.
        for port in 60_000..<60_100 { words += ["--not", "--port", "\(port)"] }
        let filtered = try run(Binary.vxmon, words)
        #expect(filtered.status == 0, "\(filtered.stderr.prefix(300))")
        #expect(filtered.stdout.split(separator: "\n") == wanted)
        // `vxmon FILE` (replay's old form) parses them the same way.
        let short = try run(Binary.vxmon, Array(words.dropFirst()))
        #expect(short.status == 0 && short.stdout.split(separator: "\n") == wanted, "\(short.stderr.prefix(300))")
        // A bad value among them is still found, and named.
        words[words.count - 301] = "10.0.1.300"
        let bad = try run(Binary.vxmon, words)
        #expect(bad.status == 64 && bad.stderr.contains("--ip: '10.0.1.300' is not valid"), "\(bad.stderr.prefix(300))")
    }

    @Test("leaving repeated filter flags out of ArgumentParser's words never changes a command line's meaning: an option missing its value stays a usage error, -t in a group is refused, a value 'monitor' stays a value")
    func meaningKept() throws {
        let dir = NSTemporaryDirectory() + "vxmon-words-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = dir + "/in.vxrec", keep = dir + "/keep.vxrec"
        let original = CLIFixtures.bytes(CLIFixtures.packageRoot + "/samples/tcp_udp.vxrec")
        try Data(original).write(to: URL(fileURLWithPath: input))
        try Data(original).write(to: URL(fileURLWithPath: keep))
        // `--write-pcap` has no value here: dropping the second --ip must not hand it keep.vxrec.
        for words in [
            ["replay", input, "-q", "--ip", "10.0.1.10", "--write-pcap", "--ip", "10.0.1.20", keep],
            [input, "-q", "--ip", "10.0.1.10", "--write-pcap", "--ip", "10.0.1.20", keep],
        ] {
            let r = try run(Binary.vxmon, words)
            #expect(r.status == 64 && r.stderr.contains("Missing value for '--write-pcap <file>'"), "\(r.stderr)")
            #expect(CLIFixtures.bytes(keep) == original, "keep.vxrec was written")
        }
        // -t in a group of short options, or with =, is refused (it was accepted and not applied).
        for t in [["-qt", "drop"], ["-t=drop"]] {
            let r = try run(Binary.vxmon, ["replay", input] + t)
            #expect(r.status == 64 && r.stderr.contains("takes its value as the next word (-t drop)"), "\(r.stderr)")
        }
        // A filter value that is the word "monitor": `vxmon FILE` keeps it (only a leading one is the
        // subcommand); the recording has no such pod, and says so.
        let pod = try run(Binary.vxmon, [input, "-q", "--pod", "monitor"])
        #expect(pod.stderr.contains("--pod monitor: no such pod in the recording"), "\(pod.stderr)")
    }
}

@Suite("diagnostics a hostile recording cannot flood")
struct DiagnosticBoundTests {
    @Test("5,000 undecodable events: at most 1,000 lines per rendering pipeline on stderr (parallel replay included), and the summary counts all 5,000")
    func undecodableLinesAreBounded() throws {
        let dir = NSTemporaryDirectory() + "vxmon-undecodable-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Trace notifications cut after their first byte: each one is reported and skipped.
        let file = dir + "/bad.vxrec"
        try Data(vxrec((0..<5000).map { _ in Record(kind: 1, body: [4]) })).write(to: URL(fileURLWithPath: file))
        // Standard output to a file: the parallel renderer, one pipeline per worker.
        let started = Date()
        let r = try run(Binary.vxmon, ["replay", file, "-o", "json"], stdoutFile: dir + "/out.json")
        let elapsed = Date().timeIntervalSince(started)
        let lines = r.stderr.split(separator: "\n")
        let skipped = lines.filter { $0.contains("; event skipped") }
        let workers = max(ProcessInfo.processInfo.activeProcessorCount, 1)
        // Lines the process's stderr budget held back (1,000, then 100 a second), said at the end.
        let heldBack = lines.last.flatMap { last -> Int? in
            guard last.hasSuffix("then 100 a second)"), let n = last.split(separator: " ").dropFirst().first else { return nil }
            return Int(n)
        } ?? 0
        #expect(r.status == 0, "\(r.stderr.suffix(300))")
        #expect(skipped.count >= 1000, "\(skipped.count) lines")
        #expect(skipped.count + heldBack <= 1000 * workers, "\(skipped.count) lines, \(heldBack) held back")
        #expect(Double(skipped.count) <= 1000 + 100 * elapsed + 1, "\(skipped.count) lines in \(elapsed) s")
        #expect(lines.contains { $0.contains("5000 skipped (undecodable)") }, "\(r.stderr.suffix(300))")
    }

    @Test("the process's stderr budget: 1,000 lines at once, then 100 a second; what it holds back is counted and said when lines flow again")
    func processBudget() {
        nonisolated(unsafe) var now: UInt64 = 0
        let budget = DiagnosticBudget(burst: 1000, perSecond: 100, clock: { now })
        var written: [String] = []
        for i in 0..<1500 { budget.write("line \(i)") { written.append($0) } }
        #expect(written.count == 1000 && written.last == "line 999")
        #expect(budget.suppressed == 500)
        now = 50_000_000  // 50 ms later: 5 lines' worth
        for i in 1500..<1510 { budget.write("line \(i)") { written.append($0) } }
        // The first line after the pause says how many were held back, then 4 more fit (5 in all).
        #expect(written.count == 1000 + 1 + 5, "\(written.suffix(8))")
        #expect(written[1000].hasPrefix("vxmon: 500 diagnostic lines not shown"), "\(written[1000])")
        #expect(written[1001] == "line 1500" && written.last == "line 1504")
        #expect(budget.suppressed == 505)
        now = 3_600_000_000_000  // an hour later: the burst again, no more
        for i in 0..<2000 { budget.write("again \(i)") { written.append($0) } }
        #expect(written.count == 1006 + 1 + 1000)
    }
}
