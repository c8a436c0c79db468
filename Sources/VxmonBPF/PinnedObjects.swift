import CLibbpf
import Glibc
import VxmonLive

/// A program or map a lab pinned, by its kernel id: what `lab down` checks the kernel has freed once
/// the lab is gone. Removing the pins and the namespaces is not enough to free them: a pin of the
/// same object elsewhere (moved or added), or a process left inside a node's namespace (which keeps
/// the namespace, its links and the programs attached to them), keeps them loaded.
public struct PinnedObject: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable { case program, map }

    public let kind: Kind
    /// The kernel's id (ids are handed out cyclically up to 2^31, so a freed one is not soon reused).
    public let id: UInt32
    /// The pin's file name: the program's or map's name.
    public let name: String

    public var description: String { "\(kind.rawValue) \(name) (id \(id))" }

    /// Every program and map pinned under `directory` (not following links; at most `limit` pins,
    /// `depth` levels), each once.
    public static func collect(under directory: String, limit: Int = 4096, depth: Int = 8) -> [PinnedObject] {
        var found: [PinnedObject] = []
        var seen = Set<PinnedObject>()
        func walk(_ path: String, _ level: Int) {
            for entry in FileSystem.listDirectory(path) where found.count < limit {
                let child = path + "/" + entry
                var st = stat()
                guard lstat(child, &st) == 0 else { continue }
                if st.st_mode & S_IFMT == S_IFDIR {
                    if level < depth { walk(child, level + 1) }
                } else if st.st_mode & S_IFMT == S_IFREG, let object = PinnedObject(pinned: child, name: entry),
                    seen.insert(object).inserted
                {
                    found.append(object)
                }
            }
        }
        walk(directory, 0)
        return found
    }

    /// The object pinned at `path` (bpf_obj_get; the kernel's file type says program or map), or nil.
    init?(pinned path: String, name: String) {
        guard let object = try? BPFMap(pinned: path), let id = object.objectID else { return nil }
        switch FileSystem.readLink("/proc/self/fd/\(object.fd)") {
        case "anon_inode:bpf-prog": kind = .program
        case "anon_inode:bpf-map": kind = .map
        default: return nil
        }
        self.id = id
        self.name = name
    }

    /// Whether the kernel still has it (bpf_prog_get_fd_by_id or bpf_map_get_fd_by_id, which need
    /// CAP_SYS_ADMIN); nil if it cannot tell.
    public var isLoaded: Bool? {
        let fd = kind == .program ? bpf_prog_get_fd_by_id(id) : bpf_map_get_fd_by_id(id)
        if fd >= 0 {
            close(fd)
            return true
        }
        // libbpf 1.x returns -errno.
        return -fd == ENOENT ? false : nil
    }
}
