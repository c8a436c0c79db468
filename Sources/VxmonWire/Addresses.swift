/// A 48-bit Ethernet MAC address, first octet in the most significant used byte.
public struct MACAddress: Hashable, Sendable {
    /// The address as a 48-bit integer (`aa:bb:cc:dd:ee:ff` is `0xaabbccddeeff`).
    public var rawValue: UInt64

    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue & 0xffff_ffff_ffff }

    /// Octet `i` (0...5) in wire order.
    @inline(__always)
    public func octet(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: rawValue >> UInt64((5 - i) * 8)) }
}

/// An IPv4 address; `rawValue` holds the four wire octets, first octet most significant.
public struct IPv4Address: Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Octet `i` (0...3) in wire order.
    @inline(__always)
    public func octet(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: rawValue >> UInt32((3 - i) * 8)) }
}

/// An IPv6 address as two 64-bit halves in wire order.
public struct IPv6Address: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64
    @inlinable public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// 16-bit group `i` (0...7) in wire order.
    @inline(__always)
    public func group(_ i: Int) -> UInt16 {
        let half = i < 4 ? high : low
        return UInt16(truncatingIfNeeded: half >> UInt64((3 - (i & 3)) * 16))
    }

    /// The embedded IPv4 address when this is an IPv4-mapped address (`::ffff:a.b.c.d`).
    public var mappedIPv4: IPv4Address? {
        high == 0 && (low >> 32) == 0xffff ? IPv4Address(rawValue: UInt32(truncatingIfNeeded: low)) : nil
    }
}

/// An IP address of either family.
public enum IPAddress: Hashable, Sendable {
    case v4(IPv4Address)
    case v6(IPv6Address)
}
