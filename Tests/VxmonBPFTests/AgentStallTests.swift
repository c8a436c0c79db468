import Foundation
import Testing
import VxmonBPF
import VxmonCore
import VxmonLab
import VxmonLive

#if canImport(Glibc)
    import Glibc
#endif

// Clients that do not read must cost the agent's one reader nothing per event. The oracles: Go's
// encoding/gob and the .vxrec reader for what each client received, the kernel's /proc/<pid>/status
// for the memory the queues hold, and `lab bench`'s own measurements (events read per second from the
// session's counters, samples lost at the ring) for the live agent.

/// A process's resident memory, in bytes, from /proc/<pid>/status (`VmRSS`, or `VmHWM`: its peak).
func residentBytes(pid: Int32? = nil, field: String = "VmRSS") -> Int {
    let path = pid.map { "/proc/\($0)/status" } ?? "/proc/self/status"
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}

@Suite(
    "the agent with clients that never read: the reader gets everything, the stalled cost no send per event and stay within the memory budget",
    .serialized, .enabled(if: getuid() == 0 || LabGate.required, "needs root (sockets under /run/vxmon)"))
struct AgentStallTests {
    typealias Client = AgentSocketTests.Client

    /// What one stream holds, by the spec-level .vxrec reader.
    static func records(_ bytes: [UInt8]) throws -> StreamRecords {
        let records = StreamRecords()
        var consumer = records
        let parser = VxrecParser()
        bytes.withUnsafeBytes { parser.feed($0) }
        try parser.parse(into: &consumer)
        try parser.finish()
        return records
    }

    /// Accepts until `count` clients are connected (2 s at most).
    static func accept(_ server: AgentServer, _ count: Int) {
        for _ in 0..<200 where server.clientCount < count {
            _ = server.readReady()
            usleep(10_000)
        }
    }

