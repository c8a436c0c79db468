/// IANA service names for TCP, UDP and SCTP ports, as Cilium 1.13's `-vv` prints them (`80(http)`).
public enum PortNames {
    public enum Transport: Int, Sendable {
        case tcp = 0
        case udp = 1
        case sctp = 2
    }

    /// Per transport, 65536 entries: `offset << 8 | length` of the name inside `tableText`, 0 = no name.
    private static let index: [[UInt32]] = buildIndex()

    private static func buildIndex() -> [[UInt32]] {
        var tables = [[UInt32]](repeating: [UInt32](repeating: 0, count: 65536), count: 3)
        let text = tableText
        let base = text.utf8Start
        let n = text.utf8CodeUnitCount
        var i = 0
        while i < n {
            // Line: proto TAB port TAB name NEWLINE
            var j = i
            while j < n && base[j] != 9 { j += 1 }
            let proto: Int
            switch j - i {
            case 3: proto = base[i] == UInt8(ascii: "t") ? 0 : 1
            default: proto = 2
            }
            j += 1
            var port = 0
            while j < n && base[j] != 9 {
                port = port * 10 + Int(base[j] - 48)
                j += 1
            }
            j += 1
            let start = j
            while j < n && base[j] != 10 { j += 1 }
            if port < 65536 && j > start && j - start < 256 {
                tables[proto][port] = UInt32(start) << 8 | UInt32(j - start)
            }
            i = j + 1
        }
        return tables
    }

    /// The service name bytes for `port`, or nil.
    public static func name(_ port: UInt16, _ transport: Transport) -> UnsafeBufferPointer<UInt8>? {
        let entry = index[transport.rawValue][Int(port)]
        guard entry != 0 else { return nil }
        return UnsafeBufferPointer(start: tableText.utf8Start + Int(entry >> 8), count: Int(entry & 0xff))
    }

    /// The service name as a String, or nil.
    public static func nameString(_ port: UInt16, _ transport: Transport) -> String? {
        name(port, transport).map { String(decoding: $0, as: UTF8.self) }
    }
}

extension OutputBuffer {
    /// gopacket's port String: `80(http)` when the port has an IANA name, else the number.
    public func port(_ port: UInt16, _ transport: PortNames.Transport) {
        unsignedDecimal(UInt64(port))
        if let name = PortNames.name(port, transport) {
            append(byte: UInt8(ascii: "("))
            append(bytes: name)
            append(byte: UInt8(ascii: ")"))
        }
    }
}
