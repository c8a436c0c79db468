import CVxmonSystem
import Glibc
import Synchronization
import VxmonCore

/// Where `/metrics` listens: an IPv4 or IPv6 literal and a port (`127.0.0.1:9965`, `[::1]:9965`),
/// or `:PORT` for every IPv4 address (Cilium's `--hubble-metrics-server=:9965`).
public struct MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    public enum Host: Sendable, Equatable {
        case v4(in_addr_t)
        case v6(in6_addr)

        public static func == (a: Host, b: Host) -> Bool {
            switch (a, b) {
            case (.v4(let x), .v4(let y)): x == y
            case (.v6(var x), .v6(var y)): memcmp(&x, &y, MemoryLayout<in6_addr>.size) == 0
            default: false
            }
        }
    }
    public var host: Host
    public var port: UInt16
    /// As given (normalised).
    public let text: String

    public var description: String { text }

    /// Parses `HOST:PORT`; nil with the reason in `problem` for anything else (no names, no lookups).
    public static func parse(_ s: String) -> Result<MetricsAddress, MetricsAddressError> {
        guard let colon = s.lastIndex(of: ":") else { return .failure(.init("expected HOST:PORT, e.g. 127.0.0.1:9965")) }
        let hostPart = String(s[..<colon])
        let portPart = s[s.index(after: colon)...]
        guard let port = UInt16(portPart), !portPart.isEmpty, portPart.allSatisfy(\.isASCII) else {
            return .failure(.init("the port must be a number from 0 to 65535"))
        }
        if hostPart.isEmpty {
            return .success(MetricsAddress(host: .v4(INADDR_ANY.bigEndian), port: port, text: "0.0.0.0:\(port)"))
        }
        if hostPart.hasPrefix("[") && hostPart.hasSuffix("]") && hostPart.count > 2 {
            var a = in6_addr()
            let inner = String(hostPart.dropFirst().dropLast())
            guard inet_pton(AF_INET6, inner, &a) == 1 else { return .failure(.init("not an IPv6 address: \(inner)")) }
            return .success(MetricsAddress(host: .v6(a), port: port, text: "[\(inner)]:\(port)"))
        }
        var a = in_addr()
        guard inet_pton(AF_INET, hostPart, &a) == 1 else {
            return .failure(.init("not an IPv4 address (IPv6 goes in brackets: [::1]:9965): \(hostPart)"))
        }
        return .success(MetricsAddress(host: .v4(a.s_addr), port: port, text: "\(hostPart):\(port)"))
    }
}

public struct MetricsAddressError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ d: String) { description = d }
}

/// A minimal HTTP/1.1 server for `GET /metrics`, on its own thread: a poll loop over a listening
/// socket and a few connections. Every response closes its connection (`Connection: close`).
///
/// Hostile peers cost it bounded memory and time and never reach the agent's reader thread (the
/// exposition is rendered here, from atomics): a request head is read up to 8 KiB within 5 seconds
/// (larger: 431; slower: the connection is closed), a response is written within 10 seconds, at most
/// 8 connections are open at once (a new one then closes the oldest that has not sent a whole request
/// yet and has had 250 ms to do so, so connections that say nothing cannot shut a scraper out, and a
/// flood of new ones cannot push out a scraper before its request arrives), and anything but `GET` is 405,
/// any path but `/metrics` 404, anything unparsable 400.
public final class MetricsServer: @unchecked Sendable {
    public static let maxHeadBytes = 8192
    public static let headTimeoutNanoseconds: UInt64 = 5_000_000_000
    public static let writeTimeoutNanoseconds: UInt64 = 10_000_000_000
    public static let maxConnections = 8
    /// A connection is not closed for a newcomer before it has had this long to send its request.
    public static let graceNanoseconds: UInt64 = 250_000_000

