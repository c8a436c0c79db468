import Glibc
import VxmonLive

/// Starting and stopping a lab's agent process (`vxmon agent --foreground` in its own session, its
/// output appended to the lab's `agent.log`, its pid in `agent.pid`). The agent is the one child that
/// is meant to outlive the command that starts it: it is stopped by `lab down`, and stops by itself
/// when its lab goes away.
public enum AgentDaemon {
    /// Starts the agent of `lab` unless one runs; waits until it holds the lab's reader lock. With no
    /// `arguments`, an agent that ran before is started with the options it had (`agent.args`).
    /// Returns its pid and whether it was started now.
    @discardableResult
    public static func start(lab: String, executable: String, arguments: [String]? = nil) throws -> (pid: Int32, started: Bool) {
        let paths = LabPaths(lab: lab)
        if let pid = AgentStatus.runningAgent(paths) { return (pid, false) }
        let arguments =
            arguments ?? (try? FileSystem.read(paths.agentArguments))?.split(separator: "\n").map(String.init) ?? []
        try FileSystem.makeDirectories(paths.stateDirectory)
        let pid = try Shell.spawnDaemon(
            [executable, "agent", "--lab", lab, "--foreground"] + arguments, log: paths.agentLog, what: "the agent")
        // Ready when it holds the lab's reader lock and has written its pid (its sockets exist by then,
        // and connections wait in their backlog until its loop runs).
        for _ in 0..<200 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw VxmonError("the agent of lab '\(lab)' exited at start; see \(paths.agentLog)")
            }
            if AgentStatus.runningAgent(paths) == pid { return (pid, true) }
            usleep(25_000)
        }
        kill(pid, SIGKILL)
        throw VxmonError("the agent of lab '\(lab)' did not open its sockets within 5 s; see \(paths.agentLog)")
    }

    /// Closes every descriptor above stderr that the process inherited (call first thing in the
    /// daemon): one holding a pipe of whoever started `lab up` would keep that reader waiting for an
    /// end of file until the lab goes down.
    public static func closeInheritedDescriptors() {
        guard let dir = opendir("/proc/self/fd") else { return }
        var descriptors: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let fd = Int32(name), fd > 2, fd != dirfd(dir) { descriptors.append(fd) }
        }
        closedir(dir)
        for fd in descriptors { close(fd) }
    }

    /// Stops the running agent of `paths` (SIGTERM, then SIGKILL after `graceSeconds`). Returns its pid.
    @discardableResult
    public static func stop(_ paths: LabPaths, graceSeconds: Double = 3) -> Int32? {
        guard let pid = AgentStatus.runningAgent(paths) else { return nil }
        kill(pid, SIGTERM)
        var waited = 0.0
        while waited < graceSeconds {
            if MonitorLock.holder(paths: paths) != pid { break }
            usleep(20_000)
            waited += 0.02
        }
        if MonitorLock.holder(paths: paths) == pid {
            kill(pid, SIGKILL)
            for _ in 0..<100 where MonitorLock.holder(paths: paths) == pid { usleep(10_000) }
        }
        return pid
    }
}
