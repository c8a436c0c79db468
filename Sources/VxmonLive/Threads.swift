import CVxmonSystem
import Glibc

/// Runs closures on dedicated POSIX threads. Network namespaces are per thread (`setns` changes only
/// the calling thread), and blocking polls must not run on Swift concurrency's cooperative pool.
public enum DedicatedThread {
    private final class Job: @unchecked Sendable {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Runs `body` on a new thread and waits for it to finish.
    public static func run<T>(_ body: () throws -> T) throws -> T {
        try withoutActuallyEscaping(body) { body in
            var result: Result<T, any Error>?
            try withUnsafeMutablePointer(to: &result) { resultPointer in
                // The pointer is only used while this frame waits in pthread_join.
                nonisolated(unsafe) let slot = resultPointer
                let job = Job { slot.pointee = Result { try body() } }
                try start(job)
            }
            guard let result else { throw VxmonError("internal error: thread finished without a result") }
            return try result.get()
        }
    }

    private static func start(_ job: Job) throws {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(job).toOpaque()
        let rc = pthread_create(
            &thread, nil,
            { context in
                let job = Unmanaged<Job>.fromOpaque(context!).takeRetainedValue()
                job.body()
                return nil
            }, context)
        if rc != 0 {
            Unmanaged<Job>.fromOpaque(context).release()
            throw VxmonError("pthread_create: \(errnoString(rc))")
        }
        pthread_join(thread, nil)
    }
}

/// A thread started now and joined later (e.g. a live session running while a benchmark drives
/// traffic).
public final class BackgroundThread: @unchecked Sendable {
    private var thread = pthread_t()
    private var joined = false
    private var failure: (any Error)?

    private final class Job: @unchecked Sendable {
        let body: () throws -> Void
        weak var owner: BackgroundThread?
        init(_ body: @escaping () throws -> Void) { self.body = body }
    }

    /// Starts `body` on a new thread.
    public init(_ body: @escaping () throws -> Void) throws {
        let job = Job(body)
        job.owner = self
        let context = Unmanaged.passRetained(job).toOpaque()
        let rc = pthread_create(
            &thread, nil,
            { context in
                let job = Unmanaged<Job>.fromOpaque(context!).takeRetainedValue()
                do { try job.body() } catch { job.owner?.failure = error }
                return nil
            }, context)
        if rc != 0 {
            Unmanaged<Job>.fromOpaque(context).release()
            throw VxmonError("pthread_create: \(errnoString(rc))")
        }
    }

    deinit { _ = try? join() }

    /// CPU time the thread has used, in seconds (its own clock: nanoseconds, no other thread's work);
    /// 0 once it has been joined.
    public var cpuSeconds: Double {
        guard !joined else { return 0 }
        var clock = clockid_t()
        guard pthread_getcpuclockid(thread, &clock) == 0 else { return 0 }
        var ts = timespec()
        guard clock_gettime(clock, &ts) == 0 else { return 0 }
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Waits for the thread; rethrows what its body threw.
    public func join() throws {
        if !joined {
            joined = true
            pthread_join(thread, nil)
        }
        if let failure { throw failure }
    }
}

/// Network namespaces by name (`/run/netns/<name>`, as `ip netns` manages them).
public enum NetworkNamespace {
    public static let directory = "/run/netns"

    public static func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// The names of all named network namespaces.
    public static func list() -> [String] {
        FileSystem.listDirectory(directory).filter { !$0.hasPrefix(".") }.sorted()
    }

    public static func exists(_ name: String) -> Bool { FileSystem.exists(path(name)) }

    /// Runs `body` on a new thread that has entered the namespace `name` (setns(CLONE_NEWNET));
    /// every socket and netlink call made in `body` lives in that namespace. Waits for the result.
    public static func run<T>(in name: String, _ body: () throws -> T) throws -> T {
        let fd = open(path(name), O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError.errno("open", path(name)) }
        defer { close(fd) }
        return try DedicatedThread.run {
            if vxmon_shim_setns_net(fd) < 0 { throw SystemError.errno("setns", name) }
            return try body()
        }
    }

    /// Enters the namespace on the calling thread (for a process about to exec or a single-threaded
    /// child such as the flood generator).
    public static func enter(_ name: String) throws {
        let fd = open(path(name), O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError.errno("open", path(name)) }
        defer { close(fd) }
        if vxmon_shim_setns_net(fd) < 0 { throw SystemError.errno("setns", name) }
    }

    /// The ifindex of `interface` in the calling thread's namespace.
    public static func ifindex(_ interface: String) throws -> Int32 {
        let index = if_nametoindex(interface)
        if index == 0 { throw SystemError.errno("if_nametoindex", interface) }
        return Int32(index)
    }

    /// All interfaces (ifindex, name) of the calling thread's namespace.
    public static func interfaces() -> [(UInt32, String)] {
        guard let list = if_nameindex() else { return [] }
        defer { if_freenameindex(list) }
        var result: [(UInt32, String)] = []
        var p = list
        while p.pointee.if_index != 0, let name = p.pointee.if_name {
            result.append((p.pointee.if_index, String(cString: name)))
            p += 1
        }
        return result
    }

    /// Writes a sysctl of the calling thread's namespace (`/proc/sys/net/...` follows the thread).
    public static func setSysctl(_ key: String, _ value: String) throws {
        let path = "/proc/sys/" + key.replacing(".", with: "/")
        try FileSystem.write(path, value + "\n")
    }
}
