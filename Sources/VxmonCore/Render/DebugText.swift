#if canImport(Glibc)
import Glibc
#endif

/// Cilium's debug message texts (`DebugMsg.subTypeString`, table 4.6 of the spec) and debug capture
/// descriptions, rendered straight into the output buffer.
enum DebugText {
    /// `ip4(x)`: the four bytes of the host-order u32 as they sit in memory, dotted.
    static func ip4(_ x: UInt32, _ out: OutputBuffer) {
        for i in 0..<4 {
            if i > 0 { out.append(byte: UInt8(ascii: ".")) }
            out.decimal(UInt8(truncatingIfNeeded: x >> UInt32(i * 8)))
        }
    }

    /// `ip6(x)`: byte-swapped, then `%x:%x` of the high and low 16 bits.
    static func ip6(_ x: UInt32, _ out: OutputBuffer) {
        let v = x.byteSwapped
        out.hex(UInt64(v >> 16))
        out.append(byte: UInt8(ascii: ":"))
        out.hex(UInt64(v & 0xffff))
    }

    /// `n16(x)`: the low 16 bits byte-swapped (network to host).
    static func n16(_ x: UInt32) -> UInt16 { UInt16(truncatingIfNeeded: x).byteSwapped }

    static func ctFlags(_ f: UInt32, _ out: OutputBuffer) {
        var first = true
        if f & 1 != 0 {
            out.append("OUT")
            first = false
        }
        if f & 2 != 0 {
            if !first { out.append(", ") }
            out.append("RELATED")
        }
    }

    static func ctInfo(_ a1: UInt32, _ a2: UInt32, _ out: OutputBuffer) {
        out.append("sport=")
        out.decimal(a1 >> 16)
        out.append(" dport=")
        out.decimal(a1 & 0xffff)
        out.append(" nexthdr=")
        out.decimal(a2 >> 8)
        out.append(" flags=")
        ctFlags(a2 & 0xff, out)
    }

    static func revnat(_ a: UInt32, _ out: OutputBuffer) {
        out.append("revnat=")
        out.decimal(n16(a & 0xffff))
    }

    static func ctState(_ s: UInt32, _ out: OutputBuffer, _ release: CiliumRelease) {
        switch s {
        case 0: out.append("New")
        case 1: out.append("Established")
        case 2: out.append("Reply")
        case 3: out.append("Related")
        default:
            let code = UInt8(truncatingIfNeeded: s)
            if let text = CiliumNames.dropReason(code, release) { out.append(text) } else { out.decimal(code) }
        }
    }

    static func errnoText(_ e: UInt32, _ out: OutputBuffer) {
        // Go's syscall.Errno strings are glibc's with a lowercase first letter; unknown ones read "errno N".
        #if canImport(Glibc)
        if e > 0 && e < 134, let c = strerror(Int32(e)) {
            let s = String(cString: c)
            if !s.hasPrefix("Unknown error") {
                out.append(s.prefix(1).lowercased())
                out.append(String(s.dropFirst()))
                return
            }
        }
        #endif
        out.append("errno ")
        out.decimal(e)
    }

    /// C names of the debug types, lowercased with dashes (structured output's `subtype`).
    static func typeName(_ t: UInt8) -> StaticString? {
        switch t {
        case 0: "unspec"
        case 1: "generic"
        case 2: "local-delivery"
        case 3: "encap"
        case 4: "lxc-found"
        case 5: "policy-denied"
        case 6: "ct-lookup"
        case 7: "ct-lookup-rev"
        case 8: "ct-match"
        case 9: "ct-created"
        case 10: "ct-created2"
        case 11: "icmp6-handle"
        case 12: "icmp6-request"
        case 13: "icmp6-ns"
        case 14: "icmp6-time-exceeded"
        case 15: "ct-verdict"
        case 16: "decap"
        case 17: "port-map"
        case 18: "error-ret"
        case 19: "to-host"
        case 20: "to-stack"
        case 21: "pkt-hash"
        case 22: "lb6-lookup-frontend"
        case 23: "lb6-lookup-frontend-fail"
        case 24: "lb6-lookup-backend-slot"
        case 25: "lb6-lookup-backend-slot-success"
        case 26: "lb6-lookup-backend-slot-v2-fail"
        case 27: "lb6-lookup-backend-fail"
        case 28: "lb6-reverse-nat-lookup"
        case 29: "lb6-reverse-nat"
        case 30: "lb4-lookup-frontend"
        case 31: "lb4-lookup-frontend-fail"
        case 32: "lb4-lookup-backend-slot"
        case 33: "lb4-lookup-backend-slot-success"
        case 34: "lb4-lookup-backend-slot-v2-fail"
        case 35: "lb4-lookup-backend-fail"
        case 36: "lb4-reverse-nat-lookup"
        case 37: "lb4-reverse-nat"
        case 38: "lb4-loopback-snat"
        case 39: "lb4-loopback-snat-rev"
        case 40: "ct-lookup4"
        case 41: "rr-backend-slot-sel"
        case 42: "rev-proxy-lookup"
        case 43: "rev-proxy-found"
        case 44: "rev-proxy-update"
        case 45: "l4-policy"
        case 46: "netdev-in-cluster"
        case 47: "netdev-encap4"
        case 48: "ct-lookup4-1"
        case 49: "ct-lookup4-2"
        case 50: "ct-created4"
        case 51: "ct-lookup6-1"
        case 52: "ct-lookup6-2"
        case 53: "ct-created6"
        case 54: "skip-proxy"
        case 55: "l4-create"
        case 56: "ip-id-map-failed4"
        case 57: "ip-id-map-failed6"
        case 58: "ip-id-map-succeed4"
        case 59: "ip-id-map-succeed6"
        case 60: "lb-stale-ct"
        case 61: "inherit-identity"
        case 62: "sk-lookup4"
        case 63: "sk-lookup6"
        case 64: "sk-assign"
        case 65: "l7-lb"
        default: nil
        }
    }

