import Glibc
import VxmonCore

/// Reads a record stream from a file descriptor (a file, a pipe, a socket read to its end) in chunks
/// through a `ByteStreamParser`, handing every record to the consumer: the one fd read loop for the
/// byte parsers (`.vxrec` and Cilium's agent stream). Memory stays flat however long the stream is.
public final class FDReader<Parser: ByteStreamParser>: RecordSource {
    public let parser: Parser
    private let fd: Int32
    private let prefix: [UInt8]
    private let chunkSize: Int

    /// Reads `fd` through `parser`; `prefix` holds bytes already read from it (format detection).
    public init(fd: Int32, parser: Parser, prefix: [UInt8] = [], chunkSize: Int = 1 << 20) {
        self.fd = fd
        self.parser = parser
        self.prefix = prefix
        self.chunkSize = max(chunkSize, 4096)
    }

    /// Reads to the end, handing every record to `consumer`; stops early once the consumer cannot use
    /// more. Throws for a read error, or for what the parser refuses (after every complete record
    /// before it was delivered).
    public func run<C: RecordConsumer>(_ consumer: inout C) throws(RecordingError) {
        prefix.withUnsafeBytes { parser.feed($0) }
        while true {
            try parser.parse(into: &consumer)
            if consumer.shouldStop { return }
            let r = parser.feed(maximum: chunkSize) { read(fd, $0.baseAddress, $0.count) }
            if r < 0 {
                if errno == EINTR { continue }
                throw RecordingError("read failed: \(String(cString: strerror(errno)))")
            }
            if r == 0 { break }
        }
        try parser.parse(into: &consumer)
        if consumer.shouldStop { return }
        try parser.finish()
    }
}

/// A `.vxrec` recording read from a descriptor.
public typealias VxrecReader = FDReader<VxrecParser>

extension FDReader where Parser == VxrecParser {
    public convenience init(fd: Int32, prefix: [UInt8] = [], chunkSize: Int = 1 << 20) {
        self.init(fd: fd, parser: VxrecParser(capacity: 2 * max(chunkSize, 4096)), prefix: prefix, chunkSize: chunkSize)
    }
}

/// A Cilium agent stream (a capture of the monitor socket, stdin) read from a descriptor.
public typealias AgentStreamReader = FDReader<AgentStreamParser>

extension FDReader where Parser == AgentStreamParser {
    public convenience init(fd: Int32, prefix: [UInt8] = []) {
        self.init(fd: fd, parser: AgentStreamParser(), prefix: prefix, chunkSize: 1 << 16)
    }

    /// See `AgentStreamParser.carryOverFields`.
    public var carryOverFields: Bool {
        get { parser.carryOverFields }
        set { parser.carryOverFields = newValue }
    }

    public static func looksLikeAgentStream(_ prefix: [UInt8]) -> Bool { AgentStreamParser.looksLikeAgentStream(prefix) }
}
