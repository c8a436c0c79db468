import CVxmonSystem
import Glibc
import VxmonLive

/// The result of a finished command.
public struct CommandResult: Sendable {
    public var status: Int32
    public var output: String
    public var errorOutput: String
}

/// Runs external tools (iproute2, tcpdump) with posix_spawn, capturing their output.
///
/// The lab uses `ip` for links and addresses, like the prototype it was validated with: netlink
/// through iproute2 is well understood, and every step can be replayed by hand from the log.
public enum Shell {
    /// Runs `arguments` (searched in PATH) and waits. Throws if it cannot start, or if `check` is set
    /// and it exits non-zero (with its first stderr line in the message).
    @discardableResult
    public static func run(_ arguments: [String], check: Bool = true) throws -> CommandResult {
        let process = try spawn(arguments, captureOutput: true)
        let (output, errorOutput) = process.readAll()
        let status = process.wait()
        let result = CommandResult(status: status, output: output, errorOutput: errorOutput)
        if check && status != 0 {
            let first = errorOutput.split(separator: "\n").first.map(String.init) ?? "exit status \(status)"
            throw VxmonError("`\(arguments.joined(separator: " "))` failed: \(first)")
        }
        return result
    }

    /// Starts `arguments` in the background. With `captureOutput`, stdout and stderr are pipes the
    /// returned process reads; otherwise they are inherited, or with `quiet` go to /dev/null (stderr to
    /// `errorFile` if given).
    public static func spawn(
        _ arguments: [String], captureOutput: Bool = false, quiet: Bool = false, errorFile: String? = nil
    ) throws -> ChildProcess {
        precondition(!arguments.isEmpty, "empty command")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }

        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        if captureOutput {
            guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw VxmonError("pipe: \(errnoString(errno))") }
            // pipe2(O_CLOEXEC) is GNU-only in Glibc's Swift module; set the flag right after.
            for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
            posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        } else if quiet {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, errorFile ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }

        var attributes = posix_spawnattr_t()
        Shell.initSpawnAttributes(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
        if captureOutput {
            close(outPipe[1])
            close(errPipe[1])
        }
        if rc != 0 {
            if captureOutput {
                close(outPipe[0])
                close(errPipe[0])
            }
            throw VxmonError("cannot run \(arguments[0]): \(errnoString(rc))")
        }
        return ChildProcess(pid: pid, stdout: captureOutput ? outPipe[0] : -1, stderr: captureOutput ? errPipe[0] : -1)
    }

    /// Starts `arguments` as a daemon: its own session (no terminal's SIGINT or SIGHUP reaches it),
    /// stdin from /dev/null, stdout and stderr appended to `log`, and no other descriptor of ours
    /// (closed by posix_spawn itself: a daemon whose runtime opens descriptors before its own code runs
    /// cannot close inherited ones safely). Returns its pid; `what` names it in the error.
    public static func spawnDaemon(_ arguments: [String], log: String, what: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        _ = vxmon_shim_spawn_closefrom(&actions, 3)
        var attributes = posix_spawnattr_t()
        initSpawnAttributes(&attributes, newSession: true)
        defer { posix_spawnattr_destroy(&attributes) }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
        if rc != 0 { throw VxmonError("cannot start \(what): \(errnoString(rc))") }
        return pid
    }

    /// Initialises spawn attributes so that children start with no blocked signals and default
    /// handlers (test runners and dispatch threads block or ignore signals, and a tcpdump that inherits
    /// a blocked SIGINT never stops); `newSession` also puts the child in a session of its own.
    /// Destroy them with `posix_spawnattr_destroy`.
    static func initSpawnAttributes(_ attributes: inout posix_spawnattr_t, newSession: Bool = false) {
        posix_spawnattr_init(&attributes)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        // POSIX_SPAWN_SETSID is 0x80 in glibc.
        let flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (newSession ? 0x80 : 0)
        posix_spawnattr_setflags(&attributes, Int16(flags))
    }

    /// True if `tool` is an executable file in PATH.
    public static func hasTool(_ tool: String) -> Bool {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        return path.split(separator: ":").contains { access("\($0)/\(tool)", X_OK) == 0 }
    }
}

/// A child started by `Shell.spawn`.
public final class ChildProcess {
    public let pid: pid_t
    private var stdoutFD: Int32
    private var stderrFD: Int32
    private var status: Int32?

    init(pid: pid_t, stdout: Int32, stderr: Int32) {
        self.pid = pid
        stdoutFD = stdout
        stderrFD = stderr
    }

    deinit {
        if stdoutFD >= 0 { close(stdoutFD) }
        if stderrFD >= 0 { close(stderrFD) }
        // Never leave a zombie or a stray child behind.
        if status == nil { stop() }
    }

    /// Reads stdout and stderr to their ends (both at once, so neither pipe can fill up and block).
    public func readAll() -> (String, String) {
        var out: [UInt8] = []
        var err: [UInt8] = []
        var fds = [
            pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0),
        ]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            for i in 0..<2 where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(fds[i].fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    if i == 0 { out.append(contentsOf: buffer[0..<n]) } else { err.append(contentsOf: buffer[0..<n]) }
                } else if n == 0 || errno != EINTR {
                    fds[i].fd = -1
                }
            }
        }
        return (String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// Waits for the child; returns its exit status (128 + signal if it was killed).
    @discardableResult
    public func wait() -> Int32 {
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 {
            if errno != EINTR {
                status = -1
                return -1
            }
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
        let result = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        status = result
        return result
    }

    /// Sends `signal`, waits up to `timeout` seconds for the child to exit, then kills it (SIGKILL).
    /// Returns its exit status.
    @discardableResult
    public func stop(_ signal: Int32 = SIGTERM, timeout: Double = 2) -> Int32 {
        if let status { return status }
        kill(pid, signal)
        let deadline = monotonicNanoseconds() + UInt64(timeout * 1e9)
        var raw: Int32 = 0
        while monotonicNanoseconds() < deadline {
            if waitpid(pid, &raw, WNOHANG) == pid {
                let result = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                status = result
                return result
            }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        return wait()
    }

    /// Whether the child has exited (reaps it if so; never blocks).
    public var hasExited: Bool {
        if status != nil { return true }
        var raw: Int32 = 0
        guard waitpid(pid, &raw, WNOHANG) == pid else { return false }
        status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        return true
    }

    /// Sends `signal` if the child has not been waited for yet.
    public func signal(_ signal: Int32) {
        if status == nil { kill(pid, signal) }
    }
}
