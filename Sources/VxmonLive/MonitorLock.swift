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

/// The one-reader-per-lab lock: `flock` on `monitor-<lab>.lock` in vxmon's root-only lock directory
/// (`LockFiles`), held for the lifetime of the object (and released by the kernel if the process
/// dies). Perf and ring readers would otherwise split or steal each other's events, so a second
/// monitor is refused instead. The file holds the holder's pid.
public final class MonitorLock {
    private let fd: Int32

    public init(paths: LabPaths) throws {
        switch try LockFiles.tryLock(paths.monitorLockName, create: true) {
        case .taken(let fd):
            self.fd = fd
        case .busy(let holder):
            let who = holder.map { " (pid \($0))" } ?? ""
            throw VxmonError(
                "another vxmon monitor or record\(who) is already reading lab '\(paths.lab)': a second reader "
                    + "would split its event stream; stop that one first")
        case .missing:
            throw VxmonError("cannot create \(paths.monitorLock)")
        }
        // Record who holds it, for the message above and `lab status`.
        LockFiles.writePID(fd)
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }

    /// The pid of the process holding the lock (0 if it wrote none), or nil if nobody does. A user
    /// who may not open the lock (anyone but root) is answered from /proc/locks.
    /// Asked from /proc/locks for root too: a shared lock taken to ask, however briefly, would make a
    /// reader starting at that moment find the lock busy and be refused.
    public static func holder(paths: LabPaths) -> Int32? {
        LockFiles.exclusiveHolder(paths.monitorLock)
    }

    /// Removes the lock's file unless a reader holds it (`lab down`, once the lab is gone). Returns
    /// the holder's pid (0 if it wrote none) when a reader still holds it, else nil.
    public static func removeIfFree(paths: LabPaths) -> Int32? {
        switch try? LockFiles.tryLock(paths.monitorLockName, create: false) {
        case .taken(let fd)?:
            LockFiles.remove(paths.monitorLockName, holding: fd)
            close(fd)
            return nil
        case .busy(let holder)?:
            return holder ?? 0
        case .missing?, nil:
            return nil
        }
    }
}

/// The lab-wide lock that `lab up`, `lab down` (and an agent while it starts) hold while they change
/// a lab: `flock` on `lab-<lab>.lock` in vxmon's root-only lock directory (`LockFiles`). The kernel
/// releases it when the process dies, however it dies. A second command waits for it (saying so),
/// and gives up with a message after `waitSeconds`. Only root can open the file, so no other user
/// can hold it (an abstract socket name, used before, anyone could bind).
public final class LabLock {
    private let fd: Int32
    private let name: String

    public init(lab: String, waitSeconds: Double = 60, log: (String) -> Void = { _ in }) throws {
        let paths = LabPaths(lab: lab)
        name = paths.labLockName
        let deadline = monotonicNanoseconds() + UInt64(max(waitSeconds, 0) * 1e9)
        var said = false
        while true {
            switch try LockFiles.tryLock(name, create: true) {
            case .taken(let fd):
                self.fd = fd
                LockFiles.writePID(fd)
                return
            case .busy(let holder):
                let who = holder.map { " (pid \($0))" } ?? ""
                if monotonicNanoseconds() >= deadline {
                    throw VxmonError(
                        "another vxmon lab command\(who) is still changing lab '\(lab)'; waited \(Int(waitSeconds)) s, "
                            + "giving up")
                }
                if !said {
                    log("vxmon: another vxmon lab command\(who) is changing lab '\(lab)'; waiting for it")
                    said = true
                }
                usleep(100_000)
            case .missing:
                throw VxmonError("cannot create \(paths.labLock)")
            }
        }
    }

    /// Removes the lock's file while holding it (`lab down`, once the lab is gone), so that nothing
    /// is left behind; a command waiting for the lock finds its file gone and makes a new one.
    public func removeFile() { LockFiles.remove(name, holding: fd) }

    deinit { close(fd) }
}

