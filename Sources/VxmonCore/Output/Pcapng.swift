// pcapng capture files, draft-ietf-opsawg-pcapng (PCAP Next Generation Capture File Format).
//
// Every block has the same frame; vxmon writes little-endian sections whatever the host:
//
//     0                   1                   2                   3
//     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//    +---------------------------------------------------------------+
//  0 |                          Block Type                           |
//    +---------------------------------------------------------------+
//  4 |                      Block Total Length                       |
//    +---------------------------------------------------------------+
//  8 /                          Block Body                           /
//    /          variable length, padded to 32 bits, options          /
//    +---------------------------------------------------------------+
//    |                      Block Total Length                       |
//    +---------------------------------------------------------------+
//
// Options are {u16 code, u16 length, value padded to 32 bits}, closed by opt_endofopt {0, 0}.
// vxmon writes three blocks:
//   - Section Header Block (0x0A0D0D0A): byte-order magic 0x1A2B3C4D, version 1.0, section length -1
//     (unknown: the file is a stream), option shb_userappl (4).
//   - Interface Description Block (1): u16 link type, u16 reserved, u32 snap length, options if_name (2)
//     and if_tsresol (9) = 9, so timestamps count nanoseconds.
//   - Enhanced Packet Block (6): u32 interface id, timestamp as u32 high then u32 low half, u32 captured
//     length, u32 original length, the packet padded to 32 bits, option opt_comment (1).
//
// Names and comments come from outside (recordings, other nodes' interface names). The encoder keeps
// every option valid whatever they hold: at most `PcapngEncoder.maximumTextLength` bytes (the length field
// is 16 bits), cut at a scalar boundary so the value stays UTF-8 (the spec requires writers to write valid
// UTF-8), and control characters replaced by `?` (a NUL would end the string for readers, an escape
// sequence would reach the terminal of whoever runs `tshark -r`).

/// The link types vxmon writes (LINKTYPE_ values of the pcap link-type registry).
///
/// A closed enum on purpose: `PcapngInterfaces` keeps one catch-all interface per link type, and a closed
/// set is what bounds their number.
public enum PcapngLinkType: UInt16, CaseIterable, Sendable {
    /// LINKTYPE_ETHERNET: the packet starts with an Ethernet header.
    case ethernet = 1
    /// LINKTYPE_RAW: the packet starts with an IPv4 or IPv6 header.
    case rawIP = 101
}

/// Appends whole pcapng blocks to an `OutputBuffer`. Pure: no file descriptor, no state; the caller
/// writes one section header, then interface descriptions (ids are assigned in order from 0 within the
/// section), then packets that name those ids.
public struct PcapngEncoder: Sendable {
    /// The most bytes of text an option carries; longer names and comments are truncated. Below the
    /// 16-bit length field's limit with room to spare.
    public static let maximumTextLength = 65_000
    /// The most packet bytes an Enhanced Packet Block carries; the rest is cut (the original length
    /// still says how long the packet was). Wireshark calls a file with a larger packet damaged
    /// (tshark 4.0: "pcapng: cap_len 262145 is larger than 262144").
    public static let maximumCapturedLength = 262_144

    static let sectionHeaderType: UInt32 = 0x0A0D_0D0A
    static let byteOrderMagic: UInt32 = 0x1A2B_3C4D
    static let interfaceDescriptionType: UInt32 = 1
    static let enhancedPacketType: UInt32 = 6
    static let optionEnd: UInt16 = 0
    static let optionComment: UInt16 = 1
    static let optionInterfaceName: UInt16 = 2
    static let optionUserApplication: UInt16 = 4
    static let optionTimestampResolution: UInt16 = 9

    public init() {}

    /// Appends a Section Header Block: little-endian, version 1.0, section length unknown (-1).
    /// - Parameters:
    ///   - application: written as shb_userappl (truncated and sanitized like every text option).
    ///   - out: the buffer to append to.
    public func sectionHeader(application: String = "vxmon", into out: OutputBuffer) {
        let start = Self.beginBlock(Self.sectionHeaderType, out)
        out.appendLittleEndian(Self.byteOrderMagic)
        out.appendLittleEndian(UInt16(1))  // major version
        out.appendLittleEndian(UInt16(0))  // minor version
        out.appendLittleEndian(UInt64.max)  // section length -1: not known while streaming
        Self.appendTextOption(Self.optionUserApplication, application, lineBreaks: false, into: out)
        Self.appendEndOfOptions(out)
        Self.endBlock(start, out)
    }

