import CLibbpf
import Glibc
import VxmonLive

/// A tc ingress attachment (clsact qdisc + direct-action BPF filter) inside a network namespace.
///
/// `deinit` detaches (`bpf_tc_detach`, then `bpf_tc_hook_destroy`) unless `keep()` was called: the
/// lab attaches, fills its maps, and only then keeps its attachments, so a failure halfway leaves
/// nothing attached. All netlink calls run on a thread that entered the namespace.
public final class TCAttachment {
    /// The handle and priority vxmon's filters use.
    public static let handle: UInt32 = 1
    public static let priority: UInt32 = 1

    public let namespace: String
    public let interface: String
    public let ifindex: Int32
    private var attached = true

    init(namespace: String, interface: String, ifindex: Int32) {
        self.namespace = namespace
        self.interface = interface
        self.ifindex = ifindex
    }

    deinit {
        if attached { try? detach() }
    }

    /// Attaches `programFD` to the ingress of each interface, in the namespace `namespace`.
    /// Calls `bpf_tc_hook_create` (an existing clsact qdisc is reused) and `bpf_tc_attach`.
    public static func attach(in namespace: String, _ programs: [(interface: String, programFD: Int32)]) throws
        -> [TCAttachment]
    {
        try NetworkNamespace.run(in: namespace) {
            var done: [TCAttachment] = []
            for (interface, programFD) in programs {
                let ifindex = try NetworkNamespace.ifindex(interface)
                var hook = makeHook(ifindex)
                let rc = bpf_tc_hook_create(&hook)
                if rc < 0 && rc != -EEXIST {
                    throw LibbpfError(function: "bpf_tc_hook_create", code: -rc, subject: "\(namespace)/\(interface)")
                }
                var opts = makeOptions()
                opts.prog_fd = programFD
                opts.flags = UInt32(BPF_TC_F_REPLACE.rawValue)
                try LibbpfError.check(bpf_tc_attach(&hook, &opts), "bpf_tc_attach", "\(namespace)/\(interface)")
                done.append(TCAttachment(namespace: namespace, interface: interface, ifindex: ifindex))
            }
            return done
        }
    }

    /// The id of the program attached by vxmon to `interface`'s ingress, or nil. Calls `bpf_tc_query`.
    /// Must run on a thread inside the namespace.
    public static func queryProgramID(ifindex: Int32) -> UInt32? {
        var hook = makeHook(ifindex)
        var opts = makeOptions()
        opts.handle = handle
        opts.priority = priority
        guard bpf_tc_query(&hook, &opts) == 0 else { return nil }
        return opts.prog_id
    }

    /// Leaves the program attached when this object goes away (the lab outlives the process).
    public func keep() { attached = false }

    /// Detaches the filter and removes the clsact qdisc (idempotent). Calls `bpf_tc_detach` and
    /// `bpf_tc_hook_destroy`.
    public func detach() throws {
        guard attached else { return }
        attached = false
        let ifindex = self.ifindex
        let label = "\(namespace)/\(interface)"
        try NetworkNamespace.run(in: namespace) {
            var hook = TCAttachment.makeHook(ifindex)
            var opts = TCAttachment.makeOptions()
            let rc = bpf_tc_detach(&hook, &opts)
            if rc < 0 && rc != -ENOENT && rc != -ENODEV {
                throw LibbpfError(function: "bpf_tc_detach", code: -rc, subject: label)
            }
            hook.attach_point = bpf_tc_attach_point(rawValue: BPF_TC_INGRESS.rawValue | BPF_TC_EGRESS.rawValue)
            _ = bpf_tc_hook_destroy(&hook)
        }
    }

    static func makeHook(_ ifindex: Int32) -> bpf_tc_hook {
        var hook = bpf_tc_hook()
        // libbpf rejects non-zero bytes between its last field and `sz`, and Swift copies of the struct
        // do not preserve tail padding: declare the size up to the end of the last field (`parent`),
        // as libbpf's own offsetofend check does.
        hook.sz = MemoryLayout<bpf_tc_hook>.offset(of: \.parent)! + MemoryLayout<UInt32>.size
        hook.ifindex = ifindex
        hook.attach_point = BPF_TC_INGRESS
        return hook
    }

    static func makeOptions() -> bpf_tc_opts {
        var opts = bpf_tc_opts()
        opts.sz = MemoryLayout<bpf_tc_opts>.offset(of: \.priority)! + MemoryLayout<UInt32>.size
        opts.handle = handle
        opts.priority = priority
        return opts
    }
}
