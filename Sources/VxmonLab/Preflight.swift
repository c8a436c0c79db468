import CVxmonSystem
import Glibc
import VxmonLive

/// The checks every privileged command runs first, each failing with a one-line error that says
/// what to do.
public enum Preflight {
    public static let bpffs = "/sys/fs/bpf"
    public static let kernelBTF = "/sys/kernel/btf/vmlinux"
    public static let objectName = "vxmon.bpf.o"

    /// The running executable (/proc/self/exe).
    public static var executablePath: String? { FileSystem.executablePath() }

    public static var isRoot: Bool { geteuid() == 0 }

    /// Linux capabilities vxmon's commands need (bit numbers from linux/capability.h).
    public enum Capability: Int, CaseIterable, Sendable {
        case dacOverride = 1
        case netAdmin = 12
        case sysAdmin = 21
        case perfmon = 38
        case bpf = 39

        public var name: String {
            switch self {
            case .dacOverride: "CAP_DAC_OVERRIDE"
            case .netAdmin: "CAP_NET_ADMIN"
            case .sysAdmin: "CAP_SYS_ADMIN"
            case .perfmon: "CAP_PERFMON"
            case .bpf: "CAP_BPF"
            }
        }

        var setprivName: String {
            switch self {
            case .dacOverride: "dac_override"
            case .netAdmin: "net_admin"
            case .sysAdmin: "sys_admin"
            case .perfmon: "perfmon"
            case .bpf: "bpf"
            }
        }
    }

    /// What each kind of command needs, measured by running it as an unprivileged user holding only
    /// these (setpriv, kernel with unprivileged BPF disabled): CAP_SYS_ADMIN for setns into the lab's
    /// namespaces (it also grants the bpf() and perf_event_open() calls CAP_BPF and CAP_PERFMON
    /// would), CAP_DAC_OVERRIDE for the root-owned pins and state, CAP_NET_ADMIN to build networks.
    public enum Needs {
        /// monitor, record: read the lab's maps and buffers, resolve names inside each node.
        public static let reader: [Capability] = [.sysAdmin, .dacOverride]
        /// lab up, lab down, lab bench: build and remove namespaces, links, programs and pins.
        public static let builder: [Capability] = [.sysAdmin, .netAdmin, .dacOverride]
        /// lab status, the list commands and policy: read and write the lab's maps.
        public static let maps: [Capability] = [.sysAdmin, .dacOverride]
        /// lab exec: enter a pod's namespace.
        public static let exec: [Capability] = [.sysAdmin]
    }

    /// The effective capability set of this process (/proc/self/status CapEff).
    public static func effectiveCapabilities() -> UInt64 {
        guard let status = try? FileSystem.read("/proc/self/status") else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            return UInt64(String(line.dropFirst(7).filter { $0 != " " && $0 != "\t" }), radix: 16) ?? 0
        }
        return 0
    }

    /// Fails with the missing capabilities and how to grant them (a uid of 0 is not what counts).
    public static func requireCapabilities(_ command: String, _ needs: [Capability]) throws {
        let effective = effectiveCapabilities()
        let missing = needs.filter { effective & (1 << UInt64($0.rawValue)) == 0 }
        guard !missing.isEmpty else { return }
        let all = needs.map(\.name).joined(separator: ", ")
        let grant = needs.map { "+" + $0.setprivName }.joined(separator: ",")
        throw VxmonError(
            "vxmon \(command) needs \(all) (missing: \(missing.map(\.name).joined(separator: ", "))): run it as "
                + "root, or grant them, e.g. setpriv --inh-caps=\(grant) --ambient-caps=\(grant) ...")
    }

    public static func requireRoot(_ command: String) throws {
        try requireCapabilities(command, command.hasPrefix("lab exec") ? Needs.exec : Needs.maps)
    }

    /// Calls statfs (through a shim) and compares f_type with BPF_FS_MAGIC.
    public static var hasBPFFS: Bool { vxmon_shim_is_bpffs(bpffs) != 0 }

    public static func requireBPFFS() throws {
        if !hasBPFFS {
            throw VxmonError("no BPF filesystem at \(bpffs): mount it with `mount -t bpf bpf \(bpffs) -o mode=0700` (as root)")
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
        let builds = command.hasPrefix("lab up") || command.hasPrefix("lab down") || command.hasPrefix("lab bench") || command.hasPrefix("lab soak")
        let reads = command == "monitor" || command == "record" || command == "agent"
        try requireCapabilities(command, builds ? Needs.builder : reads ? Needs.reader : Needs.maps)
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
