/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * vxmon lab datapath: map keys and values shared by bpf/vxmon.bpf.c and the
 * Swift loader (imported through clang, so: <linux/types.h> types only, no
 * bool, no bitfields, no enum-typed fields, explicit padding everywhere,
 * every size pinned by _Static_assert).
 *
 * Byte order: every field is host byte order unless its comment says
 * "network order". IPv4 addresses and L4 ports taken from packets are kept
 * in network order (raw packet bytes); everything a human configures
 * (identities, ifindexes, policy ports, sizes) is host order.
 *
 * Padding must be written as zero by user space: several of these structs
 * are hash keys, and the kernel hashes every byte.
 *
 * Map names (ELF / libbpf / pin names; the kernel keeps only the first 15
 * characters, so `bpftool map show` lists vxmon_tunnel_map as
 * "vxmon_tunnel_ma"):
 *
 *   name               type              key                       value
 *   vxmon_endpoints    HASH              __be32 pod IPv4 (4)       vxmon_endpoint_info (24)
 *   vxmon_ipcache      HASH              __be32 IPv4 (4)           vxmon_ipcache_info (8)
 *   vxmon_tunnel_map   LPM_TRIE          vxmon_tunnel_key (8)      vxmon_tunnel_info (8)
 *   vxmon_policy       HASH              vxmon_policy_key (12)     vxmon_policy_entry (4)
 *   vxmon_config       ARRAY[1]          __u32 0 (4)               vxmon_config (40)
 *   vxmon_ct           LRU_HASH          vxmon_ct_key (16)         vxmon_ct_entry (16)
 *   vxmon_stats        PERCPU_ARRAY[4]   __u32 index (4)           __u64 per CPU (8)
 *   cilium_events      PERF_EVENT_ARRAY  __u32 cpu (4)             __u32 fd (4)
 *   vxmon_events_rb    RINGBUF (16 MiB)  -                         vxmon_ring_header + event
 *
 * cilium_events is per node, like Cilium's. vxmon_events_rb is one ring for
 * the whole lab: the loader creates it with the first node and reuses it for
 * the others, so its records come out in the order the nodes wrote them.
 */
#ifndef VXMON_LAB_H
#define VXMON_LAB_H

#include <linux/types.h>

/* ---- sizes and limits ------------------------------------------------- */

#define VXMON_ENDPOINTS_MAX 1024
#define VXMON_IPCACHE_MAX 65536
#define VXMON_TUNNEL_MAX 1024
#define VXMON_POLICY_MAX 16384
#define VXMON_CT_MAX 65536
#define VXMON_RINGBUF_SIZE 16777216 /* 16 MiB, one ring per lab (a plain number: Swift imports it) */

/* Capture lengths. 0 in the config selects the default. Values above
 * VXMON_CAP_LEN_MAX are clamped to it. */
#define VXMON_CAP_LEN_DEFAULT 128         /* Cilium TRACE_PAYLOAD_LEN */
#define VXMON_CAP_LEN_OVERLAY_DEFAULT 192 /* VXLAN packets (outer + inner headers) */
#define VXMON_CAP_LEN_MAX 256

/* Bumped whenever the maps or the records change incompatibly; the loader
 * writes it to vxmon_config.abi_version and readers refuse other values. */
#define VXMON_ABI_VERSION 5

/* vxmon_config.flags */
#define VXMON_CFG_TRACE_UNDERLAY 1 /* from-network traces of VXLAN packets on eth0 */
#define VXMON_CFG_COUNT_EMITTED 2  /* count every event written (VXMON_STAT_EMITTED): the soak's accounting */

/* UDP ports that classify a packet as VXLAN for capture-length purposes. */
#define VXMON_VXLAN_PORT 8472      /* Linux/Cilium default */
#define VXMON_VXLAN_PORT_IANA 4789

/* vxmon_config.events_mode */
#define VXMON_EVENTS_OFF 0
#define VXMON_EVENTS_PERF 1 /* cilium_events, packet appended by the kernel */
#define VXMON_EVENTS_RING 2 /* vxmon_events_rb, packet copied by the program */

/* vxmon_policy_entry.action */
#define VXMON_POLICY_ALLOW 0
#define VXMON_POLICY_DENY 1

