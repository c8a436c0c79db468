import Foundation
import Testing
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive
import CVxmonABI

#if canImport(Glibc)
    import Glibc
#endif

// The agent. Its sockets' bytes are checked by Go's own encoding/gob (Tests/scripts/gobpayload.go)
// and by the .vxrec spec-level reader; the lab tests check what several clients receive against each
// other and against the kernel's view (a stopped client's losses are its own).

enum GoOracle {
    static let packageRoot: String = {
        var dir = URL(fileURLWithPath: #filePath)
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.path + "/Package.swift") {
            dir = dir.deletingLastPathComponent()
        }
        return dir.path
    }()

    /// The gob oracle, built once per test run.
    static let binary: String? = {
        guard let go = ["/usr/bin/go", "/usr/lib/go/bin/go", "/usr/local/go/bin/go"].first(where: {
            FileManager.default.isExecutableFile(atPath: $0)
        }) else { return nil }
        let out = NSTemporaryDirectory() + "/vxmon-gobpayload-\(getpid())"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: go)
        p.arguments = ["build", "-o", out, packageRoot + "/Tests/scripts/gobpayload.go"]
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = env["HOME"] ?? "/root"
        env["GOCACHE"] = env["GOCACHE"] ?? NSTemporaryDirectory() + "/vxmon-gocache"
        env["GOFLAGS"] = "-mod=mod"
        env["GO111MODULE"] = "off"
        p.environment = env
        try? p.run()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? out : nil
    }()

    /// Runs the oracle in `mode` on `input`.
    static func run(_ mode: String, _ input: [UInt8]) throws -> [UInt8] {
        let binary = try #require(binary, "Go (golang-go, installed by scripts/setup.sh) is the gob oracle")
        let base = NSTemporaryDirectory() + "/vxmon-go-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: base + ".in", contents: Data(input))
        defer { for s in [".in", ".out"] { try? FileManager.default.removeItem(atPath: base + s) } }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = [mode]
        p.standardInput = FileHandle(forReadingAtPath: base + ".in")
        FileManager.default.createFile(atPath: base + ".out", contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: base + ".out")
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "gobpayload \(mode) failed")
        return Array(FileManager.default.contents(atPath: base + ".out") ?? Data())
    }
}

/// One Payload as the Go oracle prints it: "type cpu lost hexdata".
struct PayloadLine: Equatable, CustomStringConvertible {
    var type: Int
    var cpu: Int
    var lost: UInt64
    var data: [UInt8]
    var description: String {
        "\(type) \(cpu) \(lost) " + data.map { String(format: "%02x", $0) }.joined()
    }
    init(type: Int, cpu: Int, lost: UInt64, data: [UInt8]) {
        (self.type, self.cpu, self.lost, self.data) = (type, cpu, lost, data)
    }
    init?(_ line: Substring) {
        let f = line.split(separator: " ", omittingEmptySubsequences: false)
        guard f.count == 4, let t = Int(f[0]), let c = Int(f[1]), let l = UInt64(f[2]) else { return nil }
        var bytes: [UInt8] = []
        var i = f[3].startIndex
        while i < f[3].endIndex {
            let j = f[3].index(i, offsetBy: 2)
            bytes.append(UInt8(f[3][i..<j], radix: 16)!)
            i = j
        }
        self.init(type: t, cpu: c, lost: l, data: bytes)
    }
}

/// Collects the records of a `.vxrec` stream (the lab socket's bytes).
final class StreamRecords: RecordConsumer {
    var node: String?
    var samples: [(node: String?, cpu: Int, data: [UInt8], time: UInt64)] = []
    var lost: [(node: String?, cpu: Int, count: UInt64)] = []
    var names: [(node: String?, ifindex: UInt32, name: String)] = []
    var metadata: [(String, String)] = []
    var malformed = 0
    func sample(_ body: RawSpan, cpu: Int, timeNanoseconds: UInt64, index: Int, offset: Int) {
        body.withUnsafeBytes { samples.append((node, cpu, Array($0), timeNanoseconds)) }
    }
    func lost(cpu: Int, count: UInt64, timeNanoseconds: UInt64) { lost.append((node, cpu, count)) }
    func interfaceName(ifindex: UInt32, name: String) { names.append((node, ifindex, name)) }
    func metadata(key: String, value: String) {
        metadata.append((key, value))
        if key == "node" { node = value }
    }
    func malformedRecord(index: Int, offset: Int, reason: String) { malformed += 1 }
}

