import Foundation
import Testing
import VxmonCore
import VxmonLab
import VxmonLive

#if canImport(Glibc)
    import Glibc
#endif

// What the agent's clients are, as `lab status` names them: from each client's command line, read by
// the agent when it connects. The oracle is the processes this test starts itself.

@Suite("the agent's clients, by what they are")
struct ClientProgramTests {
    @Test(
        "command lines: vxmon-hubble, vxmon [monitor], vxmon record, cilium monitor; anything else is unknown",
        arguments: [
            (["/usr/local/bin/vxmon-hubble", "--lab", "x"], ClientProgram.hubble),
            (["vxmon"], .monitor), ([".build/debug/vxmon", "--lab", "x", "-vv"], .monitor),
            (["/usr/bin/vxmon", "monitor", "--node", "worker"], .monitor),
            (["vxmon", "record", "-w", "x.vxrec"], .recorder),
            (["/usr/bin/cilium", "monitor", "--monitor-socket", "/run/x.sock"], .cilium),
            (["cilium-dbg", "--config-dir", "/x", "monitor"], .cilium), (["cilium", "status"], .unknown),
            (["vxmon", "replay", "-"], .unknown), (["vxmon", "lab", "status"], .unknown),
            (["python3", "client.py", "vxmon", "monitor"], .unknown), (["/usr/bin/vxmon-hubble-not"], .unknown),
            (["vxmon\u{1b}[31m", "monitor"], .unknown), ([], .unknown), ([""], .unknown),
        ])
    func classify(_ words: [String], _ expected: ClientProgram) {
        #expect(ClientProgram.classify(commandLine: words) == expected, "\(words)")
    }

    @Test("a process's own command line, read from /proc (this test runner is none of the known clients)")
    func ownProcess() {
        #expect(ClientProgram.of(pid: getpid()) == .unknown)
        #expect(ClientProgram.of(pid: 0) == .unknown)
        #expect(ClientProgram.of(pid: -1) == .unknown)
    }

    @Test("the status file's program word, and a line without one (an agent from before) as unknown")
    func statusFile() throws {
        let paths = LabPaths(lab: "vxt\(getpid() % 100_000)cps\(UInt32.random(in: 0..<1_000_000))")
        try FileManager.default.createDirectory(atPath: paths.stateDirectory, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: paths.stateDirectory)
            rmdir(LabPaths.stateRoot)  // only if no lab is left in it
        }
        try """
        pid 1
        started 2
        events 3
        lost 0
        client vxmon pid 10 since 4 sent 5 lost 0 queued 0 program recorder
        client cilium:worker pid 11 since 4 sent 5 lost 0 queued 0 program cilium
        client vxmon pid 12 since 4 sent 5 lost 0 queued 0
        client vxmon pid 13 since 4 sent 5 lost 0 queued 0 program nonsense

        """.write(toFile: paths.agentStatus, atomically: true, encoding: .utf8)
        let status = try #require(AgentStatus.read(paths))
        #expect(status.clients.map(\.program) == [.recorder, .cilium, .unknown, .unknown])
        #expect(status.clients.map(\.kind) == ["vxmon", "cilium:worker", "vxmon", "vxmon"])
    }
}

@Suite(
    "lab status names the agent's clients (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct LabClientKindTests {
    @Test("hubble observers, monitors (plain and `monitor`), a recorder, `cilium monitor` on a node's socket, an unknown client")
    func clientsByKind() throws {
        try LabGate.check()
        let lab = LabNames.make("ck")
        let paths = LabPaths(lab: lab)
        let dir = NSTemporaryDirectory() + "/vxmon-ck-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var clients: [ChildProcess] = []
        defer {
            for p in clients { p.stop() }
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab], check: false)
        try #require(up.status == 0, "\(up.errorOutput)")
        let hubble = try #require(HubbleDaemon.running(paths), "lab up started the Hubble observers (make builds vxmon-hubble)")
        // Cilium's CLI is not installed here; what the agent looks at is the command line, so the client
        // on the node's socket is vxmon's own 1.2 reader run as `cilium monitor --monitor-socket PATH`.
        let cilium = dir + "/cilium"
        try #require(symlink(FaultTests.vxmon, cilium) == 0)
        // Spawned by Shell (signals reset to their defaults, so that `stop()` ends them: a child of
        // Foundation's Process inherits the test runner's blocked signals and runs to its --duration).
        func start(_ executable: String, _ arguments: [String]) throws -> pid_t {
            let p = try Shell.spawn([executable] + arguments, quiet: true)
            clients.append(p)
            return p.pid
        }
        let plain = try start(FaultTests.vxmon, ["--lab", lab, "--duration", "30"])
        let monitor = try start(FaultTests.vxmon, ["monitor", "--lab", lab, "-o", "none", "--duration", "30"])
        let recorder = try start(FaultTests.vxmon, ["record", "--lab", lab, "-w", dir + "/r.vxrec", "--duration", "30"])
        let ciliumCLI = try start(cilium, ["monitor", "--monitor-socket", paths.ciliumSocket("worker"), "--duration", "30"])
        let python = try #require(
            ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }, "python3")
        let unknown = try start(
            python,
            ["-c", "import socket, time; s = socket.socket(socket.AF_UNIX); s.connect('\(paths.agentSocket)'); time.sleep(30)"])
        let expected: [Int32: (ClientProgram, String)] = [
            hubble: (.hubble, "vxmon"), plain: (.monitor, "vxmon"),
            monitor: (.monitor, "vxmon"), recorder: (.recorder, "vxmon"),
            ciliumCLI: (.cilium, "cilium:worker"), unknown: (.unknown, "vxmon"),
        ]
        let connected = LabAgentTests.waitFor(10) {
            Set(AgentStatus.read(paths)?.clients.map(\.pid) ?? []).isSuperset(of: expected.keys)
        }
        let status = try #require(AgentStatus.read(paths))
        try #require(connected, "every client connected: \(status.clients)")
        for client in status.clients {
            let want = try #require(expected[client.pid], "a client this test did not start: \(client)")
            #expect(client.program == want.0 && client.kind == want.1, "pid \(client.pid): \(client)")
        }
        let shown = try Shell.run([FaultTests.vxmon, "lab", "status", "--lab", lab], check: false)
        #expect(shown.status == 0, "\(shown.errorOutput)")
        for (pid, (program, kind)) in expected {
            let socket = kind == "vxmon" ? "vxmon.sock" : "worker/monitor1_2.sock"
            #expect(shown.output.contains("  client \(program.label) pid \(pid) on \(socket): connected "), "\(shown.output)")
        }
        #expect(shown.output.contains("client hubble observers (vxmon-hubble) pid \(hubble) on vxmon.sock"))
        #expect(shown.output.contains("client Cilium CLI (cilium monitor) pid \(ciliumCLI) on worker/monitor1_2.sock"))
        #expect(shown.output.contains("client unknown pid \(unknown) on vxmon.sock"))
    }
}