    /// Appends an Interface Description Block with if_name and if_tsresol = 9 (nanosecond timestamps).
    /// The interface gets the next id of the section (0 for the first); the caller counts them.
    /// - Parameters:
    ///   - name: written as if_name; omitted when empty.
    ///   - linkType: what the packets on this interface start with.
    ///   - snapLength: the most bytes captured per packet; 0 means no limit.
    ///   - out: the buffer to append to.
    public func interface(name: String, linkType: PcapngLinkType, snapLength: UInt32, into out: OutputBuffer) {
        let start = Self.beginBlock(Self.interfaceDescriptionType, out)
        out.appendLittleEndian(linkType.rawValue)
        out.appendLittleEndian(UInt16(0))  // reserved
        out.appendLittleEndian(snapLength)
        Self.appendTextOption(Self.optionInterfaceName, name, lineBreaks: false, into: out)
        out.appendLittleEndian(Self.optionTimestampResolution)
        out.appendLittleEndian(UInt16(1))
        out.append(byte: 9)  // MSB clear: 10^-9 seconds per unit
        out.append(repeating: 0, count: 3)
        Self.appendEndOfOptions(out)
        Self.endBlock(start, out)
    }

    /// Appends an Enhanced Packet Block.
    /// - Parameters:
    ///   - interface: the id of an interface described earlier in the section.
    ///   - timeNanoseconds: nanoseconds since the Unix epoch (the interface's if_tsresol is 9).
    ///   - bytes: the captured packet, starting with the interface's link-layer header; at most
    ///     `maximumCapturedLength` bytes are written.
    ///   - originalLength: the packet's length on the wire; raised to the captured length when smaller,
    ///     as the spec requires of writers.
    ///   - comment: written as opt_comment (truncated and sanitized, tab and line breaks kept); nil or
    ///     empty writes none.
    ///   - out: the buffer to append to.
    public func packet(
        interface: UInt32, timeNanoseconds: UInt64, bytes: UnsafeRawBufferPointer, originalLength: UInt32,
        comment: String?, into out: OutputBuffer
    ) {
        let captured = min(bytes.count, Self.maximumCapturedLength)
        let start = Self.beginBlock(Self.enhancedPacketType, out)
        out.appendLittleEndian(interface)
        out.appendLittleEndian(UInt32(truncatingIfNeeded: timeNanoseconds >> 32))
        out.appendLittleEndian(UInt32(truncatingIfNeeded: timeNanoseconds))
        // captured <= maximumCapturedLength, so it fits in 32 bits.
        let capturedLength = UInt32(truncatingIfNeeded: captured)
        out.appendLittleEndian(capturedLength)
        out.appendLittleEndian(max(originalLength, capturedLength))
        if let base = bytes.baseAddress, captured > 0 {
            out.withAppendBuffer(maxBytes: captured) { p in
                UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: captured)
                return captured
            }
        }
        out.append(repeating: 0, count: Self.padding(captured))
        if let comment, !comment.isEmpty {
            Self.appendTextOption(Self.optionComment, comment, lineBreaks: true, into: out)
            Self.appendEndOfOptions(out)
        }
        Self.endBlock(start, out)
    }

    // MARK: Framing

    /// Zero bytes that bring `n` to a multiple of 4.
    @inline(__always)
    static func padding(_ n: Int) -> Int { (4 &- (n & 3)) & 3 }

    /// Writes the type and a placeholder total length; returns where the block starts.
    static func beginBlock(_ type: UInt32, _ out: OutputBuffer) -> Int {
        let start = out.count
        out.appendLittleEndian(type)
        out.appendLittleEndian(UInt32(0))
        return start
    }

    /// Writes the trailing total length and patches the leading one.
    static func endBlock(_ start: Int, _ out: OutputBuffer) {
        // A block holds at most maximumCapturedLength packet bytes, two text options of at most
        // maximumTextLength bytes and fixed fields: far below 2^32.
        let total = UInt32(truncatingIfNeeded: out.count &- start &+ 4)
        out.appendLittleEndian(total)
        out.setLittleEndian(total, at: start &+ 4)
    }

    static func appendEndOfOptions(_ out: OutputBuffer) {
        out.appendLittleEndian(optionEnd)
        out.appendLittleEndian(UInt16(0))
    }

    /// Appends one text option, if `text` is not empty: at most `maximumTextLength` bytes cut at a
    /// scalar boundary, C0 controls, DEL and C1 controls replaced by `?` (tab, LF and CR kept when
    /// `lineBreaks`), padded to 32 bits.
    static func appendTextOption(_ code: UInt16, _ text: String, lineBreaks: Bool, into out: OutputBuffer) {
        var text = text
        text.withUTF8 { src in
            let cut = utf8Prefix(src, maxBytes: maximumTextLength)
            guard cut > 0 else { return }
            // 4 header bytes, at most `cut` value bytes (replacing never lengthens), 3 padding bytes.
            out.withAppendBuffer(maxBytes: cut &+ 7) { p in
                var n = 4
                var i = 0
                while i < cut {
                    let b = src[i]
                    if b < 0x20 {
                        let kept = lineBreaks && (b == 0x09 || b == 0x0A || b == 0x0D)
                        p[n] = kept ? b : UInt8(ascii: "?")
                    } else if b == 0x7F {
                        p[n] = UInt8(ascii: "?")
                    } else if b == 0xC2, i &+ 1 < cut, src[i &+ 1] >= 0x80, src[i &+ 1] <= 0x9F {
                        // U+0080...U+009F (C1 controls, CSI among them) are C2 80...C2 9F in UTF-8.
                        p[n] = UInt8(ascii: "?")
                        i &+= 1
                    } else {
                        p[n] = b
                    }
                    n &+= 1
                    i &+= 1
                }
                let length = n &- 4  // <= maximumTextLength < 2^16
                UnsafeMutableRawPointer(p).storeBytes(of: code.littleEndian, as: UInt16.self)
                UnsafeMutableRawPointer(p).storeBytes(
                    of: UInt16(truncatingIfNeeded: length).littleEndian, toByteOffset: 2, as: UInt16.self)
                let pad = padding(length)
                (p + n).update(repeating: 0, count: pad)
                return n &+ pad
            }
        }
    }

    /// The length of the longest prefix of the UTF-8 bytes `src` that is at most `maxBytes` long and
    /// ends on a scalar boundary.
    static func utf8Prefix(_ src: UnsafeBufferPointer<UInt8>, maxBytes: Int) -> Int {
        if src.count <= maxBytes { return src.count }
        var cut = max(maxBytes, 0)
        // src[cut] is the first byte left out; while it continues a scalar (10xxxxxx), the cut splits
        // that scalar, so move it back to the scalar's lead byte (at most 3 steps in valid UTF-8).
        while cut > 0 && src[cut] & 0xC0 == 0x80 { cut &-= 1 }
        return cut
    }
}