@Suite("agent sockets: Go's encoding/gob and the .vxrec reader read what the agent writes", .serialized,
    .enabled(if: getuid() == 0, "needs root (sockets under /run/vxmon)"))
struct AgentSocketTests {
    /// The samples of bulk_2k (raw monitor events), spread over CPUs that need multi-byte gob ints.
    static func events() throws -> [PayloadLine] {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: "\(GoOracle.packageRoot)/Tests/Fixtures/vectors/bulk_2k.vxrec")))
        let parser = VxrecParser()
        let records = StreamRecords()
        var consumer = records
        bytes.withUnsafeBytes { parser.feed($0) }
        try parser.parse(into: &consumer)
        return records.samples.enumerated().map { i, s in PayloadLine(type: 9, cpu: (i * 37) % 300, lost: 0, data: s.data) }
    }

    /// A client socket connected to `path`, and what it has read.
    final class Client {
        private(set) var fd: Int32
        var bytes: [UInt8] = []
        init(_ path: String) throws {
            fd = try StreamSession.connect(path)
        }
        deinit { hangUp() }
        /// Closes the connection once (a second close could close another test's descriptor).
        func hangUp() {
            if fd >= 0 { close(fd) }
            fd = -1
        }
        func drain() {
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                bytes += chunk[0..<n]
            }
        }
    }

    @Test("a client beyond the agent's limit is refused at once, and the client says why (not 'not a vxmon recording')")
    func clientLimit() throws {
        let lab = LabNames.make("lim")
        let paths = LabPaths(lab: lab)
        defer { try? FileManager.default.removeItem(atPath: paths.stateDirectory) }
        var options = AgentOptions()
        options.maxClients = 1
        let server = try AgentServer(paths: paths, nodeNames: ["alpha"], metadata: [], options: options)
        defer { server.close() }
        let first = try Client(paths.agentSocket)
        _ = server.readReady()
        let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(devNull) }
        let sink = RecorderSink(fd: devNull, nodeNames: ["alpha"])
        let session = StreamSession(
            options: StreamSession.Options(path: paths.agentSocket, format: .vxrec, nodeNames: ["alpha"], peer: "the agent"),
            sink: sink)
        session.log = { _ in }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var stats: LiveStats?
        Thread {
            stats = try? session.run()
            done.signal()
        }.start()
        var waited = 0
        while done.wait(timeout: .now() + .milliseconds(20)) == .timedOut && waited < 250 {
            _ = server.readReady()
            waited += 1
        }
        let failure = stats?.failure ?? "no result"
        #expect(failure.contains("closed the connection (closed at once, before sending anything"), "\(failure)")
        #expect(!failure.contains("not a vxmon recording"))
        _ = first
    }

    @Test("a node's monitor1_2 socket: Go decodes Payloads equal to the events fed (that node's only); the lab socket holds them all")
    func goDecodesAgentStream() throws {
        let lab = LabNames.make("gob")
        let paths = LabPaths(lab: lab)
        defer { try? FileManager.default.removeItem(atPath: paths.stateDirectory) }
        let server = try AgentServer(paths: paths, nodeNames: ["alpha", "beta"], metadata: [("lab", lab)], options: AgentOptions())
        defer { server.close() }
        var switched: [(Int, Bool)] = []
        server.switchEvents = {
            switched.append(($0, $1))
            return true
        }
        let beta = try Client(paths.ciliumSocket("beta"))
        let whole = try Client(paths.agentSocket)
        _ = server.readReady()  // accepts both
        #expect(switched.count == 2 && switched.allSatisfy { $0.1 }, "events on for both nodes: \(switched)")
        server.interfaceName(node: 1, ifindex: 7, name: "lxc-beta", time: 5)
        var fed: [PayloadLine] = []
        for (i, e) in try Self.events().enumerated() {
            let node = i % 3 == 0 ? 0 : 1
            e.data.withUnsafeBytes { server.sample(node: node, cpu: e.cpu, bytes: $0, time: UInt64(1000 + i)) }
            if node == 1 { fed.append(e) }
            if i % 500 == 499 {
                server.lost(node: 1, cpu: 260, count: 1 << 40, time: 0)
                fed.append(PayloadLine(type: 2, cpu: 260, lost: 1 << 40, data: []))
            }
            if i % 100 == 0 {
                _ = server.flush()
                beta.drain()
                whole.drain()
            }
        }
        _ = server.flush()
        beta.drain()
        whole.drain()
        let decoded = String(decoding: try GoOracle.run("decode", beta.bytes), as: UTF8.self).split(separator: "\n")
        #expect(decoded.count == fed.count)
        #expect(decoded.compactMap(PayloadLine.init) == fed)

        let records = StreamRecords()
        var consumer = records
        let parser = VxrecParser()
        whole.bytes.withUnsafeBytes { parser.feed($0) }
        try parser.parse(into: &consumer)
        try parser.finish()
        #expect(records.malformed == 0)
        #expect(records.samples.count == (try Self.events()).count)
        #expect(records.samples.filter { $0.node == "beta" }.map(\.data) == fed.filter { $0.type == 9 }.map(\.data))
        #expect(records.lost.count == 4 && records.lost.allSatisfy { $0.node == "beta" && $0.count == 1 << 40 })
        #expect(records.names.contains { $0.node == "beta" && $0.ifindex == 7 && $0.name == "lxc-beta" })
        #expect(records.metadata.contains { $0 == ("lab", lab) })

        // Clients gone: events off again.
        // A process another test spawns at this moment holds a copy of the descriptors until it
        // execs, so the hang-up can reach the agent a little later: poll until it does (5 s at most).
        beta.hangUp()
        whole.hangUp()
        for _ in 0..<500 where switched.count < 4 {
            _ = server.readReady()
            usleep(10_000)
        }
        #expect(switched.count == 4 && switched.suffix(2).allSatisfy { !$0.1 }, "\(switched)")
    }

    @Test("a client that writes to the agent is disconnected, the others are served on")
    func writingClientDropped() throws {
        let paths = LabPaths(lab: LabNames.make("wr"))
        defer { try? FileManager.default.removeItem(atPath: paths.stateDirectory) }
        var log: [String] = []
        let server = try AgentServer(paths: paths, nodeNames: ["alpha"], metadata: [], options: AgentOptions())
        server.log = { log.append($0) }
        defer { server.close() }
        let talker = try Client(paths.ciliumSocket("alpha"))
        let listener = try Client(paths.ciliumSocket("alpha"))
        _ = server.readReady()
        #expect(server.clientCount == 2)
        // One event first, so both are in the agent's fan-out when the talker is dropped.
        let events = try Self.events()
        events[0].data.withUnsafeBytes { server.sample(node: 0, cpu: events[0].cpu, bytes: $0, time: 0) }
        _ = server.flush()
        let junk = [UInt8](repeating: 0x41, count: 100_000)
        _ = junk.withUnsafeBytes { send(talker.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        _ = server.readReady()
        #expect(server.clientCount == 1)
        #expect(log.contains { $0.contains("the protocol is one-way") }, "\(log)")
        // The kernel's word that the agent closed its end: the talker reads what was queued, then EOF
        // (a connection kept open after the drop would give EAGAIN, and keep the agent's loop busy).
        var end = pollfd(fd: talker.fd, events: Int16(POLLIN), revents: 0)
        var sawEOF = false
        for _ in 0..<50 where !sawEOF {
            _ = poll(&end, 1, 100)
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            let n = chunk.withUnsafeMutableBytes { recv(talker.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            sawEOF = n == 0 || (n < 0 && errno == ECONNRESET)
        }
        #expect(sawEOF, "the dropped client's connection is still open")
        events[1].data.withUnsafeBytes { server.sample(node: 0, cpu: events[1].cpu, bytes: $0, time: 0) }
        _ = server.flush()
        listener.drain()
        let got = String(decoding: try GoOracle.run("decode", listener.bytes), as: UTF8.self).split(separator: "\n")
        #expect(got.compactMap(PayloadLine.init) == Array(events.prefix(2)))
    }

    @Test("a client that does not read loses only its own events, counted, and is told so in lost payloads")
    func slowClientLosesItsOwn() throws {
        let lab = LabNames.make("slow")
        let paths = LabPaths(lab: lab)
        defer { try? FileManager.default.removeItem(atPath: paths.stateDirectory) }
        var options = AgentOptions()
        options.queueBytes = 1 << 16
        let server = try AgentServer(paths: paths, nodeNames: ["alpha"], metadata: [], options: options)
        defer { server.close() }
        let reader = try Client(paths.ciliumSocket("alpha"))
        let sleeper = try Client(paths.ciliumSocket("alpha"))
        // The sleeper's socket buffer is made small, so its queue fills.
        var small: Int32 = 4096
        setsockopt(sleeper.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(4))
        _ = server.readReady()
        let events = try Self.events()
        for (i, e) in events.enumerated() {
            e.data.withUnsafeBytes { server.sample(node: 0, cpu: e.cpu, bytes: $0, time: 0) }
            if i % 50 == 0 {
                _ = server.flush()
                reader.drain()
            }
        }
        _ = server.flush()
        reader.drain()
        let got = String(decoding: try GoOracle.run("decode", reader.bytes), as: UTF8.self).split(separator: "\n")
            .compactMap(PayloadLine.init)
        #expect(got == events, "the reading client lost nothing")
        // The sleeper wakes: it gets what fitted, then a lost payload counting the rest.
        for _ in 0..<200 {
            sleeper.drain()
            _ = server.flush()
        }
        sleeper.drain()
        let slept = String(decoding: try GoOracle.run("decode", sleeper.bytes), as: UTF8.self).split(separator: "\n")
            .compactMap(PayloadLine.init)
        let samples = slept.filter { $0.type == 9 }
        let lost = slept.filter { $0.type == 2 }.reduce(UInt64(0)) { $0 + $1.lost }
        #expect(samples.count < events.count, "the sleeper's queue overflowed")
        #expect(UInt64(samples.count) + lost == UInt64(events.count), "\(samples.count) received + \(lost) lost")
        #expect(samples == Array(events.prefix(samples.count)), "what it got is the stream's beginning")
    }
}

@Suite("vxmon reads what Go's encoding/gob writes")
struct GoEncodedStreamTests {
    @Test("payloads with multi-byte CPUs, 2^40 lost counts, zero (omitted) fields and empty data decode as written")
    func readerDecodesGo() throws {
        var lines = try AgentSocketTests.events()
        lines.insert(PayloadLine(type: 2, cpu: 0, lost: 1 << 40, data: []), at: 3)
        lines.insert(PayloadLine(type: 2, cpu: 299, lost: 1, data: []), at: 10)
        lines.append(PayloadLine(type: 9, cpu: 0, lost: 0, data: [4, 0, 0, 0]))
        let input = Array(lines.map { "\($0)\n" }.joined().utf8)
        let stream = try GoOracle.run("encode", input)
        final class Collect: RecordConsumer {
            var got: [PayloadLine] = []
            func sample(_ body: RawSpan, cpu: Int, timeNanoseconds: UInt64, index: Int, offset: Int) {
                body.withUnsafeBytes { got.append(PayloadLine(type: 9, cpu: cpu, lost: 0, data: Array($0))) }
            }
            func lost(cpu: Int, count: UInt64, timeNanoseconds: UInt64) {
                got.append(PayloadLine(type: 2, cpu: cpu, lost: count, data: []))
            }
            func interfaceName(ifindex: UInt32, name: String) {}
            func metadata(key: String, value: String) {}
            func malformedRecord(index: Int, offset: Int, reason: String) { Issue.record("\(reason) at \(offset)") }
        }
        // Fed in uneven pieces, as a socket delivers it.
        let parser = AgentStreamParser()
        var consumer = Collect()
        var i = 0
        var size = 1
        while i < stream.count {
            let end = min(i + size, stream.count)
            stream[i..<end].withUnsafeBytes { parser.feed($0) }
            try parser.parse(into: &consumer)
            i = end
            size = size * 3 % 4099 + 1
        }
        try parser.finish()
        #expect(consumer.got == lines)
    }
}

@Suite(
    "the agent on a live lab (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct LabAgentTests {
    static func vxmon(_ arguments: [String], stdout: String? = nil, stderr: String? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: FaultTests.vxmon)
        p.arguments = arguments
        if let stdout {
            FileManager.default.createFile(atPath: stdout, contents: nil)
            p.standardOutput = FileHandle(forWritingAtPath: stdout)
        } else {
            p.standardOutput = FileHandle.nullDevice
        }
        if let stderr {
            FileManager.default.createFile(atPath: stderr, contents: nil)
            p.standardError = FileHandle(forWritingAtPath: stderr)
        } else {
            p.standardError = FileHandle.nullDevice
        }
        try p.run()
        return p
    }

    static func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        var waited = 0.0
        while waited < seconds {
            if condition() { return true }
            usleep(50_000)
            waited += 0.05
        }
        return condition()
    }

    static func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    @Test("two monitors get identical events (all the datapath emitted) during a ping flood; a stopped client loses only its own, counted, and goes on")
    func clientsShareOneReader() throws {
        try LabGate.check()
        let lab = LabNames.make("ag")
        let paths = LabPaths(lab: lab)
        let dir = NSTemporaryDirectory() + "/vxmon-agent-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer {
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab, "--no-agent"], check: false)
        try #require(up.status == 0, "\(up.errorOutput)")
        // A 2 MiB queue per client, which the stopped client overflows within the flood.
        let agent = try Shell.run([FaultTests.vxmon, "agent", "--lab", lab, "--queue-mib", "2"], check: false)
        try #require(agent.status == 0, "\(agent.errorOutput)")
        let topology = try #require(Lab(name: lab).recordedTopology())
        let maps = try topology.nodes.map { try NodeMaps(paths: paths, node: $0.name) }
        for node in maps { try node.setCountEmitted(true) }
        func emitted() -> UInt64 { maps.reduce(0) { $0 + $1.statCounters(VXMON_STAT_EMITTED).reduce(0, +) } }
        let before = emitted()

        let a = try Self.vxmon(["--lab", lab, "-o", "json", "--duration", "9"], stdout: dir + "/a.json", stderr: dir + "/a.err")
        let b = try Self.vxmon(["--lab", lab, "-o", "json", "--duration", "9"], stdout: dir + "/b.json", stderr: dir + "/b.err")
        let c = try Self.vxmon(["record", "--lab", lab, "-w", dir + "/c.vxrec", "--duration", "9"], stderr: dir + "/c.err")
        defer { for p in [a, b, c] where p.isRunning { kill(p.processIdentifier, SIGCONT); p.terminate() } }
        try #require(Self.waitFor(3) { (AgentStatus.read(paths)?.clients.count ?? 0) == 3 }, "three clients connected")
        kill(c.processIdentifier, SIGSTOP)
        let source = try #require(topology.pods.first { $0.node == "worker2" })
        let destination = try #require(topology.pods.first { $0.node == "worker" })
        // Paced at 500 pings (4,000 events) a second, which the test suite's debug build keeps up with on
        // two shared cores. The stopped client's share, about 3.7 MB, overflows its queue.
        let ping = try inNamespace(source.namespace, ["ping", "-q", "-c", "2000", "-i", "0.002", "-s", "600", destination.ip])
        #expect(ping.status == 0, "\(ping.errorOutput)")
        usleep(500_000)
        let status = try #require(AgentStatus.read(paths))
        let byPID = Dictionary(status.clients.map { ($0.pid, $0) }, uniquingKeysWith: { x, _ in x })
        #expect(byPID[a.processIdentifier]?.lost == 0 && byPID[b.processIdentifier]?.lost == 0, "\(status.clients)")
        #expect((byPID[c.processIdentifier]?.lost ?? 0) > 0, "the stopped client lost events: \(status.clients)")
        kill(c.processIdentifier, SIGCONT)
        for p in [a, b, c] { p.waitUntilExit() }
        let total = emitted() - before
        for node in maps { try? node.setCountEmitted(false) }
        // Nobody reads any more: the agent switched every node's events off.
        #expect(Self.waitFor(2) { maps.allSatisfy { $0.eventsMode == 0 } }, "events off with no client")
        #expect(a.terminationStatus == 0 && b.terminationStatus == 0 && c.terminationStatus == 0, Comment(rawValue: Self.text(dir + "/c.err")))

        let aLines = Self.text(dir + "/a.json").split(separator: "\n")
        let bLines = Self.text(dir + "/b.json").split(separator: "\n")
        #expect(aLines.count >= 2000 * 8, "\(aLines.count) events for 2000 pings")
        #expect(aLines == bLines, "the two monitors received the same events")
        #expect(UInt64(aLines.count) == total, "events received = events the datapath emitted (\(total))")
        #expect(Self.text(dir + "/a.err").contains(" 0 samples lost"), "\(Self.text(dir + "/a.err"))")

        // The stopped recorder: what it got plus the losses it was told of = everything.
        let stats = try Shell.run([FaultTests.vxmon, "stats", dir + "/c.vxrec", "-o", "json"], check: false)
        #expect(stats.status == 0, "\(stats.errorOutput)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(stats.output.utf8)) as? [String: Any])
        let events = (json["events"] as? Int) ?? -1
        let lost = (json["lost_samples"] as? Int) ?? -1
        #expect(lost > 0, "\(stats.output.prefix(400))")
        #expect(UInt64(events + lost) == total, "recorded \(events) + lost \(lost) = emitted \(total)")
    }

    @Test("the agent killed with SIGKILL: its client says so and exits 1, lab status says DEAD, lab up restarts it, lab down leaves nothing")
    func agentKilled() throws {
        try LabGate.check()
        let lab = LabNames.make("ak")
        let paths = LabPaths(lab: lab)
        defer { _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false) }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab], check: false)
        try #require(up.status == 0, "\(up.errorOutput)")
        let pid = try #require(AgentStatus.runningAgent(paths), "lab up started the agent")
        for socket in [paths.agentSocket, paths.ciliumSocket("worker")] {
            var st = stat()
            #expect(stat(socket, &st) == 0 && st.st_mode & 0o7777 == 0o660 && st.st_uid == 0, "\(socket)")
            #expect(st.st_mode & S_IFMT == S_IFSOCK)
        }
        let err = NSTemporaryDirectory() + "/vxmon-ak-\(UUID().uuidString).err"
        defer { try? FileManager.default.removeItem(atPath: err) }
        let monitor = try Self.vxmon(["--lab", lab, "--duration", "20"], stderr: err)
        // The monitor, besides the lab's Hubble observers (lab up starts them; they are a client too).
        let hubble = HubbleDaemon.running(paths)
        #expect(hubble != nil)
        #expect(Self.waitFor(3) { (AgentStatus.read(paths)?.clients.filter { $0.pid != hubble }.count ?? 0) == 1 })
        kill(pid, SIGKILL)
        #expect(Self.waitFor(3) { !monitor.isRunning }, "the client noticed")
        if monitor.isRunning { monitor.terminate() }
        monitor.waitUntilExit()
        #expect(monitor.terminationStatus == 1)
        #expect(Self.text(err).contains("the agent of lab '\(lab)' closed the connection"), "\(Self.text(err))")
        let dead = try Shell.run([FaultTests.vxmon, "lab", "status", "--lab", lab], check: false)
        #expect(dead.output.contains("agent: DEAD"), "\(dead.output)")
        let again = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab], check: false)
        #expect(again.status == 0 && again.output.contains("restarted"), "\(again.output) \(again.errorOutput)")
        let restarted = try #require(AgentStatus.runningAgent(paths))
        #expect(restarted != pid)
        let down = try Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
        #expect(down.status == 0)
        #expect(kill(restarted, 0) != 0 || (try? String(contentsOfFile: "/proc/\(restarted)/stat", encoding: .utf8))?.contains(") Z ") == true)
        #expect(try SignalTests.leftovers(lab).isEmpty)
    }
}

