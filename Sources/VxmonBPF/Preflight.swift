import CLibbpf
import Glibc

/// The checks every privileged command runs first, each failing with a one-line error that says
/// what to do.
public enum Preflight {
    public static let bpffs = "/sys/fs/bpf"
    public static let kernelBTF = "/sys/kernel/btf/vmlinux"
    public static let objectName = "vxmon.bpf.o"

    /// The running executable (/proc/self/exe).
    public static var executablePath: String? { FileSystem.executablePath() }

    public static var isRoot: Bool { geteuid() == 0 }

    public static func requireRoot(_ command: String) throws {
        if !isRoot {
            throw VxmonError(
                "vxmon \(command) needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN): run it with sudo")
        }
    }

    /// Calls statfs (through a shim) and compares f_type with BPF_FS_MAGIC.
    public static var hasBPFFS: Bool { vxmon_shim_is_bpffs(bpffs) != 0 }

    public static func requireBPFFS() throws {
        if !hasBPFFS {
            throw VxmonError("no BPF filesystem at \(bpffs): mount it with `mount -t bpf bpf \(bpffs)` (as root)")
        }
    }

    public static var hasBTF: Bool { access(kernelBTF, R_OK) == 0 }

    public static func requireBTF() throws {
        if !hasBTF {
            throw VxmonError(
                "this kernel has no BTF (\(kernelBTF) is missing): "
                    + "vxmon needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
            )
        }
    }

    /// Root, bpffs and BTF, in that order.
    public static func requirePrivileged(_ command: String) throws {
        try requireRoot(command)
        try requireBPFFS()
        try requireBTF()
    }

    /// The BPF object: `explicit` (--bpf-object), else $VXMON_BPF_OBJECT, else vxmon.bpf.o next to the
    /// executable, else bpf/.output/vxmon.bpf.o in a directory above the executable (a source checkout).
    public static func locateObject(explicit: String? = nil) throws -> String {
        if let explicit {
            guard access(explicit, R_OK) == 0 else {
                throw VxmonError("BPF object \(explicit) (--bpf-object) cannot be read: \(errnoString(errno))")
            }
            return explicit
        }
        if let env = getenv("VXMON_BPF_OBJECT").map({ String(cString: $0) }), !env.isEmpty {
            guard access(env, R_OK) == 0 else {
                throw VxmonError("BPF object \(env) (VXMON_BPF_OBJECT) cannot be read: \(errnoString(errno))")
            }
            return env
        }
        if let exe = FileSystem.executablePath() {
            var dir = parent(exe)
            let beside = "\(dir)/\(objectName)"
            if access(beside, R_OK) == 0 { return beside }
            while dir != "/" && !dir.isEmpty {
                let candidate = "\(dir)/bpf/.output/\(objectName)"
                if access(candidate, R_OK) == 0 { return candidate }
                dir = parent(dir)
            }
        }
        throw VxmonError(
            "BPF object \(objectName) not found (looked next to the executable and in bpf/.output above it): "
                + "build it with `make -C bpf`, or pass --bpf-object PATH")
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