/// Gives each (node, interface, link type) seen in a stream of packets a pcapng interface id, and
/// appends its Interface Description Block the first time, so a sink makes one call per packet.
///
/// Interfaces are named `NODE/IFNAME` (`worker2/lxc839726d5`), or `IFNAME` without a node; an interface
/// known only by its index is named `if<N>`. Node and interface names are cut to `maximumNameLength` bytes
/// each (Linux names have 15, Kubernetes node names at most 253), and names that are equal after the cut
/// share an interface.
///
/// Memory stays bounded whatever the input: after `limit` distinct interfaces, every new one maps to a
/// catch-all interface named `other`, one per link type, so a section holds at most
/// `limit + PcapngLinkType.allCases.count` interface descriptions, and the table at most `limit` keys of
/// at most 2 × `maximumNameLength` bytes of names (about 2 MiB at the default limit).
///
/// Not thread-safe, like `OutputBuffer`.
public final class PcapngInterfaces {
    /// How an interface is known.
    public enum Interface: Hashable, Sendable {
        /// Its name on its node (`lxc839726d5`, `cilium_vxlan`).
        case name(String)
        /// Its ifindex, when no name is known; shown as `if<N>`.
        case index(UInt32)
    }

    /// The default number of distinct interfaces before the catch-all ones take over.
    public static let defaultLimit = 4096
    /// The most bytes kept of a node name and of an interface name.
    public static let maximumNameLength = 256
    /// The name of the catch-all interfaces.
    public static let otherName = "other"

    /// Distinct interfaces described before the catch-all ones are used.
    public let limit: Int
    /// Written in every interface description; packets are cut to it (0: no limit beyond the
    /// encoder's `maximumCapturedLength`).
    public let snapLength: UInt32
    public let encoder: PcapngEncoder