extension LabAgentTests {
    @Test("lab bench and lab soak stop the lab's agent for their run and start it again after, with its options; a second agent is refused")
    func benchPausesAgent() throws {
        try LabGate.check()
        let lab = LabNames.make("bp")
        let paths = LabPaths(lab: lab)
        defer { _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false) }
        try #require(try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab, "--no-agent"], check: false).status == 0)
        try #require(try Shell.run([FaultTests.vxmon, "agent", "--lab", lab, "--queue-mib", "3"], check: false).status == 0)
        var agent = try #require(AgentStatus.runningAgent(paths))
        // A second agent in the foreground is refused, and leaves the running one's sockets alone.
        let second = try Shell.run([FaultTests.vxmon, "agent", "--lab", lab, "--foreground"], check: false)
        #expect(second.status == 1 && second.errorOutput.contains("already has a reader (pid \(agent), its agent)"), "\(second.errorOutput)")
        #expect(access(paths.agentSocket, F_OK) == 0 && access(paths.ciliumSocket("worker"), F_OK) == 0)
        // (The soak's RSS bound is `make soak`'s check; sanitizer builds need more memory, so not here.)
        for command in [["lab", "bench", "--rounds", "1", "--seconds", "0.2"], ["lab", "soak", "--seconds", "1", "--max-rss-mb", "4096"]] {
            let r = try Shell.run([FaultTests.vxmon] + command + ["--lab", lab], check: false)
            #expect(r.status == 0, "\(command[1]): \(r.output) \(r.errorOutput)")
            #expect(r.errorOutput.contains("is stopped for"), "\(r.errorOutput)")
            let again = try #require(AgentStatus.runningAgent(paths), "\(command[1]) started the agent again")
            #expect(again != agent)
            let cmdline = (FileManager.default.contents(atPath: "/proc/\(again)/cmdline") ?? Data()).split(separator: 0)
                .map { String(decoding: $0, as: UTF8.self) }
            #expect(cmdline.suffix(2) == ["--queue-mib", "3"], "with its options: \(cmdline)")
            agent = again
        }
    }
}