    @Test("54 clients that never read, 2 that do: the readers get every event, the stalled are written a few times in all (not per event), are told their losses, and the queues hold at most the budget, then nothing")
    func stalledClientsCostNothingPerEvent() throws {
        let paths = LabPaths(lab: LabNames.make("stall"))
        defer { try? FileManager.default.removeItem(atPath: paths.stateDirectory) }
        var options = AgentOptions()
        // 54 stalled clients could queue 108 MiB with their own limit; the budget is 16 MiB.
        options.queueBytes = 2 << 20
        options.totalQueueBytes = 16 << 20
        let server = try AgentServer(paths: paths, nodeNames: ["alpha", "beta"], metadata: [], options: options)
        server.log = { _ in }
        defer { server.close() }
        let labReader = try Client(paths.agentSocket)
        let betaReader = try Client(paths.ciliumSocket("beta"))
        Self.accept(server, 2)
        try #require(server.clientCount == 2)
        let stalled = try (0..<30).map { _ in try Client(paths.agentSocket) } + (0..<24).map { _ in try Client(paths.ciliumSocket("beta")) }
        Self.accept(server, 56)
        try #require(server.clientCount == 56)
        let rssBefore = residentBytes()

        // 40,000 events (6.8 MB on the lab stream), alternately of each node; the readers read every
        // 100 events, the others never.
        let events = try AgentSocketTests.events()
        var fedBeta: [PayloadLine] = []
        var fedAll: [[UInt8]] = []
        fedAll.reserveCapacity(40_000)
        var peakRSS = rssBefore
        var peakQueued = 0
        var peakMemory = 0
        var sendsAtHalf: [UInt64] = []
        for round in 0..<20 {
            // By now every stalled client's socket is full (20,000 events: 3.4 MB on the lab stream, 1.7 MB
            // on beta's): from here on, not one send() to them.
            if round == 10 { sendsAtHalf = server.connections.dropFirst(2).map(\.sends) }
            for (i, e) in events.enumerated() {
                let node = i % 2
                e.data.withUnsafeBytes { server.sample(node: node, cpu: e.cpu, bytes: $0, time: UInt64(round * 10_000 + i)) }
                fedAll.append(e.data)
                if node == 1 { fedBeta.append(e) }
                if i % 100 == 99 {
                    _ = server.flush()
                    labReader.drain()
                    betaReader.drain()
                }
                if i % 1000 == 999 {
                    peakRSS = max(peakRSS, residentBytes())
                    peakQueued = max(peakQueued, server.connections.reduce(0) { $0 + $1.queued })
                    peakMemory = max(peakMemory, server.queueMemory)
                }
            }
        }
        _ = server.flush()
        labReader.drain()
        betaReader.drain()

        // The readers: every event, no loss (Go's gob decoder; the .vxrec reader).
        let beta = String(decoding: try GoOracle.run("decode", betaReader.bytes), as: UTF8.self).split(separator: "\n")
            .compactMap(PayloadLine.init)
        let betaComplete = beta == fedBeta
        #expect(betaComplete, "the beta reader got \(beta.count) of \(fedBeta.count), in order")
        let lab = try Self.records(labReader.bytes)
        #expect(lab.malformed == 0 && lab.lost.isEmpty, "\(lab.lost.count) lost records")
        let labComplete = lab.samples.map(\.data) == fedAll
        #expect(labComplete, "the lab reader got \(lab.samples.count) of \(fedAll.count), in order")

        // The stalled: a few send() calls each until their socket was full, none in the second 20,000 events.
        let connections = server.connections
        let stalledSends = connections.dropFirst(2).map(\.sends)
        #expect(stalledSends.count == 54)
        #expect(stalledSends == sendsAtHalf, "send() calls per stalled client after 20,000 events \(sendsAtHalf), after 40,000 \(stalledSends)")
        #expect(connections.dropFirst(2).allSatisfy { $0.lost > 0 }, "every stalled client lost events")

        // Memory: the queues never held more than the budget (by their counters, and by the kernel's
        // count of this process's resident memory, which 54 queues of 2 MiB would have raised by 108 MiB).
        #expect(peakQueued <= options.totalQueueBytes && peakMemory <= options.totalQueueBytes, "queued \(peakQueued), held \(peakMemory)")
        #expect(peakRSS - rssBefore <= options.totalQueueBytes + (48 << 20), "RSS grew by \(peakRSS - rssBefore) bytes")

        // The stalled clients read at last: what fitted, then lost records counting the rest.
        var quiet = 0
        var before = -1
        while quiet < 20 {
            _ = server.flush()
            for client in stalled { client.drain() }
            let now = stalled.reduce(0) { $0 + $1.bytes.count }
            quiet = now == before ? quiet + 1 : 0
            before = now
            usleep(2_000)
        }
        for (i, client) in stalled.enumerated() {
            if i < 30 {
                let got = try Self.records(client.bytes)
                let lost = got.lost.reduce(UInt64(0)) { $0 + $1.count }
                #expect(got.malformed == 0)
                #expect(UInt64(got.samples.count) + lost == UInt64(fedAll.count), "lab client \(i): \(got.samples.count) received + \(lost) lost")
                let prefix = got.samples.map(\.data) == Array(fedAll.prefix(got.samples.count))
                #expect(prefix, "lab client \(i): what it got is the stream's beginning")
            } else {
                let got = String(decoding: try GoOracle.run("decode", client.bytes), as: UTF8.self).split(separator: "\n")
                    .compactMap(PayloadLine.init)
                let samples = got.filter { $0.type == 9 }
                let lost = got.filter { $0.type == 2 }.reduce(UInt64(0)) { $0 + $1.lost }
                #expect(UInt64(samples.count) + lost == UInt64(fedBeta.count), "beta client \(i): \(samples.count) received + \(lost) lost")
                let prefix = samples == Array(fedBeta.prefix(samples.count))
                #expect(prefix, "beta client \(i): what it got is the stream's beginning")
            }
        }

        // Gone: their memory with them; with no client left, nothing is held.
        for client in stalled { client.hangUp() }
        for _ in 0..<500 where server.clientCount > 2 {
            _ = server.readReady()
            usleep(10_000)
        }
        #expect(server.clientCount == 2)
        _ = server.flush()
        #expect(server.connections.allSatisfy { $0.queued == 0 })
        labReader.hangUp()
        betaReader.hangUp()
        for _ in 0..<500 where server.clientCount > 0 {
            _ = server.readReady()
            usleep(10_000)
        }
        #expect(server.clientCount == 0 && server.queueMemory == 0, "\(server.queueMemory) bytes still held")
    }

