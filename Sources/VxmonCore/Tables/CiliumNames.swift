/// Which Cilium release's tables and layouts to assume where the bytes alone cannot tell.
///
/// `.v1_13` reproduces Cilium 1.13 exactly (its text output prints numbers for values 1.13 does not
/// know); `.latest` uses the newest tables (crypto observation points, SRv6 trace reasons, drop
/// reasons 190+, `world-ipv4`/`world-ipv6`) and the newer trace-sock and policy-verdict layouts.
public enum CiliumRelease: String, Sendable, CaseIterable {
    case v1_13 = "1.13"
    case latest
}

/// Cilium's name tables (pkg/monitor/api). Values a table does not know stay numbers.
public enum CiliumNames {
    /// Trace observation point name (`TraceObservationPoint`), e.g. `to-overlay`.
    public static func observationPoint(_ v: UInt8, _ release: CiliumRelease) -> StaticString? {
        switch v {
        case 0: "to-endpoint"
        case 1: "to-proxy"
        case 2: "to-host"
        case 3: "to-stack"
        case 4: "to-overlay"
        case 5: "from-endpoint"
        case 6: "from-proxy"
        case 7: "from-host"
        case 8: "from-stack"
        case 9: "from-overlay"
        case 10: "from-network"
        case 11: "to-network"
        case 12: release == .latest ? "from-crypto" : nil
        case 13: release == .latest ? "to-crypto" : nil
        default: nil
        }
    }

    /// Every observation point name regardless of release (for structured output).
    public static func observationPointAny(_ v: UInt8) -> StaticString? { observationPoint(v, .latest) }

    /// Hubble's `TraceObservationPoint` enum name, e.g. `TO_OVERLAY`.
    public static func hubbleObservationPoint(_ v: UInt8) -> StaticString {
        switch v {
        case 0: "TO_ENDPOINT"
        case 1: "TO_PROXY"
        case 2: "TO_HOST"
        case 3: "TO_STACK"
        case 4: "TO_OVERLAY"
        case 5: "FROM_ENDPOINT"
        case 6: "FROM_PROXY"
        case 7: "FROM_HOST"
        case 8: "FROM_STACK"
        case 9: "FROM_OVERLAY"
        case 10: "FROM_NETWORK"
        case 11: "TO_NETWORK"
        case 12: "FROM_CRYPTO"
        case 13: "TO_CRYPTO"
        default: "UNKNOWN_POINT"
        }
    }

    /// Trace reason text for `reason & 0x7f` (the encrypt bit is not part of the lookup).
    public static func traceReason(_ reason: UInt8, _ release: CiliumRelease) -> StaticString? {
        switch reason & 0x7f {
        case 0: "new"
        case 1: "established"
        case 2: "reply"
        case 3: "related"
        case 4: "reopened"
        case 5: "unknown"
        case 6: release == .latest ? "srv6-encap" : nil
        case 7: release == .latest ? "srv6-decap" : nil
        case 8: release == .latest ? "encrypt-overlay" : nil
        default: nil
        }
    }

    /// Reserved identity names (`NumericIdentity.String()`).
    public static func reservedIdentity(_ id: UInt32, _ release: CiliumRelease) -> StaticString? {
        switch id {
        case 0: "unknown"
        case 1: "host"
        case 2: "world"
        case 3: "unmanaged"
        case 4: "health"
        case 5: "init"
        case 6: "remote-node"
        case 7: "kube-apiserver"
        case 8: "ingress"
        case 9: release == .latest ? "world-ipv4" : nil
        case 10: release == .latest ? "world-ipv6" : nil
        default: nil
        }
    }

    /// Drop reason text (`pkg/monitor/api/drop.go`). Codes 12-15 and 190-206 exist only in `.latest`.
    public static func dropReason(_ code: UInt8, _ release: CiliumRelease) -> StaticString? {
        if let text = dropReason113(code) { return text }
        guard release == .latest else { return nil }
        return dropReasonLatestOnly(code)
    }

