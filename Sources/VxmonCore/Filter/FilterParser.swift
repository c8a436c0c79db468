import VxmonWire

/// A filter flag with a value it cannot take: the CLI prints it and exits 64.
public struct FilterError: Error, Sendable, CustomStringConvertible {
    public var flag: String
    public var message: String

    public init(flag: String, _ message: String) {
        self.flag = flag
        self.message = message
    }

    public var description: String { "\(flag): \(message)" }
}

/// Builds an `EventFilter` from command-line words, in order, so that `--not` applies to the flag
/// right after it. Words that are not filter flags are skipped (the command's own parser reads them).
public enum FilterParser {
    /// Filter flags that take a value, and what each accepts (for help and errors).
    public static let flags: [(name: String, accepts: String)] = [
        ("--type", "a Cilium message type: drop, debug, capture, trace, policy-verdict, recorder, trace-sock, l7, agent"),
        ("--from", "a source endpoint ID (0-65535)"),
        ("--to", "a destination endpoint ID (0-65535)"),
        ("--related-to", "an endpoint ID (0-65535)"),
        ("--ip", "an IPv4 or IPv6 address or CIDR"),
        ("--from-ip", "an IPv4 or IPv6 address or CIDR"),
        ("--to-ip", "an IPv4 or IPv6 address or CIDR"),
        ("--port", "a port number (1-65535)"),
        ("--from-port", "a port number (1-65535)"),
        ("--to-port", "a port number (1-65535)"),
        ("--protocol", "tcp, udp, sctp, icmp, icmpv4, icmpv6 or arp"),
        ("--identity", "a security identity: a number or a reserved name (host, world, ...)"),
        ("--from-identity", "a security identity: a number or a reserved name (host, world, ...)"),
        ("--to-identity", "a security identity: a number or a reserved name (host, world, ...)"),
        ("--pod", "a lab pod name (or default/NAME)"),
        ("--from-pod", "a lab pod name (or default/NAME)"),
        ("--to-pod", "a lab pod name (or default/NAME)"),
        ("--vni", "a VNI (0-16777215)"),
        ("--observation-point", "an observation point: Cilium's to-overlay or Hubble's TO_OVERLAY, or a number"),
        ("--verdict", "forwarded, dropped, audit, redirected, traced, translated or error"),
        ("--drop-reason", "a drop reason code (0-255) or name (Policy denied, POLICY_DENIED)"),
        ("--interface", "an interface name or index (1 or more)"),
        ("--node", "a node name"),
        ("--tcp-flags", "TCP flags joined by commas, ! for a flag that must be clear: SYN or SYN,!ACK"),
    ]

    static let shortNames: [String: String] = ["-t": "--type"]

    /// Parses the filter flags among `arguments`.
    public static func parse(_ arguments: [String]) throws(FilterError) -> EventFilter {
        var filter = EventFilter()
        var negateNext = false
        var i = 0
        let known = Set(flags.map(\.name))
        while i < arguments.count {
            let word = arguments[i]
            i += 1
            if word == "--" { break }
            if word == "--not" {
                if negateNext { throw FilterError(flag: "--not", "given twice in a row") }
                negateNext = true
                continue
            }
            if word == "--outer" {
                filter.outer = true
                continue
            }
            var flag = word
            var value: String?
            if let eq = word.firstIndex(of: "="), word.hasPrefix("--") {
                flag = String(word[..<eq])
                value = String(word[word.index(after: eq)...])
            }
            // ArgumentParser also reads -t in a group of short options (-qt drop) or as -t=drop; this
            // parser does not, so neither may pass silently unfiltered.
            if word.hasPrefix("-t=")
                || (word.count > 2 && word.hasPrefix("-") && !word.hasPrefix("--") && word.contains("t")
                    && word.dropFirst().allSatisfy { $0.isASCII && $0.isLetter })
            {
                throw FilterError(flag: "-t", "takes its value as the next word (-t drop), not in \(sanitized(word))")
            }
            if let long = shortNames[flag] { flag = long }
            guard known.contains(flag) else {
                if negateNext && word.hasPrefix("-") {
                    throw FilterError(flag: "--not", "must come right before a filter flag, not \(sanitized(word))")
                }
                continue
            }
            if value == nil {
                guard i < arguments.count else { throw FilterError(flag: flag, "needs a value: \(accepts(flag))") }
                value = arguments[i]
                i += 1
            }
            try add(flag, value!, negated: negateNext, to: &filter)
            negateNext = false
        }
        if negateNext { throw FilterError(flag: "--not", "must come right before a filter flag") }
        return filter
    }

    static func accepts(_ flag: String) -> String { flags.first { $0.name == flag }?.accepts ?? "a value" }

    /// Text from the command line, made safe to print.
    static func sanitized(_ s: String) -> String {
        let out = OutputBuffer(capacity: 64)
        out.appendSanitized(String(s.prefix(200)))
        return "'" + out.string + "'"
    }

    static func bad(_ flag: String, _ value: String) -> FilterError {
        FilterError(flag: flag, "\(sanitized(value)) is not valid; expected \(accepts(flag))")
    }

