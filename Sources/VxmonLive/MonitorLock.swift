import Glibc
import Synchronization

/// Set by SIGINT/SIGTERM (see `StopSignals.install`); live sessions check it every poll round.
public let stopRequested = Atomic<Bool>(false)

/// When the first stop signal came (CLOCK_MONOTONIC ns; 0: none yet).
let firstStopSignal = Atomic<UInt64>(0)

/// Signal handling for live commands.
public enum StopSignals {
    /// SIGINT and SIGTERM request a clean stop; a second one exits at once, unless it comes within
    /// half a second of the first (GNU `timeout`, and some supervisors, send the signal twice at
    /// once: the summary must still be printed). SIGPIPE is ignored so that a closed pipe shows up as
    /// EPIPE on write and ends the monitor cleanly.
    public static func install() {
        let handler: @convention(c) (Int32) -> Void = { signal in
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let now = (UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)) | 1
            let (_, first) = firstStopSignal.compareExchange(expected: 0, desired: now, ordering: .relaxed)
            stopRequested.store(true, ordering: .relaxed)
            if first != 0 && (now &- first) >= 500_000_000 { _exit(128 + signal) }
        }
        Glibc.signal(SIGINT, handler)
        Glibc.signal(SIGTERM, handler)
        Glibc.signal(SIGPIPE, SIG_IGN)
        // A parent may have started vxmon with them blocked (Foundation's Process does): a stop
        // request must reach it whoever started it.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}

/// The one-reader-per-lab lock: `flock` on `/run/vxmon/<lab>/monitor.lock`, held for the lifetime of
/// the object (and released by the kernel if the process dies). Perf and ring readers would
/// otherwise split or steal each other's events, so a second monitor is refused instead.
public final class MonitorLock {
    private let fd: Int32

    public init(paths: LabPaths) throws {
        try FileSystem.makeDirectories(paths.stateDirectory)
        let fd = open(paths.monitorLock, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw VxmonError("cannot open \(paths.monitorLock): \(errnoString(errno))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            let holder = MonitorLock.readPID(fd)
            close(fd)
            if code == EWOULDBLOCK {
                let who = holder.map { " (pid \($0))" } ?? ""
                throw VxmonError(
                    "another vxmon monitor or record\(who) is already reading lab '\(paths.lab)': a second reader "
                        + "would split its event stream; stop that one first")
            }
            throw VxmonError("cannot lock \(paths.monitorLock): \(errnoString(code))")
        }
        self.fd = fd
        // Record who holds it, for the message above and `lab status`.
        _ = ftruncate(fd, 0)
        let text = "\(getpid())\n"
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }

    /// The pid of the process holding the lock, or nil if nobody does.
    public static func holder(paths: LabPaths) -> Int32? {
        let fd = open(paths.monitorLock, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        return readPID(fd) ?? 0
    }

    private static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 31, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").first ?? "")
    }
}

/// The lab-wide lock that `lab up`, `lab down` (and later the agent) hold while they change a lab:
/// a Unix socket bound to the abstract name `vxmon-lab-<lab>`. The kernel releases it when the process
/// dies, however it dies, and it leaves no file behind. A second command waits for it (saying so),
/// and gives up with a message after `waitSeconds`.
public final class LabLock {
    private let fd: Int32

    public init(lab: String, waitSeconds: Double = 60, log: (String) -> Void = { _ in }) throws {
        // SOCK_STREAM | SOCK_CLOEXEC (1 | 0o2000000): Glibc's enum spellings do not import the same way
        // in every build configuration.
        let fd = socket(AF_UNIX, 1 | 0o2000000, 0)
        if fd < 0 { throw VxmonError("cannot create the lab lock socket: \(errnoString(errno))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let name = Array("vxmon-lab-\(lab)".utf8.prefix(100))
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            path[0] = 0  // abstract namespace
            for (i, b) in name.enumerated() { path[i + 1] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + name.count)
        let deadline = monotonicNanoseconds() + UInt64(max(waitSeconds, 0) * 1e9)
        var said = false
        while true {
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            if rc == 0 { break }
            let code = errno
            guard code == EADDRINUSE else {
                close(fd)
                throw VxmonError("cannot take the lock of lab '\(lab)': \(errnoString(code))")
            }
            if monotonicNanoseconds() >= deadline {
                close(fd)
                throw VxmonError(
                    "another vxmon lab command is still changing lab '\(lab)'; waited \(Int(waitSeconds)) s, giving up")
            }
            if !said {
                log("vxmon: another vxmon lab command is changing lab '\(lab)'; waiting for it")
                said = true
            }
            usleep(100_000)
        }
        self.fd = fd
    }

    deinit { close(fd) }
}
