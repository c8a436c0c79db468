/// Hubble's `flow.DropReason` enum names (proto/flow/flow.proto), by Cilium's drop reason code.
/// Generated from the .proto's enum; a code without a name is written as its number.
enum HubbleDropReason {
    /// The name in `release`'s API: 1.13's enum ends at `last113`; later codes are numbers there.
    static func name(_ code: UInt8, _ release: CiliumRelease = .latest) -> StaticString? {
        if release == .v1_13 && code > last113 { return nil }
        return name(code)
    }

    /// The last drop reason 1.13's `flow.DropReason` names.
    static let last113: UInt8 = 189

    static func name(_ code: UInt8) -> StaticString? {
        switch code {
        case 130: "INVALID_SOURCE_MAC"
        case 131: "INVALID_DESTINATION_MAC"
        case 132: "INVALID_SOURCE_IP"
        case 133: "POLICY_DENIED"
        case 134: "INVALID_PACKET_DROPPED"
        case 135: "CT_TRUNCATED_OR_INVALID_HEADER"
        case 136: "CT_MISSING_TCP_ACK_FLAG"
        case 137: "CT_UNKNOWN_L4_PROTOCOL"
        case 138: "CT_CANNOT_CREATE_ENTRY_FROM_PACKET"
        case 139: "UNSUPPORTED_L3_PROTOCOL"
        case 140: "MISSED_TAIL_CALL"
        case 141: "ERROR_WRITING_TO_PACKET"
        case 142: "UNKNOWN_L4_PROTOCOL"
        case 143: "UNKNOWN_ICMPV4_CODE"
        case 144: "UNKNOWN_ICMPV4_TYPE"
        case 145: "UNKNOWN_ICMPV6_CODE"
        case 146: "UNKNOWN_ICMPV6_TYPE"
        case 147: "ERROR_RETRIEVING_TUNNEL_KEY"
        case 148: "ERROR_RETRIEVING_TUNNEL_OPTIONS"
        case 149: "INVALID_GENEVE_OPTION"
        case 150: "UNKNOWN_L3_TARGET_ADDRESS"
        case 151: "STALE_OR_UNROUTABLE_IP"
        case 152: "NO_MATCHING_LOCAL_CONTAINER_FOUND"
        case 153: "ERROR_WHILE_CORRECTING_L3_CHECKSUM"
        case 154: "ERROR_WHILE_CORRECTING_L4_CHECKSUM"
        case 155: "CT_MAP_INSERTION_FAILED"
        case 156: "INVALID_IPV6_EXTENSION_HEADER"
        case 157: "IP_FRAGMENTATION_NOT_SUPPORTED"
        case 158: "SERVICE_BACKEND_NOT_FOUND"
        case 160: "NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT"
        case 161: "FAILED_TO_INSERT_INTO_PROXYMAP"
        case 162: "REACHED_EDT_RATE_LIMITING_DROP_HORIZON"
        case 163: "UNKNOWN_CONNECTION_TRACKING_STATE"
        case 164: "LOCAL_HOST_IS_UNREACHABLE"
        case 165: "NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION"
        case 166: "UNSUPPORTED_L2_PROTOCOL"
        case 167: "NO_MAPPING_FOR_NAT_MASQUERADE"
        case 168: "UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE"
        case 169: "FIB_LOOKUP_FAILED"
        case 170: "ENCAPSULATION_TRAFFIC_IS_PROHIBITED"
        case 171: "INVALID_IDENTITY"
        case 172: "UNKNOWN_SENDER"
        case 173: "NAT_NOT_NEEDED"
        case 174: "IS_A_CLUSTERIP"
        case 175: "FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND"
        case 176: "FORBIDDEN_ICMPV6_MESSAGE"
        case 177: "DENIED_BY_LB_SRC_RANGE_CHECK"
        case 178: "SOCKET_LOOKUP_FAILED"
        case 179: "SOCKET_ASSIGN_FAILED"
        case 180: "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL"
        case 181: "POLICY_DENY"
        case 182: "VLAN_FILTERED"
        case 183: "INVALID_VNI"
        case 184: "INVALID_TC_BUFFER"
        case 185: "NO_SID"
        case 186: "MISSING_SRV6_STATE"
        case 187: "NAT46"
        case 188: "NAT64"
        case 189: "AUTH_REQUIRED"
        case 190: "CT_NO_MAP_FOUND"
        case 191: "SNAT_NO_MAP_FOUND"
        case 192: "INVALID_CLUSTER_ID"
        case 193: "UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP"
        case 194: "NO_EGRESS_GATEWAY"
        case 195: "UNENCRYPTED_TRAFFIC"
        case 196: "TTL_EXCEEDED"
        case 197: "NO_NODE_ID"
        case 198: "DROP_RATE_LIMITED"
        case 199: "IGMP_HANDLED"
        case 200: "IGMP_SUBSCRIBED"
        case 201: "MULTICAST_HANDLED"
        case 202: "DROP_HOST_NOT_READY"
        case 203: "DROP_EP_NOT_READY"
        case 204: "DROP_NO_EGRESS_IP"
        case 205: "DROP_PUNT_PROXY"
        default: nil
        }
    }
}
