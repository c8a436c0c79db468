import Foundation
import Testing
import VxmonBPF
import VxmonLab
import VxmonLive

#if canImport(Glibc)
    import Glibc
#endif

// Faults: what vxmon starts dies with it. The flood `lab bench` runs is a child `vxmon _flood`; with
// its parent killed by SIGKILL it must not go on flooding (it asks the kernel for PR_SET_PDEATHSIG).

@Suite(
    "faults (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct FaultTests {
    static var vxmon: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while dir.path.contains(".xctest") { dir = dir.deletingLastPathComponent() }
        return dir.path + "/vxmon"
    }

    @Test("a flood whose parent is killed with SIGKILL stops at once")
    func floodDiesWithParent() throws {
        try LabGate.check()
        let ns = LabNames.make("pd")
        try Shell.run(["ip", "netns", "add", ns])
        defer { _ = try? Shell.run(["ip", "netns", "delete", ns], check: false) }
        try Shell.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
        let pidFile = NSTemporaryDirectory() + "/vxmon-pd-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: pidFile) }
        // The parent: a shell that starts the flood and waits.
        let parent = Process()
        parent.executableURL = URL(fileURLWithPath: "/bin/sh")
        parent.arguments = [
            "-c",
            "'\(Self.vxmon)' _flood --netns \(ns) --to 127.0.0.1 --port 9 --seconds 60 >/dev/null 2>&1 & echo $! > '\(pidFile)'; wait",
        ]
        try parent.run()
        var floodPID: pid_t = 0
        for _ in 0..<100 {
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                floodPID = pid
                break
            }
            usleep(20_000)
        }
        try #require(floodPID > 0)
        usleep(300_000)
        #expect(kill(floodPID, 0) == 0, "the flood runs")
        // Not waitUntilExit: Foundation waits there for the killed shell's pipes, which the flood holds.
        kill(parent.processIdentifier, SIGKILL)
        var gone = false
        for _ in 0..<100 {
            // The flood is reparented and reaped by init once the kernel killed it.
            if kill(floodPID, 0) != 0 || (try? String(contentsOfFile: "/proc/\(floodPID)/stat", encoding: .utf8))?.contains(") Z ") == true {
                gone = true
                break
            }
            usleep(20_000)
        }
        if !gone { kill(floodPID, SIGKILL) }
        #expect(gone, "the flood outlived its parent")
    }
}

@Suite(
    "concurrent lab commands (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct ConcurrentLabTests {
    @Test("two `lab up` at once: one builds the lab, the other waits and says it is up; nothing is destroyed")
    func twoUps() throws {
        try LabGate.check()
        let lab = LabNames.make("cc")
        defer { _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false) }
        func start() throws -> (Process, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: FaultTests.vxmon)
            p.arguments = ["lab", "up", "--lab", lab]
            let err = NSTemporaryDirectory() + "/vxmon-cc-\(UUID().uuidString).err"
            FileManager.default.createFile(atPath: err, contents: nil)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle(forWritingAtPath: err)
            try p.run()
            return (p, err)
        }
        let (a, aErr) = try start()
        let (b, bErr) = try start()
        a.waitUntilExit()
        b.waitUntilExit()
        defer { for f in [aErr, bErr] { try? FileManager.default.removeItem(atPath: f) } }
        let statuses = [a.terminationStatus, b.terminationStatus].sorted()
        #expect(statuses == [0, 1], "exit statuses \(statuses)")
        let loser = a.terminationStatus == 1 ? aErr : bErr
        let message = (try? String(contentsOfFile: loser, encoding: .utf8)) ?? ""
        #expect(message.contains("already up"), "\(message)")
        // The lab that was built is whole.
        let status = try Shell.run([FaultTests.vxmon, "lab", "status", "--lab", lab], check: false)
        #expect(status.status == 0, "\(status.output) \(status.errorOutput)")
        let namespaces = try Shell.run(["ip", "netns", "list"]).output.split(separator: "\n").filter { $0.hasPrefix(lab + "-") }
        #expect(namespaces.count == 10, "\(namespaces)")
    }
}

