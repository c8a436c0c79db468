import CVxmonSystem
import Glibc
import VxmonLive

/// Traffic for the live benchmark: a sendmmsg UDP flood, a receiving socket, interface counters.
public enum Traffic {
    /// Sends `payload`-byte UDP datagrams to `address`:`port` from the calling thread's network
    /// namespace for `seconds`, `batch` per sendmmsg(2), as fast as possible or at `rate` datagrams per
    /// second. Returns the number of datagrams sent.
    public static func flood(
        to address: String, port: UInt16, payload: Int, seconds: Double, rate: Int = 0, batch: Int = 64
    ) throws -> UInt64 {
        guard let ip = parseIPv4(address) else { throw VxmonError("not an IPv4 address: \(address)") }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        if fd < 0 { throw SystemError.errno("socket") }
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = ip.bigEndian
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 { throw SystemError.errno("connect", "\(address):\(port)") }

        let bytes = [UInt8](repeating: 0x78, count: max(payload, 1))
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(seconds * 1e9)
        var sent: UInt64 = 0
        var rounds = 0
        try bytes.withUnsafeBytes { p in
            while true {
                let n = vxmon_shim_send_batch(fd, p.baseAddress, p.count, Int32(batch))
                if n > 0 {
                    sent &+= UInt64(n)
                } else if n != -ENOBUFS && n != -EAGAIN && n != -EINTR && n != -ECONNREFUSED {
                    throw SystemError(function: "sendmmsg", code: -n)
                }
                rounds &+= 1
                if rate > 0 {
                    // Paced: wait until the datagrams sent so far are due.
                    let due = start + sent * 1_000_000_000 / UInt64(rate)
                    var now = monotonicNanoseconds()
                    if now >= deadline { break }
                    while now < due {
                        if due - now > 200_000 { usleep(UInt32((due - now) / 1000 / 2)) }
                        now = monotonicNanoseconds()
                    }
                } else if rounds & 15 == 0 && monotonicNanoseconds() >= deadline {
                    // The clock is read every 16 batches: cheap, and precise to a millisecond or so.
                    break
                }
            }
        }
        return sent
    }

    /// A UDP socket bound to `port` in `namespace` that never reads: datagrams for it are counted by
    /// the interface and then dropped quietly at the full socket, instead of being answered with ICMP
    /// port unreachable. Close the returned fd to release it.
    public static func openSink(namespace: String, port: UInt16) throws -> Int32 {
        try NetworkNamespace.run(in: namespace) {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            if fd < 0 { throw SystemError.errno("socket", namespace) }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            let rc = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if rc != 0 {
                let error = SystemError.errno("bind", "\(namespace) port \(port)")
                close(fd)
                throw error
            }
            return fd
        }
    }

    /// Interface counters of `interface` in `namespace`, from /proc/thread-self/net/dev read on a thread
    /// inside the namespace.
    public static func counters(namespace: String, interface: String) throws -> (rxPackets: UInt64, txPackets: UInt64) {
        let text = try NetworkNamespace.run(in: namespace) { try FileSystem.read("/proc/thread-self/net/dev") }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingSpaces == interface else { continue }
            let fields = parts[1].split(separator: " ").compactMap { UInt64($0) }
            // rx: bytes packets errs drop fifo frame compressed multicast, then tx: bytes packets ...
            guard fields.count >= 10 else { break }
            return (fields[1], fields[9])
        }
        throw VxmonError("no interface \(interface) in namespace \(namespace)")
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
