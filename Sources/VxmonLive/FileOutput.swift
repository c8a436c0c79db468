import Glibc
import VxmonCore

/// A file descriptor as the pipeline's output (stdout, a recording, a pcapng file): writes whole
/// blocks, retrying short writes and EINTR. When a write fails, a regular file is cut back to the
/// end of the last block written whole, so a recording or capture ends at a record boundary.
/// The descriptor is not owned (not closed here).
public final class FileOutput: ByteOutput {
    public let fd: Int32
    /// Bytes of whole blocks written.
    private var committed = 0

    public init(fd: Int32) { self.fd = fd }

    public func write(_ bytes: UnsafeRawBufferPointer) -> SinkStatus {
        var written = 0
        while written < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                let failure = errno
                var st = stat()
                if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { _ = ftruncate(fd, off_t(committed)) }
                return failure == EPIPE ? .closed : .failed(failure)
            }
            written += n
        }
        committed &+= bytes.count
        return .ok
    }
}

extension EventPipeline {
    /// Writes `message` and a newline to stderr: the diagnostics of the command-line tools.
    public static func standardError(_ message: String) {
        var line = message
        line.append("\n")
        line.withUTF8 { p in _ = Glibc.write(2, p.baseAddress, p.count) }
    }
}
