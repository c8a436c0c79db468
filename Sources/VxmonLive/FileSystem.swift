import Glibc

/// The few file operations the lab and the live side need, on plain Glibc calls.
public enum FileSystem {
    package static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Entry names of a directory (without . and ..); empty if it cannot be read.
    package static func listDirectory(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public static func read(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw VxmonError("cannot read \(path): \(errnoString(errno))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw VxmonError("cannot read \(path): \(errnoString(errno))")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `text` to `path` (created 0644 or truncated).
    package static func write(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw VxmonError("cannot write \(path): \(errnoString(errno))") }
        defer { close(fd) }
        var text = text
        try text.withUTF8 { p in
            var done = 0
            while done < p.count {
                let n = Glibc.write(fd, p.baseAddress! + done, p.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw VxmonError("cannot write \(path): \(errnoString(errno))")
                }
                done += n
            }
        }
    }

    /// Writes `text` to `path` (replacing it) through a temporary file and a rename.
    public static func writeText(_ path: String, _ text: String) throws { try writeAtomically(path, text) }

    /// Writes `text` to a temporary file next to `path` and renames it over `path`.
    package static func writeAtomically(_ path: String, _ text: String) throws {
        let temporary = path + ".tmp"
        try write(temporary, text)
        if rename(temporary, path) != 0 {
            throw VxmonError("cannot rename \(temporary) to \(path): \(errnoString(errno))")
        }
    }

    /// mkdir -p.
    package static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw VxmonError("cannot create \(current): \(errnoString(errno))")
            }
        }
    }

    /// What makes the directory at `path` unfit to hold what only root may change, or nil if it is
    /// fit: a symbolic link, not a directory, not owned by root, or writable by its group or others.
    /// nil too when it does not exist (`exists` then says false).
    package static func rootOnlyProblem(_ path: String) -> (exists: Bool, problem: String?) {
        var st = stat()
        if lstat(path, &st) != 0 {
            return errno == ENOENT ? (false, nil) : (true, "cannot be examined (\(errnoString(errno)))")
        }
        return (true, rootOnlyProblem(st))
    }

    /// What makes a directory with status `st` (from lstat or fstat) unfit to hold what only root
    /// may change, or nil.
    package static func rootOnlyProblem(_ st: stat) -> String? {
        let type = st.st_mode & S_IFMT
        if type == S_IFLNK { return "is a symbolic link" }
        if type != S_IFDIR { return "is not a directory" }
        if st.st_uid != 0 { return "is owned by uid \(st.st_uid), not by root" }
        if st.st_mode & 0o022 != 0 { return "is writable by its group or by others (mode \(octalMode(st)))" }
        return nil
    }

    /// A mode's permission bits as `0755`.
    package static func octalMode(_ st: stat) -> String {
        let digits = String(st.st_mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// The refusal for a directory vxmon will not use, naming it, why, and how to get past it.
    package static func rootOnlyRefusal(_ path: String, _ problem: String, what: String) -> VxmonError {
        VxmonError(
            "refusing to use \(path): it \(problem), and vxmon keeps \(what) only where nobody but root can move or "
                + "replace them. vxmon makes that directory itself, owned by root and writable by no one else: "
                + "remove it as root (`rm -r \(path)`) and run the command again")
    }

    /// mkdir -m `mode` for each of `paths` in order (each the parent of the next), then checks each is
    /// a directory only root can change (`rootOnlyProblem`). A directory that exists is checked, not
    /// changed. Throws the refusal for the first that fails.
    package static func makeRootOnlyDirectories(_ paths: [String], mode: mode_t = 0o700, what: String) throws {
        for path in paths {
            if mkdir(path, mode) != 0 && errno != EEXIST {
                throw VxmonError("cannot create \(path): \(errnoString(errno))")
            }
            let (_, problem) = rootOnlyProblem(path)
            if let problem { throw rootOnlyRefusal(path, problem, what: what) }
        }
    }

    /// rm -rf (does not follow symlinks). Returns false if something could not be removed.
    @discardableResult
    package static func removeTree(_ path: String) -> Bool {
        var st = stat()
        if lstat(path, &st) != 0 { return errno == ENOENT }
        var ok = true
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in listDirectory(path) { ok = removeTree(path + "/" + name) && ok }
            if rmdir(path) != 0 && errno != ENOENT { ok = false }
        } else if unlink(path) != 0 && errno != ENOENT {
            ok = false
        }
        return ok
    }

    /// The absolute path of the running executable.
    package static func executablePath() -> String? { readLink("/proc/self/exe") }

    /// Where the symbolic link at `path` points (at most PATH_MAX bytes), or nil.
    package static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The realtime clock in nanoseconds since the Unix epoch.
@inline(__always)
public func wallClockNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// A monotonic clock in nanoseconds.
@inline(__always)
package func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