    /// The text of a debug message (everything after `DEBUG: `).
    static func message(
        _ m: DebugMessage, _ out: OutputBuffer, names: InterfaceNames, node: String?, release: CiliumRelease
    ) {
        let a1 = m.arg1
        let a2 = m.arg2
        let a3 = m.arg3
        func d<T: BinaryInteger>(_ v: T) { out.decimal(v) }
        switch m.header.subtype {
        case 1:
            out.append("No message, arg1=")
            d(a1)
            out.append(" (")
            out.hexPrefixed(UInt64(a1))
            out.append(") arg2=")
            d(a2)
            out.append(" (")
            out.hexPrefixed(UInt64(a2))
            out.append(")")
            if release == .latest {
                out.append(" arg3=")
                d(a3)
                out.append(" (")
                out.hexPrefixed(UInt64(a3))
                out.append(")")
            }
        case 2:
            out.append("Attempting local delivery for container id ")
            d(a1)
            out.append(" from seclabel ")
            d(a2)
        case 3:
            out.append("Encapsulating to node ")
            d(a1)
            out.append(" (")
            out.hexPrefixed(UInt64(a1))
            out.append(") from seclabel ")
            d(a2)
        case 4:
            out.append("Local container found ifindex ")
            names.append(ifindex: a1, node: node, to: out)
            out.append(" seclabel ")
            d(n16(a2))
        case 5:
            out.append("Policy evaluation would deny packet from ")
            d(a1)
            out.append(" to ")
            d(a2)
        case 6:
            out.append("CT lookup: ")
            ctInfo(a1, a2, out)
        case 7:
            out.append("CT reverse lookup: ")
            ctInfo(a1, a2, out)
        case 8:
            out.append("CT entry found lifetime=")
            d(a1)
            out.append(", ")
            revnat(a2, out)
        case 9:
            out.append("CT created 1/2: ")
            ctInfo(a1, a2, out)
            out.append(" ")
            revnat(a3, out)
        case 10:
            out.append("CT created 2/2: ")
            ip4(a1, out)
            out.append(" revnat=")
            d(n16(a2))
        case 11:
            out.append("Handling ICMPv6 type=")
            d(a1)
        case 12:
            out.append("ICMPv6 echo request for router offset=")
            d(a1)
        case 13:
            out.append("ICMPv6 neighbour soliciation for address ")
            out.hex(UInt64(a1))
            out.append(":")
            out.hex(UInt64(a2))
        case 14:
            out.append("Sending ICMPv6 time exceeded")
        case 15:
            out.append("CT verdict: ")
            ctState(a1, out, release)
            out.append(", ")
            revnat(a2, out)
        case 16:
            out.append("Tunnel decap: id=")
            d(a1)
            out.append(" flowlabel=")
            out.hex(UInt64(a2))
        case 17:
            out.append("Mapping port from=")
            d(a1)
            out.append(" to=")
            d(a2)
        case 18:
            out.append("BPF function ")
            d(a1)
            out.append(" returned error ")
            d(a2)
        case 19:
            out.append("Going to host, policy-skip=")
            d(a1)
        case 20:
            out.append("Going to the stack, policy-skip=")
            d(a1)
        case 21:
            out.append("Packet hash=")
            d(a1)
            out.append(" (")
            out.hexPrefixed(UInt64(a1))
            out.append("), selected_service=")
            d(a2)
        case 22:
            out.append("Frontend service lookup, addr.p4=")
            out.hex(UInt64(a1))
            out.append(" key.dport=")
            d(n16(a2))
        case 23:
            out.append("Frontend service lookup failed, addr.p2=")
            out.hex(UInt64(a1))
            out.append(" addr.p3=")
            out.hex(UInt64(a2))
        case 24, 32:
            out.append("Service backend slot lookup: slot=")
            d(a1)
            out.append(", dport=")
            d(n16(a2))
        case 25:
            out.append("Service backend slot lookup result: target.p4=")
            out.hex(UInt64(a1))
            out.append(" port=")
            d(n16(a2))
        case 26, 34:
            out.append("Service backend slot lookup failed: slot=")
            d(a1)
            out.append(", dport=")
            d(n16(a2))
        case 27, 35:
            out.append("Backend service lookup failed: backend_id=")
            d(a1)
        case 28, 36:
            out.append("Reverse NAT lookup, index=")
            d(n16(a1))
        case 29:
            out.append("Performing reverse NAT, address.p4=")
            out.hex(UInt64(a1))
            out.append(" port=")
            d(n16(a2))
        case 30:
            out.append("Frontend service lookup, addr=")
            ip4(a1, out)
            out.append(" key.dport=")
            d(n16(a2))
        case 31:
            out.append("Frontend service lookup failed")
        case 33:
            out.append("Service backend slot lookup result: target=")
            ip4(a1, out)
            out.append(" port=")
            d(n16(a2))
        case 37:
            out.append("Performing reverse NAT, address=")
            ip4(a1, out)
            out.append(" port=")
            d(n16(a2))
        case 38:
            out.append("Loopback SNAT from=")
            ip4(a1, out)
            out.append(" to=")
            ip4(a2, out)
        case 39:
            out.append("Loopback reverse SNAT from=")
            ip4(a1, out)
            out.append(" to=")
            ip4(a2, out)
        case 40:
            out.append("CT lookup address: ")
            ip4(a1, out)
        case 41:
            out.append("RR backend slot selection hash=")
            d(a1)
            out.append(" (")
            out.hexPrefixed(UInt64(a1))
            out.append("), selected_service=")
            d(a2)
        case 42, 44:
            out.append(m.header.subtype == 42 ? "Reverse proxy lookup sport=" : "Reverse proxy updated sport=")
            d(n16(a1 >> 16))
            out.append(" dport=")
            d(n16(a1 & 0xffff))
            out.append(" saddr=")
            ip4(a2, out)
            out.append(" nexthdr=")
            d(a3)
        case 43:
            out.append("Reverse proxy entry found, orig-daddr=")
            ip4(a1, out)
            out.append(" orig-dport=")
            d(a2)
        case 45:
            out.append("Resolved L4 policy to: ")
            d(n16(a1))
            out.append(" / ")
            if a2 == 0 { out.append("egress") } else if a2 == 1 { out.append("ingress") }
        case 46:
            out.append("Destination is inside cluster prefix, source identity: ")
            d(a1)
        case 47:
            out.append("Attempting encapsulation, lookup key: ")
            ip4(a1, out)
            out.append(", identity: ")
            d(a2)
        case 48, 62:
            out.append(m.header.subtype == 48 ? "Conntrack lookup 1/2: src=" : "Socket lookup: src=")
            ip4(a1, out)
            out.append(":")
            d(a3 & 0xffff)
            out.append(" dst=")
            ip4(a2, out)
            out.append(":")
            d(a3 >> 16)
        case 49, 52:
            out.append("Conntrack lookup 2/2: nexthdr=")
            d(a1 >> 8)
            out.append(" flags=")
            d(a1 & 0xff)
            if release == .latest {
                out.append(" dir=")
                d(a2)
                out.append(" scope=")
                d(a3)
            }
        case 50:
            out.append("Conntrack create: proxy-port=")
            d(a1 >> 16)
            out.append(" revnat=")
            d(n16(a1 & 0xffff))
            out.append(" src-identity=")
            d(a2)
            out.append(" lb=")
            ip4(a3, out)
        case 51, 63:
            out.append(m.header.subtype == 51 ? "Conntrack lookup 1/2: src=[::" : "Socket lookup: src=[::")
            ip6(a1, out)
            out.append("]:")
            d(a3 & 0xffff)
            out.append(" dst=[::")
            ip6(a2, out)
            out.append("]:")
            d(a3 >> 16)
        case 53:
            out.append("Conntrack create: proxy-port=")
            d(a1 >> 16)
            out.append(" revnat=")
            d(n16(a1 & 0xffff))
            out.append(" src-identity=")
            d(a2)
        case 54:
            out.append("Skipping proxy, tc_index is set=")
            out.hex(UInt64(a1))
        case 55:
            out.append("Matched L4 policy; creating conntrack src=")
            d(a1)
            out.append(" dst=")
            d(a2)
            out.append(" dport=")
            d(n16(a3 >> 16))
            out.append(" proto=")
            d(a3 & 0xff)
        case 56:
            out.append("Failed to map addr=")
            ip4(a1, out)
            out.append(" to identity")
        case 57:
            out.append("Failed to map addr.p4=[::")
            ip6(a1, out)
            out.append("] to identity")
        case 58:
            out.append("Successfully mapped addr=")
            ip4(a1, out)
            out.append(" to identity=")
            d(a2)
        case 59:
            out.append("Successfully mapped addr.p4=[::")
            ip6(a1, out)
            out.append("] to identity=")
            d(a2)
        case 60:
            out.append("Stale CT entry found stale_ct.rev_nat_id=")
            d(a2)
            out.append(", svc.rev_nat_id=")
            d(a1)
        case 61:
            out.append("Inheriting identity=")
            d(a1)
            out.append(" from stack")
        case 64:
            out.append("Socket assign: ")
            if a1 == 0 { out.append("Success") } else { errnoText(a1, out) }
        case 65:
            out.append("L7 LB from ")
            ip4(a1, out)
            out.append(" to ")
            ip4(a2, out)
            out.append(": proxy port ")
            d(a3)
        case 66 where release == .latest:
            out.append("Loopback SNAT from.p4=")
            out.hex(UInt64(a1))
            out.append(" to.p4=")
            out.hex(UInt64(a2))
        case 67 where release == .latest:
            out.append("Loopback reverse SNAT from.p4=")
            out.hex(UInt64(a1))
            out.append(" to.p4=")
            out.hex(UInt64(a2))
        default:
            out.append("Unknown message type=")
            d(m.header.subtype)
            out.append(" arg1=")
            d(a1)
            out.append(" arg2=")
            d(a2)
        }
    }

