import Foundation
import Testing
import VxmonCore

#if canImport(Glibc)
import Glibc
#endif

// A client refused by a socket's permissions is told why and what to do: the socket's mode and group
// (the group database's name, else the number), and for a vxmon agent's socket the agent's
// `--socket-group`. Run as user nobody (setpriv) against listening sockets this test makes itself,
// owned by root with mode 0660, so the refusal is the kernel's.

@Suite(
    "a socket's permissions refuse a client: the message names the group, and --socket-group for the agent's",
    .serialized, .enabled(if: getuid() == 0, "needs root to make root-owned sockets and to become nobody"))
struct SocketPermissionTests {
    /// A listening Unix socket at `path`, owner root, group `group`, mode 0660; closed by the caller.
    static func listeningSocket(_ path: String, group: gid_t) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        try #require(bytes.count < MemoryLayout.size(ofValue: address.sun_path))
        withUnsafeMutableBytes(of: &address.sun_path) { p in for (i, b) in bytes.enumerated() { p[i] = b } }
        unlink(path)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(rc == 0, "bind \(path): \(String(cString: strerror(errno)))")
        try #require(listen(fd, 4) == 0)
        try #require(chown(path, 0, group) == 0 && chmod(path, 0o660) == 0)
        return fd
    }

    /// Runs a copy of vxmon as nobody (group nogroup, no supplementary groups) with `arguments`.
    static func asNobody(_ arguments: [String]) throws -> ProcessResult {
        let setpriv = try #require(which("setpriv"), "setpriv (util-linux) is needed")
        let dir = NSTemporaryDirectory() + "/vxmon-perm-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A copy nobody can execute, made by cp (a descriptor of ours open for writing, inherited by
        // another test's child, would make exec fail with ETXTBSY).
        let binary = dir + "/vxmon"
        try #require(try run("/bin/cp", [Binary.vxmon, binary]).status == 0)
        chmod(dir, 0o755)
        chmod(binary, 0o755)
        let nogroup = getgrnam("nogroup").map { $0.pointee.gr_gid } ?? 65534
        return try run(setpriv, ["--reuid=65534", "--regid=\(nogroup)", "--clear-groups", binary] + arguments)
    }

    @Test("a socket elsewhere (a Cilium agent's): mode 0660, group root; run as root or as a member of group root")
    func ciliumSocket() throws {
        let dir = NSTemporaryDirectory() + "/vxmon-perm-sock-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o755)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/monitor1_2.sock"
        let fd = try Self.listeningSocket(path, group: 0)
        defer { close(fd) }
        // Permissions do not change by waiting: --monitor-socket says why it cannot connect and ends
        // (status 1) at once, long before its --duration.
        let r = try Self.asNobody(["--monitor-socket", path, "--duration", "600"])
        #expect(r.status == 1 && !r.stderr.contains("waiting for"), "\(r.status): \(r.stderr)")
        #expect(
            r.stderr.contains(
                "cannot connect to \(path): Permission denied: the socket is mode 0660, group root; "
                    + "run as root or as a member of group root"), "\(r.stderr)")
        #expect(!r.stderr.contains("--socket-group"), "not a vxmon agent's socket: \(r.stderr)")
    }

    @Test("a lab agent's socket (under /run/vxmon): the group by name, or by number without one; the agent's --socket-group")
    func agentSocket() throws {
        // A lab name no lab has: only the socket is made under it, and removed.
        let lab = "vxt\(getpid() % 100_000)perm\(UInt32.random(in: 0..<1_000_000))"
        let dir = "/run/vxmon/\(lab)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o755)
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            rmdir("/run/vxmon")  // only if no lab is left in it
        }
        let path = dir + "/vxmon.sock"
        // A group with a name (root), and a group id the group database does not have.
        var unnamed: gid_t = 54_321
        while getgrgid(unnamed) != nil { unnamed += 1 }
        for (gid, name) in [(gid_t(0), "root"), (unnamed, "\(unnamed)")] {
            let fd = try Self.listeningSocket(path, group: gid)
            defer { close(fd) }
            let r = try Self.asNobody(["--monitor-socket", path, "--duration", "0.5"])
            #expect(
                r.stderr.contains(
                    "cannot connect to \(path): Permission denied: the socket is mode 0660, group \(name); "
                        + "run as root or as a member of group \(name), or have the lab's agent give it to a group of "
                        + "yours: `vxmon agent --lab \(lab) --socket-group GROUP`"), "\(r.stderr)")
        }
    }
}
