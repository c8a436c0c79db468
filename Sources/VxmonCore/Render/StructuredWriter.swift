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
}

extension StructuredWriter {
    mutating func string(_ s: StaticString) { rawString { $0.append(s) } }

    /// A string from outside (interface or node names): escaped for JSON, which is also valid YAML
    /// inside double quotes. Control characters (C0, DEL, C1) are escaped so they never reach a terminal.
    mutating func escapedString(_ s: String) {
        rawString { out in
            for scalar in s.unicodeScalars {
                let v = scalar.value
                switch v {
                case 0x22: out.append("\\\"")
                case 0x5c: out.append("\\\\")
                case 0x0a: out.append("\\n")
                case 0x0d: out.append("\\r")
                case 0x09: out.append("\\t")
                case 0..<0x20, 0x7f...0x9f, 0x2028, 0x2029:
                    out.append("\\u")
                    let hex = UInt64(v)
                    for shift in stride(from: 12, through: 0, by: -4) {
                        out.append(byte: out.hexDigit(UInt8(truncatingIfNeeded: (hex >> UInt64(shift)) & 0xf)))
                    }
                default:
                    for b in String(scalar).utf8 { out.append(byte: b) }
                }
            }
        }
    }

    mutating func field<T: BinaryInteger>(_ k: StaticString, _ v: T) {
        key(k)
        int(v)
    }

    mutating func field(_ k: StaticString, _ v: Bool) {
        key(k)
        bool(v)
    }

    mutating func field(_ k: StaticString, string v: StaticString) {
        key(k)
        string(v)
    }

    mutating func field(_ k: StaticString, raw body: (OutputBuffer) -> Void) {
        key(k)
        rawString(body)
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

    mutating func key(_ k: StaticString) {
        let bit: UInt64 = 1 << UInt64(depth & 63)
        let comma = hasElement & bit != 0
        hasElement |= bit
        afterKey = true
        let n = k.utf8CodeUnitCount
        let src = k.utf8Start
        out.withAppendBuffer(maxBytes: n &+ 4) { p in
            var i = 0
            if comma {
                p[0] = UInt8(ascii: ",")
                i = 1
            }
            p[i] = UInt8(ascii: "\"")
            i &+= 1
            var j = 0
            while j < n {
                p[i &+ j] = src[j]
                j &+= 1
            }
            i &+= n
            p[i] = UInt8(ascii: "\"")
            p[i &+ 1] = UInt8(ascii: ":")
            return i &+ 2
        }
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
}

/// YAML 1.2 block style, one `---` document per event. Strings are double-quoted with JSON escapes,
/// so no value can change type (`no`, `on`, `0x1f` stay strings) and no YAML library is needed.
/// Arrays of scalars use flow style (`[a, b]`), arrays of objects block style.
struct YAMLWriter: StructuredWriter {
    let out: OutputBuffer

    private enum Container {
        /// An object; `count` keys written so far; `inlineFirst`: the first key follows `- ` on the same line.
        case object(indent: Int, count: Int, inlineFirst: Bool)
        /// An array; `flow` once its first element was a scalar.
        case array(indent: Int, count: Int, flow: Bool)
    }

    private var stack: [Container] = []

    init(out: OutputBuffer) {
        self.out = out
        stack.reserveCapacity(16)
    }

    mutating func beginDocument() {
        stack.removeAll(keepingCapacity: true)
        out.append("---")
    }

    mutating func endDocument() { out.append(byte: 10) }

    private func newline(_ indent: Int) {
        out.append(byte: 10)
        out.append(repeating: 32, count: indent)
    }

    mutating func key(_ k: StaticString) {
        guard case .object(let indent, let count, let inlineFirst)? = stack.last else { return }
        if !(inlineFirst && count == 0) { newline(indent) }
        out.append(k)
        out.append(byte: UInt8(ascii: ":"))
        stack[stack.count - 1] = .object(indent: indent, count: count + 1, inlineFirst: inlineFirst)
    }

    /// Called before a scalar value: after a key it writes a space, in an array the element marker.
    private mutating func scalarPrefix() {
        guard case .array(let indent, let count, _)? = stack.last else {
            if !stack.isEmpty { out.append(byte: 32) }
            return
        }
        out.append(count == 0 ? " [" : ", ")
        stack[stack.count - 1] = .array(indent: indent, count: count + 1, flow: true)
    }

    mutating func beginObject() {
        switch stack.last {
        case nil:
            stack.append(.object(indent: 0, count: 0, inlineFirst: false))
        case .object(let indent, _, _):
            stack.append(.object(indent: indent + 2, count: 0, inlineFirst: false))
        case .array(let indent, let count, _):
            newline(indent)
            out.append("- ")
            stack[stack.count - 1] = .array(indent: indent, count: count + 1, flow: false)
            stack.append(.object(indent: indent + 2, count: 0, inlineFirst: true))
        }
    }

    mutating func endObject() {
        if case .object(_, let count, _)? = stack.popLast(), count == 0 {
            out.append(stack.isEmpty ? "{}" : " {}")
        }
    }

    mutating func beginArray() {
        let indent: Int
        switch stack.last {
        case .object(let i, _, _)?: indent = i + 2
        case .array(let i, _, _)?: indent = i + 2
        case nil: indent = 0
        }
        stack.append(.array(indent: indent, count: 0, flow: false))
    }

    mutating func endArray() {
        if case .array(_, let count, let flow)? = stack.popLast() {
            if count == 0 { out.append(" []") } else if flow { out.append(byte: UInt8(ascii: "]")) }
        }
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
}
