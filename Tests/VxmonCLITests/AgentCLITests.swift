import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// `vxmon --monitor-socket`: a fake Cilium agent (Tests/scripts/fake_cilium_agent.py) serves the vector
// stream Cilium 1.13's agent wrote; Cilium's own rendering of it (agent-socket-1.2.default.txt) is the
// oracle.

@Suite("reading a Cilium agent's monitor socket")
struct MonitorSocketTests {
    /// Cilium's lines for the vector stream, with the documented differences applied: the decode error
    /// line and the zeroed line after it go to stderr in vxmon; tunnel lines are compared up to the
    /// addresses (vxmon shows the inner flow and a `[tunnel ...]` suffix).
    static func expected() -> [Substring] {
        var lines = (CLIFixtures.text("\(CLIFixtures.vectors)/agent-socket-1.2.default.txt") ?? "").split(separator: "\n")
        if let e = lines.firstIndex(where: { $0.hasPrefix("Error while parsing") }) { lines.removeSubrange(e...(e + 1)) }
        return lines
    }

    static func same(_ got: Substring, _ want: Substring) -> Bool {
        if want.hasSuffix(":8472 udp") || want.hasSuffix(":4789 udp"), let cut = want.range(of: "orig-ip 0.0.0.0: ") {
            return got.hasPrefix(want[..<cut.upperBound]) && got.contains(" [tunnel ")
        }
        return got == want
    }

    @Test("the agent goes away mid-stream and comes back: vxmon says so, reconnects, renders everything from both connections")
    func reconnect() throws {
        let python = try #require(which("python3"))
        let dir = NSTemporaryDirectory() + "/vxmon-sock-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = dir + "/monitor1_2.sock"
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: python)
        agent.arguments = [
            CLIFixtures.packageRoot + "/Tests/scripts/fake_cilium_agent.py", socket,
            "\(CLIFixtures.vectors)/agent-socket-1.2.bin", "12",
        ]
        agent.standardOutput = FileHandle.nullDevice
        try agent.run()
        defer { if agent.isRunning { agent.terminate() } }
        let r = try run(Binary.vxmon, ["--monitor-socket", socket, "--duration", "4"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("closed the connection (end of stream); reconnecting"), "\(r.stderr)")
        #expect(r.stderr.contains("reconnected to the Cilium agent at"), "\(r.stderr)")
        #expect(r.stderr.contains(" reconnects; duration reached"), "\(r.stderr)")
        // The first connection's events (a prefix of the stream's), then all of them again.
        let want = Self.expected()
        let got = r.stdout.split(separator: "\n")
        let first = got.count - want.count
        try #require(first > 0 && first < want.count, "\(got.count) lines for \(want.count) expected")
        for (g, w) in zip(got.prefix(first), want.prefix(first)) { #expect(Self.same(g, w), "\(g)") }
        for (g, w) in zip(got.dropFirst(first), want) { #expect(Self.same(g, w), "\(g)") }
    }

    @Test("CILIUM_MONITOR_SOCK names the socket, as for Cilium's CLI; a socket nobody serves: a clear wait message")
    func environment() throws {
        let path = NSTemporaryDirectory() + "/vxmon-nosock-\(UUID().uuidString)"
        let r = try run("/usr/bin/env", ["CILIUM_MONITOR_SOCK=\(path)", Binary.vxmon, "--duration", "1.2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "")
        #expect(r.stderr.contains("waiting for the Cilium agent at \(path)"), "\(r.stderr)")
    }

    @Test("two SIGTERMs at once (GNU timeout sends two) still end cleanly with the summary; the kernel's exit status is the oracle")
    func doubleSignal() throws {
        let dir = NSTemporaryDirectory() + "/vxmon-sig-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = FileManager.default.createFile(atPath: dir + "/err", contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binary.vxmon)
        // A socket nobody serves: vxmon waits for the agent, checking for a stop request.
        p.arguments = ["--monitor-socket", dir + "/none.sock", "--summary", "--duration", "30"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: dir + "/err")
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        var waited = 0
        while !(CLIFixtures.text(dir + "/err") ?? "").contains("waiting for the Cilium agent") && waited < 100 {
            usleep(50_000)
            waited += 1
        }
        kill(p.processIdentifier, SIGTERM)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let err = CLIFixtures.text(dir + "/err") ?? ""
        #expect(p.terminationReason == .exit && p.terminationStatus == 0, "\(p.terminationStatus): \(err)")
        #expect(err.contains("vxmon summary:"), "\(err)")
        #expect(err.contains("; stopped"), "the signals stopped it (not its --duration): \(err)")
    }
}
