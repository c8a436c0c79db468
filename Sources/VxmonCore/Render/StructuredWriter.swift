/// One traversal, two syntaxes: an event writes itself once into a StructuredWriter, and the JSON and
/// YAML writers turn the same calls into NDJSON lines or `---` YAML documents, so both formats carry the
/// same keys in the same order.
protocol StructuredWriter {
    var out: OutputBuffer { get }
    mutating func beginDocument()
    mutating func endDocument()
    mutating func key(_ k: StaticString)
    mutating func beginObject()
    mutating func endObject()
    mutating func beginArray()
    mutating func endArray()
    /// A string whose bytes `body` appends to `out` raw: only for content vxmon produces itself
    /// (names from its tables, addresses, numbers), which never needs escaping.
    mutating func rawString(_ body: (OutputBuffer) -> Void)
    mutating func int<T: BinaryInteger>(_ v: T)
    mutating func bool(_ b: Bool)
    mutating func null()
    // Key-and-value in one call: the common case, which writers can do without per-value bookkeeping.
    mutating func field<T: BinaryInteger>(_ k: StaticString, _ v: T)
    mutating func field(_ k: StaticString, _ v: Bool)
    mutating func field(_ k: StaticString, string v: StaticString)
    mutating func field(_ k: StaticString, raw body: (OutputBuffer) -> Void)
}

extension StructuredWriter {
    mutating func string(_ s: StaticString) { rawString { $0.append(s) } }

    /// A string from outside (interface or node names): escaped for JSON, which is also valid YAML
    /// inside double quotes. Control characters (C0, DEL, C1) are escaped so they never reach a terminal.
    mutating func escapedString(_ s: String) {
        var s = s
        rawString { out in
            // Byte by byte over the UTF-8 (a String's is always valid): printable ASCII is copied,
            // and only the escapes need the scalar, which their leading bytes identify.
            s.withUTF8 { u in
                var i = 0
                while i < u.count {
                    let b = u[i]
                    switch b {
                    case 0x22: out.append("\\\"")
                    case 0x5c: out.append("\\\\")
                    case 0x0a: out.append("\\n")
                    case 0x0d: out.append("\\r")
                    case 0x09: out.append("\\t")
                    case 0..<0x20, 0x7f: out.unicodeEscape(UInt32(b))
                    case 0xc2 where i + 1 < u.count && (0x80...0x9f).contains(u[i + 1]):
                        // U+0080...U+009F, the C1 controls.
                        out.unicodeEscape(UInt32(u[i + 1]))
                        i += 1
                    case 0xe2 where i + 2 < u.count && (u[i + 1] == 0x80 || u[i + 1] == 0x81)
                        && OutputBuffer.isBidiControl(0x2000 | UInt32(u[i + 1] & 0x3f) << 6 | UInt32(u[i + 2] & 0x3f))
                        || i + 2 < u.count && u[i + 1] == 0x80 && (u[i + 2] == 0xa8 || u[i + 2] == 0xa9):
                        // U+2028, U+2029 (line breaks to JavaScript) and the bidi and invisible format
                        // controls (U+200B-F, U+202A-E, U+2060-9): escaped, never raw on a terminal.
                        out.unicodeEscape(0x2000 | UInt32(u[i + 1] & 0x3f) << 6 | UInt32(u[i + 2] & 0x3f))
                        i += 2
                    case 0xd8 where i + 1 < u.count && u[i + 1] == 0x9c:
                        out.unicodeEscape(0x061c)  // ARABIC LETTER MARK
                        i += 1
                    case 0xef where i + 2 < u.count && u[i + 1] == 0xbb && u[i + 2] == 0xbf:
                        out.unicodeEscape(0xfeff)  // zero-width no-break space
                        i += 2
                    default: out.append(byte: b)
                    }
                    i += 1
                }
            }
        }
    }

}

extension OutputBuffer {
    /// `\\u` and four lowercase hex digits.
    func unicodeEscape(_ v: UInt32) {
        append("\\u")
        for shift in stride(from: 12, through: 0, by: -4) {
            append(byte: hexDigit(UInt8(truncatingIfNeeded: (v >> UInt32(shift)) & 0xf)))
        }
    }
}

/// NDJSON: one object per line.
struct JSONWriter: StructuredWriter {
    let out: OutputBuffer
    /// Bit d set: the container at depth d already has an element (a comma is due).
    private var hasElement: UInt64 = 0
    /// Bit d set: the container at depth d is an array.
    private var isArray: UInt64 = 0
    private var depth = 0
    private var afterKey = false

