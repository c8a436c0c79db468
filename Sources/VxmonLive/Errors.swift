import Glibc

/// A failed C call, with the errno captured right after it: what `SystemError` (plain system calls)
/// and `LibbpfError` (libbpf's) have in common, and the one place their text is made.
///
/// Functions that return `int` give `-errno` (libbpf 1.x) or -1 with `errno` set; those that return
/// pointers give `NULL` and set `errno`. Both are turned into the error at the call site, before
/// anything else can overwrite `errno`.
public protocol ErrnoError: Error, CustomStringConvertible, Sendable {
    /// The C function that failed, e.g. `setns` or `bpf_obj_get`.
    var function: StaticString { get }
    /// The positive errno value.
    var code: Int32 { get }
    /// What the call was about (a path, an interface, a map name), if known.
    var subject: String? { get }

    init(function: StaticString, code: Int32, subject: String?)
}

extension ErrnoError {
    /// Captures the current `errno` (for calls that return NULL or -1).
    public static func errno(_ function: StaticString, _ subject: String? = nil) -> Self {
        Self(function: function, code: Glibc.errno, subject: subject)
    }

    /// Throws for a negative return value (`-errno`); returns the value otherwise.
    @discardableResult
    public static func check(_ result: Int32, _ function: StaticString, _ subject: String? = nil) throws(Self)
        -> Int32
    {
        if result < 0 { throw Self(function: function, code: -result, subject: subject) }
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

/// A failed system call (epoll, sockets, setns, open, ...) made by the live side.
public struct SystemError: ErrnoError {
    public let function: StaticString
    public let code: Int32
    public let subject: String?

    public init(function: StaticString, code: Int32, subject: String? = nil) {
        self.function = function
        self.code = code
        self.subject = subject
    }
}

/// A one-line error for the user that says what to do, e.g. "lab 'vxmon' is not up: run `vxmon lab up`".
public struct VxmonError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `strerror` as a Swift string.
public func errnoString(_ code: Int32) -> String { String(cString: strerror(code)) }
