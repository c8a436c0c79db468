import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// `--monitor-socket NODE=PATH`, repeated: Cilium agents of several nodes read at once, each event
// named after its socket's node. The agents are fakes serving samples/cross_node_ping.vxrec split by
// node (a reader written from spec/vxrec.md splits it; Go's own encoding/gob, Tests/scripts/
// gobpayload.go, encodes each node's stream as Cilium's agent does). What vxmon prints is checked
// against the recording, decoded by that Python (trace headers, VXLAN, ICMP), not against vxmon.

@Suite("several Cilium agents' monitor sockets at once")
struct JourneySocketTests {
    static let recording = CLIFixtures.packageRoot + "/samples/cross_node_ping.vxrec"
    /// The Python side: splitting the recording, the fake agents, and the oracle.
    static let sockets = CLIFixtures.packageRoot + "/Tests/scripts/journey_sockets.py"

    /// The gob encoder (Go's encoding/gob), built once per test run.
    static let gobpayload: String? = {
        guard let go = ["/usr/bin/go", "/usr/lib/go/bin/go", "/usr/local/go/bin/go"].first(where: {
            FileManager.default.isExecutableFile(atPath: $0)
        }) else { return nil }
        let out = NSTemporaryDirectory() + "/vxmon-gobpayload-sockets-\(getpid())"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: go)
        p.arguments = ["build", "-o", out, CLIFixtures.packageRoot + "/Tests/scripts/gobpayload.go"]
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = env["HOME"] ?? "/root"
        env["GOCACHE"] = env["GOCACHE"] ?? NSTemporaryDirectory() + "/vxmon-gocache"
        env["GO111MODULE"] = "off"
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        try? p.run()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? out : nil
    }()

    /// A directory for one test's sockets and files, removed at the end.
    final class Scratch {
        let path = NSTemporaryDirectory() + "/vxmon-socks-\(UUID().uuidString.prefix(8))"
        var processes: [Process] = []
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit {
            for p in processes where p.isRunning {
                p.terminate()
                p.waitUntilExit()
            }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Splits the recording into one gob stream per node (`<dir>/<node>.gob`); returns the runs of
    /// samples per node, in the recording's order.
    static func split(_ dir: Scratch) throws -> [(node: String, count: Int)] {
        let python = try #require(which("python3"))
        let gob = try #require(gobpayload, "Go (golang-go) encodes the streams as Cilium's agent does")
        let r = try run(python, [Self.sockets, "split", recording, gob, dir.path])
        try #require(r.status == 0, "\(r.stderr)")
        return r.stdout.split(separator: " ").compactMap {
            let f = $0.split(separator: ":")
            return f.count == 2 ? (String(f[0]), Int(f[1].filter(\.isNumber)) ?? 0) : nil
        }
    }

    /// Starts `arguments` (stdout and stderr to `<name>.out` / `<name>.err` in the scratch directory).
    static func start(_ dir: Scratch, _ name: String, _ executable: String, _ arguments: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        for suffix in [".out", ".err"] { _ = FileManager.default.createFile(atPath: dir.path + "/" + name + suffix, contents: nil) }
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle(forWritingAtPath: dir.path + "/" + name + ".out")
        p.standardError = FileHandle(forWritingAtPath: dir.path + "/" + name + ".err")
        try p.run()
        dir.processes.append(p)
        return p
    }

    /// Waits (within a bound, not a timing assertion) until `file` says `done`.
    static func wait(for file: String, _ done: (String) -> Bool) -> Bool {
        for _ in 0..<1200 {
            if done(CLIFixtures.text(file) ?? "") { return true }
            usleep(50_000)
        }
        return false
    }

    /// Stops vxmon as an interrupt does and waits for it.
    static func interrupt(_ p: Process) {
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
    }

    @Test("worker's and worker2's agents, paced as the packets went: the 4 ping journeys come out whole, node by node, as the recording has them")
    func journeysAcrossTwoSockets() throws {
        let python = try #require(which("python3"))
        let dir = try Scratch()
        let runs = try Self.split(dir)
        try #require(runs.count == 5, "the recording's runs of samples per node: \(runs)")
        // A Cilium socket carries no kernel time: events get the time vxmon reads them. The fake agents
        // send each run of samples 0.4 s after the one before, so reading order is the packets' order.
        let schedule = runs.map { "\($0.node):\($0.count)" }.joined(separator: ",")
        let (a, b) = (dir.path + "/a.sock", dir.path + "/b.sock")
        _ = try Self.start(
            dir, "agents", python,
            [Self.sockets, "serve", "0.4", schedule, "worker=\(a):\(dir.path)/worker.gob",
             "worker2=\(b):\(dir.path)/worker2.gob"])
        try #require(Self.wait(for: dir.path + "/agents.out") { $0.contains("listening") })
        let vxmon = try Self.start(
            dir, "vxmon", Binary.vxmon,
            ["journey", "--monitor-socket", "worker=\(a)", "--monitor-socket", "worker2=\(b)", "--duration", "60", "-o", "json"])
        // Each agent closes its connection once it has sent everything: vxmon has read it all then.
        let err = dir.path + "/vxmon.err"
        let closed = Self.wait(for: err) {
            $0.contains("the Cilium agent of node worker at \(a) closed the connection")
                && $0.contains("the Cilium agent of node worker2 at \(b) closed the connection")
        }
        Self.interrupt(vxmon)
        let stderr = CLIFixtures.text(err) ?? ""
        #expect(closed, "\(stderr)")
        #expect(vxmon.terminationStatus == 0, "\(stderr)")
        // Every event of both sockets, each counted once.
        #expect(stderr.contains("vxmon: 20 events, 0 samples lost, 2 reconnects; stopped"), "\(stderr)")

        let replay = try run(Binary.vxmon, ["journey", Self.recording, "-o", "json"], stdoutFile: dir.path + "/replay.json")
        try #require(replay.status == 0, "\(replay.stderr)")
        let check = try run(
            python,
            [Self.sockets, "journeys", Self.recording, dir.path + "/vxmon.out", dir.path + "/replay.json"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout == "ok: 4 journeys, 20 hops, 2 request/reply pairs\n", "\(check.stdout)\(check.stderr)")
    }

    @Test("vxmon record from two agents that restart mid-stream: each reconnects on its own; the recording names each node, and holds its samples byte for byte")
    func recordsTwoSocketsAcrossRestarts() throws {
        let python = try #require(which("python3"))
        let dir = try Scratch()
        _ = try Self.split(dir)
        // Tests/scripts/fake_cilium_agent.py: the first connection gets the type and 3 samples, then the
        // agent restarts and the second connection gets the whole stream.
        let (a, b) = (dir.path + "/a.sock", dir.path + "/b.sock")
        let fake = CLIFixtures.packageRoot + "/Tests/scripts/fake_cilium_agent.py"
        let agents = [
            try Self.start(dir, "agent-a", python, [fake, a, dir.path + "/worker.gob", "4"]),
            try Self.start(dir, "agent-b", python, [fake, b, dir.path + "/worker2.gob", "4"]),
        ]
        for name in ["agent-a", "agent-b"] {
            try #require(Self.wait(for: dir.path + "/\(name).out") { $0.contains("listening") })
        }
        let merged = dir.path + "/merged.vxrec"
        let vxmon = try Self.start(
            dir, "vxmon", Binary.vxmon,
            ["record", "-w", merged, "--monitor-socket", "worker=\(a)", "--monitor-socket", "worker2=\(b)", "--duration", "60"])
        // Both agents have served twice and exited: vxmon has seen both connections of each end.
        for agent in agents { agent.waitUntilExit() }
        let err = dir.path + "/vxmon.err"
        let closed = Self.wait(for: err) { text in
            [a, b].allSatisfy { path in text.components(separatedBy: "at \(path) closed the connection").count - 1 == 2 }
        }
        Self.interrupt(vxmon)
        let stderr = CLIFixtures.text(err) ?? ""
        #expect(closed, "\(stderr)")
        #expect(vxmon.terminationStatus == 0, "\(stderr)")
        #expect(stderr.contains("reconnected to the Cilium agent of node worker at \(a)"), "\(stderr)")
        #expect(stderr.contains("reconnected to the Cilium agent of node worker2 at \(b)"), "\(stderr)")
        // 3 + 10 samples from each agent; each reconnected twice (after each of its two connections).
        #expect(stderr.contains("vxmon: recorded 26 events to \(merged), 0 samples lost, 4 reconnects; stopped"), "\(stderr)")
        let check = try run(python, [Self.sockets, "recorded", Self.recording, merged, "3"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout == "ok: worker 13 samples, worker2 13 samples\n", "\(check.stdout)\(check.stderr)")
    }

    @Test(
        "usage errors (exit 64, before any socket is tried): a bad node name, an unnamed socket among several, a node or path twice, a --node no socket is named after",
        arguments: [
            (["journey", "--monitor-socket", "Worker_1=/tmp/a.sock"], "--monitor-socket: Worker_1 is not a node name"),
            (["journey", "--monitor-socket", "=/tmp/a.sock"], "--monitor-socket: =/tmp/a.sock names no node before its ="),
            (["monitor", "--monitor-socket", "w\u{1b}[31m=/tmp/a.sock"], "--monitor-socket: w?[31m is not a node name"),
            (["journey", "--monitor-socket", "worker=/tmp/a.sock", "--monitor-socket", "/tmp/b.sock"],
             "--monitor-socket: /tmp/b.sock: with several sockets, name each one's node: NODE=PATH"),
            (["record", "-w", "/dev/null", "--monitor-socket", "worker=/tmp/a.sock", "--monitor-socket", "worker=/tmp/b.sock"],
             "--monitor-socket: node worker is given twice"),
            (["monitor", "--monitor-socket", "a=/tmp/a.sock", "--monitor-socket", "b=/tmp/a.sock"],
             "--monitor-socket: socket /tmp/a.sock is given twice"),
            (["journey", "--monitor-socket", "worker="], "--monitor-socket: worker= names no socket"),
            (["journey", "--monitor-socket", "worker=/tmp/a.sock", "--monitor-socket", "worker2=/tmp/b.sock", "--node", "worker3"],
             "--node: no --monitor-socket is named after node worker3; their nodes: worker, worker2"),
            (["journey", Self.recording, "--monitor-socket", "worker=/tmp/a.sock"],
             "a recording (FILE) is read whole: --monitor-socket and --duration are for live input"),
        ])
    func usageErrors(_ arguments: [String], _ message: String) throws {
        let r = try run(Binary.vxmon, arguments)
        #expect(r.status == 64, "\(arguments): \(r.stderr)")
        #expect(r.stdout == "")
        let first = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("Error: " + message), "\(arguments): \(r.stderr)")
        // What came from the command line is echoed sanitised: no escape character reaches stderr.
        #expect(!r.stderr.unicodeScalars.contains { $0.value == 0x1b }, "\(arguments): \(r.stderr)")
        #expect(!r.stderr.contains("waiting for"), "\(arguments): \(r.stderr)")
    }

    @Test("a path with = after a / is a path; one socket named NODE= is that node (--node matches it: no warning)")
    func pathsAndOneNamedSocket() throws {
        // Nobody serves these: vxmon says it waits for each agent, named as given.
        let dir = try Scratch()
        let odd = dir.path + "/x=y.sock"
        let r = try run(Binary.vxmon, ["journey", "--monitor-socket", odd, "--duration", "0.3", "-o", "none"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("waiting for the Cilium agent at \(odd) (cannot connect to \(odd):"), "\(r.stderr)")
        let named = try run(
            Binary.vxmon, ["--monitor-socket", "worker=\(odd)", "--node", "worker", "--duration", "0.3"])
        #expect(named.status == 0, "\(named.stderr)")
        #expect(named.stderr.contains("waiting for the Cilium agent of node worker at \(odd)"), "\(named.stderr)")
        #expect(!named.stderr.contains("warning"), "a named socket's node can be matched: \(named.stderr)")
    }

}
