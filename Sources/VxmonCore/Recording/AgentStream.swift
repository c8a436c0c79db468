#if canImport(Glibc)
import Glibc  // memmove
#endif

/// Reads the stream a Cilium agent writes to `cilium monitor` clients on its monitor socket
/// (listener protocol "1.2"): Go `encoding/gob` messages, one per payload, of the type
/// `Payload { Data []byte; CPU int; Lost uint64; Type int }`. Type 9 is a sample (`Data` = the raw
/// perf sample), type 2 a lost record.
///
/// Only what this stream needs of gob is implemented: message framing, the type definition of the
/// payload struct (whose id is taken from the stream, never assumed), and struct values whose zero
/// fields are omitted.
public final class AgentStreamParser: ByteStreamParser {
    private var buffer: [UInt8] = []
    private var start = 0
    /// Offset in the input of `buffer[start]`.
    private var offset = 0
    private var index = 0
    private var payloadTypeID: Int64?
    /// Field number -> field name of the payload struct, from its definition.
    private var fieldNames: [String] = []
    /// The payload fields as the last message left them (`carryOverFields`).
    private var data: [UInt8] = []
    private var cpu = 0
    private var lost: UInt64 = 0
    private var type: Int64 = 0
    /// Reproduce `cilium monitor`'s decoding into one reused variable: a field absent from a message
    /// keeps its value from the previous message (visible as a stale CPU number).
    public var carryOverFields = false

    public init() {}

    /// True when `prefix` looks like an agent stream (a gob type definition comes first).
    public static func looksLikeAgentStream(_ prefix: [UInt8]) -> Bool {
        var p = GobCursor(bytes: prefix[...])
        guard let length = p.uint(), length > 0, let id = p.int() else { return false }
        return id < 0
    }

