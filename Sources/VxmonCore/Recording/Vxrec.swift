#if canImport(Glibc)
import Glibc  // memmove
#endif
import VxmonWire

/// The `.vxrec` recording format, version 1 (see README "Recording format"): a 16-byte file header,
/// then records of a 24-byte header, a body and zero padding to the next multiple of 8. All integers
/// are little-endian.
public enum Vxrec {
    public static let magic: [UInt8] = Array("VXMONREC".utf8)
    public static let version: UInt16 = 1
    public static let fileHeaderLength = 16
    public static let recordHeaderLength = 24
    /// Largest body a reader accepts; a longer length field means a corrupt file.
    public static let maxBodyLength = 16 << 20

    /// The node a metadata record names, if it is a node record: `node=NAME` (vxmon's convention) or
    /// `host=NAME`. `.some(nil)` clears the node; nil means the record is about something else.
    public static func node(fromMetadata key: String, _ value: String) -> String?? {
        guard key == "node" || key == "host" else { return nil }
        return .some(value.isEmpty ? nil : value)
    }

    public enum Kind: UInt16, Sendable {
        case sample = 1
        case lost = 2
        case interfaceName = 3
        case metadata = 4
    }
}

/// What a recording reader hands to its consumer, record by record.
public protocol RecordConsumer {
    /// A raw monitor sample. `body` is only valid during the call. `index` counts records from 1.
    mutating func sample(_ body: RawSpan, cpu: Int, timeNanoseconds: UInt64, index: Int, offset: Int)
    mutating func lost(cpu: Int, count: UInt64, timeNanoseconds: UInt64)
    mutating func interfaceName(ifindex: UInt32, name: String)
    mutating func metadata(key: String, value: String)
    /// A record that could not be used (e.g. a lost record with a short body); the reader goes on.
    mutating func malformedRecord(index: Int, offset: Int, reason: String)
    /// True once the consumer cannot use more records (its output is gone): readers stop early.
    var shouldStop: Bool { get }
}

extension RecordConsumer {
    public var shouldStop: Bool { false }
}

/// Errors that end reading a recording.
public struct RecordingError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A source of recorded events: reads its input to the end, handing every record to a consumer.
public protocol RecordSource {
    func run<C: RecordConsumer>(_ consumer: inout C) throws(RecordingError)
}

/// A parser of a record stream that takes bytes in pieces of any size and owns no file descriptor:
/// what readers of files, pipes and sockets, and the fuzz targets, drive.
public protocol ByteStreamParser: AnyObject {
    /// Appends input.
    func feed(_ bytes: UnsafeRawBufferPointer)
    /// Appends up to `maximum` bytes that `body` writes into the parser's free space (a `read(2)`
    /// straight into it); returns what `body` returned (bytes written, 0 at the end, or negative).
    func feed(maximum: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int
    /// Hands every complete record buffered so far to `consumer`; throws when the stream cannot go on.
    func parse<C: RecordConsumer>(into consumer: inout C) throws(RecordingError)
    /// At the end of the input: throws if it ended inside a record.
    func finish() throws(RecordingError)
}

/// Parses the `.vxrec` format from bytes handed to it in pieces of any size (`feed`, then `parse`),
/// so it can read files, pipes and sockets alike and be fuzzed; it owns no file descriptor. Memory
/// stays bounded: a record is at most `Vxrec.maxBodyLength`, and consumed bytes are dropped.
public final class VxrecParser: ByteStreamParser {
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int
    private var start = 0
    private var end = 0
    private var headerDone = false
    /// Offset in the input of `buffer[start]`.
    private var inputOffset = 0
    private var recordIndex = 0
    /// Padding still to skip before the next record (it may come in a later piece).
    private var skip = 0

    public init(capacity: Int = 1 << 16) {
        self.capacity = max(capacity, 64)
        buffer = .allocate(byteCount: self.capacity, alignment: 8)
    }

    deinit { buffer.deallocate() }

    /// Bytes buffered but not yet parsed.
    public var pending: Int { end - start }

    /// Makes room for `count` more bytes after what is buffered.
    private func reserve(_ count: Int) {
        if start > 0 && (start == end || end + count > capacity) {
            memmove(buffer, buffer + start, end - start)
            end -= start
            start = 0
        }
        if end + count > capacity {
            let newCapacity = max(end + count, capacity * 2)
            let newBuffer = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 8)
            newBuffer.copyMemory(from: buffer, byteCount: end)
            buffer.deallocate()
            buffer = newBuffer
            capacity = newCapacity
        }
    }

    /// Appends input.
    public func feed(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserve(bytes.count)
        (buffer + end).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        end += bytes.count
    }

    /// Appends input written in place: `body` gets room for up to `maximum` bytes and returns how many
    /// it wrote (a read(2) straight into the buffer, without a copy), or a negative number for none.
    @discardableResult
    public func feed(maximum: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        reserve(maximum)
        let n = body(UnsafeMutableRawBufferPointer(start: buffer + end, count: maximum))
        if n > 0 { end += min(n, maximum) }
        return n
    }