@Suite(
    "least privilege through the agent (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct AgentPrivilegeTests {
    @Test("a monitor as user nobody with no capabilities reads through the agent when its group owns the sockets; another group is refused, with the reason")
    func monitorWithoutCapabilities() throws {
        try LabGate.check()
        let setpriv = try #require(
            ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }, "setpriv (util-linux)")
        let lab = LabNames.make("np")
        let dir = NSTemporaryDirectory() + "/vxmon-np-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer {
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        // A copy nobody can execute, whatever the permissions of the checkout's folders.
        let binary = dir + "/vxmon"
        // Copied by cp, not in this process: a descriptor this process has open for writing would be
        // inherited by a child another test spawns meanwhile, and exec of the copy then fails (ETXTBSY).
        try #require(try Shell.run(["cp", FaultTests.vxmon, binary], check: false).status == 0)
        chmod(dir, 0o755)
        chmod(binary, 0o755)
        try #require(try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab, "--no-agent"], check: false).status == 0)
        let started = try Shell.run([FaultTests.vxmon, "agent", "--lab", lab, "--socket-group", "nogroup"], check: false)
        try #require(started.status == 0, "\(started.errorOutput)")
        let topology = try #require(Lab(name: lab).recordedTopology())
        let source = try #require(topology.pods.first { $0.node == "worker2" })
        let destination = try #require(topology.pods.first { $0.node == "worker" })
        let nogroup = getgrnam("nogroup").map { $0.pointee.gr_gid } ?? 65534
        func asNobody(group: gid_t, _ arguments: [String]) -> [String] {
            [setpriv, "--reuid=65534", "--regid=\(group)", "--clear-groups", "--inh-caps=-all", binary] + arguments
        }
        let out = dir + "/events.json"
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/bin/sh")
        reader.arguments = ["-c", asNobody(group: nogroup, ["--lab", lab, "-o", "json", "--duration", "2.5"])
            .map { "'\($0)'" }.joined(separator: " ") + " > '\(out)' 2>'\(out).err'"]
        try reader.run()
        #expect(LabAgentTests.waitFor(3) { (AgentStatus.read(LabPaths(lab: lab))?.clients.count ?? 0) == 1 })
        let ping = try inNamespace(source.namespace, ["ping", "-c", "1", "-W", "2", destination.ip])
        reader.waitUntilExit()
        #expect(ping.status == 0)
        #expect(reader.terminationStatus == 0, Comment(rawValue: LabAgentTests.text(out + ".err")))
        #expect(LabAgentTests.text(out).split(separator: "\n").count >= 8, "a cross-node ping's 8 events, read as nobody")
        // Not in the group: refused by the socket's permissions, said plainly, exit 1.
        let refused = try Shell.run(asNobody(group: 65533, ["--lab", lab, "--duration", "0.3"]), check: false)
        #expect(refused.status == 1)
        #expect(refused.errorOutput.contains("vxmon.sock: Permission denied"), "\(refused.errorOutput)")
        #expect(refused.output.isEmpty)
    }
}
