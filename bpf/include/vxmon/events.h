/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * vxmon event ABI: Cilium's datapath monitor messages, byte for byte.
 *
 * These are the layouts Cilium v1.13 writes into its `cilium_events` perf
 * ring (bpf/lib/common.h, trace.h, drop.h, dbg.h, policy_log.h, trace_sock.h,
 * pcap.h). vxmon's own datapath (bpf/vxmon.bpf.c) emits trace v1 and drop v1
 * records in exactly these layouts, and the Swift decoder (VxmonCore,
 * EventLayout.swift) reads them from the offsets below.
 *
 * Rules:
 *  - Every multi-byte field is host byte order, except IP addresses
 *    (orig_ip, dst_ip), which are raw network-order bytes.
 *  - No bool, no bitfields, no enum-typed fields, no implicit padding.
 *  - The captured packet is NOT part of any struct: it follows the struct in
 *    the sample (perf: appended by the kernel via the BPF_F_CTXLEN_MASK bits
 *    of the flags; ring: copied by the program). Readers find it at the
 *    version's data offset and trust len_cap, never the sample size (perf
 *    samples carry up to 7 bytes of kernel padding).
 *  - Changing a layout means a new version number, never an in-place edit.
 *
 * Keep in sync with Sources/VxmonCore/Events/EventLayout.swift; the guard is
 * Tests/VxmonCoreTests/EventABITests.swift, which compares Swift's decoder
 * offsets with MemoryLayout of these structs as imported from this header.
 */
#ifndef VXMON_EVENTS_H
#define VXMON_EVENTS_H

#include <linux/types.h>

/* Message types: the first byte of every record (Cilium CILIUM_NOTIFY_*). */
#define VXMON_NOTIFY_UNSPEC 0
#define VXMON_NOTIFY_DROP 1
#define VXMON_NOTIFY_DBG_MSG 2
#define VXMON_NOTIFY_DBG_CAPTURE 3
#define VXMON_NOTIFY_TRACE 4
#define VXMON_NOTIFY_POLICY_VERDICT 5
#define VXMON_NOTIFY_CAPTURE 6
#define VXMON_NOTIFY_TRACE_SOCK 7

/* NOTIFY_CAPTURE_VER: the version every capture header of Cilium 1.13 carries. */
#define VXMON_NOTIFY_CAPTURE_VER 1

/* Trace observation points (trace subtype). */
#define VXMON_TRACE_TO_LXC 0
#define VXMON_TRACE_TO_PROXY 1
#define VXMON_TRACE_TO_HOST 2
#define VXMON_TRACE_TO_STACK 3
#define VXMON_TRACE_TO_OVERLAY 4
#define VXMON_TRACE_FROM_LXC 5
#define VXMON_TRACE_FROM_PROXY 6
#define VXMON_TRACE_FROM_HOST 7
#define VXMON_TRACE_FROM_STACK 8
#define VXMON_TRACE_FROM_OVERLAY 9
#define VXMON_TRACE_FROM_NETWORK 10
#define VXMON_TRACE_TO_NETWORK 11

/* Trace reasons (trace byte 26). 0x80 is a mask, later values must not collide. */
#define VXMON_TRACE_REASON_POLICY 0
#define VXMON_TRACE_REASON_CT_ESTABLISHED 1
#define VXMON_TRACE_REASON_CT_REPLY 2
#define VXMON_TRACE_REASON_CT_RELATED 3
#define VXMON_TRACE_REASON_UNKNOWN 5
#define VXMON_TRACE_REASON_ENCRYPTED 0x80

/* Drop reasons used by vxmon's datapath (positive subtype = -DROP_*). */
#define VXMON_DROP_INVALID_SIP 132
#define VXMON_DROP_POLICY 133
#define VXMON_DROP_INVALID 134
#define VXMON_DROP_UNKNOWN_L3 139
#define VXMON_DROP_NO_TUNNEL_KEY 147
#define VXMON_DROP_UNKNOWN_TARGET 150
#define VXMON_DROP_UNROUTABLE 151
#define VXMON_DROP_NO_TUNNEL_ENDPOINT 160

/* Trace flags (byte 27). 1.13 defines only bit 0; later bits are latest Cilium's. */
#define VXMON_TRACE_FLAG_IPV6 0x01
#define VXMON_TRACE_FLAG_L3_DEVICE 0x02
#define VXMON_TRACE_FLAG_VXLAN 0x04
#define VXMON_TRACE_FLAG_GENEVE 0x08

/* NOTIFY_COMMON_HDR: 8 bytes at the start of every BPF-originated record. */
struct vxmon_notify_common {
	__u8 type;    /* VXMON_NOTIFY_* */
	__u8 subtype; /* observation point, drop reason, debug type, ... */
	__u16 source; /* endpoint ID of the emitting program, 0 if none */
	__u32 hash;   /* skb hash, printed as "flow"/"MARK" */
};
_Static_assert(sizeof(struct vxmon_notify_common) == 8, "notify common header");

/* Trace notification, version 0 (32 bytes): no orig_ip. */
struct vxmon_trace_notify_v0 {
	struct vxmon_notify_common hdr;
	__u32 len_orig;  /* full packet length, octets */
	__u16 len_cap;   /* captured packet bytes that follow the header */
	__u16 version;   /* 0 */
	__u32 src_label; /* source security identity */
	__u32 dst_label; /* destination security identity */
	__u16 dst_id;    /* destination endpoint ID (to-proxy: proxy port) */
	__u8 reason;     /* VXMON_TRACE_REASON_*, 0x80 = encrypted */
	__u8 flags;      /* VXMON_TRACE_FLAG_* */
	__u32 ifindex;   /* interface index, 0 = unknown */
};
_Static_assert(sizeof(struct vxmon_trace_notify_v0) == 32, "trace v0 is 32 bytes");

