import Glibc
import Synchronization
import VxmonCore
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

/// Keeps a lab's Hubble observers running: the lab's agent checks every second that the
/// `vxmon-hubble` that `lab up` started (`hubble.args` is written by every start) still runs, and
/// starts it again, with the arguments it was started with, once it has been gone for `graceSeconds`
/// (so that a `lab up` run at once after it died restarts it first, as it always did). A failed start
/// is tried again after 2, 4, ... 60 s. Nothing is started while another lab command holds the lab's
/// lock (`lab down` stops the observers under it), nor for a lab whose observers were never started
/// (`--no-hubble`, or vxmon-hubble not built).
public final class HubbleKeeper: @unchecked Sendable {
    /// Seconds the observers stay gone before the agent starts them again: a `lab up` run right after
    /// they died (it restarts them itself, and refuses a lab whose observers run) goes first.
    public static let graceSeconds: UInt64 = 5
    /// Longest wait between two failed starts, in seconds.
    public static let maxBackoffSeconds: UInt64 = 60

    let lab: String
    let paths: LabPaths
    let executable: String?
    private let log: (String) -> Void
    private let stopped = Atomic<Bool>(false)
    // Used by the keeper's own thread only (`run`), or by `check` in tests.
    private var goneSince: UInt64?
    private var backoff: UInt64 = 2
    private var nextAttempt: UInt64 = 0
    private var saidNotBuilt = false
    /// When this keeper last started the servers (nil once they have run a minute).
    private var startedAt: UInt64?
    /// The servers this agent started: its children, to reap when they end.
    private var children: [pid_t] = []

    public init(lab: String, executable: String? = HubbleDaemon.executable, log: @escaping (String) -> Void) {
        self.lab = lab
        paths = LabPaths(lab: lab)
        self.executable = executable
        self.log = log
    }

    /// Checks every second until `stop()` or a stop signal.
    public func run() {
        while !stopped.load(ordering: .relaxed) && !stopRequested.load(ordering: .relaxed) {
            for _ in 0..<10 where !stopped.load(ordering: .relaxed) { usleep(100_000) }
            // Not as the agent stops: it would start servers for a lab going down.
            if stopped.load(ordering: .relaxed) || stopRequested.load(ordering: .relaxed) { break }
            check(now: monotonicNanoseconds())
        }
    }

    public func stop() { stopped.store(true, ordering: .relaxed) }

    /// One check: restarts the servers if they should run, do not, and have been gone long enough.
    public func check(now: UInt64) {
        children.removeAll { waitpid($0, nil, WNOHANG) != 0 }
        guard access(paths.hubbleArguments, F_OK) == 0, HubbleDaemon.running(paths) == nil else {
            goneSince = nil
            // The wait between restarts goes back to its start once a server has run a minute: one
            // that dies right after each start is restarted less and less often, not every 6 s.
            if let started = startedAt, now &- started >= 60_000_000_000 {
                backoff = 2
                startedAt = nil
            }
            return
        }
        guard let since = goneSince else {
            goneSince = now
            log("vxmon agent: vxmon-hubble of lab '\(lab)' is not running; starting it again in \(Self.graceSeconds) s")
            return
        }
        guard now &- since >= Self.graceSeconds * 1_000_000_000, now >= nextAttempt else { return }
        // Looked up each time: `make hubble` may have built it since the agent started.
        guard let executable = executable ?? HubbleDaemon.executable else {
            if !saidNotBuilt { log("vxmon agent: \(HubbleDaemon.notBuiltMessage)") }
            saidNotBuilt = true
            return
        }
        // A lab command is changing the lab (`lab down` stops the observers under this lock): not now.
        guard let lock = try? LabLock(lab: lab, waitSeconds: 0) else { return }
        defer { withExtendedLifetime(lock) {} }
        // Checked again under the lock: `lab down` may have removed the lab meanwhile. One that is
        // starting (a `lab up` started it: no pid file until it listens) is left to finish.
        guard access(paths.hubbleArguments, F_OK) == 0, HubbleDaemon.running(paths) == nil, !Self.starting(lab)
        else { return }
        do {
            let (pid, started) = try HubbleDaemon.start(lab: lab, executable: executable)
            if started { children.append(pid) }
            log("vxmon agent: vxmon-hubble of lab '\(lab)' started again (pid \(pid))")
            goneSince = nil
            startedAt = now
            nextAttempt = now &+ backoff * 1_000_000_000
            backoff = min(backoff * 2, Self.maxBackoffSeconds)
        } catch {
            log("vxmon agent: \(EventPipeline.sanitized(String(describing: error))); trying again in \(backoff) s")
            nextAttempt = now &+ backoff * 1_000_000_000
            backoff = min(backoff * 2, Self.maxBackoffSeconds)
        }
    }

    /// Whether a `vxmon-hubble --lab <lab>` process exists (alive, not a zombie): one `lab up` is
    /// starting has not written its pid file yet.
    static func starting(_ lab: String) -> Bool {
        for entry in FileSystem.listDirectory("/proc") {
            guard let pid = Int32(entry), pid != getpid(),
                let stat = try? FileSystem.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")"),
                stat[stat.index(after: close)...].split(separator: " ").first != "Z",
                let cmdline = try? FileSystem.read("/proc/\(pid)/cmdline")
            else { continue }
            if HubbleDaemon.isServer(pid, cmdline: cmdline, lab: lab) { return true }
        }
        return false
    }
}
