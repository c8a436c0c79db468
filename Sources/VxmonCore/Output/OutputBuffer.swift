#if canImport(Glibc)
import Glibc
#endif
import VxmonWire

/// A growable byte buffer that renderers write into and the output loop flushes with one write(2)
/// per batch. It is a class so that renderers can share it without copies; it is not thread-safe.
///
/// All formatting helpers append ASCII/UTF-8 bytes directly: no String is built per field.
public final class OutputBuffer {
    /// The buffer state lives behind a `let` pointer: class `var`s would pay a dynamic exclusivity
    /// check on every byte appended, which dominated the JSON renderer's profile.
    @usableFromInline struct State {
        var storage: UnsafeMutablePointer<UInt8>
        var capacity: Int
        var count: Int
    }
    @usableFromInline let state: UnsafeMutablePointer<State>

    @usableFromInline var storage: UnsafeMutablePointer<UInt8> {
        @inline(__always) get { state.pointee.storage }
    }
    @usableFromInline var capacity: Int {
        @inline(__always) get { state.pointee.capacity }
    }
    /// Number of bytes written since the last `removeAll`/flush.
    public var count: Int {
        @inline(__always) get { state.pointee.count }
    }
    @inline(__always) private func setCount(_ n: Int) { state.pointee.count = n }

    public init(capacity: Int = 1 << 16) {
        let c = max(capacity, 64)
        state = .allocate(capacity: 1)
        state.initialize(to: State(storage: .allocate(capacity: c), capacity: c, count: 0))
    }

    deinit {
        state.pointee.storage.deallocate()
        state.deallocate()
    }

