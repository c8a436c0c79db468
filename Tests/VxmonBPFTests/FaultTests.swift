import Foundation
import Testing
import VxmonBPF

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