    private static func dropReason113(_ code: UInt8) -> StaticString? {
        switch code {
        case 0: "Success"
        case 2: "Invalid packet"
        case 3: "Interface"
        case 4: "Interface Decrypted"
        case 5: "LB, sock cgroup: No backend slot entry found"
        case 6: "LB, sock cgroup: No backend entry found"
        case 7: "LB, sock cgroup: Reverse entry update failed"
        case 8: "LB, sock cgroup: Reverse entry stale"
        case 9: "Fragmented packet"
        case 10: "Fragmented packet entry update failed"
        case 11: "Missed tail call to custom program"
        case 130: "Invalid source mac"
        case 131: "Invalid destination mac"
        case 132: "Invalid source ip"
        case 133: "Policy denied"
        case 134: "Invalid packet"
        case 135: "CT: Truncated or invalid header"
        case 136: "Fragmentation needed"
        case 137: "CT: Unknown L4 protocol"
        case 138: "CT: Can't create entry from packet"
        case 139: "Unsupported L3 protocol"
        case 140: "Missed tail call"
        case 141: "Error writing to packet"
        case 142: "Unknown L4 protocol"
        case 143: "Unknown ICMPv4 code"
        case 144: "Unknown ICMPv4 type"
        case 145: "Unknown ICMPv6 code"
        case 146: "Unknown ICMPv6 type"
        case 147: "Error retrieving tunnel key"
        case 148: "Error retrieving tunnel options"
        case 149: "Invalid Geneve option"
        case 150: "Unknown L3 target address"
        case 151: "Stale or unroutable IP"
        case 152: "No matching local container found"
        case 153: "Error while correcting L3 checksum"
        case 154: "Error while correcting L4 checksum"
        case 155: "CT: Map insertion failed"
        case 156: "Invalid IPv6 extension header"
        case 157: "IP fragmentation not supported"
        case 158: "Service backend not found"
        case 160: "No tunnel/encapsulation endpoint (datapath BUG!)"
        case 161: "NAT 46/64 not enabled"
        case 162: "Reached EDT rate-limiting drop horizon"
        case 163: "Unknown connection tracking state"
        case 164: "Local host is unreachable"
        case 165: "No configuration available to perform policy decision"
        case 166: "Unsupported L2 protocol"
        case 167: "No mapping for NAT masquerade"
        case 168: "Unsupported protocol for NAT masquerade"
        case 169: "FIB lookup failed"
        case 170: "Encapsulation traffic is prohibited"
        case 171: "Invalid identity"
        case 172: "Unknown sender"
        case 173: "NAT not needed"
        case 174: "Is a ClusterIP"
        case 175: "First logical datagram fragment not found"
        case 176: "Forbidden ICMPv6 message"
        case 177: "Denied by LB src range check"
        case 178: "Socket lookup failed"
        case 179: "Socket assign failed"
        case 180: "Proxy redirection not supported for protocol"
        case 181: "Policy denied by denylist"
        case 182: "VLAN traffic disallowed by VLAN filter"
        case 183: "Incorrect VNI from VTEP"
        case 184: "Failed to update or lookup TC buffer"
        case 185: "No SID was found for the IP address"
        case 186: "SRv6 state was removed during tail call"
        case 187: "L3 translation from IPv4 to IPv6 failed (NAT46)"
        case 188: "L3 translation from IPv6 to IPv4 failed (NAT64)"
        case 189: "Authentication required"
        default: nil
        }
    }

    private static func dropReasonLatestOnly(_ code: UInt8) -> StaticString? {
        switch code {
        case 12: "Interface Decrypting"
        case 13: "Interface Encrypting"
        case 14: "LB: sock cgroup: Reverse entry delete succeeded"
        case 15: "MTU error message"
        case 190: "No conntrack map found"
        case 191: "No nat map found"
        case 192: "Invalid ClusterID"
        case 193: "Unsupported packet protocol for DSR encapsulation"
        case 194: "No egress gateway found"
        case 195: "Traffic is unencrypted"
        case 196: "TTL exceeded"
        case 197: "No node ID found"
        case 198: "Rate limited"
        case 199: "IGMP handled"
        case 200: "IGMP subscribed"
        case 201: "Multicast handled"
        case 202: "Host datapath not ready"
        case 203: "Endpoint policy program not available"
        case 204: "No Egress IP configured"
        case 205: "Punt to proxy"
        case 206: "No device"
        default: nil
        }
    }

    /// Policy verdict match type ((flags >> 3) & 7).
    public static func policyMatch(_ v: UInt8) -> StaticString {
        switch v {
        case 0: "none"
        case 1: "L3-Only"
        case 2: "L3-L4"
        case 3: "L4-Only"
        case 4: "all"
        case 5: "L3-Proto"
        case 6: "Proto-Only"
        default: "unknown"
        }
    }

    /// Latest policy verdict auth type (byte 28).
    public static func authType(_ v: UInt8) -> StaticString? {
        switch v {
        case 0: "disabled"
        case 1: "spire"
        case 2: "test-always-fail"
        default: nil
        }
    }

    /// Socket trace translation point.
    public static func xlatePoint(_ v: UInt8) -> StaticString {
        switch v {
        case 1: "pre-xlate-fwd"
        case 2: "post-xlate-fwd"
        case 3: "pre-xlate-rev"
        case 4: "post-xlate-rev"
        default: "unknown"
        }
    }

    /// Socket trace L4 protocol.
    public static func sockProto(_ v: UInt8) -> StaticString {
        switch v {
        case 1: "tcp"
        case 2: "udp"
        default: "unknown"
        }
    }

    /// Name of a message type as `cilium monitor --type` spells it.
    public static func messageType(_ t: UInt8) -> StaticString? {
        switch t {
        case 1: "drop"
        case 2: "debug"
        case 3: "capture"
        case 4: "trace"
        case 5: "policy-verdict"
        case 6: "recorder"
        case 7: "trace-sock"
        case 129: "l7"
        case 130: "agent"
        default: nil
        }
    }

    /// Debug capture type name (C `DBG_CAPTURE_*`, lowercased) for structured output.
    public static func captureType(_ t: UInt8) -> StaticString? {
        switch t {
        case 0: "unspec"
        case 1, 2, 3: "reserved"
        case 4: "delivery"
        case 5: "from-lb"
        case 6: "after-v46"
        case 7: "after-v64"
        case 8: "proxy-pre"
        case 9: "proxy-post"
        case 10: "snat-pre"
        case 11: "snat-post"
        default: nil
        }
    }
}