    @Test("with a budget big enough for 32 stalled clients' 8 MB each, the memory they held is the kernel's again once they leave (RSS)")
    func memoryReturnedWhenClientsLeave() throws {
        let paths = LabPaths(lab: LabNames.make("rss"))
        defer { try? FileManager.default.removeItem(atPath: paths.stateDirectory) }
        var options = AgentOptions()
        options.totalQueueBytes = 1 << 30
        let server = try AgentServer(paths: paths, nodeNames: ["alpha"], metadata: [], options: options)
        server.log = { _ in }
        defer { server.close() }
        let reader = try Client(paths.ciliumSocket("alpha"))
        // A client that comes and goes first, as in a real agent's life: with malloc, the first large
        // block freed raises its threshold, and later queues came from a heap that kept their pages.
        do {
            let early = try Client(paths.agentSocket)
            Self.accept(server, 2)
            early.hangUp()
            for _ in 0..<200 where server.clientCount > 1 {
                _ = server.readReady()
                usleep(10_000)
            }
        }
        let stalled = try (0..<32).map { _ in try Client(paths.agentSocket) }
        Self.accept(server, 33)
        try #require(server.clientCount == 33)
        let rssBefore = residentBytes()
        let events = try AgentSocketTests.events()
        for round in 0..<24 {
            for (i, e) in events.enumerated() {
                e.data.withUnsafeBytes { server.sample(node: 0, cpu: e.cpu, bytes: $0, time: UInt64(round * 10_000 + i)) }
                if i % 500 == 499 {
                    _ = server.flush()
                    reader.drain()
                    reader.bytes.removeAll(keepingCapacity: true)
                }
            }
        }
        let rssFull = residentBytes()
        let queued = server.connections.reduce(0) { $0 + $1.queued }
        // 48,000 events of about 170 bytes: about 8 MB queued per stalled client.
        #expect(queued > 200 << 20, "queued \(queued)")
        #expect(rssFull - rssBefore > 200 << 20, "RSS grew by \(rssFull - rssBefore) bytes with \(queued) queued")
        for client in stalled { client.hangUp() }
        for _ in 0..<500 where server.clientCount > 1 {
            _ = server.readReady()
            usleep(10_000)
        }
        #expect(server.clientCount == 1)
        let rssAfter = residentBytes()
        let grown = rssFull - rssBefore
        #expect(
            rssAfter - rssBefore <= grown / 5,
            "RSS before \(rssBefore >> 20) MiB, with the stalled clients \(rssFull >> 20) MiB, after they left \(rssAfter >> 20) MiB")
        #expect(server.queueMemory <= 8 * 65536, "\(server.queueMemory) bytes still held for the one reader")
    }
}

