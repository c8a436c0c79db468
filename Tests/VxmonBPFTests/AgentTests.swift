import Foundation
import Testing
import VxmonBPF
import VxmonCore

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
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: "\(GoOracle.packageRoot)/../shared/vectors/bulk_2k.vxrec")))
        let parser = VxrecParser()
        let records = StreamRecords()
        var consumer = records
        bytes.withUnsafeBytes { parser.feed($0) }
        try parser.parse(into: &consumer)
        return records.samples.enumerated().map { i, s in PayloadLine(type: 9, cpu: (i * 37) % 300, lost: 0, data: s.data) }
    }

    /// A client socket connected to `path`, and what it has read.
    final class Client {
        let fd: Int32
        var bytes: [UInt8] = []
        init(_ path: String) throws {
            fd = try StreamSession.connect(path)
        }
        deinit { close(fd) }
        func drain() {
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                bytes += chunk[0..<n]
            }
        }
    }

    @Test("a node's monitor1_2 socket: Go decodes Payloads equal to the events fed (that node's only); the lab socket holds them all")
    func goDecodesAgentStream() throws {
        let lab = LabNames.make("gob")
        let paths = LabPaths(lab: lab)
        defer { try? FileManager.default.removeItem(atPath: paths.stateDirectory) }
        let server = try AgentServer(paths: paths, nodeNames: ["alpha", "beta"], metadata: [("lab", lab)], options: AgentOptions())
        defer { server.close() }
        var switched: [(Int, Bool)] = []
        server.switchEvents = { switched.append(($0, $1)) }
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
        close(beta.fd)
        close(whole.fd)
        _ = server.readReady()
        _ = server.readReady()
        #expect(switched.suffix(2).allSatisfy { !$0.1 }, "\(switched)")
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
