import Foundation
import Testing
import VxmonCore

// The flow features through the real command line: filter flags and their errors, timestamps (Foundation's
// date formatting is the oracle), colour, --count, --fail-on-lost, --summary, stats, --write-pcap (tshark
// is the oracle), node labels.

@Suite("vxmon: filters, times, colour, summary, pcapng")
struct FlowCLITests {
    static let samples = CLIFixtures.packageRoot + "/samples"
    static let ping = samples + "/cross_node_ping.vxrec"

    @Test(
        "a bad filter value: exit 64, the flag and the accepted forms on stderr, nothing on stdout",
        arguments: [
            (["--port", "0"], "--port"), (["--ip", "10.1.2.300"], "--ip"), (["--protocol", "gre"], "--protocol"),
            (["--timestamps=Fortnight"], "--timestamps"), (["--not"], "--not"), (["--vni", "x"], "--vni"),
        ])
    func badValues(_ arguments: [String], _ flag: String) throws {
        let r = try run(Binary.vxmon, ["replay", Self.ping] + arguments)
        #expect(r.status == 64, "\(arguments): \(r.stderr)")
        #expect(r.stdout == "")
        #expect(r.stderr.contains(flag))
    }

    /// A one-event recording at a known time (a trace vector's sample, re-timed).
    static func timed(_ ns: UInt64) throws -> String {
        let vector = records(CLIFixtures.bytes("\(CLIFixtures.vectors)/trace_v1_to_overlay_icmp.vxrec"))
        let sample = try #require(vector.first { $0.kind == 1 })
        let path = NSTemporaryDirectory() + "/vxmon-time-\(UUID().uuidString).vxrec"
        try Data(vxrec([Record(kind: 1, time: ns, body: sample.body)])).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("--timestamps in each of Hubble's formats, against Foundation's formatting of the same time")
    func timestamps() throws {
        let ns: UInt64 = 1_764_608_719_120_450_000  // 2025-12-01T17:05:19.12045Z
        let path = try Self.timed(ns)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let date = Date(timeIntervalSince1970: TimeInterval(ns / 1_000_000_000))
        func format(_ f: String) -> String {
            let d = DateFormatter()
            d.locale = Locale(identifier: "en_US_POSIX")
            d.timeZone = TimeZone(identifier: "UTC")
            d.dateFormat = f
            return d.string(from: date)
        }
        let cilium = try #require(CLIFixtures.text("\(CLIFixtures.vectors)/trace_v1_to_overlay_icmp.default.txt"))
        let cases: [(String, String)] = [
            ("StampMilli", format("MMM") + " " + format("d").leftPadded(2) + format(" HH:mm:ss") + ".120"),
            ("RFC3339", format("yyyy-MM-dd'T'HH:mm:ss") + "Z"),
            ("RFC3339Milli", format("yyyy-MM-dd'T'HH:mm:ss") + ".120Z"),
            ("RFC3339Micro", format("yyyy-MM-dd'T'HH:mm:ss") + ".120450Z"),
            ("RFC3339Nano", format("yyyy-MM-dd'T'HH:mm:ss") + ".12045Z"),
            ("unix", "1764608719.120450000"),
        ]
        for (name, expected) in cases {
            let r = try runUTC(["replay", path, "--timestamps=\(name)"])
            #expect(r.status == 0)
            #expect(r.stdout == expected + " " + cilium, "\(name)")
        }
        // A bare --timestamps is StampMilli.
        #expect(try runUTC(["replay", path, "--timestamps"]).stdout == cases[0].1 + " " + cilium)
    }

    func runUTC(_ arguments: [String]) throws -> ProcessResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["TZ=UTC", Binary.vxmon] + arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return ProcessResult(status: p.terminationStatus, stdout: String(decoding: data, as: UTF8.self), stderr: "")
    }