@Suite(
    "the agent with 60 stalled clients during lab bench's flood (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct LabAgentStallTests {
    /// One `lab bench --clients 1` run: the median events read per second while events were on, the
    /// samples lost at the ring, the bench's monitor's own losses, the other clients' losses, and the
    /// agent process's peak RSS.
    struct BenchRun: CustomStringConvertible {
        var eventsPerSecond = -1
        var ringLost = -1
        var monitorLost = -1
        var othersLost: [Int] = []
        var peakRSS = 0
        var output = ""
        var description: String {
            "\(eventsPerSecond) events/s, \(ringLost) lost at the ring, monitor lost \(monitorLost), "
                + "peak RSS \(peakRSS >> 20) MiB, \(othersLost.count) other clients"
        }
    }

    static func number(_ text: Substring) -> Int? { Int(text.filter { $0 != "," }) }

    /// Runs the bench on `lab`; with `stalled` > 0, that many clients connect to its agent's lab socket as
    /// soon as it serves, and never read.
    static func bench(_ lab: String, stalled: Int, dir: String) throws -> BenchRun {
        let paths = LabPaths(lab: lab)
        let out = dir + "/bench-\(stalled).out"
        let p = try LabAgentTests.vxmon(
            ["lab", "bench", "--lab", lab, "--clients", "1", "--rounds", "5", "--seconds", "0.5", "--rate", "10000"],
            stdout: out, stderr: out + ".err")
        defer { if p.isRunning { p.terminate() } }
        var clients: [AgentSocketTests.Client] = []
        defer { for c in clients { c.hangUp() } }
        var run = BenchRun()
        if stalled > 0 {
            // The bench's own agent serves once it has written its pid as the lab's agent.
            try #require(LabAgentTests.waitFor(20) { AgentStatus.runningAgent(paths) == p.processIdentifier }, "the bench's agent serves")
            clients = try (0..<stalled).map { _ in try AgentSocketTests.Client(paths.agentSocket) }
        }
        while p.isRunning {
            run.peakRSS = max(run.peakRSS, residentBytes(pid: p.processIdentifier, field: "VmHWM"))
            usleep(100_000)
        }
        p.waitUntilExit()
        run.output = LabAgentTests.text(out)
        #expect(p.terminationStatus == 0, "\(run.output) \(LabAgentTests.text(out + ".err"))")
        for line in run.output.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if f.first == "median" && f.count >= 7 {
                run.eventsPerSecond = number(f[4]) ?? -1
                run.ringLost = number(f[6]) ?? -1
            } else if line.hasPrefix("agent clients: pid "), f.count >= 8 {
                // agent clients: pid P N events, L lost
                run.monitorLost = number(f[6]) ?? -1
            } else if line.hasPrefix("other agent clients: ") {
                run.othersLost = line.dropFirst("other agent clients: ".count).split(separator: ";").compactMap { part in
                    let w = part.split(separator: " ")
                    return w.count >= 6 ? number(w[4]) : nil
                }
            }
        }
        return run
    }

    @Test("60 clients that never read during lab bench's flood: the agent reads at least 70% of what it reads with none, and its one reading monitor loses nothing")
    func stalledClientsDuringBench() throws {
        try LabGate.check()
        let lab = LabNames.make("bst")
        let dir = NSTemporaryDirectory() + "/vxmon-bst-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer {
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab, "--no-agent"], check: false)
        try #require(up.status == 0, "\(up.errorOutput)")

        let alone = try Self.bench(lab, stalled: 0, dir: dir)
        // The paced flood (10,000 datagrams/s, 4 events each) is one the test build keeps up with.
        try #require(alone.eventsPerSecond > 20_000 && alone.ringLost == 0 && alone.monitorLost == 0, "\(alone)\n\(alone.output)")
        let crowded = try Self.bench(lab, stalled: 60, dir: dir)
        #expect(crowded.othersLost.count == 60, "\(crowded.output)")
        #expect(crowded.othersLost.allSatisfy { $0 > 0 }, "the stalled clients overflowed: \(crowded.othersLost)")
        #expect(
            Double(crowded.eventsPerSecond) >= 0.7 * Double(alone.eventsPerSecond),
            "events read per second: \(alone.eventsPerSecond) alone, \(crowded.eventsPerSecond) with 60 stalled clients")
        #expect(crowded.ringLost == 0, "samples lost at the ring (every client gets them as lost records): \(crowded)")
        #expect(crowded.monitorLost == 0, "the reading monitor's own losses: \(crowded)")
        // The agent's queues for 60 stalled clients hold at most the 64 MiB budget (16 MiB each without it).
        #expect(crowded.peakRSS <= alone.peakRSS + (64 << 20) + (48 << 20), "peak RSS \(alone.peakRSS >> 20) MiB alone, \(crowded.peakRSS >> 20) MiB with 60 stalled")
    }
}