    /// The bytes written so far.
    public var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: storage, count: count) }

    /// The contents decoded as UTF-8 (tests and small outputs only).
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    public func removeAll() { setCount(0) }

    /// Drops everything after `mark` (a value of `count` taken earlier).
    public func truncate(to mark: Int) { if mark < count { setCount(max(mark, 0)) } }

    @inline(__always)
    func reserve(_ n: Int) {
        if capacity &- count < n { grow(n) }
    }

    @inline(never)
    private func grow(_ n: Int) {
        var newCapacity = capacity &* 2
        while newCapacity &- count < n { newCapacity &*= 2 }
        let newStorage = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newStorage.update(from: storage, count: count)
        storage.deallocate()
        state.pointee.storage = newStorage
        state.pointee.capacity = newCapacity
    }

    // MARK: Raw appends

    @inline(__always)
    public func append(byte b: UInt8) {
        reserve(1)
        storage[count] = b
        state.pointee.count &+= 1
    }

    @inline(__always)
    public func append(_ s: StaticString) {
        let n = s.utf8CodeUnitCount
        reserve(n)
        let dst = storage + count
        let src = s.utf8Start
        if n <= 32 {
            // Short literals dominate; word moves beat a memmove call for them.
            OutputBuffer.copySmall(dst, src, n)
        } else {
            dst.update(from: src, count: n)
        }
        state.pointee.count &+= n
    }

    /// Copies `n` bytes (n <= 32) with a few overlapping word moves instead of a byte loop or a memmove
    /// call. Only bytes inside `src[0..<n]` are read and inside `dst[0..<n]` written.
    @inline(__always)
    static func copySmall(_ dst: UnsafeMutablePointer<UInt8>, _ src: UnsafePointer<UInt8>, _ n: Int) {
        let d = UnsafeMutableRawPointer(dst)
        let s = UnsafeRawPointer(src)
        if n >= 8 {
            if n <= 16 {
                let a = s.loadUnaligned(as: UInt64.self)
                let b = s.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
                d.storeBytes(of: a, as: UInt64.self)
                d.storeBytes(of: b, toByteOffset: n &- 8, as: UInt64.self)
            } else {
                let a = s.loadUnaligned(as: UInt64.self)
                let b = s.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
                let c = s.loadUnaligned(fromByteOffset: n &- 16, as: UInt64.self)
                let e = s.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
                d.storeBytes(of: a, as: UInt64.self)
                d.storeBytes(of: b, toByteOffset: 8, as: UInt64.self)
                d.storeBytes(of: c, toByteOffset: n &- 16, as: UInt64.self)
                d.storeBytes(of: e, toByteOffset: n &- 8, as: UInt64.self)
            }
        } else if n >= 4 {
            let a = s.loadUnaligned(as: UInt32.self)
            let b = s.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
            d.storeBytes(of: a, as: UInt32.self)
            d.storeBytes(of: b, toByteOffset: n &- 4, as: UInt32.self)
        } else {
            var i = 0
            while i < n {
                dst[i] = src[i]
                i &+= 1
            }
        }
    }

    /// `,"key":` (comma optional) in one reservation: the JSON writer's hottest operation.
    @inline(__always)
    public func appendJSONKey(_ k: StaticString, comma: Bool) {
        let n = k.utf8CodeUnitCount
        reserve(n &+ 4)
        var p = storage + count
        let start = p
        if comma {
            p.pointee = UInt8(ascii: ",")
            p += 1
        }
        p.pointee = UInt8(ascii: "\"")
        p += 1
        if n <= 32 {
            OutputBuffer.copySmall(p, k.utf8Start, n)
        } else {
            p.update(from: k.utf8Start, count: n)
        }
        p += n
        p[0] = UInt8(ascii: "\"")
        p[1] = UInt8(ascii: ":")
        state.pointee.count &+= (p - start) &+ 2
    }

    /// Reserves `maxBytes`, lets `body` write up to that many bytes at the returned pointer and
    /// commits the count it returns. For hot formatting paths that write several pieces at once.
    @inline(__always)
    public func withAppendBuffer(maxBytes: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) {
        reserve(maxBytes)
        let written = body(storage + count)
        state.pointee.count &+= min(max(written, 0), maxBytes)
    }

    /// Disfavoured: without it, Swift picks this overload for string literals (String is the
    /// default literal type), and every `append("literal")` paid for a String's UTF-8 access
    /// instead of the StaticString word copies.
    @_disfavoredOverload
    public func append(_ s: String) {
        var s = s
        s.withUTF8 { append(bytes: $0) }
    }

    @inline(__always)
    public func append(bytes: UnsafeBufferPointer<UInt8>) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        (storage + count).update(from: base, count: bytes.count)
        state.pointee.count &+= bytes.count
    }

    public func append(_ other: OutputBuffer) { append(bytes: other.bytes) }

    /// Appends `value` in little-endian byte order (binary formats such as pcapng).
    @inline(__always)
    public func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        let n = MemoryLayout<T>.size
        reserve(n)
        UnsafeMutableRawPointer(storage + count).storeBytes(of: value.littleEndian, as: T.self)
        state.pointee.count &+= n
    }

    /// Overwrites the four bytes at `offset` (a value of `count` taken earlier) with `value` in
    /// little-endian order: for length fields that are known only once the body is written. Does
    /// nothing when those bytes have not been written.
    public func setLittleEndian(_ value: UInt32, at offset: Int) {
        guard offset >= 0, offset <= count &- 4 else { return }
        UnsafeMutableRawPointer(storage + offset).storeBytes(of: value.littleEndian, as: UInt32.self)
    }

    /// Appends `n` copies of `b`.
    public func append(repeating b: UInt8, count n: Int) {
        guard n > 0 else { return }
        reserve(n)
        (storage + count).update(repeating: b, count: n)
        state.pointee.count &+= n
    }

    // MARK: Numbers

    /// Decimal, like Go's `%d`.
    @inline(__always)
    public func decimal<T: BinaryInteger>(_ value: T) {
        if value < 0 {
            append(byte: UInt8(ascii: "-"))
            // Magnitude handles Int.min without overflow.
            unsignedDecimal(UInt64(value.magnitude))
        } else {
            unsignedDecimal(UInt64(value))
        }
    }

    @inline(__always)
    public func unsignedDecimal(_ value: UInt64) {
        if value < 10 {
            append(byte: UInt8(truncatingIfNeeded: value) &+ 48)
            return
        }
        // Count the digits, then write them in place from the last one, two at a time.
        var digits = 2
        var bound: UInt64 = 100
        while digits < 20 && value >= bound {
            digits &+= 1
            bound = bound &* 10
        }
        reserve(digits)
        let pairs = OutputBuffer.digitPairs
        var p = storage + (count &+ digits)
        var v = value
        while v >= 100 {
            let r = Int(v % 100) &* 2
            v /= 100
            p -= 2
            p[0] = pairs[r]
            p[1] = pairs[r &+ 1]
        }
        if v >= 10 {
            let r = Int(v) &* 2
            p -= 2
            p[0] = pairs[r]
            p[1] = pairs[r &+ 1]
        } else {
            p -= 1
            p[0] = UInt8(truncatingIfNeeded: v) &+ 48
        }
        state.pointee.count &+= digits
    }

    /// "00" "01" ... "99" as bytes, straight from read-only data (no lazy global, no bounds check).
    @inline(__always)
    static var digitPairs: UnsafePointer<UInt8> {
        ("00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899" as StaticString).utf8Start
    }

    /// Zero-padded decimal of at least `width` digits, like Go's `%02d`.
    public func decimal(_ value: Int, width: Int) {
        var digits = 1
        var v = value.magnitude / 10
        while v > 0 {
            digits += 1
            v /= 10
        }
        if value < 0 { append(byte: UInt8(ascii: "-")) }
        if digits < width { append(repeating: 48, count: width - digits) }
        unsignedDecimal(UInt64(value.magnitude))
    }

    /// Lowercase hex without prefix, like Go's `%x`.
    public func hex(_ value: UInt64) {
        if value == 0 {
            append(byte: 48)
            return
        }
        // Digits from the number of significant bits; written two at a time from a table.
        let digits = (64 &- value.leadingZeroBitCount &+ 3) >> 2
        reserve(digits)
        var p = count &+ digits
        var v = value
        let pairs = Self.hexPairs
        let start = count
        while p &- start >= 2 {
            let pair = pairs[Int(v & 0xff)]
            p &-= 2
            storage[p] = UInt8(truncatingIfNeeded: pair >> 8)
            storage[p &+ 1] = UInt8(truncatingIfNeeded: pair)
            v >>= 8
        }
        if p > start {
            p &-= 1
            storage[p] = UInt8(truncatingIfNeeded: pairs[Int(v & 0xf)])
        }
        state.pointee.count &+= digits
    }

    /// The two lowercase hex digits of every byte, high digit in the high byte.
    nonisolated(unsafe) static let hexPairs: UnsafePointer<UInt16> = {
        let table = UnsafeMutablePointer<UInt16>.allocate(capacity: 256)
        let digits = Array("0123456789abcdef".utf8)
        for b in 0..<256 { table[b] = UInt16(digits[b >> 4]) << 8 | UInt16(digits[b & 15]) }
        return UnsafePointer(table)  // read-only once built; lives for the process
    }()

    /// The decimal digits of every octet (up to three ASCII bytes, low byte first) and their count in
    /// the top byte: one load per octet of an IPv4 address.
    nonisolated(unsafe) static let octetTable: UnsafePointer<UInt32> = {
        let table = UnsafeMutablePointer<UInt32>.allocate(capacity: 256)
        for o in 0..<256 {
            let text = Array(String(o).utf8)
            var packed = UInt32(text.count) << 24
            for (i, c) in text.enumerated() { packed |= UInt32(c) << (8 * UInt32(i)) }
            table[o] = packed
        }
        return UnsafePointer(table)  // read-only once built; lives for the process
    }()

    /// Go's `%#x`: `0x` then lowercase hex (`0x0` for zero).
    @inline(__always)
    public func hexPrefixed(_ value: UInt64) {
        append("0x")
        hex(value)
    }

    /// Two lowercase hex digits.
    @inline(__always)
    public func hexByte(_ b: UInt8) {
        reserve(2)
        storage[count] = hexDigit(b >> 4)
        storage[count &+ 1] = hexDigit(b & 0xf)
        state.pointee.count &+= 2
    }

    @inline(__always)
    func hexDigit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? nibble &+ 48 : nibble &+ 87 }

    /// `true` / `false`.
    @inline(__always)
    public func bool(_ b: Bool) { b ? append("true") : append("false") }

    // MARK: Addresses (Go `net` formatting)

    /// `aa:bb:cc:dd:ee:ff`, lowercase (Go `net.HardwareAddr.String`).
    public func mac(_ m: MACAddress) {
        withAppendBuffer(maxBytes: 17) { p in
            var n = 0
            var shift: UInt64 = 40
            while true {
                let b = UInt8(truncatingIfNeeded: m.rawValue >> shift)
                p[n] = hexDigit(b >> 4)
                p[n &+ 1] = hexDigit(b & 0xf)
                n &+= 2
                if shift == 0 { return n }
                p[n] = UInt8(ascii: ":")
                n &+= 1
                shift &-= 8
            }
        }
    }

    /// Dotted quad.
    public func ipv4(_ a: IPv4Address) {
        reserve(16)
        let table = Self.octetTable
        let p = storage + count
        var n = 0
        var shift: UInt32 = 24
        while true {
            let packed = table[Int(UInt8(truncatingIfNeeded: a.rawValue >> shift))]
            // Four bytes stored at once (room was reserved); only `length` of them count.
            UnsafeMutableRawPointer(p + n).storeBytes(of: packed.littleEndian, as: UInt32.self)
            n &+= Int(packed >> 24)
            if shift == 0 { break }
            p[n] = UInt8(ascii: ".")
            n &+= 1
            shift &-= 8
        }
        state.pointee.count &+= n
    }

    /// Go `net.IP.String()` for a 16-byte address: IPv4-mapped addresses print dotted; otherwise the
    /// longest run of two or more zero groups (the first on a tie) becomes `::`.
    public func ipv6(_ a: IPv6Address) {
        if let v4 = a.mappedIPv4 {
            ipv4(v4)
            return
        }
        var bestStart = -1
        var bestLength = 0
        var i = 0
        while i < 8 {
            if a.group(i) == 0 {
                var j = i
                while j < 8 && a.group(j) == 0 { j += 1 }
                if j - i > bestLength {
                    bestStart = i
                    bestLength = j - i
                }
                i = j
            } else {
                i += 1
            }
        }
        if bestLength < 2 { bestStart = -1 }
        i = 0
        while i < 8 {
            if i == bestStart {
                append("::")
                i += bestLength
                continue
            }
            if i > 0 && i != bestStart + bestLength { append(byte: UInt8(ascii: ":")) }
            if i > 0 && i == bestStart + bestLength && bestStart < 0 { append(byte: UInt8(ascii: ":")) }
            hex(UInt64(a.group(i)))
            i += 1
        }
    }

    public func ip(_ a: IPAddress) {
        switch a {
        case .v4(let v4): ipv4(v4)
        case .v6(let v6): ipv6(v6)
        }
    }
}

