import Glibc
import VxmonLive

extension LabPaths {
    /// The observer servers' process (`vxmon-hubble`): pid (written once every node listens) and log.
    public var hubblePIDFile: String { "\(stateDirectory)/hubble.pid" }
    public var hubbleLog: String { "\(stateDirectory)/hubble.log" }
}

/// Starting and stopping a lab's Hubble observer servers (`vxmon-hubble`, its own executable so
/// that vxmon itself never links gRPC). Like the agent it runs in its own session, logs to the lab's
/// `hubble.log`, and is stopped by `lab down`; it is a client of the agent, so it starts after it.
public enum HubbleDaemon {
    /// `vxmon-hubble` beside the running vxmon executable, if it was built.
    public static func executable(besides vxmon: String) -> String? {
        guard let slash = vxmon.lastIndex(of: "/") else { return nil }
        let path = String(vxmon[..<slash]) + "/vxmon-hubble"
        return access(path, X_OK) == 0 ? path : nil
    }

    /// `vxmon-hubble` beside the vxmon executable that is running, if it was built.
    public static var executable: String? { Preflight.executablePath.flatMap(executable(besides:)) }

    /// What `lab up` says on stderr when `vxmon-hubble` was not built beside vxmon (`make demo` builds
    /// vxmon alone, to skip gRPC's build); everything else of the lab works without it.
    public static let notBuiltMessage =
        "vxmon: Hubble observers not started: vxmon-hubble is not built beside vxmon "
        + "(`make hubble` builds it; then `vxmon lab up` starts them on the lab that is up)"

    /// The pid of the lab's running `vxmon-hubble` (from its pid file, checked against the process).
    public static func running(_ paths: LabPaths) -> Int32? {
        guard let text = try? FileSystem.read(paths.hubblePIDFile),
            let pid = Int32(text.split(separator: "\n").first ?? ""), pid > 0, kill(pid, 0) == 0,
            let cmdline = try? FileSystem.read("/proc/\(pid)/cmdline")
        else { return nil }
        let words = cmdline.split(separator: "\0").map(String.init)
        guard words.first?.hasSuffix("vxmon-hubble") == true,
            let i = words.firstIndex(of: "--lab"), i + 1 < words.count, words[i + 1] == paths.lab
        else { return nil }
        return pid
    }

    /// Starts the servers unless they run; returns once every node listens (the pid file is written
    /// then). Returns the pid and whether it was started now.
    @discardableResult
    public static func start(lab: String, executable: String, arguments: [String] = []) throws -> (pid: Int32, started: Bool) {
        let paths = LabPaths(lab: lab)
        if let pid = running(paths) { return (pid, false) }
        unlink(paths.hubblePIDFile)
        try FileSystem.makeDirectories(paths.stateDirectory)
        let pid = try Shell.spawnDaemon([executable, "--lab", lab] + arguments, log: paths.hubbleLog, what: "vxmon-hubble")
        for _ in 0..<400 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw VxmonError("vxmon-hubble of lab '\(lab)' exited at start; see \(paths.hubbleLog)")
            }
            if running(paths) == pid { return (pid, true) }
            usleep(25_000)
        }
        kill(pid, SIGKILL)
        throw VxmonError("vxmon-hubble of lab '\(lab)' did not listen within 10 s; see \(paths.hubbleLog)")
    }

    /// Stops the lab's servers (SIGTERM, then SIGKILL after `graceSeconds`). Returns the pid.
    @discardableResult
    public static func stop(_ paths: LabPaths, graceSeconds: Double = 3) -> Int32? {
        guard let pid = running(paths) else {
            unlink(paths.hubblePIDFile)
            return nil
        }
        kill(pid, SIGTERM)
        var waited = 0.0
        while waited < graceSeconds, kill(pid, 0) == 0 {
            usleep(20_000)
            waited += 0.02
        }
        if kill(pid, 0) == 0 {
            kill(pid, SIGKILL)
            for _ in 0..<100 where kill(pid, 0) == 0 { usleep(10_000) }
        }
        unlink(paths.hubblePIDFile)
        return pid
    }
}
