/// Where encoded bytes go (rendered records, a recording, a pcapng file): a file, pipe or socket
/// (`FileOutput` in VxmonLive, which owns the system calls), or a test's buffer. The core only
/// encodes; it never writes to a descriptor itself.
public protocol ByteOutput: AnyObject {
    /// Writes all of `bytes`, which end on a record boundary. `.closed` when the reader went away
    /// (EPIPE), `.failed(errno)` for any other error; after a failure an output that can (a regular
    /// file) ends at the last record boundary it wrote.
    func write(_ bytes: UnsafeRawBufferPointer) -> SinkStatus
}

extension OutputBuffer {
    /// Writes everything to `output` and empties the buffer (also when the write failed).
    @discardableResult
    public func flush(to output: ByteOutput) -> SinkStatus {
        let status = output.write(UnsafeRawBufferPointer(bytes))
        removeAll()
        return status
    }
}
