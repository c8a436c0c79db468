#if canImport(Glibc)
import Glibc
#endif

/// Reads the stream a Cilium agent writes to `cilium monitor` clients on its monitor socket
/// (listener protocol "1.2"): Go `encoding/gob` messages, one per payload, of the type
/// `Payload { Data []byte; CPU int; Lost uint64; Type int }`. Type 9 is a sample (`Data` = the raw
/// perf sample), type 2 a lost record.
///
/// Only what this stream needs of gob is implemented: message framing, the type definition of the
/// payload struct (whose id is taken from the stream, never assumed), and struct values whose zero
/// fields are omitted.
public final class AgentStreamReader: RecordSource {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    private var offset = 0
    private var payloadTypeID: Int?
    /// Field number -> field name of the payload struct, from its definition.
    private var fieldNames: [String] = []
    /// Reproduce `cilium monitor`'s decoding into one reused variable: a field absent from a message
    /// keeps its value from the previous message (visible as a stale CPU number).
    public var carryOverFields = false

    /// Reads from `fd`; `prefix` holds bytes already read from it (format detection).
    public init(fd: Int32, prefix: [UInt8] = []) {
        self.fd = fd
        buffer = prefix
    }

    /// True when `prefix` looks like an agent stream (a gob type definition comes first).
    public static func looksLikeAgentStream(_ prefix: [UInt8]) -> Bool {
        var p = GobCursor(bytes: prefix[...])
        guard let length = p.uint(), length > 0, let id = p.int() else { return false }
        return id < 0
    }

    private func fill(_ n: Int) throws(RecordingError) -> Bool {
        while buffer.count - start < n && !eof {
            if start > 0 && start >= buffer.count / 2 {
                buffer.removeFirst(start)
                start = 0
            }
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            let r = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if r < 0 {
                if errno == EINTR { continue }
                throw RecordingError("read failed: \(String(cString: strerror(errno)))")
            }
            if r == 0 { eof = true } else { buffer.append(contentsOf: chunk[0..<r]) }
        }
        return buffer.count - start >= n
    }

    /// Reads every message, handing samples and lost records to `consumer`.
    public func run<C: RecordConsumer>(_ consumer: inout C) throws(RecordingError) {
        var index = 0
        var data: [UInt8] = []
        var cpu = 0
        var lost: UInt64 = 0
        var type = 0
        while true {
            // The length prefix is a gob uint: 1 byte, or a count byte plus up to 8.
            guard try fill(1) else { return }
            let first = buffer[start]
            let prefixLength = first < 0x80 ? 1 : 1 + Int(~first &+ 1)
            guard prefixLength <= 9, try fill(prefixLength) else {
                throw RecordingError("truncated agent stream: message length at offset \(offset) is incomplete")
            }
            var c = GobCursor(bytes: buffer[start..<(start + prefixLength)])
            guard let length = c.uint(), length <= UInt64(Vxrec.maxBodyLength) else {
                throw RecordingError("corrupt agent stream: bad message length at offset \(offset)")
            }
            let total = prefixLength + Int(length)
            guard try fill(total) else {
                throw RecordingError(
                    "truncated agent stream: message at offset \(offset) needs \(length) bytes, "
                        + "\(buffer.count - start - prefixLength) present")
            }
            var m = GobCursor(bytes: buffer[(start + prefixLength)..<(start + total)])
            let messageOffset = offset
            start += total
            offset += total
            index += 1
            guard let id = m.int() else {
                throw RecordingError("corrupt agent stream: message \(index) at offset \(messageOffset) has no type id")
            }
            if id < 0 {
                if let fields = Self.parseStructDefinition(&m), Int64(fields.id) == -id, fields.names.contains("Data") {
                    payloadTypeID = fields.id
                    fieldNames = fields.names
                }
                continue
            }
            guard let payloadTypeID, id == Int64(payloadTypeID) else {
                consumer.malformedRecord(
                    index: index, offset: messageOffset, reason: "agent stream message of unknown gob type \(id)")
                continue
            }
            if !carryOverFields {
                data = []
                cpu = 0
                lost = 0
                type = 0
            }
            var field = -1
            var ok = true
            while true {
                guard let delta = m.uint() else {
                    ok = false
                    break
                }
                if delta == 0 { break }
                field += Int(delta)
                guard field >= 0, field < fieldNames.count else {
                    ok = false
                    break
                }
                switch fieldNames[field] {
                case "Data":
                    guard let bytes = m.byteSlice() else {
                        ok = false
                        break
                    }
                    data = Array(bytes)
                case "CPU": if let v = m.int() { cpu = Int(v) } else { ok = false }
                case "Lost": if let v = m.uint() { lost = v } else { ok = false }
                case "Type": if let v = m.int() { type = Int(v) } else { ok = false }
                default: ok = false
                }
                if !ok { break }
            }
            guard ok else {
                consumer.malformedRecord(index: index, offset: messageOffset, reason: "undecodable agent payload")
                continue
            }
            switch type {
            case 9:
                data.withUnsafeBytes { consumer.sample($0.bytes, cpu: cpu, timeNanoseconds: 0, index: index, offset: messageOffset) }
            case 2:
                consumer.lost(cpu: cpu, count: lost, timeNanoseconds: 0)
            default:
                consumer.malformedRecord(index: index, offset: messageOffset, reason: "agent payload of unknown type \(type)")
            }
            if consumer.shouldStop { return }
        }
    }

