import CLibbpf
import Glibc

/// A failed libbpf (or BPF/netlink syscall) call, with the errno captured right after the call.
///
/// libbpf 1.x functions that return `int` give `-errno`; those that return pointers give `NULL` and
/// set `errno`. Both are turned into this error at the call site, before anything else can
/// overwrite `errno`.
public struct LibbpfError: Error, CustomStringConvertible, Sendable {
    /// The C function that failed, e.g. `bpf_obj_get`.
    public let function: StaticString
    /// The positive errno value.
    public let code: Int32
    /// What the call was about (a path, an interface, a map name), if known.
    public let subject: String?

    public init(function: StaticString, code: Int32, subject: String? = nil) {
        self.function = function
        self.code = code
        self.subject = subject
    }

    /// Captures the current `errno` (for calls that return NULL or -1).
    public static func errno(_ function: StaticString, _ subject: String? = nil) -> LibbpfError {
        LibbpfError(function: function, code: Glibc.errno, subject: subject)
    }

    /// Throws for a negative libbpf return value (`-errno`); returns the value otherwise.
    @discardableResult
    public static func check(_ result: Int32, _ function: StaticString, _ subject: String? = nil) throws(LibbpfError)
        -> Int32
    {
        if result < 0 { throw LibbpfError(function: function, code: -result, subject: subject) }
        return result
    }

    /// True for EPERM/EACCES: the process lacks root or the BPF/network capabilities.
    public var isPermissionError: Bool { code == EPERM || code == EACCES }

    public var description: String {
        var s = "\(function)"
        if let subject { s += " (\(subject))" }
        s += ": \(String(cString: strerror(code)))"
        if isPermissionError {
            s += "; vxmon needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN): run it with sudo"
        }
        return s
    }
}

/// A one-line error for the user that says what to do, e.g. "lab 'vxmon' is not up: run `vxmon lab up`".
public struct VxmonError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `strerror` as a Swift string.
public func errnoString(_ code: Int32) -> String { String(cString: strerror(code)) }