    private func le16(_ o: Int) -> UInt16 { UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: start + o, as: UInt16.self)) }
    private func le32(_ o: Int) -> UInt32 { UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: start + o, as: UInt32.self)) }
    private func le64(_ o: Int) -> UInt64 { UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: start + o, as: UInt64.self)) }

    private func advance(_ n: Int) {
        start += n
        inputOffset += n
    }

    /// Hands every complete record buffered so far to `consumer`. Throws for a bad file header or a
    /// corrupt record length (after every record before it was delivered).
    public func parse<C: RecordConsumer>(into consumer: inout C) throws(RecordingError) {
        if !headerDone {
            guard end - start >= Vxrec.fileHeaderLength else { return }
            for (i, b) in Vxrec.magic.enumerated() where buffer.load(fromByteOffset: start + i, as: UInt8.self) != b {
                throw RecordingError("bad magic: not a vxmon recording (expected VXMONREC)")
            }
            let version = le16(8)
            guard version == Vxrec.version else {
                throw RecordingError("recording format version \(version) is not supported (this vxmon reads version 1)")
            }
            let headerLength = Int(le16(10))
            guard headerLength >= Vxrec.fileHeaderLength else {
                throw RecordingError("header length \(headerLength) is shorter than 16 bytes")
            }
            guard end - start >= headerLength else { return }
            advance(headerLength)
            // Records are padded to 8 bytes counted from the start of the file.
            skip = (8 - headerLength % 8) % 8
            headerDone = true
        }
        while true {
            if skip > 0 {
                let n = min(skip, end - start)
                advance(n)
                skip -= n
                if skip > 0 { return }
            }
            guard end - start >= Vxrec.recordHeaderLength else { return }
            let kind = le16(0)
            let cpu = Int(le32(4))
            let time = le64(8)
            let length = Int(le32(16))
            guard length <= Vxrec.maxBodyLength else {
                throw RecordingError(
                    "record \(recordIndex + 1) at offset \(inputOffset) claims \(length) bytes: corrupt recording")
            }
            guard end - start >= Vxrec.recordHeaderLength + length else { return }
            recordIndex += 1
            let body = UnsafeRawBufferPointer(start: buffer + start + Vxrec.recordHeaderLength, count: length)
            deliver(kind, cpu, time, body, &consumer)
            advance(Vxrec.recordHeaderLength + length)
            skip = (8 - length % 8) % 8
            if consumer.shouldStop { return }
        }
    }

    private func deliver<C: RecordConsumer>(
        _ kind: UInt16, _ cpu: Int, _ time: UInt64, _ body: UnsafeRawBufferPointer, _ consumer: inout C
    ) {
        let index = recordIndex
        let offset = inputOffset
        let length = body.count
        switch Vxrec.Kind(rawValue: kind) {
        case .sample:
            consumer.sample(body.bytes, cpu: cpu, timeNanoseconds: time, index: index, offset: offset)
        case .lost:
            if length >= 8 {
                consumer.lost(cpu: cpu, count: UInt64(littleEndian: body.loadUnaligned(as: UInt64.self)), timeNanoseconds: time)
            } else {
                consumer.malformedRecord(index: index, offset: offset, reason: "lost record body is \(length) bytes, needs 8")
            }
        case .interfaceName:
            if length >= 4 {
                let ifindex = UInt32(littleEndian: body.loadUnaligned(as: UInt32.self))
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: body[4...]), as: UTF8.self)
                consumer.interfaceName(ifindex: ifindex, name: name)
            } else {
                consumer.malformedRecord(index: index, offset: offset, reason: "interface-name record is \(length) bytes, needs 4")
            }
        case .metadata:
            let text = String(decoding: body, as: UTF8.self)
            if let eq = text.firstIndex(of: "=") {
                consumer.metadata(key: String(text[..<eq]), value: String(text[text.index(after: eq)...]))
            } else {
                consumer.metadata(key: text, value: "")
            }
        case nil:
            break  // unknown kinds are skipped
        }
    }

    /// At the end of the input: throws if it ended inside the header or a record (the padding after
    /// the last record may be missing; that is not an error).
    public func finish() throws(RecordingError) {
        if !headerDone {
            if inputOffset == 0 && end - start == 0 { throw RecordingError("empty file: not a vxmon recording") }
            if end - start < Vxrec.fileHeaderLength {
                throw RecordingError("file ends inside the 16-byte header: not a vxmon recording")
            }
            throw RecordingError("file ends inside its \(le16(10))-byte header")
        }
        let left = end - start
        guard left > 0 else { return }
        if left < Vxrec.recordHeaderLength {
            throw RecordingError(
                "truncated recording: \(left) bytes at offset \(inputOffset) are not a complete record header")
        }
        throw RecordingError(
            "truncated recording: record \(recordIndex + 1) at offset \(inputOffset) needs \(le32(16)) body bytes, "
                + "\(left - Vxrec.recordHeaderLength) present")
    }
}