/* vxmon_stats indexes (per-CPU __u64 counters). */
#define VXMON_STAT_PERF_FAIL 0    /* bpf_perf_event_output failed (no reader / ring full) */
#define VXMON_STAT_RING_FAIL 1    /* ring record not written (ring full, or the packet load failed) */
#define VXMON_STAT_RING_BYTES 2   /* bytes reserved in the ring while ring_wakeup_bytes is set (paces wakeups) */
#define VXMON_STAT_RING_WAKEUP 3  /* ring records submitted with BPF_RB_FORCE_WAKEUP */
#define VXMON_STAT_EMITTED 4      /* events written to a buffer, while VXMON_CFG_COUNT_EMITTED is set */
#define VXMON_STAT_MAX 5

/* Drop notification `file` ids (drop v1 byte 30). */
#define VXMON_FILE_LXC 2     /* vxmon_from_container */
#define VXMON_FILE_OVERLAY 3 /* vxmon_from_overlay */
#define VXMON_FILE_NETWORK 4 /* vxmon_from_network (emits no drops today) */

/* Cilium's tunnel TTL. */
#define VXMON_TUNNEL_TTL 64

/* ---- vxmon_endpoints: local pods of this node ------------------------ */
/* key: __be32 pod IPv4 address, network order. */
struct vxmon_endpoint_info {
	__u32 lxc_ifindex; /* ifindex of the node-side veth (lxc...), host order */
	__u32 identity;    /* security identity of the pod (also its VNI), host order */
	__u16 endpoint_id; /* Cilium endpoint ID, host order */
	__u8 pod_mac[6];   /* MAC of the pod's eth0, wire order */
	__u8 lxc_mac[6];   /* MAC of the node-side lxc veth, wire order */
	__u8 pad[2];       /* zero */
};
_Static_assert(sizeof(struct vxmon_endpoint_info) == 24, "endpoint info is 24 bytes");
_Static_assert(__builtin_offsetof(struct vxmon_endpoint_info, endpoint_id) == 8, "endpoint_id at 8");
_Static_assert(__builtin_offsetof(struct vxmon_endpoint_info, pod_mac) == 10, "pod_mac at 10");
_Static_assert(__builtin_offsetof(struct vxmon_endpoint_info, lxc_mac) == 16, "lxc_mac at 16");

/* ---- vxmon_ipcache: every pod of the cluster ------------------------- */
/* key: __be32 IPv4 address, network order. */
struct vxmon_ipcache_info {
	__u32 identity; /* security identity, host order */
	__u32 pad;      /* zero */
};
_Static_assert(sizeof(struct vxmon_ipcache_info) == 8, "ipcache info is 8 bytes");

/* ---- vxmon_tunnel_map: pod CIDR -> remote node (LPM trie) ------------ */
struct vxmon_tunnel_key {
	__u32 prefixlen; /* prefix length in bits (0..32), host order */
	__be32 ip;       /* IPv4 prefix, network order */
};
_Static_assert(sizeof(struct vxmon_tunnel_key) == 8, "tunnel key is 8 bytes");

struct vxmon_tunnel_info {
	__be32 remote_ip; /* underlay IPv4 of the remote node, network order */
	__u32 pad;        /* zero */
};
_Static_assert(sizeof(struct vxmon_tunnel_info) == 8, "tunnel info is 8 bytes");

/* ---- vxmon_policy ---------------------------------------------------- */
/*
 * Looked up on delivery to a local pod, in this order:
 *   {src, dst, proto, dport}, {src, dst, proto, 0}, {src, dst, 0, 0}.
 * The first match decides; deny drops with reason 133, no match allows.
 * dport is the TCP/UDP/SCTP destination port; other protocols use 0.
 * Replies of tracked connections (CT reason "reply") skip the policy, like
 * Cilium's ingress policy.
 */
struct vxmon_policy_key {
	__u32 src_identity; /* host order */
	__u32 dst_identity; /* host order */
	__u16 dport;        /* L4 destination port, HOST order, 0 = any */
	__u8 proto;         /* IP protocol number, 0 = any */
	__u8 pad;           /* zero */
};
_Static_assert(sizeof(struct vxmon_policy_key) == 12, "policy key is 12 bytes");
_Static_assert(__builtin_offsetof(struct vxmon_policy_key, dport) == 8, "dport at 8");

struct vxmon_policy_entry {
	__u8 action; /* VXMON_POLICY_ALLOW (0) or VXMON_POLICY_DENY (1) */
	__u8 pad[3]; /* zero */
};
_Static_assert(sizeof(struct vxmon_policy_entry) == 4, "policy entry is 4 bytes");

