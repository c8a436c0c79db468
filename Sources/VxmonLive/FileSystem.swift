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
    package static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
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
