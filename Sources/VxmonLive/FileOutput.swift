import Glibc
import VxmonCore

/// A file descriptor as the pipeline's output (stdout, a recording, a pcapng file): writes whole
/// blocks, retrying short writes and EINTR. When a write fails, a regular file is cut back to the
/// end of the last block this output wrote whole (never before where it started: what was in the
/// file, or written through another output, stays), so a recording or capture ends at a record
/// boundary. The descriptor is not owned (not closed here).
public final class FileOutput: ByteOutput {
    public let fd: Int32
    /// The file offset where this output started (nil: not a seekable file, nothing is cut back),
    /// and the bytes of whole blocks it wrote since.
    private let start: off_t?
    private var committed: off_t = 0

    public init(fd: Int32) {
        self.fd = fd
        let offset = lseek(fd, 0, SEEK_CUR)
        start = offset >= 0 ? offset : nil
    }

    public func write(_ bytes: UnsafeRawBufferPointer) -> SinkStatus {
        var written = 0
        while written < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                let failure = errno
                var st = stat()
                if let start, fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { _ = ftruncate(fd, start + committed) }
                return failure == EPIPE ? .closed : .failed(failure)
            }
            written += n
        }
        committed &+= off_t(bytes.count)
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
