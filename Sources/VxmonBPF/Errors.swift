import VxmonLive

/// A failed libbpf (or BPF/netlink syscall) call, with the errno captured right after the call
/// (`ErrnoError` says how, and makes its text). Plain system calls fail with `SystemError`.
public struct LibbpfError: ErrnoError {
    /// The C function that failed, e.g. `bpf_obj_get`.
    public let function: StaticString
    public let code: Int32
    public let subject: String?

    public init(function: StaticString, code: Int32, subject: String? = nil) {
        self.function = function
        self.code = code
        self.subject = subject
    }
}
