import CVxmonSystem
import Glibc

/// ifindex -> name inside one node's namespace: every interface at start (if_nameindex on a thread in
/// the namespace), then single lookups on a miss through a socket that lives in the namespace
/// (SIOCGIFNAME), at most once a second per unknown ifindex. A live session keeps one per node it reads.
package final class InterfaceResolver {
    private let socketFD: Int32
    package private(set) var known: [UInt32: String] = [:]
    private var failedAt: [UInt32: UInt64] = [:]

    package init(namespace: String) throws {
        let (fd, interfaces) = try NetworkNamespace.run(in: namespace) { () throws -> (Int32, [(UInt32, String)]) in
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            if fd < 0 { throw SystemError.errno("socket", namespace) }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            return (fd, NetworkNamespace.interfaces())
        }
        socketFD = fd
        for (index, name) in interfaces { known[index] = name }
    }

    deinit { close(socketFD) }

    /// Returns (ifindex, name) when `ifindex` was unknown and could be resolved now.
    package func learn(_ ifindex: UInt32) -> (UInt32, String)? {
        if known[ifindex] != nil { return nil }
        let mono = monotonicNanoseconds()
        if let last = failedAt[ifindex], mono - last < 1_000_000_000 { return nil }
        var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE))
        guard vxmon_shim_ifname(socketFD, ifindex, &buffer) == 0 else {
            failedAt[ifindex] = mono
            return nil
        }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        known[ifindex] = name
        return (ifindex, name)
    }
}