    init(out: OutputBuffer) { self.out = out }

    mutating func beginDocument() {
        depth = 0
        hasElement = 0
        isArray = 0
        afterKey = false
    }

    mutating func endDocument() { out.append(byte: 10) }

    private mutating func valuePrefix() {
        if afterKey {
            afterKey = false
            return
        }
        guard depth > 0 else { return }
        let bit: UInt64 = 1 << UInt64(depth & 63)
        if hasElement & bit != 0 { out.append(byte: UInt8(ascii: ",")) }
        hasElement |= bit
    }

    @inline(__always)
    mutating func key(_ k: StaticString) {
        let bit: UInt64 = 1 << UInt64(depth & 63)
        let comma = hasElement & bit != 0
        hasElement |= bit
        afterKey = true
        out.appendJSONKey(k, comma: comma)
    }

    mutating func beginObject() {
        valuePrefix()
        out.append(byte: UInt8(ascii: "{"))
        depth += 1
        let bit: UInt64 = 1 << UInt64(depth & 63)
        hasElement &= ~bit
        isArray &= ~bit
    }

    mutating func endObject() {
        out.append(byte: UInt8(ascii: "}"))
        depth -= 1
    }

    mutating func beginArray() {
        valuePrefix()
        out.append(byte: UInt8(ascii: "["))
        depth += 1
        let bit: UInt64 = 1 << UInt64(depth & 63)
        hasElement &= ~bit
        isArray |= bit
    }

    mutating func endArray() {
        out.append(byte: UInt8(ascii: "]"))
        depth -= 1
    }

    mutating func rawString(_ body: (OutputBuffer) -> Void) {
        valuePrefix()
        out.append(byte: UInt8(ascii: "\""))
        body(out)
        out.append(byte: UInt8(ascii: "\""))
    }

    mutating func int<T: BinaryInteger>(_ v: T) {
        valuePrefix()
        out.decimal(v)
    }

    mutating func bool(_ b: Bool) {
        valuePrefix()
        out.bool(b)
    }

    mutating func null() {
        valuePrefix()
        out.append("null")
    }

    mutating func field<T: BinaryInteger>(_ k: StaticString, _ v: T) {
        key(k)
        afterKey = false
        out.decimal(v)
    }

    mutating func field(_ k: StaticString, _ v: Bool) {
        key(k)
        afterKey = false
        out.bool(v)
    }

    mutating func field(_ k: StaticString, string v: StaticString) {
        key(k)
        afterKey = false
        out.append(byte: UInt8(ascii: "\""))
        out.append(v)
        out.append(byte: UInt8(ascii: "\""))
    }

    mutating func field(_ k: StaticString, raw body: (OutputBuffer) -> Void) {
        key(k)
        afterKey = false
        out.append(byte: UInt8(ascii: "\""))
        body(out)
        out.append(byte: UInt8(ascii: "\""))
    }
}

/// YAML 1.2 block style, one `---` document per event. Strings are double-quoted with JSON escapes,
/// so no value can change type (`no`, `on`, `0x1f` stay strings) and no YAML library is needed.
/// Arrays of scalars use flow style (`[a, b]`), arrays of objects block style.
///
/// The container stack is a fixed inline array (events nest a few levels deep), so writing an event
/// allocates nothing.
struct YAMLWriter: StructuredWriter {
    let out: OutputBuffer

    static let maxDepth = 32
    /// Per depth: indent of the container's lines.
    private var indent = InlineArray<32, UInt8>(repeating: 0)
    /// Bit d: the container at depth d is an array.
    private var isArray: UInt64 = 0
    /// Bit d: the container at depth d has an element (an object a key, an array a value).
    private var hasElement: UInt64 = 0
    /// Bit d: the object at depth d is an array element, its first key follows `- `.
    private var inlineFirst: UInt64 = 0
    /// Bit d: the array at depth d is written in flow style.
    private var flow: UInt64 = 0
    /// Number of open containers.
    private var depth = 0

    init(out: OutputBuffer) { self.out = out }

    @inline(__always) private func bit(_ d: Int) -> UInt64 { 1 << UInt64(d & 63) }
    /// The innermost open container's index (depth - 1), clamped for safety.
    @inline(__always) private var top: Int { min(max(depth - 1, 0), Self.maxDepth - 1) }

    mutating func beginDocument() {
        depth = 0
        isArray = 0
        hasElement = 0
        inlineFirst = 0
        flow = 0
        out.append("---")
    }

    mutating func endDocument() { out.append(byte: 10) }

    private func newline(_ n: Int) {
        out.append(byte: 10)
        out.append(repeating: 32, count: n)
    }