/* Trace notification, version 1 (48 bytes): what Cilium 1.13 and vxmon emit. */
struct vxmon_trace_notify {
	struct vxmon_notify_common hdr;
	__u32 len_orig;    /* full packet length, octets */
	__u16 len_cap;     /* captured packet bytes that follow the header */
	__u16 version;     /* 1 */
	__u32 src_label;   /* source security identity */
	__u32 dst_label;   /* destination security identity */
	__u16 dst_id;      /* destination endpoint ID (to-proxy: proxy port) */
	__u8 reason;       /* VXMON_TRACE_REASON_*, 0x80 = encrypted */
	__u8 flags;        /* VXMON_TRACE_FLAG_* */
	__u32 ifindex;     /* interface index, 0 = unknown */
	__u8 orig_ip[16];  /* original address before reverse NAT, network order (IPv4 in [0..3]) */
};
_Static_assert(sizeof(struct vxmon_trace_notify) == 48, "trace v1 is 48 bytes");
_Static_assert(__builtin_offsetof(struct vxmon_trace_notify, src_label) == 16, "src_label at 16");
_Static_assert(__builtin_offsetof(struct vxmon_trace_notify, ifindex) == 28, "ifindex at 28");
_Static_assert(__builtin_offsetof(struct vxmon_trace_notify, orig_ip) == 32, "orig_ip at 32");

/* Drop notification, version 1 (36 bytes). */
struct vxmon_drop_notify {
	struct vxmon_notify_common hdr; /* subtype = drop reason (positive) */
	__u32 len_orig;  /* full packet length, octets */
	__u16 len_cap;   /* captured packet bytes that follow the header */
	__u16 version;   /* 1 */
	__u32 src_label; /* source security identity */
	__u32 dst_label; /* destination security identity */
	__u32 dst_id;    /* destination endpoint ID, 0 for egress */
	__u16 line;      /* source line of the drop */
	__u8 file;       /* source file id */
	__s8 ext_error;  /* extended error, signed */
	__u32 ifindex;   /* interface index */
};
_Static_assert(sizeof(struct vxmon_drop_notify) == 36, "drop v1 is 36 bytes");
_Static_assert(__builtin_offsetof(struct vxmon_drop_notify, line) == 28, "line at 28");
_Static_assert(__builtin_offsetof(struct vxmon_drop_notify, ifindex) == 32, "ifindex at 32");

/* Debug message (20 bytes, no packet). */
struct vxmon_debug_msg {
	struct vxmon_notify_common hdr; /* subtype = debug type */
	__u32 arg1;
	__u32 arg2;
	__u32 arg3;
};
_Static_assert(sizeof(struct vxmon_debug_msg) == 20, "debug message is 20 bytes");

/* Debug capture (24 bytes, then the packet). */
struct vxmon_debug_capture_msg {
	struct vxmon_notify_common hdr; /* subtype = capture type */
	__u32 len_orig; /* full packet length, octets */
	__u16 len_cap;  /* captured packet bytes */
	__u16 version;  /* 1 */
	__u32 arg1;
	__u32 arg2;
};
_Static_assert(sizeof(struct vxmon_debug_capture_msg) == 24, "debug capture is 24 bytes");

/* Policy verdict (32 bytes in Cilium <= 1.18, then the packet). */
struct vxmon_policy_verdict_notify {
	struct vxmon_notify_common hdr; /* source = endpoint ID */
	__u32 len_orig;     /* full packet length, octets */
	__u16 len_cap;      /* captured packet bytes */
	__u16 version;      /* 1 */
	__u32 remote_label; /* identity of the peer */
	__s32 verdict;      /* 0 allow, <0 -DROP_*, >0 proxy port */
	__u16 dst_port;     /* host order */
	__u8 proto;         /* IP protocol number */
	__u8 flags;         /* bits 0-1 dir, 2 ipv6, 3-5 match type, 6 audited */
	__u32 pad1;         /* 1.14+: auth_type in the first byte */
};
_Static_assert(sizeof(struct vxmon_policy_verdict_notify) == 32, "policy verdict is 32 bytes");

/* Socket LB trace, Cilium 1.13 layout (packed, 38 bytes, no packet). */
struct vxmon_trace_sock_notify {
	__u8 type;         /* VXMON_NOTIFY_TRACE_SOCK */
	__u8 xlate_point;  /* 1 pre-fwd, 2 post-fwd, 3 pre-rev, 4 post-rev */
	__u8 dst_ip[16];   /* network order; IPv4 in [0..3] */
	__u16 dst_port;    /* host order */
	__u64 sock_cookie;
	__u64 cgroup_id;
	__u8 l4_proto;     /* 1 tcp, 2 udp */
	__u8 flags;        /* bit 0: IPv6 */
} __attribute__((packed));
_Static_assert(sizeof(struct vxmon_trace_sock_notify) == 38, "trace sock (1.13) is 38 bytes");

/* Recorder capture (Cilium 1.13 pcap recorder, 24 bytes, then the packet). */
struct vxmon_recorder_capture_msg {
	__u8 type;       /* VXMON_NOTIFY_CAPTURE */
	__u8 subtype;    /* 1 ingress, 2 egress */
	__u16 rule_id;
	__u32 reserved;
	__u64 boot_ns;   /* boot-time timestamp, ns */
	__u32 caplen;    /* captured bytes */
	__u32 len;       /* original length */
};
_Static_assert(sizeof(struct vxmon_recorder_capture_msg) == 24, "recorder capture is 24 bytes");

#endif /* VXMON_EVENTS_H */