    @Test("node labels name each record's node; --node keeps one node's events in Cilium's exact text")
    func nodeLabels() throws {
        let all = try run(Binary.vxmon, ["replay", Self.ping])
        #expect(all.status == 0)
        let lines = all.stdout.split(separator: "\n")
        #expect(lines.count == 20)
        #expect(lines.allSatisfy { $0.hasPrefix("[worker2] ") || $0.hasPrefix("[worker] ") })
        let one = try run(Binary.vxmon, ["replay", Self.ping, "--node", "worker"])
        let oneLines = one.stdout.split(separator: "\n")
        #expect(oneLines.count == 10)
        #expect(oneLines.allSatisfy { !$0.hasPrefix("[") })
        // The same lines, without the label.
        let unlabeled = lines.filter { $0.hasPrefix("[worker] ") }.map { $0.dropFirst("[worker] ".count) }
        #expect(unlabeled.map(String.init) == oneLines.map(String.init))
    }

    @Test("colour: always on request, never into a pipe by default; drops are red")
    func colour() throws {
        let denied = Self.samples + "/policy_denied.vxrec"
        let plain = try run(Binary.vxmon, ["replay", denied])
        #expect(!plain.stdout.contains("\u{1b}["))
        let coloured = try run(Binary.vxmon, ["replay", denied, "--color", "always"])
        let drop = try #require(coloured.stdout.split(separator: "\n").first { $0.contains("xx drop") })
        #expect(drop.hasPrefix("\u{1b}[31m") && drop.hasSuffix("\u{1b}[0m"))
        #expect(try run(Binary.vxmon, ["replay", denied, "--color", "never"]).stdout == plain.stdout)
    }

    @Test("--count N shows N events; --fail-on-lost exits 1 when samples were lost")
    func countAndLost() throws {
        let three = try run(Binary.vxmon, ["replay", Self.ping, "--count", "3"])
        #expect(three.status == 0)
        #expect(three.stdout.split(separator: "\n").count == 3)
        let lost = "\(CLIFixtures.vectors)/lost_events.vxrec"
        #expect(try run(Binary.vxmon, ["replay", lost]).status == 0)
        let failing = try run(Binary.vxmon, ["replay", lost, "--fail-on-lost"])
        #expect(failing.status == 1)
        #expect(failing.stderr.contains("lost"))
    }

    @Test("--summary -o json ends with a summary record; stats -o json prints the same totals")
    func summaryAndStats() throws {
        let r = try run(Binary.vxmon, ["replay", Self.ping, "-o", "json", "--summary", "--node", "worker"])
        let objects = try r.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let summary = try #require(objects.last)
        #expect(summary["type"] as? String == "summary")
        #expect(summary["matched"] as? Int == objects.count - 1)
        // Every sample record of the file, counted from the file itself.
        let samples = records(CLIFixtures.bytes(Self.ping)).filter { $0.kind == 1 }.count
        #expect((summary["matched"] as! Int) + (summary["filtered"] as! Int) == samples)
        let stats = try run(Binary.vxmon, ["stats", Self.ping, "-o", "json", "--node", "worker"])
        let s = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        #expect(s["matched"] as? Int == summary["matched"] as? Int)
        #expect(s["filtered"] as? Int == summary["filtered"] as? Int)
        let table = try run(Binary.vxmon, ["stats", Self.ping])
        #expect(table.stdout.contains("EVENTS BY NODE") && table.stdout.contains("TOP FLOWS"))
    }