@Suite(
    "a killed monitor (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct KilledMonitorTests {
    @Test("after kill -9 of a monitor, lab status says events are on with no reader; the next monitor reads")
    func killedMonitor() throws {
        try withLab("km") { lab, topology in
            let monitor = Process()
            monitor.executableURL = URL(fileURLWithPath: FaultTests.vxmon)
            monitor.arguments = ["--lab", lab.name, "-q"]
            monitor.standardOutput = FileHandle.nullDevice
            monitor.standardError = FileHandle.nullDevice
            try monitor.run()
            // Until the monitor has turned events on.
            var on = false
            for _ in 0..<100 {
                on = topology.nodes.contains { ((try? NodeMaps(paths: lab.paths, node: $0.name))?.eventsMode ?? 0) != 0 }
                if on { break }
                usleep(20_000)
            }
            try #require(on)
            kill(monitor.processIdentifier, SIGKILL)
            usleep(200_000)
            let status = try Shell.run([FaultTests.vxmon, "lab", "status", "--lab", lab.name], check: false)
            #expect(status.output.contains("events are on but no monitor is attached"), "\(status.output)")
            #expect(status.output.contains("reader: none"))
            // The next monitor is not refused and reads the lab.
            let next = try Shell.run([FaultTests.vxmon, "--lab", lab.name, "--duration", "0.5", "-q"], check: false)
            #expect(next.status == 0, "\(next.errorOutput)")
        }
    }
}

@Suite(
    "least privilege (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct LeastPrivilegeTests {
    @Test("the monitor runs as user nobody holding only CAP_SYS_ADMIN and CAP_DAC_OVERRIDE; with less it says what is missing")
    func monitorAsNobody() throws {
        let setpriv = try #require(
            ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "setpriv (util-linux) is needed")
        // A copy nobody can execute, whatever the permissions of the checkout's folders.
        let dir = NSTemporaryDirectory() + "/vxmon-lp-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let binary = dir + "/vxmon"
        // Copied by cp, not in this process: a descriptor this process has open for writing would be
        // inherited by a child another test spawns meanwhile, and exec of the copy then fails (ETXTBSY).
        try #require(try Shell.run(["cp", FaultTests.vxmon, binary], check: false).status == 0)
        chmod(dir, 0o755)
        chmod(binary, 0o755)
        try withLab("lp") { lab, topology in
            let source = try #require(topology.pods.first { $0.node == "worker2" })
            let destination = try #require(topology.pods.first { $0.node == "worker" })
            func asNobody(_ caps: String, _ arguments: [String]) -> [String] {
                [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=\(caps)", "--ambient-caps=\(caps)", binary]
                    + arguments
            }
            let out = dir + "/events.json"
            let monitor = Process()
            monitor.executableURL = URL(fileURLWithPath: "/bin/sh")
            monitor.arguments = ["-c", asNobody("+sys_admin,+dac_override", ["--lab", lab.name, "-o", "json", "--duration", "2"])
                .map { "'\($0)'" }.joined(separator: " ") + " > '\(out)' 2>/dev/null"]
            try monitor.run()
            // Attached once it has switched the nodes' events on (a sanitizer build takes longer to start
            // than any fixed wait one would pick).
            let maps = try topology.nodes.map { try NodeMaps(paths: lab.paths, node: $0.name) }
            #expect(LabAgentTests.waitFor(15) { maps.allSatisfy { $0.eventsMode != 0 } }, "the monitor switched events on")
            let ping = try inNamespace(source.namespace, ["ping", "-c", "1", "-W", "2", destination.ip])
            monitor.waitUntilExit()
            #expect(ping.status == 0)
            #expect(monitor.terminationStatus == 0)
            let events = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n")
            #expect(events.count >= 8, "events read as nobody: \(events.count)")
            // One capability short: a clear message naming it, exit 1, nothing on stdout.
            let short = try Shell.run(asNobody("+sys_admin", ["--lab", lab.name, "--duration", "0.2"]), check: false)
            #expect(short.status == 1)
            #expect(short.errorOutput.contains("missing: CAP_DAC_OVERRIDE"), "\(short.errorOutput)")
            #expect(short.output.isEmpty)
        }
    }
}

@Suite(
    "signals at any point (privileged)", .serialized,
    .enabled(if: LabGate.enabled, "needs root, bpffs, BTF and bpf/.output/vxmon.bpf.o"))
struct SignalTests {
    /// Namespaces, pins and state of `lab` that exist now.
    static func leftovers(_ lab: String) throws -> [String] {
        let namespaces = try Shell.run(["ip", "netns", "list"]).output.split(separator: "\n")
            .map { String($0.split(separator: " ").first ?? "") }.filter { $0.hasPrefix(lab + "-") }
        let paths = LabPaths(lab: lab)
        return namespaces + [paths.pinDirectory, paths.stateDirectory].filter { access($0, F_OK) == 0 }
    }

