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
        try script.write(toFile: dir.path + "/sockets.py", atomically: true, encoding: .utf8)
        let r = try run(python, [dir.path + "/sockets.py", "split", recording, gob, dir.path])
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
            [dir.path + "/sockets.py", "serve", "0.4", schedule, "worker=\(a):\(dir.path)/worker.gob",
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
            [dir.path + "/sockets.py", "journeys", Self.recording, dir.path + "/vxmon.out", dir.path + "/replay.json"])
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
        let check = try run(python, [dir.path + "/sockets.py", "recorded", Self.recording, merged, "3"])
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

    /// The Python side: splitting the recording, the fake agents, and the oracle.
    static let script = #"""
        import json, os, select, socket, struct, subprocess, sys, time

        POINTS = {0: "to-endpoint", 1: "to-proxy", 2: "to-host", 3: "to-stack", 4: "to-overlay", 5: "from-endpoint",
                  6: "from-proxy", 7: "from-host", 8: "from-stack", 9: "from-overlay", 10: "from-network",
                  11: "to-network"}

        def samples(path):
            """(node, body) of every sample of a .vxrec file, read as spec/vxrec.md says."""
            data = open(path, "rb").read()
            assert data[:8] == b"VXMONREC", path
            o, node, out = struct.unpack_from("<H", data, 10)[0], None, []
            while o + 24 <= len(data):
                kind, _, cpu, _, length, _ = struct.unpack_from("<HHIQII", data, o)
                body = data[o + 24:o + 24 + length]
                if kind == 4 and body.startswith(b"node="):
                    node = body[5:].decode()
                elif kind == 1:
                    out.append((node, cpu, body))
                o = (o + 24 + length + 7) & ~7
            return out

        def packet(body):
            """A trace notification (Cilium's trace_notify, v0 or v1): point, ICMP (src, dst, type, id, seq), VNI."""
            assert body[0] == 4, "not a trace"
            version = struct.unpack_from("<H", body, 14)[0]
            p = body[32 if version == 0 else 48:]
            assert p[12:14] == b"\x08\x00"
            ip, vni = 14, None
            if p[ip + 9] == 17 and struct.unpack_from(">H", p, ip + (p[ip] & 15) * 4 + 2)[0] in (8472, 4789):
                udp = ip + (p[ip] & 15) * 4
                vni = int.from_bytes(p[udp + 12:udp + 15], "big")
                ip = udp + 16 + 14
            assert p[ip + 9] == 1, "not ICMP"
            icmp = ip + (p[ip] & 15) * 4
            src, dst = socket.inet_ntoa(p[ip + 12:ip + 16]), socket.inet_ntoa(p[ip + 16:ip + 20])
            return POINTS[body[1]], (src, dst, p[icmp], struct.unpack_from(">H", p, icmp + 4)[0],
                                     struct.unpack_from(">H", p, icmp + 6)[0]), vni

        def split(recording, gob, out):
            runs, lines = [], {}
            for node, cpu, body in samples(recording):
                lines.setdefault(node, []).append("9 %d 0 %s\n" % (cpu, body.hex()))
                if runs and runs[-1][0] == node:
                    runs[-1][1] += 1
                else:
                    runs.append([node, 1])
            for node, ls in lines.items():
                with open(os.path.join(out, node + ".gob"), "wb") as f:
                    subprocess.run([gob, "encode"], input="".join(ls).encode(), stdout=f, check=True)
            print(" ".join("%s:%d" % (n, c) for n, c in runs))

        def messages(data):
            """Splits a gob stream at its length prefixes."""
            out, i = [], 0
            while i < len(data):
                first = data[i]
                if first < 0x80:
                    length, prefix = first, 1
                else:
                    n = 256 - first
                    length, prefix = int.from_bytes(data[i + 1:i + 1 + n], "big"), 1 + n
                out.append(data[i:i + prefix + length])
                i += prefix + length
            return out

        def serve(gap, schedule, agents):
            """One fake agent per node: its stream's type first, then the runs of samples in the recording's
            order, `gap` seconds apart; then every connection is closed."""
            servers, streams, conns = {}, {}, {}
            for arg in agents:
                node, rest = arg.split("=", 1)
                path, stream = rest.rsplit(":", 1)
                streams[node] = messages(open(stream, "rb").read())
                servers[node] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                servers[node].bind(path)
                servers[node].listen(1)
            print("listening", flush=True)
            while len(conns) < len(servers):
                ready, _, _ = select.select([s for n, s in servers.items() if n not in conns], [], [], 60)
                if not ready:
                    sys.exit("nobody connected")
                for s in ready:
                    conns[next(n for n, x in servers.items() if x is s)] = s.accept()[0]
            sent = {}
            for node, conn in conns.items():
                conn.sendall(streams[node][0])
                sent[node] = 1
            for run in schedule.split(","):
                node, count = run.split(":")
                time.sleep(float(gap))
                conns[node].sendall(b"".join(streams[node][sent[node]:sent[node] + int(count)]))
                sent[node] += int(count)
            for conn in conns.values():
                conn.close()
            print("sent", flush=True)

        def fail(message):
            print(message)
            sys.exit(1)

        def journeys(recording, got_path, replay_path):
            # What the recording says: each ICMP packet's hops (node, point) in order, and its VNI.
            want = {}
            for node, _, body in samples(recording):
                point, key, vni = packet(body)
                j = want.setdefault(key, {"hops": [], "vni": None})
                j["hops"].append([node, point])
                if vni is not None and j["vni"] is None:
                    j["vni"] = vni
            got = [json.loads(l)["journey"] for l in open(got_path) if l.strip()]
            replay = [json.loads(l)["journey"] for l in open(replay_path) if l.strip()]
            if len(got) != len(want):
                fail("%d journeys, the recording has %d packets" % (len(got), len(want)))
            by_id = {j["id"]: j for j in got}
            pairs = 0
            for j in got:
                key = (j["source"], j["destination"], j["icmp_type"], j["icmp_id"], j["icmp_seq"])
                if key not in want:
                    fail("a journey of no packet of the recording: %r" % (key,))
                w = want.pop(key)
                hops = [[h["node"], h["point"]] for h in j["hops"]]
                if hops != w["hops"]:
                    fail("%r: hops %r, the recording has %r" % (key, hops, w["hops"]))
                if (j["outcome"], j["complete"], j["missing"], j["vni"]) != ("delivered", True, [], w["vni"]):
                    fail("%r: %s complete=%s missing=%r vni=%s; the recording's VNI %s" % (
                        key, j["outcome"], j["complete"], j["missing"], j["vni"], w["vni"]))
                other = by_id.get(j.get("paired_with"))
                if other is None or other.get("paired_with") != j["id"]:
                    fail("%r: not paired" % (key,))
                if j["role"] == "request":
                    reply = (j["destination"], j["source"], 0, j["icmp_id"], j["icmp_seq"])
                    if j["icmp_type"] != 8 or other["role"] != "reply" or \
                            (other["source"], other["destination"], other["icmp_type"], other["icmp_id"],
                             other["icmp_seq"]) != reply:
                        fail("%r: paired with %r" % (key, other))
                    if j["vnis"] != {"request": j["vni"], "reply": other["vni"]}:
                        fail("%r: vnis %r" % (key, j["vnis"]))
                    pairs += 1
            # As replaying the recording gives (the sockets carry no interface names, pods or kernel times).
            def shape(js):
                return [(j["role"], j["source"], j["destination"], j["icmp_type"], j["icmp_seq"], j["outcome"],
                         j["vni"], j["vnis"], [(h["node"], h["point"], h["kind"], h.get("vni")) for h in j["hops"]])
                        for j in js]
            if shape(got) != shape(replay):
                fail("differs from the replay:\n%r\n%r" % (shape(got), shape(replay)))
            print("ok: %d journeys, %d hops, %d request/reply pairs" % (len(got), sum(len(j["hops"]) for j in got), pairs))

        def recorded(recording, merged, first):
            """Each node's samples in the merged recording: the first connection's `first`, then all of them."""
            want, got = {}, {}
            for node, _, body in samples(recording):
                want.setdefault(node, []).append(body)
            for node, _, body in samples(merged):
                got.setdefault(node, []).append(body)
            if sorted(got) != sorted(want):
                fail("nodes %r, the recording's %r" % (sorted(got), sorted(want)))
            for node in sorted(want):
                expected = want[node][:int(first)] + want[node]
                if got[node] != expected:
                    fail("%s: %d samples, %d expected, or their bytes differ" % (node, len(got[node]), len(expected)))
            print("ok: " + ", ".join("%s %d samples" % (n, len(got[n])) for n in sorted(got)))

        if __name__ == "__main__":
            {"split": split, "serve": serve, "journeys": journeys, "recorded": recorded}[sys.argv[1]](
                *(sys.argv[2:4] + [sys.argv[4:]] if sys.argv[1] == "serve" else sys.argv[2:]))
        """#
}