/// Encodes `.vxrec` records into a buffer: what the writer writes to files and the agent sends to
/// its clients.
public enum VxrecEncoder {
    /// The file header (every stream starts with it).
    public static func appendFileHeader(to out: OutputBuffer) {
        for b in Vxrec.magic { out.append(byte: b) }
        out.appendLittleEndian(Vxrec.version)
        out.appendLittleEndian(UInt16(Vxrec.fileHeaderLength))
        out.appendLittleEndian(UInt32(0))
    }

    /// One record: header, the body `body` appends, padding to 8 bytes. Returns its length.
    @discardableResult
    public static func appendRecord(
        _ kind: Vxrec.Kind, cpu: Int, time: UInt64, to out: OutputBuffer, body: (OutputBuffer) -> Void
    ) -> Int {
        let headerAt = out.count
        out.appendLittleEndian(kind.rawValue)
        out.appendLittleEndian(UInt16(0))
        out.appendLittleEndian(UInt32(truncatingIfNeeded: cpu))
        out.appendLittleEndian(time)
        out.appendLittleEndian(UInt32(0))  // length, patched below
        out.appendLittleEndian(UInt32(0))
        let bodyAt = out.count
        body(out)
        let length = out.count - bodyAt
        out.setLittleEndian(UInt32(truncatingIfNeeded: length), at: headerAt + 16)
        out.append(repeating: 0, count: (8 - (length % 8)) % 8)
        return out.count - headerAt
    }

    public static func appendSample(_ bytes: UnsafeRawBufferPointer, cpu: Int, time: UInt64, to out: OutputBuffer) {
        appendRecord(.sample, cpu: cpu, time: time, to: out) { $0.append(bytes: bytes.bindMemory(to: UInt8.self)) }
    }

    public static func appendLost(cpu: Int, count: UInt64, time: UInt64, to out: OutputBuffer) {
        appendRecord(.lost, cpu: cpu, time: time, to: out) { $0.appendLittleEndian(count) }
    }

    public static func appendInterfaceName(_ ifindex: UInt32, _ name: String, time: UInt64, to out: OutputBuffer) {
        appendRecord(.interfaceName, cpu: 0, time: time, to: out) { o in
            o.appendLittleEndian(ifindex)
            o.append(name)
        }
    }

    public static func appendMetadata(_ key: String, _ value: String, time: UInt64, to out: OutputBuffer) {
        appendRecord(.metadata, cpu: 0, time: time, to: out) { $0.append("\(key)=\(value)") }
    }
}

/// The recorder: writes `.vxrec` recordings to an output, in blocks of whole records, with a
/// `node=` record before the records of each node (interface names after it, so replay scopes them
/// to it). Both ways of recording use it: decoded events (`VxrecSink`, behind a filter) and raw live
/// samples (`RecorderSink`).
public final class VxrecWriter {
    private let out = OutputBuffer(capacity: 1 << 16)
    private let output: ByteOutput

    /// Starts with the file header.
    public init(output: ByteOutput) {
        self.output = output
        VxrecEncoder.appendFileHeader(to: out)
    }

    /// Runs `encode` unless a write failed, and writes once a block is full.
    private func record(_ encode: (OutputBuffer) -> Void) {
        guard status == .ok else { return }  // nothing more after a failed write
        encode(out)
        if out.count >= 1 << 16 { flush() }
    }

    /// Records after this come from `node` (nil: unnamed): writes its `node=` record when it is not
    /// the node of the records before (and before the first record in any case).
    public func node(_ node: String?, time: UInt64) {
        guard !nodeWritten || node != currentNode else { return }
        nodeWritten = true
        currentNode = node
        metadata("node", node ?? "", time: time)
    }

    private var currentNode: String?
    private var nodeWritten = false
    /// Samples recorded (taken while the output works).
    public private(set) var samples = 0

    public func sample(_ bytes: UnsafeRawBufferPointer, cpu: Int, time: UInt64 = 0) {
        if status == .ok { samples &+= 1 }
        record { VxrecEncoder.appendSample(bytes, cpu: cpu, time: time, to: $0) }
    }

    public func lost(cpu: Int, count: UInt64, time: UInt64 = 0) {
        record { VxrecEncoder.appendLost(cpu: cpu, count: count, time: time, to: $0) }
    }

    public func interfaceName(_ ifindex: UInt32, _ name: String, time: UInt64 = 0) {
        record { VxrecEncoder.appendInterfaceName(ifindex, name, time: time, to: $0) }
    }

    public func metadata(_ key: String, _ value: String, time: UInt64 = 0) {
        record { VxrecEncoder.appendMetadata(key, value, time: time, to: $0) }
    }

    /// Writes buffered records; false if the write failed.
    @discardableResult
    public func flush() -> Bool {
        guard status == .ok else { return false }
        status = out.flush(to: output)
        return status == .ok
    }

    /// How the last write went. Once one failed nothing more is written, and a file ends at its last
    /// whole record.
    public private(set) var status = SinkStatus.ok
}
