import Foundation
import Testing
import VxmonLab
import VxmonLive

#if canImport(Glibc)
    import Glibc
#endif

// `vxmon journey` live on the lab, as a user runs it: issue 18's acceptance. The oracles are not the
// journey code: the lab's state file (where each pod is, its identity), ping's own output (which
// sequence numbers were answered, and the RTT it measured), a recording of the same run read by an
// independent .vxrec reader (Tests/scripts/vxrec_events.py), and the policy and flood the test itself
// sets up. The checks are in Tests/scripts/journey_lab_check.py; this file drives the lab.
//
// Each run starts `vxmon journey` before the traffic and knows it reads the lab once a probe ping's
// journey shows on its output (the probe has its own ICMP id, left out of the counts). It ends the run
// with SIGINT once the traffic is done; `--duration` only bounds a run that goes wrong.

@Suite(
    "vxmon journey live on the lab (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct JourneyLabTests {
    static let checker = GoOracle.packageRoot + "/Tests/scripts/journey_lab_check.py"
    /// ICMP ids: the probe's, and the measured pings'.
    static let probeID = 7001
    static let pingID = 4242

    /// A lab brought up with `vxmon lab up FLAGS` for one test, a scratch directory, and the processes
    /// the test starts: all removed when the test ends, also when it fails.
    final class Run {
        let lab: String
        let dir: String
        let topology: LabTopology
        var processes: [Process] = []

        init(_ tag: String, _ flags: [String]) throws {
            try LabGate.check()
            lab = LabNames.make(tag)
            dir = NSTemporaryDirectory() + "/vxmon-journey-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let up = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab] + flags, check: false)
            guard up.status == 0, let topology = (try? Lab(name: lab))?.recordedTopology() else {
                _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
                throw VxmonError("vxmon lab up --lab \(lab) \(flags.joined(separator: " ")) failed: \(up.errorOutput)")
            }
            self.topology = topology
        }

        func tearDown() {
            for p in processes where p.isRunning {
                p.terminate()
                if !LabAgentTests.waitFor(5, { !p.isRunning }) { kill(p.processIdentifier, SIGKILL) }
            }
            _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }

        func pod(_ name: String) throws -> LabTopology.Pod {
            try #require(topology.pods.first { $0.name == name }, "lab \(lab) has no pod \(name)")
        }

        var stateFile: String { LabPaths(lab: lab).stateFile }

        /// Starts `vxmon ARGUMENTS` with its stdout and stderr in files of the scratch directory.
        func start(_ arguments: [String], name: String) throws -> Process {
            let p = try LabAgentTests.vxmon(arguments, stdout: "\(dir)/\(name)", stderr: "\(dir)/\(name).err")
            processes.append(p)
            return p
        }

        /// `vxmon journey` live on this lab, JSON journeys and the summary record into journeys.json.
        func startJourney(_ extra: [String] = []) throws -> Process {
            try start(
                ["journey", "--lab", lab, "-o", "json", "--summary", "--duration", "90"] + extra, name: "journeys.json")
        }

        /// Pings from `pod` to `ip` with the probe's ICMP id, one echo at a time, until the probe's
        /// journey shows on `journey`'s output (journeys.json): from then on it reads the lab.
        func probe(_ pod: LabTopology.Pod, _ ip: String, _ journey: Process) throws {
            let output = "\(dir)/journeys.json"
            let id = "\(JourneyLabTests.probeID)"
            let seen = "\"icmp_id\":\(id),"
            var shown = false
            for _ in 0..<60 where journey.isRunning && !shown {
                _ = try inNamespace(pod.namespace, ["ping", "-c", "1", "-W", "1", "-e", id, ip])
                shown = LabAgentTests.waitFor(0.3) { LabAgentTests.text(output).contains(seen) }
            }
            let stderr = LabAgentTests.text(output + ".err")
            try #require(
                shown, "the probe's journey never showed (vxmon journey running: \(journey.isRunning)): \(stderr)")
        }

        /// Pings with `ping ARGUMENTS` from `pod`; its output goes to ping.txt (for the checker) too.
        @discardableResult
        func ping(from pod: LabTopology.Pod, _ arguments: [String]) throws -> CommandResult {
            let result = try inNamespace(pod.namespace, ["ping"] + arguments)
            try result.output.write(toFile: "\(dir)/ping.txt", atomically: true, encoding: .utf8)
            return result
        }

        /// Ends a live client as a user does (SIGINT), and checks that it ended well.
        func interrupt(_ p: Process, _ what: String) {
            if p.isRunning { kill(p.processIdentifier, SIGINT) }
            let ended = LabAgentTests.waitFor(30) { !p.isRunning }
            #expect(ended, "\(what) did not end on SIGINT")
            if ended {
                #expect(p.terminationStatus == 0, "\(what) exited \(p.terminationStatus)")
            }
        }

        /// Runs the checker; its lines (one per check, then the measured figures) are printed, and each
        /// failed check fails the test.
        func check(_ arguments: [String], _ what: String) throws {
            let result = try Shell.run(["python3", JourneyLabTests.checker] + arguments, check: false)
            print("journey_lab_check \(what):\n\(result.output)", terminator: "")
            let failed = result.output.split(separator: "\n").filter { $0.hasPrefix("FAIL") }
            for line in failed { Issue.record("\(what): \(line)") }
            #expect(
                result.status == (failed.isEmpty ? 0 : 1),
                "\(what): checker exited \(result.status): \(result.errorOutput)")
        }
    }

    static func with(_ tag: String, _ flags: [String], _ body: (Run) throws -> Void) throws {
        let run = try Run(tag, flags)
        defer { run.tearDown() }
        try body(run)
    }

    @Test(
        "1,000 cross-node pings: 1,000 request and 1,000 reply journeys, complete, 4 hops (5 with --trace-underlay), request VNI the source pod's identity, reply VNI the destination's; each hop's time is its event's in the recording; request + reply latency within ping's RTT",
        arguments: [false, true])
    func thousandPings(traceUnderlay: Bool) throws {
        try Self.with("jp", ["--no-hubble"] + (traceUnderlay ? ["--trace-underlay"] : [])) { run in
            let source = try run.pod("worker2-pod1")
            let destination = try run.pod("worker-pod1")
            let journey = try run.startJourney()
            let record = try run.start(
                ["record", "--lab", run.lab, "-w", "\(run.dir)/run.vxrec", "--duration", "90"], name: "record.out")
            // Both clients are connected to the agent; the probe then shows the journey builder reads.
            let paths = LabPaths(lab: run.lab)
            try #require(
                LabAgentTests.waitFor(15) { (AgentStatus.read(paths)?.clients.count ?? 0) >= 2 },
                "journey and record connected: \(AgentStatus.read(paths)?.clients.count ?? 0) clients")
            try run.probe(source, destination.ip, journey)

            // -U: ping's RTT from user space to user space. Without it ping takes the receive time from the
            // kernel's timestamp of the reply, set when the VXLAN packet reached the node's eth0, before the
            // decapsulation and delivery the reply journey times (measured on this lab: down to 0.9 µs before
            // the reply's to-endpoint, and a request + reply latency 13 µs over that RTT with --trace-underlay).
            let started = Date()
            let ping = try run.ping(
                from: source, ["-U", "-c", "1000", "-i", "0.002", "-W", "1", "-e", "\(Self.pingID)", destination.ip])
            let pinged = Date().timeIntervalSince(started)
            #expect(ping.status == 0, "ping: \(ping.errorOutput)")
            // The last exchange's journeys show once its reply arrived; then both clients have every event.
            let last = "\"icmp_id\":\(Self.pingID),\"icmp_seq\":1000,"
            _ = LabAgentTests.waitFor(15) {
                LabAgentTests.text("\(run.dir)/journeys.json").components(separatedBy: last).count >= 3
            }
            usleep(300_000)
            run.interrupt(journey, "vxmon journey")
            run.interrupt(record, "vxmon record")
            print("journey lab (underlay \(traceUnderlay)): 1000 pings in \(String(format: "%.2f", pinged)) s")

            let common = [
                "--lab-state", run.stateFile, "--from", source.name, "--to", destination.name, "--id", "\(Self.pingID)",
                "--count", "1000", "--hops", traceUnderlay ? "5" : "4", "--ping", "\(run.dir)/ping.txt",
                "--recording", "\(run.dir)/run.vxrec",
            ]
            try run.check(["pings", "--journeys", "\(run.dir)/journeys.json"] + common, "live")
            // The same traffic, replayed from the recording.
            let replay = try Shell.run(
                [FaultTests.vxmon, "journey", "\(run.dir)/run.vxrec", "-o", "json", "--summary"], check: false)
            #expect(replay.status == 0, "\(replay.errorOutput)")
            try replay.output.write(toFile: "\(run.dir)/replayed.json", atomically: true, encoding: .utf8)
            try run.check(["pings", "--journeys", "\(run.dir)/replayed.json"] + common, "replayed")
        }
    }

    @Test("a flow denied by policy ends at its drop on the destination's node: Policy denied (133)")
    func policyDenied() throws {
        try Self.with("jd", ["--no-hubble"]) { run in
            let source = try run.pod("worker2-pod1")
            let destination = try run.pod("worker-pod1")
            let rule = ["--from", source.name, "--to", destination.name, "--proto", "icmp", "--deny"]
            let deny = try Shell.run([FaultTests.vxmon, "policy", "add", "--lab", run.lab] + rule, check: false)
            try #require(deny.status == 0, "\(deny.errorOutput)")
            let journey = try run.startJourney()
            // The probe goes from the other pod of worker2, which the policy lets through.
            try run.probe(try run.pod("worker2-pod2"), destination.ip, journey)
            let ping = try run.ping(
                from: source, ["-c", "3", "-i", "0.2", "-W", "1", "-e", "\(Self.pingID)", destination.ip])
            #expect(ping.status != 0, "ping got through a deny rule: \(ping.output)")
            // A dropped request waits for a reply that never comes: the end of the run hands it out.
            usleep(300_000)
            run.interrupt(journey, "vxmon journey")
            let pair = ["--from", source.name, "--to", destination.name, "--id", "\(Self.pingID)", "--count", "3"]
            try run.check(
                ["policy", "--lab-state", run.stateFile, "--ping", "\(run.dir)/ping.txt"] + pair
                    + ["--journeys", "\(run.dir)/journeys.json"], "policy")
        }
    }

    @Test(
        "samples lost on purpose (a 1-page perf buffer under a flood): every incomplete journey is explained by lost samples, a complete one has every hop, and the counts add up"
    )
    func lostSamples() throws {
        try Self.with("jl", ["--no-agent"]) { run in
            let source = try run.pod("worker2-pod1")
            let destination = try run.pod("worker-pod1")
            // Read directly (no agent): each node's perf buffer, one page per CPU.
            let journey = try run.startJourney(["--buffer", "perf", "--perf-pages", "1"])
            try run.probe(try run.pod("worker2-pod2"), try run.pod("worker-pod2").ip, journey)
            // A cross-node UDP flood (what `lab bench` sends) while pinging across the same nodes.
            let flood = Process()
            flood.executableURL = URL(fileURLWithPath: FaultTests.vxmon)
            flood.arguments = [
                "_flood", "--netns", source.namespace, "--to", destination.ip, "--port", "9", "--seconds", "1.5",
            ]
            flood.standardOutput = FileHandle.nullDevice
            flood.standardError = FileHandle.nullDevice
            try flood.run()
            run.processes.append(flood)
            // Pings only add traffic here (the flood may crowd a few out): no check on their replies.
            try run.ping(from: source, ["-c", "200", "-i", "0.005", "-W", "1", "-e", "\(Self.pingID)", destination.ip])
            #expect(LabAgentTests.waitFor(20) { !flood.isRunning }, "the flood did not end")
            usleep(500_000)
            run.interrupt(journey, "vxmon journey")
            print("journey lab (lost): \(LabAgentTests.text("\(run.dir)/journeys.json.err"))", terminator: "")
            try run.check(
                [
                    "lost", "--lab-state", run.stateFile, "--journeys", "\(run.dir)/journeys.json", "--stderr",
                    "\(run.dir)/journeys.json.err",
                ],
                "lost")
        }
    }
}