    /// Appends input.
    public func feed(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Appends input written in place by `body` (a read(2)), up to `maximum` bytes; returns what
    /// `body` returned.
    @discardableResult
    public func feed(maximum: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        let old = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: maximum))
        let n = buffer.withUnsafeMutableBytes { body(UnsafeMutableRawBufferPointer(rebasing: $0[old...])) }
        buffer.removeLast(maximum - max(0, min(n, maximum)))
        return n
    }

    /// Bytes buffered but not yet parsed.
    public var pending: Int { buffer.count - start }

    /// The length prefix of the message at `start`, and the prefix's own length; nil while
    /// incomplete. Throws for a length no message can have.
    private func messageLength() throws(RecordingError) -> (prefix: Int, length: Int)? {
        guard start < buffer.count else { return nil }
        // A gob uint: 1 byte, or a count byte (0xff = 1 ... 0xf8 = 8) plus that many bytes.
        let first = buffer[start]
        let prefix = first < 0x80 ? 1 : 1 &+ Int(~first &+ 1)
        guard prefix <= 9 else {
            throw RecordingError("corrupt agent stream: bad message length at offset \(offset)")
        }
        guard buffer.count - start >= prefix else { return nil }
        var c = GobCursor(bytes: buffer[start..<(start + prefix)])
        guard let length = c.uint(), length <= UInt64(Vxrec.maxBodyLength) else {
            throw RecordingError("corrupt agent stream: bad message length at offset \(offset)")
        }
        return (prefix, Int(length))
    }

    /// Hands every complete message buffered so far to `consumer`. A malformed payload is reported
    /// and skipped; a stream that cannot be framed any more throws (with its byte offset).
    public func parse<C: RecordConsumer>(into consumer: inout C) throws(RecordingError) {
        while let (prefix, length) = try messageLength() {
            let total = prefix + length
            guard buffer.count - start >= total else { return }
            var m = GobCursor(bytes: buffer[(start + prefix)..<(start + total)])
            let messageOffset = offset
            start += total
            offset += total
            index += 1
            deliver(&m, messageOffset, &consumer)
            if consumer.shouldStop { return }
        }
    }

    /// At the end of the input: throws if it ended inside a message.
    public func finish() throws(RecordingError) {
        guard pending > 0 else { return }
        if let (prefix, length) = try messageLength() {
            throw RecordingError(
                "truncated agent stream: message at offset \(offset) needs \(length) bytes, \(pending - prefix) present")
        }
        throw RecordingError("truncated agent stream: message length at offset \(offset) is incomplete")
    }

    private func deliver<C: RecordConsumer>(_ m: inout GobCursor, _ messageOffset: Int, _ consumer: inout C) {
        guard let id = m.int() else {
            consumer.malformedRecord(index: index, offset: messageOffset, reason: "agent stream message has no type id")
            return
        }
        if id < 0 {
            // A type definition; its id is the negated message id (Int64.min has no positive twin).
            guard let fields = Self.parseStructDefinition(&m), id != Int64.min, fields.id == -id else {
                consumer.malformedRecord(index: index, offset: messageOffset, reason: "unusable gob type definition")
                return
            }
            // Definitions of other types (none in Cilium's stream) are not the payload.
            if fields.names.contains("Data") {
                payloadTypeID = fields.id
                fieldNames = fields.names
            }
            return
        }
        guard let payloadTypeID, id == payloadTypeID else {
            consumer.malformedRecord(index: index, offset: messageOffset, reason: "agent stream message of unknown gob type \(id)")
            return
        }
        if !carryOverFields {
            data.removeAll(keepingCapacity: true)
            cpu = 0
            lost = 0
            type = 0
        }
        var field = -1
        var ok = true
        while ok {
            guard let delta = m.uint() else {
                ok = false
                break
            }
            if delta == 0 { break }
            // Field numbers only grow, by deltas from outside: check before adding.
            guard delta <= UInt64(fieldNames.count), field &+ Int(delta) < fieldNames.count else {
                ok = false
                break
            }
            field &+= Int(delta)
            switch fieldNames[field] {
            case "Data":
                if let bytes = m.byteSlice() { data = Array(bytes) } else { ok = false }
            case "CPU":
                if let v = m.int(), let c = Int(exactly: v) { cpu = c } else { ok = false }
            case "Lost": if let v = m.uint() { lost = v } else { ok = false }
            case "Type": if let v = m.int() { type = v } else { ok = false }
            default: ok = false
            }
        }
        guard ok else {
            consumer.malformedRecord(index: index, offset: messageOffset, reason: "undecodable agent payload")
            return
        }
        switch type {
        case 9:
            data.withUnsafeBytes { consumer.sample($0.bytes, cpu: cpu, timeNanoseconds: 0, index: index, offset: messageOffset) }
        case 2:
            consumer.lost(cpu: cpu, count: lost, timeNanoseconds: 0)
        default:
            consumer.malformedRecord(index: index, offset: messageOffset, reason: "agent payload of unknown type \(type)")
        }
    }

    /// Parses a gob wireType holding a struct definition; returns its id and field names in order.
    static func parseStructDefinition(_ c: inout GobCursor) -> (id: Int64, names: [String])? {
        // wireType { ArrayT, SliceT, StructT (field 2), ... }
        guard c.uint() == 3 else { return nil }
        // structType { CommonType (field 0) { Name, Id }, Field (field 1) []fieldType }
        guard c.uint() == 1 else { return nil }
        var id: Int64 = 0
        var field = -1
        while let delta = c.uint(), delta != 0 {
            guard delta <= 2 else { return nil }
            field &+= Int(delta)
            switch field {
            case 0: guard c.byteSlice() != nil else { return nil }
            case 1: guard let v = c.int() else { return nil }; id = v
            default: return nil
            }
        }
        guard c.uint() == 1, let count = c.uint(), count < 64 else { return nil }
        var names: [String] = []
        for _ in 0..<count {
            var f = -1
            var name = ""
            while let delta = c.uint(), delta != 0 {
                guard delta <= 2 else { return nil }
                f &+= Int(delta)
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

/// Writes the stream a Cilium agent writes to its monitor listeners (protocol 1.2): the gob type
/// definition of `Payload { Data []byte; CPU int; Lost uint64; Type int }` once per connection, then
/// one gob message per payload, zero fields omitted, as Go's encoder writes them.
public enum AgentPayloadEncoder {
    /// The gob type id the payload struct gets: Go's first user type id (64 predefined ones come
    /// before it), as in a fresh Cilium agent. Readers take it from the definition.
    public static let payloadTypeID: Int64 = 65
    /// `Payload.Type` of a sample (perf PERF_RECORD_SAMPLE) and of a lost record (PERF_RECORD_LOST).
    public static let sampleType: Int64 = 9
    public static let lostType: Int64 = 2

    /// The message defining the payload type: what a connection starts with.
    public static func appendTypeDefinition(to out: OutputBuffer, id: Int64 = payloadTypeID) {
        message(to: out) { b in
            appendInt(-id, to: b)
            // wireType { StructT (field 2) }: delta 3 to field 2.
            appendUint(3, to: b)
            // structType { CommonType (field 0) { Name (0), Id (1) }, Field (1) []fieldType }
            appendUint(1, to: b)
            appendUint(1, to: b)
            appendBytes(Array("Payload".utf8), to: b)
            appendUint(1, to: b)
            appendInt(id, to: b)
            appendUint(0, to: b)  // end of CommonType
            appendUint(1, to: b)  // Field
            // gob's predefined type ids: []byte 5, int 2, uint 3.
            let fields: [(String, Int64)] = [("Data", 5), ("CPU", 2), ("Lost", 3), ("Type", 2)]
            appendUint(UInt64(fields.count), to: b)
            for (name, type) in fields {
                appendUint(1, to: b)
                appendBytes(Array(name.utf8), to: b)
                appendUint(1, to: b)
                appendInt(type, to: b)
                appendUint(0, to: b)
            }
            appendUint(0, to: b)  // end of structType
            appendUint(0, to: b)  // end of wireType
        }
    }

    /// One `Payload` message (fields that are zero are left out, as gob does).
    public static func appendPayload(
        data: UnsafeRawBufferPointer, cpu: Int, lost: UInt64, type: Int64, to out: OutputBuffer, id: Int64 = payloadTypeID
    ) {
        message(to: out) { b in
            appendInt(id, to: b)
            var field = -1
            func next(_ number: Int) {
                appendUint(UInt64(number - field), to: b)
                field = number
            }
            if data.count > 0 {
                next(0)
                appendUint(UInt64(data.count), to: b)
                b.append(bytes: data.bindMemory(to: UInt8.self))
            }
            if cpu != 0 {
                next(1)
                appendInt(Int64(cpu), to: b)
            }
            if lost != 0 {
                next(2)
                appendUint(lost, to: b)
            }
            if type != 0 {
                next(3)
                appendInt(type, to: b)
            }
            appendUint(0, to: b)
        }
    }

    /// A message: its body's length as a gob uint, then the body. The body is written in place after
    /// room for the longest length prefix, then moved down over what the prefix did not use (no
    /// allocation per message: the agent encodes one per event).
    private static func message(to out: OutputBuffer, _ body: (OutputBuffer) -> Void) {
        let start = out.count
        out.append(repeating: 0, count: 9)
        body(out)
        let length = out.count - start - 9
        let base = UnsafeMutablePointer(mutating: out.bytes.baseAddress!) + start
        let prefix = writeUint(UInt64(length), to: base)
        memmove(base + prefix, base + 9, length)
        out.truncate(to: start + prefix + length)
    }

    /// Writes `v` as a gob uint at `p` (at most 9 bytes): < 0x80 in one byte, else the negated byte
    /// count, then the big-endian bytes. Returns the bytes written.
    static func writeUint(_ v: UInt64, to p: UnsafeMutablePointer<UInt8>) -> Int {
        if v < 0x80 {
            p[0] = UInt8(v)
            return 1
        }
        let n = (64 - v.leadingZeroBitCount + 7) / 8
        p[0] = UInt8(truncatingIfNeeded: -n)
        for i in 0..<n { p[1 + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(n - 1 - i))) }
        return 1 + n
    }

    static func appendUint(_ v: UInt64, to out: OutputBuffer) {
        out.withAppendBuffer(maxBytes: 9) { writeUint(v, to: $0) }
    }

    /// gob int: zig-zag (bit 0 set = negative, the rest complemented).
    static func appendInt(_ v: Int64, to out: OutputBuffer) {
        appendUint(v < 0 ? (UInt64(bitPattern: ~v) << 1) | 1 : UInt64(bitPattern: v) << 1, to: out)
    }

    static func appendBytes(_ bytes: [UInt8], to out: OutputBuffer) {
        appendUint(UInt64(bytes.count), to: out)
        bytes.withUnsafeBufferPointer { out.append(bytes: $0) }
    }
}