    private struct Key: Hashable {
        var node: String?
        var interface: Interface
        var linkType: PcapngLinkType
    }
    private var ids: [Key: UInt32] = [:]
    private var catchAll: [PcapngLinkType: UInt32] = [:]
    /// Interface descriptions written since the start or the last `reset()`.
    public private(set) var count: UInt32 = 0

    /// - Parameters:
    ///   - limit: distinct interfaces before the catch-all ones take over (negative counts as 0).
    ///   - snapLength: the snap length of every interface.
    ///   - encoder: the encoder that writes the blocks.
    public init(
        limit: Int = PcapngInterfaces.defaultLimit,
        snapLength: UInt32 = UInt32(PcapngEncoder.maximumCapturedLength), encoder: PcapngEncoder = PcapngEncoder()
    ) {
        self.limit = max(limit, 0)
        self.snapLength = snapLength
        self.encoder = encoder
    }

    /// Forgets every interface, for a new section (the caller writes its section header).
    public func reset() {
        ids.removeAll()
        catchAll.removeAll()
        count = 0
    }

    /// The interface id for `interface` on `node` with `linkType`; appends its Interface Description
    /// Block to `out` first when it is new.
    public func id(node: String?, interface: Interface, linkType: PcapngLinkType, into out: OutputBuffer) -> UInt32 {
        let key = Key(node: node.map(Self.clip), interface: Self.clip(interface), linkType: linkType)
        if let id = ids[key] { return id }
        if ids.count >= limit {
            if let id = catchAll[linkType] { return id }
            let id = describe(Self.otherName, linkType, out)
            catchAll[linkType] = id
            return id
        }
        let id = describe(Self.displayName(key), linkType, out)
        ids[key] = id
        return id
    }

    /// Appends one packet (and, first, its interface's description when the interface is new).
    /// - Parameters:
    ///   - node: the node the packet was seen on, nil when unknown.
    ///   - interface: the interface it was seen on.
    ///   - linkType: what `bytes` starts with.
    ///   - timeNanoseconds: nanoseconds since the Unix epoch.
    ///   - bytes: the captured packet; cut to `snapLength`.
    ///   - originalLength: the packet's length on the wire.
    ///   - comment: an optional packet comment.
    ///   - out: the buffer to append to.
    public func packet(
        node: String?, interface: Interface, linkType: PcapngLinkType, timeNanoseconds: UInt64,
        bytes: UnsafeRawBufferPointer, originalLength: UInt32, comment: String?, into out: OutputBuffer
    ) {
        let id = self.id(node: node, interface: interface, linkType: linkType, into: out)
        let kept = snapLength == 0 ? bytes.count : min(bytes.count, Int(clamping: snapLength))
        encoder.packet(
            interface: id, timeNanoseconds: timeNanoseconds, bytes: UnsafeRawBufferPointer(rebasing: bytes[..<kept]),
            originalLength: originalLength, comment: comment, into: out)
    }

    private func describe(_ name: String, _ linkType: PcapngLinkType, _ out: OutputBuffer) -> UInt32 {
        encoder.interface(name: name, linkType: linkType, snapLength: snapLength, into: out)
        let id = count
        // At most limit + PcapngLinkType.allCases.count descriptions per section, and limit is an Int
        // the caller chose: wrapping would take more than 2^32 of them.
        count &+= 1
        return id
    }

    private static func displayName(_ key: Key) -> String {
        let name: String
        switch key.interface {
        case .name(let n): name = n
        case .index(let i): name = "if\(i)"
        }
        guard let node = key.node, !node.isEmpty else { return name }
        return node + "/" + name
    }

    private static func clip(_ interface: Interface) -> Interface {
        if case .name(let n) = interface { return .name(clip(n)) }
        return interface
    }

    /// `s`, or its longest prefix of at most `maximumNameLength` UTF-8 bytes ending on a scalar boundary.
    private static func clip(_ s: String) -> String {
        if s.utf8.count <= maximumNameLength { return s }
        var s = s
        return s.withUTF8 { src in
            let cut = PcapngEncoder.utf8Prefix(src, maxBytes: maximumNameLength)
            return String(decoding: UnsafeBufferPointer(rebasing: src[..<cut]), as: UTF8.self)
        }
    }
}