/// vxmon's lock files: `flock` on files in `LabPaths.lockDirectory`, a directory only root can list
/// or write. The directory is made 0711 and checked before every use (a directory, not a symbolic
/// link, owned by root, not writable by its group or others; /run/vxmon above it too); each file is
/// made 0600 and opened with O_NOFOLLOW relative to the checked directory. So no other user can open
/// a lock to hold it, nor create, replace or remove one. The kernel releases a lock when its holder
/// dies. Others may only stat a lock (the 1 bits): with /proc/locks, that tells a client running as
/// another user whether the lab's agent is alive (`MonitorLock.holder`).
///
/// A holder may remove its lock's file just before it lets go (`lab down` does): whoever then takes
/// the lock of the removed file finds that the name no longer leads to it, and starts again.
package enum LockFiles {
    /// How many times a lock is opened again after its file (or directory) went away under it.
    static let reopenLimit = 100

    package enum Attempt {
        /// Locked (LOCK_EX): the descriptor, to keep open while the lock is held.
        case taken(Int32)
        /// Another process holds it; its pid if it wrote one.
        case busy(Int32?)
        /// There is no such lock (only without `create`).
        case missing
    }

    /// Takes lock `name` (LOCK_EX) without waiting; with `create`, makes its directory and file first.
    package static func tryLock(_ name: String, create: Bool) throws -> Attempt {
        for _ in 0..<reopenLimit {
            guard let opened = try open(name, create: create, writable: true) else {
                // Without `create`: there is none. With it: the directory went away between making and
                // opening it (`lab down` of the last lab), so make it again.
                if create { continue }
                return .missing
            }
            defer { close(opened.directory) }
            if flock(opened.file, LOCK_EX | LOCK_NB) != 0 {
                let code = errno
                let holder = readPID(opened.file)
                close(opened.file)
                if code == EWOULDBLOCK { return .busy(holder) }
                throw VxmonError("cannot lock \(LabPaths.lockDirectory)/\(name): \(errnoString(code))")
            }
            if isCurrent(directory: opened.directory, file: opened.file, name: name) { return .taken(opened.file) }
            // Its holder removed it before letting go: the lock is now a new file of that name.
            close(opened.file)
        }
        throw VxmonError(
            "cannot lock \(LabPaths.lockDirectory)/\(name): it was removed under this command \(reopenLimit) times")
    }

    /// Opens lock `name` (made 0600 with `create`; O_NOFOLLOW, relative to the checked directory), a
    /// regular file, with the directory's descriptor. nil: it does not exist.
    package static func open(_ name: String, create: Bool, writable: Bool) throws -> (directory: Int32, file: Int32)? {
        guard !name.isEmpty, name != ".", name != "..", !name.utf8.contains(UInt8(ascii: "/")) else {
            throw VxmonError("invalid lock name '\(name)'")
        }
        let path = "\(LabPaths.lockDirectory)/\(name)"
        guard let directory = try openDirectory(create: create) else { return nil }
        let flags = (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT : 0)
        let fd = openat(directory, name, flags, 0o600)
        if fd < 0 {
            let code = errno
            close(directory)
            if code == ENOENT { return nil }
            throw VxmonError("cannot open \(path): \(errnoString(code))")
        }
        var st = stat()
        if fstat(fd, &st) != 0 || st.st_mode & S_IFMT != S_IFREG {
            close(fd)
            close(directory)
            throw VxmonError(
                "refusing to use \(path): it is not a regular file; remove it as root (`rm -r \(path)`) and run the "
                    + "command again")
        }
        // Made 0600 by vxmon; a wider mode (set by someone root) is narrowed again.
        if st.st_mode & 0o077 != 0 { _ = fchmod(fd, 0o600) }
        return (directory, fd)
    }

    /// The lock directory's mode: rwx for root, search (stat of a known name) for others.
    static let directoryMode: mode_t = 0o711

    /// The lock directory, opened (O_DIRECTORY | O_NOFOLLOW) and checked, with /run/vxmon above it;
    /// with `create` both are made first (0755 and 0711). nil: it does not exist.
    static func openDirectory(create: Bool) throws -> Int32? {
        let root = LabPaths.stateRoot
        let name = String(LabPaths.lockDirectory.dropFirst(root.count + 1))
        if create && mkdir(root, 0o755) != 0 && errno != EEXIST {
            throw VxmonError("cannot create \(root): \(errnoString(errno))")
        }
        let rootFD = try openChecked(AT_FDCWD, root, path: root)
        guard let rootFD else { return nil }
        defer { close(rootFD) }
        if create && mkdirat(rootFD, name, directoryMode) != 0 && errno != EEXIST {
            throw VxmonError("cannot create \(LabPaths.lockDirectory): \(errnoString(errno))")
        }
        guard let fd = try openChecked(rootFD, name, path: LabPaths.lockDirectory) else { return nil }
        // Checked: root's, writable by no one else. Its exact mode again if a umask narrowed it (best
        // effort: a user who is not root, with capabilities, may not).
        var st = stat()
        if fstat(fd, &st) == 0 && st.st_mode & 0o7777 != directoryMode { _ = fchmod(fd, directoryMode) }
        return fd
    }

    /// Opens directory `name` (relative to `directory`) without following a link and checks it is
    /// one only root can change. nil: it does not exist.
    private static func openChecked(_ directory: Int32, _ name: String, path: String) throws -> Int32? {
        let fd = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT { return nil }
            // Not allowed: this user is not root; removing the directory is not the fix (and, done
            // while a lab command holds a lock in it, would let a second one take the same lock).
            if code == EACCES || code == EPERM {
                throw VxmonError("cannot open \(path): \(errnoString(code)); lab commands that take its locks run as root")
            }
            // ELOOP or ENOTDIR: a link or a file in its place; say which.
            let problem = FileSystem.rootOnlyProblem(path).problem ?? "cannot be opened (\(errnoString(code)))"
            throw FileSystem.rootOnlyRefusal(path, problem, what: "its locks")
        }
        var st = stat()
        let problem =
            fstat(fd, &st) != 0 ? "cannot be examined (\(errnoString(errno)))" : FileSystem.rootOnlyProblem(st)
        if let problem {
            close(fd)
            throw FileSystem.rootOnlyRefusal(path, problem, what: "its locks")
        }
        return fd
    }

    /// Whether `name` in `directory` still leads to the open file `file`.
    static func isCurrent(directory: Int32, file: Int32, name: String) -> Bool {
        var held = stat()
        var named = stat()
        guard fstat(file, &held) == 0, fstatat(directory, name, &named, AT_SYMLINK_NOFOLLOW) == 0 else { return false }
        return held.st_dev == named.st_dev && held.st_ino == named.st_ino
    }

    /// Removes lock `name` while `fd` holds it, if the name still leads to that file.
    package static func remove(_ name: String, holding fd: Int32) {
        guard let directory = try? openDirectory(create: false) else { return }
        defer { close(directory) }
        if isCurrent(directory: directory, file: fd, name: name) { unlinkat(directory, name, 0) }
    }

    /// The pid holding an exclusive flock on the file at `path`, from /proc/locks (which anyone may
    /// read), for a caller who may not open the file; nil if none does. Read in blocks, one line at a
    /// time: other users' locks make it as long as they like.
    static func exclusiveHolder(_ path: String) -> Int32? {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        // /proc/locks names a file as MAJOR:MINOR:INODE, the device numbers in hex (glibc's major()
        // and minor() encoding of st_dev).
        let dev = UInt64(st.st_dev)
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)
        let minor = (dev & 0xff) | ((dev >> 12) & ~0xff)
        func hex(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return s.count < 2 ? "0" + s : s
        }
        let file = "\(hex(major)):\(hex(minor)):\(st.st_ino)"
        let fd = Glibc.open("/proc/locks", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var line: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = block.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            for byte in block[0..<n] {
                if byte != UInt8(ascii: "\n") {
                    // A line is about 60 bytes; a longer one is not a lock of ours.
                    if line.count < 256 { line.append(byte) }
                    continue
                }
                // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:1441860 0 EOF"; a waiter's line has "->" after the
                // number and is not the holder.
                let fields = String(decoding: line, as: UTF8.self).split(separator: " ")
                line.removeAll(keepingCapacity: true)
                if fields.count >= 6, fields[1] == "FLOCK", fields[3] == "WRITE", fields[5] == file,
                    let pid = Int32(fields[4])
                {
                    return pid
                }
            }
        }
    }

    /// Replaces the file's content with this process's pid.
    static func writePID(_ fd: Int32) {
        _ = ftruncate(fd, 0)
        let text = "\(getpid())\n"
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 31, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").first ?? "")
    }
}
