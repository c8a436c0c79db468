import Foundation
import Testing
import VxmonLab
import VxmonLive

/// vxmon-hubble against hostile or greedy clients (issue 17, classes 2 and 5, and TLS), each checked
/// by an oracle outside vxmon: grpcio and Python's h2 on the wire, the kernel's socket states and
/// /proc for descriptors and CPU time, openssl's certificates. Scripts in Tests/scripts say what each
/// compares against.
@Suite(.serialized)
struct HubbleHostileTests {
    static let proto = GoOracle.packageRoot + "/proto"
    static let scripts = GoOracle.packageRoot + "/Tests/scripts"
    /// What vxmon-hubble advertises in SETTINGS_MAX_CONCURRENT_STREAMS (HubbleConnectionLimits).
    static let streamLimit = 99
    static let worker = "172.18.0.3"
    static let nodeAddresses = ["172.18.0.2:4244", "172.18.0.3:4244", "172.18.0.4:4244"]

    static var hubbleExecutable: String? { HubbleDaemon.executable(besides: FaultTests.vxmon) }

    /// A lab that is up (Hubble servers running), a temporary directory, and both removed after `body`.
    static func withHubbleLab(
        _ tag: String, arguments: [String] = [], _ body: (String, LabPaths, LabTopology, String) throws -> Void
    ) throws {
        try LabGate.check()
        let lab = LabNames.make(tag)
        let paths = LabPaths(lab: lab)
        let dir = NSTemporaryDirectory() + "vxmon-hostile-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer {
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab] + arguments, check: false)
        try #require(up.status == 0, "\(up.output) \(up.errorOutput)")
        try #require(HubbleDaemon.running(paths) != nil, "vxmon-hubble runs after lab up: \(up.errorOutput)")
        let topology = try #require(Lab(name: lab).recordedTopology())
        try body(lab, paths, topology, dir)
    }

    /// Pings from worker2's first pod to worker's: flows in both nodes' rings.
    static func ping(_ topology: LabTopology, count: Int = 2) throws {
        let a = try #require(topology.pods.first { $0.node == "worker2" })
        let b = try #require(topology.pods.first { $0.node == "worker" })
        _ = try inNamespace(a.namespace, ["ping", "-c", "\(count)", "-i", "0.2", "-W", "1", b.ip])
    }

    static func python(_ lab: String, _ script: String, _ arguments: [String]) throws -> CommandResult {
        let result = try inNamespace("\(lab)-control-plane", ["python3", scripts + "/" + script] + arguments)
        print(result.output, terminator: "")
        return result
    }

    static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// `count` silent connections from the control-plane node to worker's observer
    /// (hubble_conn_flood.py), held until `dir/release` exists; the flood's own count of those the
    /// server closed and those it holds.
    static func connectionFlood(_ lab: String, count: Int, dir: String) throws -> (ChildProcess, [String: Any]) {
        let flood = try Shell.spawn(
            [
                "ip", "netns", "exec", "\(lab)-control-plane", "python3", scripts + "/hubble_conn_flood.py",
                worker, "4244", "\(count)", dir + "/ready", dir + "/release", dir + "/flood.json", "60",
            ], quiet: true, errorFile: dir + "/flood.err")
        guard LabAgentTests.waitFor(20, { access(dir + "/ready", F_OK) == 0 }) else {
            _ = flood.stop()
            throw VxmonError("the connection flood did not start: \(LabAgentTests.text(dir + "/flood.err"))")
        }
        return (flood, try json(dir + "/flood.json"))
    }

    /// `pid`'s descriptors once their number has not changed for a second (at most 10 s): a server
    /// just started still opens some (its client of the agent connects from a thread of its own).
    static func settledDescriptors(_ pid: Int32) -> Int {
        var last = openDescriptors(pid)
        var steady = 0
        for _ in 0..<100 where steady < 10 {
            usleep(100_000)
            let now = openDescriptors(pid)
            steady = now == last ? steady + 1 : 0
            last = now
        }
        return last
    }

    /// utime + stime of `pid`, in clock ticks (/proc/PID/stat fields 14 and 15).
    static func cpuTicks(_ pid: Int32) -> Int? {
        let stat = LabAgentTests.text("/proc/\(pid)/stat")
        // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): utime is field 14, stime 15.
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    static func json(_ path: String) throws -> [String: Any] {
        try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    // MARK: Streams (class 5)

    @Test("200 GetFlows follow streams on one grpcio channel are all served: grpcio opens the 99 the server advertises at once and queues the rest, and the connection is never reset")
    func manyStreamsOnOneConnection() throws {
        try Self.withHubbleLab("hst") { lab, _, topology, dir in
            try Self.ping(topology)
            let run = try Self.python(lab, "hubble_streams.py", [Self.proto, "\(Self.worker):4244", "200", dir + "/streams.json"])
            #expect(run.status == 0, "\(run.output) \(run.errorOutput)")
            #expect(run.output.contains("all streams served on one connection"))
            let report = try Self.json(dir + "/streams.json")
            #expect(report["served"] as? Int == 200, "\(report)")
            // What a compliant client opens at once is what the server advertised.
            #expect(report["concurrent"] as? Int == Self.streamLimit, "\(report)")
        }
    }

    @Test("a raw HTTP/2 client (Python h2) that ignores the advertised limit gets RST_STREAM REFUSED_STREAM on stream 100 alone; the 99 streams go on receiving flows and the connection stays up; past 200 refusals in 10 s it ends with GOAWAY ENHANCE_YOUR_CALM")
    func streamOverTheLimitRefusedAlone() throws {
        try Self.withHubbleLab("hh2") { lab, _, topology, _ in
            try Self.ping(topology)
            // Flows on worker throughout, for the followers to go on receiving.
            let a = try #require(topology.pods.first { $0.node == "worker2" })
            let b = try #require(topology.pods.first { $0.node == "worker" })
            let pinger = try Shell.spawn(
                ["ip", "netns", "exec", a.namespace, "ping", "-c", "300", "-i", "0.2", "-W", "1", b.ip], quiet: true)
            defer { _ = pinger.stop() }
            let run = try Self.python(lab, "hubble_h2_refused.py", [Self.proto, Self.worker, "4244", "\(Self.streamLimit)"])
            #expect(run.status == 0, "\(run.output) \(run.errorOutput)")
            #expect(run.output.contains("all checks passed"))
        }
    }

    // MARK: Descriptors and connections (class 2)

    @Test("a connection flood that exhausts vxmon-hubble's descriptors (prlimit) leaves it running, its lab check not fooled and its accept loop not spinning, and serving once the flood is gone")
    func descriptorExhaustion() throws {
        try Self.withHubbleLab("hfd") { lab, paths, _, dir in
            let pid = try #require(HubbleDaemon.running(paths))
            let limit = Self.settledDescriptors(pid) + 40
            let prlimit = try Shell.run(["prlimit", "--pid", "\(pid)", "--nofile=\(limit):\(limit)"], check: false)
            try #require(prlimit.status == 0, "\(prlimit.errorOutput)")
            let flood = try Shell.spawn(
                [
                    "ip", "netns", "exec", "\(lab)-control-plane", "python3", Self.scripts + "/hubble_conn_flood.py",
                    Self.worker, "4244", "300", dir + "/ready", dir + "/release", dir + "/flood.json", "60",
                ], quiet: true, errorFile: dir + "/flood.err")
            defer { _ = flood.stop() }
            try #require(LabAgentTests.waitFor(20) { access(dir + "/ready", F_OK) == 0 }, "\(LabAgentTests.text(dir + "/flood.err"))")
            // The kernel's count: every descriptor it may have is taken.
            #expect(Self.openDescriptors(pid) >= limit - 1, "descriptors \(Self.openDescriptors(pid)) of \(limit)")
            let before = try #require(Self.cpuTicks(pid))
            let started = Date()
            // Three rounds of the lab check (every 2 s) while no descriptor is to be had.
            usleep(6_500_000)
            let ticks = try #require(Self.cpuTicks(pid)) - before
            let wall = Date().timeIntervalSince(started)
            #expect(kill(pid, 0) == 0, "vxmon-hubble exited during the flood: \(LabAgentTests.text(paths.hubbleLog))")
            #expect(Self.openDescriptors(pid) >= limit - 1, "still exhausted at the end of the hold")
            // Failing accepts back off: at most half a core over the hold (a spinning accept loop takes
            // one whole core), generous for a loaded machine.
            let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
            #expect(Double(ticks) / ticksPerSecond < wall / 2, "CPU \(Double(ticks) / ticksPerSecond) s in \(wall) s")

            _ = FileManager.default.createFile(atPath: dir + "/release", contents: nil)
            #expect(flood.wait() == 0)
            let status = try Self.python(lab, "hubble_status.py", [Self.proto] + Self.nodeAddresses)
            #expect(status.status == 0, "\(status.output) \(status.errorOutput)")
            #expect(HubbleDaemon.running(paths) == pid, "the same vxmon-hubble serves (not a restart)")
            let log = LabAgentTests.text(paths.hubbleLog)
            #expect(log.contains("failed accepts:") && log.contains("Too many open files"), "\(log)")
            #expect(!log.contains("no longer up"), "\(log)")
        }
    }

    @Test("--max-connections: a connection over the limit is closed as it is accepted (the clients see end of file), counted, and logged at most once per 10 s with the counts; the connections held and a later client are served")
    func connectionLimit() throws {
        try Self.withHubbleLab("hcl") { lab, paths, _, dir in
            let exe = try #require(Self.hubbleExecutable)
            HubbleDaemon.stop(paths)
            let (pid, _) = try HubbleDaemon.start(lab: lab, executable: exe, arguments: ["--max-connections", "20"])
            let base = Self.settledDescriptors(pid)
            let (flood, held) = try Self.connectionFlood(lab, count: 60, dir: dir)
            defer { _ = flood.stop() }
            #expect(held["connected"] as? Int == 60, "\(held)")
            #expect(held["open"] as? Int == 20 && held["closed_by_server"] as? Int == 40, "\(held)")
            // The kernel's count: 20 connections' descriptors, not 60.
            #expect(Self.openDescriptors(pid) <= base + 20, "descriptors \(Self.openDescriptors(pid)), \(base) before")
            // Another node's server is not touched by this one's limit.
            let other = try Self.python(lab, "hubble_status.py", [Self.proto, "172.18.0.4:4244"])
            #expect(other.status == 0, "\(other.output)")
            _ = FileManager.default.createFile(atPath: dir + "/release", contents: nil)
            #expect(flood.wait() == 0)
            // The server has seen the flood's connections close (else the next client could be refused).
            #expect(LabAgentTests.waitFor(10) { Self.openDescriptors(pid) <= base })
            let status = try Self.python(lab, "hubble_status.py", [Self.proto, "\(Self.worker):4244"])
            #expect(status.status == 0, "\(status.output)")

            func refusals() -> [Int] {
                LabAgentTests.text(paths.hubbleLog).split(separator: "\n").compactMap { line in
                    guard line.hasPrefix("vxmon-hubble: worker: "), let r = line.range(of: "connections refused: ") else {
                        return nil
                    }
                    return Int(line[r.upperBound...].prefix { $0.isNumber })
                }
            }
            // 40 refusals within a second: one line at the first, the rest wait for the next line.
            #expect(refusals() == [1], "\(LabAgentTests.text(paths.hubbleLog))")
            HubbleDaemon.stop(paths)
            // At stop, the rest: every refusal the clients saw is counted once.
            #expect(refusals() == [1, 39], "\(LabAgentTests.text(paths.hubbleLog))")
        }
    }

    @Test("one address cannot take every slot: its connections beyond 100 are closed as they are accepted (end of file), while a client from another address is served")
    func perPeerLimit() throws {
        try Self.withHubbleLab("hpp") { lab, _, _, dir in
            let (flood, held) = try Self.connectionFlood(lab, count: 150, dir: dir)
            defer { _ = flood.stop() }
            // The kernel's word, read by the flood: 100 held, 50 closed by the server.
            #expect(held["connected"] as? Int == 150, "\(held)")
            #expect(held["open"] as? Int == 100 && held["closed_by_server"] as? Int == 50, "\(held)")
            // worker2's node address is another peer: grpcio from there gets ServerStatus meanwhile.
            let other = try inNamespace("\(lab)-worker2", ["python3", Self.scripts + "/hubble_status.py", Self.proto, "\(Self.worker):4244"])
            #expect(other.status == 0, "\(other.output)")
            _ = FileManager.default.createFile(atPath: dir + "/release", contents: nil)
            #expect(flood.wait() == 0)
        }
    }

    // MARK: TLS

    @Test("mutual TLS as Cilium serves Hubble (lab up --hubble-tls-*): grpcio with a certificate of the client CA gets ServerStatus on every node, Peer/Notify names each node's TLS server name; no certificate, another CA's certificate, TLS 1.2 (openssl s_client) or plaintext are refused; a restart keeps TLS")
    func mutualTLS() throws {
        try LabGate.check()
        let certs = NSTemporaryDirectory() + "vxmon-certs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: certs) }
        let made = try Shell.run(["bash", Self.scripts + "/hubble_certs.sh", certs, "172.18.0.2", "172.18.0.3", "172.18.0.4"], check: false)
        try #require(made.status == 0, "openssl: \(made.errorOutput)")
        let flags = [
            "--hubble-tls-cert-file", certs + "/server.pem", "--hubble-tls-key-file", certs + "/server.key",
            "--hubble-tls-client-ca-files", certs + "/ca.pem",
        ]
        try Self.withHubbleLab("htl", arguments: flags) { lab, paths, _, _ in
            let check = try Self.python(lab, "hubble_tls.py", [Self.proto, paths.stateFile, certs])
            #expect(check.status == 0, "\(check.output) \(check.errorOutput)")
            #expect(check.output.contains("all checks passed"))
            #expect(LabAgentTests.text(paths.hubbleLog).contains("observers (mutual TLS)"))
            // openssl's own client: TLS 1.3 with the client certificate is accepted, TLS 1.2 refused
            // (Cilium's Hubble server requires 1.3).
            func handshake(_ version: String) throws -> CommandResult {
                try inNamespace(
                    "\(lab)-control-plane",
                    [
                        "sh", "-c",
                        "openssl s_client -connect \(Self.worker):4244 \(version) -alpn h2 -cert \(certs)/client.pem "
                            + "-key \(certs)/client.key -CAfile \(certs)/ca.pem -verify_return_error </dev/null 2>&1",
                    ])
            }
            let v13 = try handshake("-tls1_3")
            #expect(v13.output.contains("TLSv1.3") && v13.output.contains("ALPN protocol: h2"), "\(v13.output.suffix(600))")
            let v12 = try handshake("-tls1_2")
            #expect(v12.status != 0 && !v12.output.contains("ALPN protocol: h2"), "\(v12.output.suffix(600))")

            // Killed, it is restarted by `lab up` without the flags: with the TLS it had.
            let pid = try #require(HubbleDaemon.running(paths))
            kill(pid, SIGKILL)
            #expect(LabAgentTests.waitFor(3) { HubbleDaemon.running(paths) == nil })
            let again = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab], check: false)
            #expect(again.status == 0 && again.output.contains("hubble observers running (TLS)"), "\(again.output)")
            let after = try Self.python(lab, "hubble_tls.py", [Self.proto, paths.stateFile, certs])
            #expect(after.status == 0, "\(after.output) \(after.errorOutput)")
        }
    }

    @Test("TLS flags that do not make mutual TLS, or TLS and plaintext at once, are usage errors (exit 64) in vxmon-hubble and lab up; an unreadable certificate ends vxmon-hubble with the file's name")
    func tlsUsageErrors() throws {
        let exe = try #require(Self.hubbleExecutable, "vxmon-hubble is built beside vxmon")
        let cases: [([String], String)] = [
            (["--tls-cert-file", "/c.pem", "--tls-key-file", "/k.pem"], "mutual TLS needs --tls-client-ca-files"),
            (["--tls-cert-file", "/c.pem", "--tls-client-ca-files", "/ca.pem"], "needs both --tls-cert-file and --tls-key-file"),
            (["--disable-tls", "--tls-cert-file", "/c.pem"], "--disable-tls cannot go with"),
            (
                ["--tls-cert-file", "/c", "--tls-key-file", "/k", "--tls-client-ca-files", "/a", "--tls-no-client-auth"],
                "--tls-no-client-auth cannot go with --tls-client-ca-files"
            ),
        ]
        for (arguments, message) in cases {
            let run = try Shell.run([exe, "--lab", "nolab"] + arguments, check: false)
            #expect(run.status == 64 && run.errorOutput.contains(message), "\(arguments): \(run.status) \(run.errorOutput)")
        }
        let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", "nolab", "--hubble-tls-key-file", "/k.pem"], check: false)
        #expect(up.status == 64 && up.errorOutput.contains("--hubble-tls-cert-file"), "\(up.status) \(up.errorOutput)")
        // TLS flags for servers the same command does not start are refused, not ignored.
        let unused = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", "nolab", "--no-hubble", "--hubble-disable-tls"], check: false)
        #expect(unused.status == 64 && unused.errorOutput.contains("--no-hubble does not start"), "\(unused.errorOutput)")
        // A FIFO as the key would block the start: refused as not a regular file.
        let fifo = NSTemporaryDirectory() + "vxmon-fifo-\(UUID().uuidString)"
        try #require(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        let hang = try Shell.run([exe, "--lab", "nolab", "--tls-cert-file", fifo, "--tls-key-file", fifo, "--tls-no-client-auth"], check: false)
        #expect(hang.status == 1 && hang.errorOutput.contains("not a regular file"), "\(hang.errorOutput)")
        let missing = "/nonexistent-\(UUID().uuidString)/server.pem"
        let bad = try Shell.run(
            [exe, "--lab", "nolab", "--tls-cert-file", missing, "--tls-key-file", "/k", "--tls-no-client-auth"], check: false)
        #expect(bad.status == 1 && bad.errorOutput.contains("--tls-cert-file \(missing): No such file"), "\(bad.errorOutput)")
    }
}