    /// Debug capture description (`-vv` header text).
    static func captureDescription(_ c: DebugCapture, _ out: OutputBuffer) {
        switch c.header.subtype {
        case 4:
            out.append("Delivery to ifindex ")
            out.decimal(c.arg1)
        case 5:
            out.append("Incoming packet to load balancer on ifindex ")
            out.decimal(c.arg1)
        case 6:
            out.append("Packet after nat46 ifindex ")
            out.decimal(c.arg1)
        case 7:
            out.append("Packet after nat64 ifindex ")
            out.decimal(c.arg1)
        case 8:
            out.append("Packet to proxy port ")
            out.decimal(n16(c.arg1))
            out.append(" (Pre)")
        case 9:
            out.append("Packet to proxy port ")
            out.decimal(n16(c.arg1))
            out.append(" (Post)")
        case 10:
            out.append("Packet going into snat engine on ifindex ")
            out.decimal(c.arg1)
        case 11:
            out.append("Packet coming from snat engine on ifindex ")
            out.decimal(c.arg1)
        default:
            out.append("Unknown message type=")
            out.decimal(c.header.subtype)
            out.append(" arg1=")
            out.decimal(c.arg1)
        }
    }

    /// Debug capture prefix for the default/-v line; false when the type prints nothing.
    @discardableResult
    static func capturePrefix(_ c: DebugCapture, _ out: OutputBuffer, names: InterfaceNames, node: String?) -> Bool {
        switch c.header.subtype {
        case 4:
            out.append("-> ")
            names.append(ifindex: c.arg1, node: node, to: out)
        case 5:
            out.append("<- load-balancer ")
            names.append(ifindex: c.arg1, node: node, to: out)
        case 6:
            out.append("== v4->v6 ")
            out.decimal(c.arg1)
        case 7:
            out.append("== v6->v4 ")
            out.decimal(c.arg1)
        case 9:
            out.append("-> proxy port ")
            out.decimal(n16(c.arg1))
        default:
            return false
        }
        return true
    }

    static func hasCapturePrefix(_ subtype: UInt8) -> Bool {
        switch subtype {
        case 4, 5, 6, 7, 9: true
        default: false
        }
    }
}