    @Test("lab up killed (SIGKILL, SIGINT, SIGTERM) at any moment: lab down cleans everything, and lab up works again")
    func interruptedLabUp() throws {
        try LabGate.check()
        let lab = LabNames.make("sig")
        defer { _ = try? Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false) }
        for (signal, delay) in [(SIGKILL, 20_000), (SIGKILL, 80_000), (SIGKILL, 200_000), (SIGINT, 60_000), (SIGTERM, 150_000)] {
            let up = Process()
            up.executableURL = URL(fileURLWithPath: FaultTests.vxmon)
            up.arguments = ["lab", "up", "--lab", lab]
            up.standardOutput = FileHandle.nullDevice
            up.standardError = FileHandle.nullDevice
            try up.run()
            usleep(useconds_t(delay))
            kill(up.processIdentifier, signal)
            up.waitUntilExit()
            let down = try Shell.run([FaultTests.vxmon, "lab", "down", "--lab", lab], check: false)
            #expect(down.status == 0, "signal \(signal) after \(delay) µs: \(down.errorOutput)")
            let left = try Self.leftovers(lab)
            #expect(left.isEmpty, "signal \(signal) after \(delay) µs: \(left)")
        }
        let again = try Shell.run([FaultTests.vxmon, "lab", "up", "--lab", lab], check: false)
        #expect(again.status == 0, "\(again.errorOutput)")
    }

    @Test("a monitor and a recorder killed with SIGKILL leave a lab the next monitor reads, and lab down cleans")
    func killedReaders() throws {
        try withLab("rk") { lab, _ in
            for arguments in [["--lab", lab.name, "-q"], ["record", "--lab", lab.name, "-w", "/dev/null"]] {
                let reader = Process()
                reader.executableURL = URL(fileURLWithPath: FaultTests.vxmon)
                reader.arguments = arguments
                reader.standardOutput = FileHandle.nullDevice
                reader.standardError = FileHandle.nullDevice
                try reader.run()
                usleep(300_000)
                kill(reader.processIdentifier, SIGKILL)
                reader.waitUntilExit()
            }
            let next = try Shell.run([FaultTests.vxmon, "--lab", lab.name, "--duration", "0.3", "-q"], check: false)
            #expect(next.status == 0, "\(next.errorOutput)")
        }
    }

    /// Pids of the `vxmon _flood` processes sending from a namespace of `lab`.
    static func floods(_ lab: String) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            let zombie = (try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8))?.contains(") Z ") == true
            return !zombie && arguments.contains("_flood") && arguments.contains { $0.hasPrefix(lab + "-") } ? pid : nil
        }
    }

    @Test(
        "lab bench and lab soak killed with SIGKILL mid-run: their flood stops at once, the next monitor reads, lab down cleans",
        arguments: [["lab", "bench", "--seconds", "0.25", "--rounds", "40"], ["lab", "soak", "--seconds", "30"]])
    func killedFloods(_ command: [String]) throws {
        var name = ""
        try withLab("kf") { lab, _ in
            name = lab.name
            let runner = Process()
            runner.executableURL = URL(fileURLWithPath: FaultTests.vxmon)
            runner.arguments = command + ["--lab", lab.name]
            runner.standardOutput = FileHandle.nullDevice
            runner.standardError = FileHandle.nullDevice
            try runner.run()
            var flooding: [pid_t] = []
            for _ in 0..<150 where flooding.isEmpty {
                usleep(20_000)
                flooding = Self.floods(lab.name)
            }
            try #require(!flooding.isEmpty, "\(command[1]) started no flood")
            usleep(500_000)
            kill(runner.processIdentifier, SIGKILL)
            runner.waitUntilExit()
            var left = flooding
            for _ in 0..<100 where !left.isEmpty {
                usleep(20_000)
                left = Self.floods(lab.name)
            }
            for pid in left { kill(pid, SIGKILL) }
            #expect(left.isEmpty, "\(command[1]): the flood outlived its parent")
            let next = try Shell.run([FaultTests.vxmon, "--lab", lab.name, "--duration", "0.3", "-q"], check: false)
            #expect(next.status == 0, "\(next.errorOutput)")
        }
        #expect(try Self.leftovers(name).isEmpty)
    }
}