/* ---- vxmon_config: ARRAY[1], key 0 ----------------------------------- */
struct vxmon_config {
	__u32 vxlan_ifindex;     /* ifindex of cilium_vxlan in this node, host order */
	__u32 events_mode;       /* VXMON_EVENTS_OFF / _PERF / _RING, host order */
	__u32 cap_len;           /* bytes captured per event, 0 = 128, max 256, host order */
	__u32 cap_len_overlay;   /* same for VXLAN packets, 0 = 192, max 256, host order */
	__u32 ring_wakeup_bytes; /* ring, a power of two: wake the reader once per
				  * this many bytes written (per CPU and node),
				  * else BPF_RB_NO_WAKEUP
				  * (the reader drains the ring on a timer); 0 =
				  * the kernel's default (wake when the reader is
				  * caught up), host order */
	__be32 node_ip;          /* this node's underlay IPv4, network order (informational) */
	__u32 node_index;        /* this node's index in the lab (ring header), host order */
	__u32 abi_version;       /* VXMON_ABI_VERSION of the loader, host order */
	__u32 flags;             /* VXMON_CFG_*, host order */
	__u32 pad;               /* zero */
};
_Static_assert(sizeof(struct vxmon_config) == 40, "config is 40 bytes");
_Static_assert(__builtin_offsetof(struct vxmon_config, node_ip) == 20, "node_ip at 20");
_Static_assert(__builtin_offsetof(struct vxmon_config, node_index) == 24, "node_index at 24");

/* ---- vxmon_events_rb records ------------------------------------------ */
/*
 * Each ring record is this header, the notify struct (trace 48 or drop 36
 * bytes, as on cilium_events) and the captured packet bytes. The record is
 * reserved at one of three fixed sizes (64, 128 or VXMON_CAP_LEN_MAX packet
 * bytes, the smallest that holds the capture): bytes after len_cap are not
 * zeroed, so readers go by len_cap, as they do with perf's padding.
 *
 * The header is a multiple of 8 bytes, so the notify struct after it is as
 * aligned as the record (the ring aligns records to 8).
 *
 * boot_ns is CLOCK_BOOTTIME (bpf_ktime_get_boot_ns(), read just before the
 * record is reserved), the clock cilium_events samples carry too (the reader
 * opens them with use_clockid = CLOCK_BOOTTIME): the reader adds
 * CLOCK_REALTIME - CLOCK_BOOTTIME to get wall-clock time. BOOTTIME rather
 * than MONOTONIC because it keeps counting during suspend, so that offset
 * does not change across one (a record written before a suspend and read
 * after it is still dated right).
 */
struct vxmon_ring_header {
	__u16 node;     /* vxmon_config.node_index of the node that wrote it */
	__u16 cpu;      /* CPU it was written on */
	__u32 reserved; /* zero */
	__u64 boot_ns;  /* CLOCK_BOOTTIME of the event, ns */
};
_Static_assert(sizeof(struct vxmon_ring_header) == 16, "ring header is 16 bytes");
_Static_assert(sizeof(struct vxmon_ring_header) % 8 == 0, "ring header keeps the record 8-byte aligned");
_Static_assert(__builtin_offsetof(struct vxmon_ring_header, boot_ns) == 8, "boot_ns at 8");

/* ---- vxmon_ct: tiny conntrack (LRU hash) ----------------------------- */
/*
 * Key of the direction a packet travels. TCP/UDP/SCTP: real ports; ICMP echo
 * request/reply: the echo identifier in both sport and dport; everything
 * else: ports 0. A packet whose own key exists is "established" (1); one
 * whose reversed key (addresses and ports swapped) exists is a "reply" (2);
 * otherwise it is "new" (0) and its key is inserted once the packet is let
 * through (after policy).
 */
struct vxmon_ct_key {
	__be32 saddr; /* network order */
	__be32 daddr; /* network order */
	__be16 sport; /* network order (ICMP echo: identifier) */
	__be16 dport; /* network order (ICMP echo: identifier) */
	__u8 proto;   /* IP protocol number */
	__u8 pad[3];  /* zero */
};
_Static_assert(sizeof(struct vxmon_ct_key) == 16, "ct key is 16 bytes");

struct vxmon_ct_entry {
	__u64 last_seen_ns; /* bpf_ktime_get_ns() of the last packet, host order */
	__u32 packets;      /* packets seen in the entry's direction, host order */
	__u32 pad;          /* zero */
};
_Static_assert(sizeof(struct vxmon_ct_entry) == 16, "ct entry is 16 bytes");

#endif /* VXMON_LAB_H */