    static func add(_ flag: String, _ value: String, negated: Bool, to filter: inout EventFilter) throws(FilterError) {
        func endpoint() throws(FilterError) -> UInt16 {
            guard let n = UInt16(value) else { throw bad(flag, value) }
            return n
        }
        let term: FlowTerm
        switch flag {
        case "--type":
            guard !negated else { throw FilterError(flag: "--not", "cannot negate --type (Cilium's filter)") }
            guard let t = MessageType.monitorNames.first(where: { $0.0 == value })?.1 else { throw bad(flag, value) }
            filter.types.append(t)
            return
        case "--from", "--to", "--related-to":
            guard !negated else { throw FilterError(flag: "--not", "cannot negate \(flag) (Cilium's filter)") }
            let id = try endpoint()
            switch flag {
            case "--from": filter.fromEndpoints.append(id)
            case "--to": filter.toEndpoints.append(id)
            default: filter.relatedEndpoints.append(id)
            }
            return
        case "--ip", "--from-ip", "--to-ip":
            guard let prefix = parsePrefix(value) else { throw bad(flag, value) }
            term = .ip(prefix, side(flag))
        case "--port", "--from-port", "--to-port":
            guard let port = UInt16(value), port > 0 else { throw bad(flag, value) }
            term = .port(port, side(flag))
        case "--protocol":
            switch value.lowercased() {
            case "tcp": term = .transport(.tcp)
            case "udp": term = .transport(.udp)
            case "sctp": term = .transport(.sctp)
            case "icmp": term = .icmp
            case "icmpv4": term = .transport(.icmpv4)
            case "icmpv6": term = .transport(.icmpv6)
            case "arp": term = .arp
            default: throw bad(flag, value)
            }
        case "--identity", "--from-identity", "--to-identity":
            guard let id = parseIdentity(value) else { throw bad(flag, value) }
            term = .identity(id, side(flag))
        case "--pod", "--from-pod", "--to-pod":
            guard !value.isEmpty, value.utf8.count <= 253 else { throw bad(flag, value) }
            term = .pod(PodSelector(cli: value), side(flag))
        case "--vni":
            guard let vni = UInt32(value), vni <= 0xff_ffff else { throw bad(flag, value) }
            term = .vni(vni)
        case "--observation-point":
            guard let point = parseObservationPoint(value) else { throw bad(flag, value) }
            term = .observationPoint(point)
        case "--verdict":
            guard let verdict = parseVerdict(value) else { throw bad(flag, value) }
            term = .verdict(verdict)
        case "--drop-reason":
            guard let reason = parseDropReason(value) else { throw bad(flag, value) }
            term = .dropReason(reason)
        case "--interface":
            if !value.isEmpty && value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                // All digits is an index (interface names are never all digits), from 1 to 2^32-1.
                guard let index = UInt32(value), index > 0 else { throw bad(flag, value) }
                term = .interface(index: index, name: nil)
            } else {
                guard !value.isEmpty, value.utf8.count <= 255 else { throw bad(flag, value) }
                term = .interface(index: nil, name: value)
            }
        case "--node":
            guard !value.isEmpty, value.utf8.count <= 253 else { throw bad(flag, value) }
            term = .node(value)
        case "--tcp-flags":
            guard let (set, clear) = parseTCPFlags(value) else { throw bad(flag, value) }
            term = .tcpFlags(set: set, clear: clear)
        default:
            throw bad(flag, value)
        }
        if let i = filter.clauses.firstIndex(where: { $0.flag == flag && $0.negated == negated }) {
            filter.clauses[i].terms.append(term)
        } else {
            filter.clauses.append(FlowClause(flag: flag, negated: negated, terms: [term]))
        }
    }

    static func side(_ flag: String) -> FlowSide {
        if flag.hasPrefix("--from-") { return .source }
        if flag.hasPrefix("--to-") { return .destination }
        return .either
    }

    /// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `v6/n`.
    public static func parsePrefix(_ text: String) -> IPPrefix? {
        var addressText = Substring(text)
        var length: Int?
        if let slash = text.firstIndex(of: "/") {
            addressText = text[..<slash]
            // Decimal digits only (no sign), as Go's net.ParseCIDR reads them.
            let digits = text[text.index(after: slash)...]
            guard !digits.isEmpty, digits.count <= 3, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let n = Int(digits)
            else { return nil }
            length = n
        }
        guard let address = parseIP(addressText) else { return nil }
        let maximum: Int
        switch address {
        case .v4: maximum = 32
        case .v6: maximum = 128
        }
        let n = length ?? maximum
        guard (0...maximum).contains(n) else { return nil }
        return IPPrefix(address: address, length: n)
    }

    /// A dotted IPv4 address or an IPv6 address (with `::` and an embedded IPv4 tail).
    public static func parseIP(_ text: Substring) -> IPAddress? {
        if !text.contains(":") {
            guard let v4 = parseIPv4(text) else { return nil }
            return .v4(IPv4Address(rawValue: v4))
        }
        var groups: [UInt16] = []
        var tail: [UInt16] = []
        var sawGap = false
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 3 || (parts.count >= 2 && text.contains("::")) else { return nil }
        var index = 0
        while index < parts.count {
            let part = parts[index]
            if part.isEmpty {
                // "::" shows as one or two empty parts (three at "::" alone).
                if index == 0 || index == parts.count - 1 {
                    index += 1
                    continue
                }
                if sawGap { return nil }
                sawGap = true
                index += 1
                continue
            }
            var values: [UInt16] = []
            if index == parts.count - 1 && part.contains(".") {
                guard let v4 = parseIPv4(part) else { return nil }
                values = [UInt16(v4 >> 16), UInt16(v4 & 0xffff)]
            } else {
                guard part.count <= 4, let v = UInt16(part, radix: 16) else { return nil }
                values = [v]
            }
            if sawGap { tail += values } else { groups += values }
            index += 1
        }
        // A leading or trailing "::" leaves empty edge parts: they count as the gap.
        if !sawGap && (text.hasPrefix("::") || text.hasSuffix("::")) { sawGap = true }
        if text.hasPrefix(":") && !text.hasPrefix("::") { return nil }
        if text.hasSuffix(":") && !text.hasSuffix("::") { return nil }
        let total = groups.count + tail.count
        if sawGap {
            guard total < 8 else { return nil }
            groups += [UInt16](repeating: 0, count: 8 - total) + tail
        } else {
            guard total == 8 else { return nil }
        }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (i, g) in groups.enumerated() {
            if i < 4 { high = high << 16 | UInt64(g) } else { low = low << 16 | UInt64(g) }
        }
        return .v6(IPv6Address(high: high, low: low))
    }

    static func parseIPv4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            // No leading zeros (`010` is octal to some readers, decimal to others): refused, as Go's
            // net.ParseIP refuses them.
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                part.count == 1 || part.first != "0", let octet = UInt8(part)
            else { return nil }
            value = value << 8 | UInt32(octet)
        }
        return value
    }

    /// A number, or a reserved identity name with or without `reserved:`.
    public static func parseIdentity(_ text: String) -> UInt32? {
        if let n = UInt32(text) { return n }
        let name = text.hasPrefix("reserved:") ? String(text.dropFirst(9)) : text
        for id in UInt32(0)...10 {
            if let reserved = CiliumNames.reservedIdentity(id, .latest), reserved.description == name { return id }
        }
        return nil
    }

    public static func parseObservationPoint(_ text: String) -> ObservationPoint? {
        if let n = UInt8(text) { return ObservationPoint(rawValue: n) }
        for raw in UInt8(0)...13 {
            let point = ObservationPoint(rawValue: raw)
            if point.ciliumName?.description == text.lowercased() || point.hubbleName.description == text.uppercased() {
                return point
            }
        }
        return nil
    }

    public static func parseVerdict(_ text: String) -> FlowVerdict? {
        let upper = text.uppercased()
        for raw in UInt8(1)...7 {
            if let v = FlowVerdict(rawValue: raw), v.name.description == upper { return v }
        }
        return nil
    }

    /// Hubble-style constant name of a text: `Policy denied` -> `POLICY_DENIED`.
    static func constantName(_ text: String) -> String {
        var out = ""
        var gap = false
        for c in text.uppercased() {
            if c.isASCII && (c.isLetter || c.isNumber) {
                if gap && !out.isEmpty { out.append("_") }
                out.append(c)
                gap = false
            } else {
                gap = true
            }
        }
        return out
    }

    public static func parseDropReason(_ text: String) -> UInt8? {
        if let n = UInt8(text) { return n }
        let wanted = constantName(text)
        guard !wanted.isEmpty else { return nil }
        for code in UInt8(0)...255 {
            if let name = CiliumNames.dropReason(code, .latest), constantName(name.description) == wanted { return code }
        }
        return nil
    }

    static let tcpFlagBits: [(String, UInt16)] = [
        ("FIN", TCPHeader.fin), ("SYN", TCPHeader.syn), ("RST", TCPHeader.rst), ("PSH", TCPHeader.psh),
        ("ACK", TCPHeader.ack), ("URG", TCPHeader.urg), ("ECE", TCPHeader.ece), ("CWR", TCPHeader.cwr),
        ("NS", TCPHeader.ns),
    ]

    /// `SYN`, `SYN,ACK`, `SYN,!ACK`: flags that must be set, and (with `!`) clear.
    public static func parseTCPFlags(_ text: String) -> (UInt16, UInt16)? {
        var set: UInt16 = 0
        var clear: UInt16 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            var name = item.trimmingSpaces().uppercased()
            let negated = name.hasPrefix("!")
            if negated { name.removeFirst() }
            guard let bit = tcpFlagBits.first(where: { $0.0 == name })?.1 else { return nil }
            if negated { clear |= bit } else { set |= bit }
        }
        guard set & clear == 0 else { return nil }
        return (set, clear)
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}
