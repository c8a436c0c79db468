// Bounds-checked loads over RawSpan.
//
// Every header parser in this module first proves, with one comparison against `byteCount`, that its
// fixed part is present, then loads fields with these helpers. The loads themselves are still bounds
// checked by RawSpan (a trap, never an over-read) as a last line of defence; the explicit check is what
// turns "too short" into data instead of a trap.

extension RawSpan {
    /// True when `count` bytes starting at `offset` are inside the span. Never traps, never overflows.
    @inlinable @inline(__always)
    public func has(_ count: Int, at offset: Int) -> Bool {
        // Ordered comparisons first so the subtraction cannot underflow.
        offset >= 0 && count >= 0 && offset <= byteCount && byteCount &- offset >= count
    }

    /// Bytes available from `offset` to the end (0 when `offset` is past the end).
    @inlinable @inline(__always)
    public func available(from offset: Int) -> Int {
        offset >= byteCount ? 0 : byteCount &- max(offset, 0)
    }

    /// One octet.
    @inlinable @inline(__always)
    public func u8(_ offset: Int) -> UInt8 {
        unsafeLoad(fromByteOffset: offset, as: UInt8.self)
    }

    /// A 16-bit network-order (big-endian) field, returned in host order.
    @inlinable @inline(__always)
    public func be16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: unsafeLoadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// A 32-bit network-order (big-endian) field, returned in host order.
    @inlinable @inline(__always)
    public func be32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: unsafeLoadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// A 64-bit network-order (big-endian) field, returned in host order.
    @inlinable @inline(__always)
    public func be64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: unsafeLoadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A 16-bit little-endian field (event headers are host order; vxmon supports little-endian hosts).
    @inlinable @inline(__always)
    public func le16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: unsafeLoadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// A 32-bit little-endian field.
    @inlinable @inline(__always)
    public func le32(_ offset: Int) -> UInt32 {
        UInt32(littleEndian: unsafeLoadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// A 64-bit little-endian field.
    @inlinable @inline(__always)
    public func le64(_ offset: Int) -> UInt64 {
        UInt64(littleEndian: unsafeLoadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A 48-bit MAC address at `offset`.
    @inlinable @inline(__always)
    public func mac(_ offset: Int) -> MACAddress {
        MACAddress(rawValue: UInt64(be16(offset)) << 32 | UInt64(be32(offset &+ 2)))
    }

    /// An IPv4 address at `offset` (network order on the wire).
    @inlinable @inline(__always)
    public func ipv4(_ offset: Int) -> IPv4Address {
        IPv4Address(rawValue: be32(offset))
    }

    /// An IPv6 address at `offset` (network order on the wire).
    @inlinable @inline(__always)
    public func ipv6(_ offset: Int) -> IPv6Address {
        IPv6Address(high: be64(offset), low: be64(offset &+ 8))
    }
}