    /// Parses a gob wireType holding a struct definition; returns its id and field names in order.
    static func parseStructDefinition(_ c: inout GobCursor) -> (id: Int, names: [String])? {
        // wireType { ArrayT, SliceT, StructT (field 2), ... }
        guard c.uint() == 3 else { return nil }
        // structType { CommonType (field 0) { Name, Id }, Field (field 1) []fieldType }
        guard c.uint() == 1 else { return nil }
        var id = 0
        var field = -1
        while let delta = c.uint(), delta != 0 {
            field += Int(delta)
            switch field {
            case 0: guard c.byteSlice() != nil else { return nil }
            case 1: guard let v = c.int() else { return nil }; id = Int(v)
            default: return nil
            }
        }
        guard c.uint() == 1, let count = c.uint(), count < 64 else { return nil }
        var names: [String] = []
        for _ in 0..<count {
            var f = -1
            var name = ""
            while let delta = c.uint(), delta != 0 {
                f += Int(delta)
                switch f {
                case 0:
                    guard let s = c.byteSlice() else { return nil }
                    name = String(decoding: s, as: UTF8.self)
                case 1: guard c.int() != nil else { return nil }
                default: return nil
                }
            }
            names.append(name)
        }
        return (id, names)
    }
}

/// A bounds-checked reader of gob's variable-length integers and byte strings.
struct GobCursor {
    var bytes: ArraySlice<UInt8>

    mutating func byte() -> UInt8? { bytes.popFirst() }

    /// gob uint: < 0x80 in one byte, else a negated byte count then big-endian bytes.
    mutating func uint() -> UInt64? {
        guard let first = byte() else { return nil }
        if first < 0x80 { return UInt64(first) }
        let n = Int(~first &+ 1)
        guard n >= 1, n <= 8, bytes.count >= n else { return nil }
        var v: UInt64 = 0
        for _ in 0..<n { v = v << 8 | UInt64(byte()!) }
        return v
    }

    /// gob int: zig-zag over uint (bit 0 set = negative, complemented).
    mutating func int() -> Int64? {
        guard let u = uint() else { return nil }
        return u & 1 != 0 ? ~Int64(bitPattern: u >> 1) : Int64(bitPattern: u >> 1)
    }

    /// Length-prefixed bytes ([]byte or string).
    mutating func byteSlice() -> ArraySlice<UInt8>? {
        guard let n = uint(), n <= UInt64(bytes.count) else { return nil }
        let s = bytes.prefix(Int(n))
        bytes = bytes.dropFirst(Int(n))
        return s
    }
}