    private mutating func push(indent n: Int, array: Bool, inline: Bool) {
        let d = min(depth, Self.maxDepth - 1)
        indent[d] = UInt8(truncatingIfNeeded: n)
        let b = bit(d)
        if array { isArray |= b } else { isArray &= ~b }
        if inline { inlineFirst |= b } else { inlineFirst &= ~b }
        hasElement &= ~b
        flow &= ~b
        depth += 1
    }

    mutating func key(_ k: StaticString) {
        guard depth > 0, isArray & bit(top) == 0 else { return }
        let b = bit(top)
        let onNewLine = !(inlineFirst & b != 0 && hasElement & b == 0)
        hasElement |= b
        let spaces = onNewLine ? Int(indent[top]) : 0
        let n = k.utf8CodeUnitCount
        let src = k.utf8Start
        // Newline, indent, key and colon in one reservation (16 spare bytes let the indent be written
        // with two word stores).
        out.withAppendBuffer(maxBytes: spaces &+ n &+ 18) { p in
            var i = 0
            if onNewLine {
                p[0] = 10
                let raw = UnsafeMutableRawPointer(p + 1)
                raw.storeBytes(of: 0x2020_2020_2020_2020 as UInt64, as: UInt64.self)
                raw.storeBytes(of: 0x2020_2020_2020_2020 as UInt64, toByteOffset: 8, as: UInt64.self)
                var k = 16
                while k < spaces {
                    p[1 &+ k] = 32
                    k &+= 1
                }
                i = 1 &+ spaces
            }
            if n <= 32 {
                OutputBuffer.copySmall(p + i, src, n)
            } else {
                (p + i).update(from: src, count: n)
            }
            i &+= n
            p[i] = UInt8(ascii: ":")
            return i &+ 1
        }
    }

    /// Called before a scalar value: after a key it writes a space, in an array the flow marker.
    private mutating func scalarPrefix() {
        guard depth > 0 else { return }
        let b = bit(top)
        guard isArray & b != 0 else {
            out.append(byte: 32)
            return
        }
        out.append(hasElement & b == 0 ? " [" : ", ")
        hasElement |= b
        flow |= b
    }

    mutating func beginObject() {
        if depth == 0 {
            push(indent: 0, array: false, inline: false)
            return
        }
        let t = top
        let n = Int(indent[t])
        if isArray & bit(t) != 0 {
            newline(n)
            out.append("- ")
            hasElement |= bit(t)
            push(indent: n + 2, array: false, inline: true)
        } else {
            push(indent: n + 2, array: false, inline: false)
        }
    }

    mutating func endObject() {
        guard depth > 0 else { return }
        let empty = hasElement & bit(top) == 0
        depth -= 1
        if empty { out.append(depth == 0 ? "{}" : " {}") }
    }

    mutating func beginArray() {
        push(indent: depth == 0 ? 0 : Int(indent[top]) + 2, array: true, inline: false)
    }

    mutating func endArray() {
        guard depth > 0 else { return }
        let b = bit(top)
        let empty = hasElement & b == 0
        let isFlow = flow & b != 0
        depth -= 1
        if empty { out.append(" []") } else if isFlow { out.append(byte: UInt8(ascii: "]")) }
    }

    mutating func rawString(_ body: (OutputBuffer) -> Void) {
        scalarPrefix()
        out.append(byte: UInt8(ascii: "\""))
        body(out)
        out.append(byte: UInt8(ascii: "\""))
    }

    mutating func int<T: BinaryInteger>(_ v: T) {
        scalarPrefix()
        out.decimal(v)
    }

    mutating func bool(_ b: Bool) {
        scalarPrefix()
        out.bool(b)
    }

    mutating func null() {
        scalarPrefix()
        out.append("null")
    }

    // In an object a key's scalar value always follows `key: ` on the same line.
    mutating func field<T: BinaryInteger>(_ k: StaticString, _ v: T) {
        key(k)
        out.append(byte: 32)
        out.decimal(v)
    }

    mutating func field(_ k: StaticString, _ v: Bool) {
        key(k)
        out.append(byte: 32)
        out.bool(v)
    }

    mutating func field(_ k: StaticString, string v: StaticString) {
        key(k)
        out.append(" \"")
        out.append(v)
        out.append(byte: UInt8(ascii: "\""))
    }

    mutating func field(_ k: StaticString, raw body: (OutputBuffer) -> Void) {
        key(k)
        out.append(" \"")
        body(out)
        out.append(byte: UInt8(ascii: "\""))
    }
}