    @Test("--write-pcap with -q: nothing on stdout; tshark lists every packet with its comment and the VNI")
    func pcap() throws {
        let tshark = try #require(which("tshark"), "tshark is the oracle here; scripts/setup.sh installs it")
        let path = NSTemporaryDirectory() + "/vxmon-cli-\(UUID().uuidString).pcapng"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try run(Binary.vxmon, ["replay", Self.ping, "-q", "--write-pcap", path])
        #expect(r.status == 0)
        #expect(r.stdout == "")
        let t = try run(
            tshark, ["-r", path, "-d", "udp.port==8472,vxlan", "-T", "fields", "-e", "frame.comment", "-e", "vxlan.vni",
                     "-e", "frame.interface_name"])
        let rows = t.stdout.split(separator: "\n")
        #expect(rows.count == 20)
        #expect(rows.allSatisfy { $0.split(separator: "\t").first.map { !$0.isEmpty } ?? false })
        #expect(rows.filter { $0.contains("\t19773\t") }.count == 2)
        #expect(rows.contains { $0.hasSuffix("\tworker2/lxc839726d5") })
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

@Suite("fuzz targets: seeds and regression inputs run without a fault")
struct FuzzRegressionTests {
    static var fuzz: String { Binary.directory + "/vxmon-fuzz" }

    @Test("every fixture and sample, and every committed regression input, through each fuzz target")
    func regressions() throws {
        let root = CLIFixtures.packageRoot
        let files = try FileManager.default.contentsOfDirectory(atPath: CLIFixtures.vectors)
        let recordings = files.filter { $0.hasSuffix(".vxrec") && $0 != "bulk_2k.vxrec" }.map { CLIFixtures.vectors + "/" + $0 }
        for target in ["decoder", "vxrec", "agent", "filter", "journey"] {
            let dir = "\(root)/fuzz/regressions/\(target)"
            let regressions = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
                .filter { !$0.hasPrefix(".") }.map { dir + "/" + $0 }
            let inputs = regressions + recordings + ["\(CLIFixtures.vectors)/agent-socket-1.2.bin"]
            let r = try run(Self.fuzz, [target] + inputs)
            #expect(r.status == 0, "\(target): \(r.stderr)")
            #expect(r.stdout.contains("\(inputs.count) inputs ran without a fault"), "\(target): \(r.stdout)")
        }
    }
}

@Suite("write errors are errors; only EPIPE means the reader went away")
struct WriteErrorTests {
    static let bulk = "\(CLIFixtures.vectors)/bulk_2k.vxrec"

    /// Runs a shell pipeline (sh -c) and returns its status and stderr.
    func shell(_ command: String) throws -> ProcessResult { try run("/bin/sh", ["-c", command]) }

    @Test("output to a full device: exit 1 with the errno's text, in every mode and thread count")
    func fullDevice() throws {
        for flags in ["", "--threads 1", "-o json", "-vv"] {
            let r = try shell("'\(Binary.vxmon)' replay '\(Self.bulk)' \(flags) > /dev/full")
            #expect(r.status == 1, "\(flags)")
            #expect(r.stderr.contains("No space left on device"), "\(flags): \(r.stderr)")
        }
    }

    @Test("a reader that goes away (| head): exit 0, nothing on stderr")
    func closedPipe() throws {
        let r = try run("/bin/bash", ["-c", "set -o pipefail; '\(Binary.vxmon)' replay '\(Self.bulk)' | head -n 1 > /dev/null"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr == "")
    }

    /// ThreadSanitizer's runtime does not start under a 100 KB file size limit (it dies before main),
    /// so this one test runs in the normal and AddressSanitizer runs only.
    static let underThreadSanitizer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil

    @Test(
        "a pcapng cut by a file size limit: exit 1 (EFBIG), and the file ends at a whole block (tshark reads it)",
        .enabled(if: !underThreadSanitizer, "ThreadSanitizer cannot start under the size limit"))
    func pcapngWholeBlocks() throws {
        let prlimit = try #require(which("prlimit"), "prlimit (util-linux) is needed for this test")
        let tshark = try #require(which("tshark"), "tshark is the oracle here; scripts/setup.sh installs it")
        let path = NSTemporaryDirectory() + "/vxmon-limit-\(UUID().uuidString).pcapng"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try run(prlimit, ["--fsize=100000", Binary.vxmon, "replay", Self.bulk, "-q", "--write-pcap", path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("File too large"), "\(r.stderr)")
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        #expect(size > 0 && size <= 100_000)
        let t = try run(tshark, ["-r", path])
        #expect(t.status == 0, "\(t.stderr)")
        #expect(!t.stderr.contains("cut short") && !t.stderr.contains("damaged"), "\(t.stderr)")
        #expect(t.stdout.split(separator: "\n").count > 100)
    }
}

@Suite("option values are validated: exit 64, the flag and its range")
struct OptionBoundsTests {
    @Test(
        "bad numbers, names and lists",
        arguments: [
            (["monitor", "--duration", "nan"], "--duration"), (["monitor", "--duration", "inf"], "--duration"),
            (["monitor", "--duration", "1e300"], "--duration"), (["monitor", "--duration", "-5"], "--duration"),
            (["monitor", "--lab", "BAD"], "--lab"), (["monitor", "--node", "w\u{202e}x"], "--node"),
            (["replay", "x.vxrec", "--threads", "100000"], "--threads"), (["replay", "x.vxrec", "--threads", "-1"], "--threads"),
            (["replay", "x.vxrec", "--vxlan-ports", "8472,,0"], "--vxlan-ports"), (["replay", "x.vxrec", "--count", "-3"], "--count"),
            (["lab", "bench", "--seconds", "nan"], "--seconds"), (["lab", "bench", "--rate", "-1"], "--rate"),
        ])
    func bounds(_ arguments: [String], _ flag: String) throws {
        let r = try run(Binary.vxmon, arguments)
        #expect(r.status == 64, "\(arguments): \(r.stderr)")
        #expect(r.stderr.contains(flag), "\(arguments): \(r.stderr)")
        #expect(r.stdout == "")
        // Whatever came from the command line is shown without control or bidi characters.
        #expect(!r.stderr.unicodeScalars.contains { $0.value == 0x202e || $0.value == 0x1b })
    }
}

@Suite("no threads to be had: replay says so and renders on the reading thread")
struct ThreadFailureTests {
    @Test(
        "worker threads refused by RLIMIT_NPROC (as user nobody): a message on stderr, exit 0, output equal to Cilium's",
        .enabled(if: getuid() == 0, "needs root to become nobody (root ignores RLIMIT_NPROC)"))
    func noThreads() throws {
        let setpriv = try #require(which("setpriv"), "setpriv (util-linux) is needed")
        let prlimit = try #require(which("prlimit"), "prlimit (util-linux) is needed")
        // A copy nobody can execute, whatever the permissions of the checkout's folders.
        let dir = NSTemporaryDirectory() + "/vxmon-nproc-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let binary = dir + "/vxmon"
        try FileManager.default.copyItem(atPath: Binary.vxmon, toPath: binary)
        chmod(dir, 0o755)
        chmod(binary, 0o755)
        // RLIMIT_NPROC 1: the process itself is nobody's one task, so no thread can be created.
        let r = try run(
            setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", prlimit, "--nproc=1", binary, "replay", "-", "--threads", "3"],
            stdin: CLIFixtures.bytes(WriteErrorTests.bulk))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("could not start 3 of 3 worker threads (Resource temporarily unavailable)"), "\(r.stderr)")
        // Cilium 1.13 stops at the outer UDP header of a tunnel packet, vxmon shows the inner flow and
        // a `[tunnel ...]` suffix (a deliberate difference, vectors/README.md): those lines are compared
        // up to the addresses.
        let expected = (CLIFixtures.text("\(CLIFixtures.vectors)/bulk_2k.default.txt") ?? "").split(separator: "\n")
        let lines = r.stdout.split(separator: "\n")
        try #require(lines.count == expected.count && lines.count == 2000)
        var tunnels = 0
        for (line, want) in zip(lines, expected) {
            if line.hasSuffix("]"), line.contains(" [tunnel "), let cut = want.range(of: "orig-ip ") {
                tunnels += 1
                let head = want[..<cut.upperBound]
                #expect(line.hasPrefix(head), "\(line)")
            } else {
                #expect(line == want)
            }
        }
        #expect(tunnels < 1000, "most lines are compared whole")
    }
}