    /// The address it listens on (the actual port when 0 was asked).
    public private(set) var address: MetricsAddress
    private var listenFD: Int32
    private let render: (MetricsFormat, OutputBuffer) -> Void
    private let stopFlag = Atomic<Bool>(false)
    private var thread: BackgroundThread?
    private let requestCount = Atomic<UInt64>(0)
    /// Scrapes answered with 200 (tests).
    public var scrapes: UInt64 { requestCount.load(ordering: .relaxed) }

    private final class Connection {
        let fd: Int32
        let opened: UInt64
        var head = [UInt8](repeating: 0, count: MetricsServer.maxHeadBytes)
        var received = 0
        /// The response, once the request is read.
        var response: [UInt8]?
        var sent = 0
        /// The response is sent and the write side shut: what the peer still sends is read and
        /// discarded until it closes (closing with unread bytes would reset the connection, and the
        /// peer could lose the response).
        var draining = false
        var deadline: UInt64
        init(fd: Int32, now: UInt64) {
            self.fd = fd
            opened = now
            deadline = now + MetricsServer.headTimeoutNanoseconds
        }
        deinit { Glibc.close(fd) }
    }

    private var connections: [Connection] = []
    private let body = OutputBuffer(capacity: 1 << 16)

    /// Binds and listens (errors: the address is taken, not local, ...); `start()` serves.
    public init(address: MetricsAddress, render: @escaping (MetricsFormat, OutputBuffer) -> Void) throws {
        self.address = address
        self.render = render
        let family = if case .v6 = address.host { AF_INET6 } else { AF_INET }
        // SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, as numbers (see LabLock).
        let fd = socket(family, 1 | 0o4000 | 0o2000000, 0)
        if fd < 0 { throw VxmonError("metrics: socket: \(errnoString(errno))") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var rc: Int32
        switch address.host {
        case .v4(let a):
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = address.port.bigEndian
            sa.sin_addr.s_addr = a
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let a):
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = address.port.bigEndian
            sa.sin6_addr = a
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        if rc != 0 || Glibc.listen(fd, 16) != 0 {
            let code = errno
            Glibc.close(fd)
            throw VxmonError("metrics: cannot listen on \(address): \(errnoString(code))")
        }
        listenFD = fd
        // The port the kernel chose for port 0.
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        if withUnsafeMutablePointer(to: &storage, {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }) == 0 {
            let port = withUnsafePointer(to: &storage) { p -> UInt16 in
                family == AF_INET6
                    ? p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
                    : p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            }
            if port != address.port, case .success(let a) = MetricsAddress.parse(
                String(address.text[..<(address.text.lastIndex(of: ":") ?? address.text.endIndex)]) + ":\(port)")
            {
                self.address = a
            }
        }
    }

    deinit { stop() }

    /// Serves on a new thread until `stop()`.
    public func start() throws {
        guard thread == nil else { return }
        thread = try BackgroundThread { [unowned self] in self.run() }
    }

    /// Stops serving, joins the thread and closes the listening socket (idempotent): the address is
    /// free when it returns.
    public func stop() {
        stopFlag.store(true, ordering: .relaxed)
        if let thread {
            try? thread.join()
            self.thread = nil
        }
        connections.removeAll()
        if listenFD >= 0 {
            Glibc.close(listenFD)
            listenFD = -1
        }
    }

    // MARK: The server's thread

    private func run() {
        var fds: [pollfd] = []
        while !stopFlag.load(ordering: .relaxed) {
            let now = monotonicNanoseconds()
            // Past their deadline: closed without a word (a slow reader, a silent connection).
            connections.removeAll { now >= $0.deadline }
            fds.removeAll(keepingCapacity: true)
            // Full, with no connection to close for a newcomer: new ones wait in the backlog.
            let accepting = connections.count < Self.maxConnections || evictable(now) != nil
            fds.append(pollfd(fd: accepting ? listenFD : -1, events: Int16(POLLIN), revents: 0))
            for c in connections {
                fds.append(pollfd(fd: c.fd, events: Int16(c.response == nil || c.draining ? POLLIN : POLLOUT), revents: 0))
            }
            var timeout: UInt64 = 200_000_000
            for c in connections where c.deadline > now { timeout = min(timeout, c.deadline - now) }
            if !accepting {
                for c in connections where c.response == nil && c.opened + Self.graceNanoseconds > now {
                    timeout = min(timeout, c.opened + Self.graceNanoseconds - now)
                }
            }
            let n = poll(&fds, nfds_t(fds.count), Int32(timeout / 1_000_000 + 1))
            if n < 0 && errno != EINTR { usleep(10_000) }
            guard n > 0 else { continue }
            // Connections first (their indices shift once a new one is accepted).
            var finished: [ObjectIdentifier] = []
            for (i, c) in connections.enumerated() where fds[i + 1].revents != 0 {
                let revents = fds[i + 1].revents
                if c.draining {
                    if !drain(c) { finished.append(ObjectIdentifier(c)) }
                } else if c.response == nil {
                    if !readHead(c) { finished.append(ObjectIdentifier(c)) }
                } else if revents & Int16(POLLOUT | POLLERR | POLLHUP) != 0 {
                    if !write(c) { finished.append(ObjectIdentifier(c)) }
                }
            }
            if !finished.isEmpty { connections.removeAll { finished.contains(ObjectIdentifier($0)) } }
            if fds[0].revents & Int16(POLLIN) != 0 { acceptAll() }
        }
        connections.removeAll()
    }

    private func acceptAll() {
        for _ in 0..<Self.maxConnections {
            let now = monotonicNanoseconds()
            // Full, and no connection may be closed for a newcomer: it waits in the backlog.
            let victim = connections.count >= Self.maxConnections ? evictable(now) : nil
            if connections.count >= Self.maxConnections && victim == nil { return }
            let fd = Glibc.accept(listenFD, nil, nil)
            if fd < 0 { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            // Room for the newcomer: the oldest connection that has not sent a whole request.
            if let victim { connections.remove(at: victim) }
            let c = Connection(fd: fd, now: now)
            connections.append(c)
            // A scraper's request is usually there already: answered now, it cannot be pushed out.
            if !readHead(c) { connections.removeAll { $0 === c } }
        }
    }

    /// The connection a newcomer may replace: the oldest that has not sent a whole request in its
    /// grace time.
    private func evictable(_ now: UInt64) -> Int? {
        connections.firstIndex { $0.response == nil && now >= $0.opened + Self.graceNanoseconds }
    }

    /// Reads what the peer sent; answers once the head is complete. False: the connection is done.
    private func readHead(_ c: Connection) -> Bool {
        while c.received < c.head.count {
            let n = c.head.withUnsafeMutableBytes { Glibc.read(c.fd, $0.baseAddress! + c.received, $0.count - c.received) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return true }
            if n <= 0 { return false }
            c.received += n
            if let end = Self.headEnd(c.head, c.received) {
                answer(c, head: c.head[..<end])
                return write(c)
            }
        }
        respond(c, status: "431 Request Header Fields Too Large", body: "request head over 8 KiB\n")
        return write(c)
    }

    /// Where the head ends (after its blank line), if it does within `count` bytes.
    static func headEnd(_ bytes: [UInt8], _ count: Int) -> Int? {
        var i = 0
        while i < count {
            if bytes[i] == 0x0a {
                if i + 1 < count && bytes[i + 1] == 0x0a { return i + 2 }
                if i + 2 < count && bytes[i + 1] == 0x0d && bytes[i + 2] == 0x0a { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    /// What a request head asks for.
    enum Request: Equatable {
        case metrics(MetricsFormat)
        case badRequest
        case notFound
        case methodNotAllowed
        case versionNotSupported
    }

    /// Reads a request head (request line, then header lines). Only ASCII is looked at.
    static func parse(_ head: ArraySlice<UInt8>) -> Request {
        let lines = head.split(separator: 0x0a, omittingEmptySubsequences: false).map { line in
            line.last == 0x0d ? line.dropLast() : line
        }
        guard let first = lines.first else { return .badRequest }
        let words = first.split(separator: 0x20, omittingEmptySubsequences: false)
        guard words.count == 3, words.allSatisfy({ !$0.isEmpty }) else { return .badRequest }
        let version = String(decoding: words[2], as: UTF8.self)
        guard version.hasPrefix("HTTP/1.") else {
            return version.hasPrefix("HTTP/") ? .versionNotSupported : .badRequest
        }
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return .versionNotSupported }
        var accept: Substring?
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return .badRequest }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            if name == "accept" {
                let value = String(decoding: line[(colon + 1)...], as: UTF8.self)
                accept = accept.map { $0 + "," + value } ?? value[...]
            }
        }
        let method = String(decoding: words[0], as: UTF8.self)
        guard method.allSatisfy({ $0.isASCII && $0.isLetter && $0.isUppercase }) else { return .badRequest }
        guard method == "GET" else { return .methodNotAllowed }
        var target = words[1]
        if let q = target.firstIndex(of: UInt8(ascii: "?")) { target = target[..<q] }
        guard target.elementsEqual("/metrics".utf8) else { return .notFound }
        return .metrics(MetricsFormat.negotiate(accept: accept))
    }

    private func answer(_ c: Connection, head: ArraySlice<UInt8>) {
        switch Self.parse(head) {
        case .metrics(let format):
            body.removeAll()
            render(format, body)
            respond(c, status: "200 OK", contentType: String(describing: format.contentType), body: body.bytes)
            requestCount.add(1, ordering: .relaxed)
        case .badRequest: respond(c, status: "400 Bad Request", body: "bad request\n")
        case .notFound: respond(c, status: "404 Not Found", body: "only /metrics is served here\n")
        case .methodNotAllowed: respond(c, status: "405 Method Not Allowed", body: "only GET\n", extra: "Allow: GET\r\n")
        case .versionNotSupported: respond(c, status: "505 HTTP Version Not Supported", body: "HTTP/1.0 or 1.1 only\n")
        }
    }

    private func respond(_ c: Connection, status: String, body text: String, extra: String = "") {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBufferPointer { b in
            respond(c, status: status, contentType: "text/plain; charset=utf-8", body: UnsafeBufferPointer(b), extra: extra)
        }
    }

    private func respond(
        _ c: Connection, status: String, contentType: String, body: UnsafeBufferPointer<UInt8>, extra: String = ""
    ) {
        var response = Array(
            ("HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
                + "\(extra)Connection: close\r\n\r\n").utf8)
        response.append(contentsOf: body)
        c.response = response
        c.sent = 0
        c.deadline = monotonicNanoseconds() + Self.writeTimeoutNanoseconds
    }

    /// Writes what the socket takes. False: the connection is done (all sent, or failed).
    private func write(_ c: Connection) -> Bool {
        guard let response = c.response else { return false }
        while c.sent < response.count {
            let n = response.withUnsafeBytes {
                Glibc.send(c.fd, $0.baseAddress! + c.sent, $0.count - c.sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return true }
            if n <= 0 { return false }
            c.sent += n
        }
        // All sent: the write side is shut, and the peer has a second to close its side.
        shutdown(c.fd, Int32(SHUT_WR))
        c.draining = true
        c.deadline = monotonicNanoseconds() + Self.drainNanoseconds
        return drain(c)
    }

    /// How long a peer that got its response may keep its side open.
    static let drainNanoseconds: UInt64 = 1_000_000_000

    /// Reads and discards what the peer sends after the response. False: it closed (or failed).
    private func drain(_ c: Connection) -> Bool {
        // A peer that keeps sending gets 16 reads per round, and its second.
        for _ in 0..<16 {
            let n = c.head.withUnsafeMutableBytes { Glibc.read(c.fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return true }
            if n <= 0 { return false }
        }
        return true
    }
}
