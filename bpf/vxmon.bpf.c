// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * vxmon lab datapath: a Cilium-style VXLAN "host routing" datapath for pods
 * in network namespaces, emitting Cilium 1.13 trace v1 / drop v1 events.
 *
 * Programs (all SEC("tc"), direct-action, tc ingress):
 *   vxmon_from_container  node-side lxc veth of every local pod
 *   vxmon_from_overlay    cilium_vxlan (collect-metadata VXLAN device)
 *   vxmon_from_network    the node's underlay eth0: from-network traces of
 *                         VXLAN packets when VXMON_CFG_TRACE_UNDERLAY is set
 *                         (what Cilium's bpf_host emits where it is attached
 *                         to the native device; off by default)
 *
 * Packet bytes are read and written with bpf_skb_load_bytes/store_bytes
 * only (no direct packet access), so non-linear skbs need no special care.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "vxmon/events.h"
#include "vxmon/lab.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ---- maps ------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VXMON_ENDPOINTS_MAX);
	__type(key, __be32);
	__type(value, struct vxmon_endpoint_info);
} vxmon_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VXMON_IPCACHE_MAX);
	__type(key, __be32);
	__type(value, struct vxmon_ipcache_info);
} vxmon_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, VXMON_TUNNEL_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vxmon_tunnel_key);
	__type(value, struct vxmon_tunnel_info);
} vxmon_tunnel_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VXMON_POLICY_MAX);
	__type(key, struct vxmon_policy_key);
	__type(value, struct vxmon_policy_entry);
} vxmon_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vxmon_config);
} vxmon_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VXMON_CT_MAX);
	__type(key, struct vxmon_ct_key);
	__type(value, struct vxmon_ct_entry);
} vxmon_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} cilium_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, VXMON_RINGBUF_SIZE);
} vxmon_events_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VXMON_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} vxmon_stats SEC(".maps");

/* ---- packet layouts --------------------------------------------------- */

#define ETH_HLEN_ 14
#define IP_OFF ETH_HLEN_
#define ARP_OFF ETH_HLEN_
#define ETH_P_ARP_ 0x0806
#define ARPOP_REQUEST_ 1
#define ARPOP_REPLY_ 2

struct arp_eth_ipv4 {
	__be16 ar_hrd;
	__be16 ar_pro;
	__u8 ar_hln;
	__u8 ar_pln;
	__be16 ar_op;
	__u8 ar_sha[6];
	__be32 ar_sip;
	__u8 ar_tha[6];
	__be32 ar_tip;
} __attribute__((packed));
_Static_assert(sizeof(struct arp_eth_ipv4) == 28, "arp is 28 bytes");

struct eth_arp {
	struct ethhdr eth;
	struct arp_eth_ipv4 arp;
} __attribute__((packed));
_Static_assert(sizeof(struct eth_arp) == 42, "eth + arp is 42 bytes");

/* What the programs need from an IPv4 packet. */
struct pkt4 {
	__be32 saddr;
	__be32 daddr;
	__be16 sport; /* ct ports, network order */
	__be16 dport;
	__u16 policy_dport; /* host order, 0 unless TCP/UDP/SCTP */
	__u8 proto;
	__u8 is_vxlan; /* UDP to 8472 / 4789 */
};

#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_SCTP_ 132
#define ICMP_ECHOREPLY_ 0
#define ICMP_ECHO_ 8

/* Parse the IPv4 header at IP_OFF. Returns 0 or -VXMON_DROP_INVALID. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct pkt4 *p)
{
	struct iphdr ip;
	__u32 l4;

	if (bpf_skb_load_bytes(skb, IP_OFF, &ip, sizeof(ip)) < 0)
		return -VXMON_DROP_INVALID;
	if (ip.version != 4 || ip.ihl < 5)
		return -VXMON_DROP_INVALID;

	p->saddr = ip.saddr;
	p->daddr = ip.daddr;
	p->proto = ip.protocol;
	p->sport = 0;
	p->dport = 0;
	p->policy_dport = 0;
	p->is_vxlan = 0;

	/* Non-first fragments carry no L4 header. */
	if (ip.frag_off & bpf_htons(0x1fff))
		return 0;

	l4 = IP_OFF + ((__u32)ip.ihl << 2);
	switch (ip.protocol) {
	case IPPROTO_TCP_:
	case IPPROTO_UDP_:
	case IPPROTO_SCTP_: {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) < 0)
			return 0;
		p->sport = ports[0];
		p->dport = ports[1];
		p->policy_dport = bpf_ntohs(ports[1]);
		if (ip.protocol == IPPROTO_UDP_ &&
		    (p->policy_dport == VXMON_VXLAN_PORT ||
		     p->policy_dport == VXMON_VXLAN_PORT_IANA))
			p->is_vxlan = 1;
		break;
	}
	case IPPROTO_ICMP_: {
		__u8 icmp[8]; /* type, code, csum(2), id(2), seq(2) */

		if (bpf_skb_load_bytes(skb, l4, icmp, sizeof(icmp)) < 0)
			return 0;
		if (icmp[0] == ICMP_ECHO_ || icmp[0] == ICMP_ECHOREPLY_) {
			__be16 id;

			__builtin_memcpy(&id, &icmp[4], sizeof(id));

			p->sport = id;
			p->dport = id;
		}
		break;
	}
	default:
		break;
	}
	return 0;
}

/* Classify any frame as VXLAN (IPv4 UDP to 8472 / 4789). */
static __always_inline int skb_is_vxlan(struct __sk_buff *skb)
{
	struct pkt4 p;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return 0;
	if (parse_ipv4(skb, &p) < 0)
		return 0;
	return p.is_vxlan;
}

/* ---- config, stats ---------------------------------------------------- */

struct cfg {
	__u32 vxlan_ifindex;
	__u32 events_mode;
	__u32 cap_len;
	__u32 cap_len_overlay;
	__u32 ring_wakeup_bytes;
	__u32 node_index;
	__u32 flags;
};

static __always_inline void load_cfg(struct cfg *c)
{
	__u32 zero = 0;
	struct vxmon_config *v = bpf_map_lookup_elem(&vxmon_config, &zero);

	c->vxlan_ifindex = 0;
	c->events_mode = VXMON_EVENTS_OFF;
	c->cap_len = VXMON_CAP_LEN_DEFAULT;
	c->cap_len_overlay = VXMON_CAP_LEN_OVERLAY_DEFAULT;
	c->ring_wakeup_bytes = 0;
	c->node_index = 0;
	c->flags = 0;
	if (!v)
		return;
	c->vxlan_ifindex = v->vxlan_ifindex;
	c->events_mode = v->events_mode;
	if (v->cap_len)
		c->cap_len = v->cap_len;
	if (v->cap_len_overlay)
		c->cap_len_overlay = v->cap_len_overlay;
	c->ring_wakeup_bytes = v->ring_wakeup_bytes;
	c->node_index = v->node_index;
	c->flags = v->flags;
}

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&vxmon_stats, &idx);

	if (v)
		*v += 1; /* per-CPU: no atomics needed */
}

/* ---- event emission --------------------------------------------------- */

static __always_inline __u32 capture_len(struct __sk_buff *skb, const struct cfg *c,
					 int is_vxlan)
{
	__u32 cap = is_vxlan ? c->cap_len_overlay : c->cap_len;

	if (cap > VXMON_CAP_LEN_MAX)
		cap = VXMON_CAP_LEN_MAX;
	if (cap > skb->len)
		cap = skb->len;
	return cap;
}

/*
 * Ring: reserve the record in the ring itself at the smallest of three fixed
 * sizes that holds the capture (the verifier wants a constant size), write
 * the vxmon_ring_header (node, CPU, time) and the notify struct, and load
 * the packet bytes straight into it, with no intermediate copy: at flood
 * rates every write to memory shows in the pps.
 *
 * Wakeups: ring_bytes_crossed() counts the bytes this node's programs have
 * reserved on this CPU (a per-CPU counter, the only per-event bookkeeping)
 * and tells whether this record crossed a multiple of `mark` (a power of
 * two): the reader is woken once per `mark` bytes written per CPU and node;
 * its 10 ms timer drains everything else.
 */
static __always_inline int ring_bytes_crossed(__u64 size, __u32 mark)
{
	__u32 idx = VXMON_STAT_RING_BYTES;
	__u64 *v = bpf_map_lookup_elem(&vxmon_stats, &idx);
	__u64 before;

	if (!v)
		return 0;
	before = *v;
	*v = before + size;
	return ((before ^ (before + size)) & ~((__u64)mark - 1)) != 0;
}

#define RING_RECORD(hdr_t, bucket)                                                      \
	do {                                                                            \
		const __u64 size = sizeof(struct vxmon_ring_header) + sizeof(hdr_t) + (bucket); \
		struct vxmon_ring_header *h = bpf_ringbuf_reserve(&vxmon_events_rb, size, 0); \
		__u8 *e;                                                                \
		if (!h)                                                                 \
			return -1;                                                      \
		h->node = node;                                                         \
		h->cpu = cpu;                                                           \
		h->reserved = 0;                                                        \
		h->boot_ns = now;                                                       \
		e = (__u8 *)(h + 1);                                                    \
		__builtin_memcpy(e, msg, sizeof(hdr_t));                                \
		if (cap > (bucket))                                                     \
			cap = (bucket);                                                 \
		if (cap > 0 && bpf_skb_load_bytes(skb, 0, e + sizeof(hdr_t), cap) < 0) { \
			bpf_ringbuf_discard(h, BPF_RB_NO_WAKEUP);                        \
			return -1;                                                      \
		}                                                                       \
		if (wakeup_bytes && ring_bytes_crossed(size, wakeup_bytes)) {          \
			flags = BPF_RB_FORCE_WAKEUP;                                    \
			stat_inc(VXMON_STAT_RING_WAKEUP);                               \
		}                                                                       \
		bpf_ringbuf_submit(h, flags);                                           \
		return 0;                                                               \
	} while (0)

/* The smallest of the three record sizes that holds the capture. */
#define RING_RECORD_SIZED(hdr_t)                                \
	do {                                                    \
		if (cap <= 64)                                  \
			RING_RECORD(hdr_t, 64);                 \
		if (cap <= 128)                                 \
			RING_RECORD(hdr_t, 128);                \
		RING_RECORD(hdr_t, VXMON_CAP_LEN_MAX);          \
	} while (0)

static __noinline int ring_emit(struct __sk_buff *skb, const void *msg, __u32 hdr_len,
				__u32 cap, const struct cfg *c)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 now;
	__u32 wakeup_bytes;
	__u16 node, cpu;

	if (!skb || !msg || !c)
		return -1;
	wakeup_bytes = c->ring_wakeup_bytes;
	if (!wakeup_bytes)
		flags = 0; /* the kernel's own policy */
	node = (__u16)c->node_index;
	cpu = (__u16)bpf_get_smp_processor_id();
	/* The event's time, CLOCK_BOOTTIME (see vxmon_ring_header). Read once here,
	 * not after the reserve in each expansion of RING_RECORD: either way, for
	 * events written at the same moment on different CPUs, the ring's order
	 * (the order of reservations) and the order of these times can disagree by
	 * the time between the clock read and the reservation (tens of ns, more
	 * while CPUs contend for the ring's lock). */
	now = bpf_ktime_get_boot_ns();
	cap &= 0x1ff;
	if (hdr_len == sizeof(struct vxmon_trace_notify))
		RING_RECORD_SIZED(struct vxmon_trace_notify);
	if (hdr_len == sizeof(struct vxmon_drop_notify))
		RING_RECORD_SIZED(struct vxmon_drop_notify);
	return -1;
}

static __always_inline void emit(struct __sk_buff *skb, const struct cfg *c, void *msg,
				 __u32 hdr_len, __u32 cap)
{
	if (c->events_mode == VXMON_EVENTS_PERF) {
		if (bpf_perf_event_output(skb, &cilium_events, ((__u64)cap << 32) | BPF_F_CURRENT_CPU,
					  msg, hdr_len) < 0)
			stat_inc(VXMON_STAT_PERF_FAIL);
		else if (c->flags & VXMON_CFG_COUNT_EMITTED)
			stat_inc(VXMON_STAT_EMITTED);
	} else if (c->events_mode == VXMON_EVENTS_RING) {
		if (ring_emit(skb, msg, hdr_len, cap, c) < 0)
			stat_inc(VXMON_STAT_RING_FAIL);
		else if (c->flags & VXMON_CFG_COUNT_EMITTED)
			stat_inc(VXMON_STAT_EMITTED);
	}
}

/*
 * Zeroes a version-1 trace or drop notify and fills the part both start with:
 * the common header (the skb hash is Cilium's "MARK"/"flow"), the original
 * and captured lengths and the version.
 */
#define NOTIFY_CAPTURE_HEAD(msg, type_, subtype_, source_, skb, cap)       \
	do {                                                              \
		__builtin_memset(&(msg), 0, sizeof(msg));                 \
		(msg).hdr.type = (type_);                                 \
		(msg).hdr.subtype = (subtype_);                           \
		(msg).hdr.source = (source_);                             \
		(msg).hdr.hash = bpf_get_hash_recalc(skb);                \
		(msg).len_orig = (skb)->len;                              \
		(msg).len_cap = (__u16)(cap);                             \
		(msg).version = 1;                                        \
	} while (0)

static __always_inline void send_trace(struct __sk_buff *skb, const struct cfg *c, __u8 obs,
				       __u16 source, __u32 src_label, __u32 dst_label,
				       __u16 dst_id, __u8 reason, __u32 ifindex, __be32 orig_ip4,
				       int is_vxlan)
{
	struct vxmon_trace_notify msg;
	__u32 cap;

	if (c->events_mode == VXMON_EVENTS_OFF)
		return;
	cap = capture_len(skb, c, is_vxlan);
	NOTIFY_CAPTURE_HEAD(msg, VXMON_NOTIFY_TRACE, obs, source, skb, cap);
	msg.src_label = src_label;
	msg.dst_label = dst_label;
	msg.dst_id = dst_id;
	msg.reason = reason;
	msg.ifindex = ifindex;
	__builtin_memcpy(msg.orig_ip, &orig_ip4, sizeof(orig_ip4));
	emit(skb, c, &msg, sizeof(msg), cap);
}

static __always_inline int send_drop(struct __sk_buff *skb, const struct cfg *c, __u8 reason,
				     __u16 source, __u32 src_label, __u32 dst_label,
				     __u32 dst_id, __u8 file, __u16 line, int is_vxlan)
{
	struct vxmon_drop_notify msg;
	__u32 cap;

	if (c->events_mode != VXMON_EVENTS_OFF) {
		cap = capture_len(skb, c, is_vxlan);
		NOTIFY_CAPTURE_HEAD(msg, VXMON_NOTIFY_DROP, reason, source, skb, cap);
		msg.src_label = src_label;
		msg.dst_label = dst_label;
		msg.dst_id = dst_id;
		msg.line = line;
		msg.file = file;
		msg.ifindex = skb->ifindex;
		emit(skb, c, &msg, sizeof(msg), cap);
	}
	return TC_ACT_SHOT;
}

/* ---- conntrack -------------------------------------------------------- */

static __always_inline void ct_fill(struct vxmon_ct_key *k, const struct pkt4 *p, int reverse)
{
	__builtin_memset(k, 0, sizeof(*k));
	if (reverse) {
		k->saddr = p->daddr;
		k->daddr = p->saddr;
		k->sport = p->dport;
		k->dport = p->sport;
	} else {
		k->saddr = p->saddr;
		k->daddr = p->daddr;
		k->sport = p->sport;
		k->dport = p->dport;
	}
	k->proto = p->proto;
}

/* Returns VXMON_TRACE_REASON_POLICY (new), _CT_ESTABLISHED or _CT_REPLY. */
static __always_inline __u8 ct_lookup(const struct pkt4 *p)
{
	struct vxmon_ct_key k;
	struct vxmon_ct_entry *e;

	ct_fill(&k, p, 0);
	e = bpf_map_lookup_elem(&vxmon_ct, &k);
	if (e) {
		e->last_seen_ns = bpf_ktime_get_ns();
		__sync_fetch_and_add(&e->packets, 1);
		return VXMON_TRACE_REASON_CT_ESTABLISHED;
	}
	ct_fill(&k, p, 1);
	e = bpf_map_lookup_elem(&vxmon_ct, &k);
	if (e) {
		e->last_seen_ns = bpf_ktime_get_ns();
		return VXMON_TRACE_REASON_CT_REPLY;
	}
	return VXMON_TRACE_REASON_POLICY;
}

static __always_inline void ct_create(const struct pkt4 *p)
{
	struct vxmon_ct_key k;
	struct vxmon_ct_entry e = {};

	ct_fill(&k, p, 0);
	e.last_seen_ns = bpf_ktime_get_ns();
	e.packets = 1;
	bpf_map_update_elem(&vxmon_ct, &k, &e, BPF_NOEXIST);
}

/* ---- policy ----------------------------------------------------------- */

/* Returns 1 when the packet must be dropped (reason 133). */
static __always_inline int policy_denied(__u32 src_id, __u32 dst_id, const struct pkt4 *p)
{
	struct vxmon_policy_key k;
	struct vxmon_policy_entry *e;

	__builtin_memset(&k, 0, sizeof(k));
	k.src_identity = src_id;
	k.dst_identity = dst_id;
	k.proto = p->proto;
	k.dport = p->policy_dport;
	e = bpf_map_lookup_elem(&vxmon_policy, &k);
	if (!e && k.dport) {
		k.dport = 0;
		e = bpf_map_lookup_elem(&vxmon_policy, &k);
	}
	if (!e) {
		k.dport = 0;
		k.proto = 0;
		e = bpf_map_lookup_elem(&vxmon_policy, &k);
	}
	return e && e->action == VXMON_POLICY_DENY;
}

/* ---- helpers ---------------------------------------------------------- */

static __always_inline __u32 ipcache_identity(__be32 ip)
{
	struct vxmon_ipcache_info *i = bpf_map_lookup_elem(&vxmon_ipcache, &ip);

	return i ? i->identity : 0;
}

/* dst MAC = pod MAC, src MAC = lxc MAC. */
static __always_inline int rewrite_macs(struct __sk_buff *skb, const struct vxmon_endpoint_info *ep)
{
	__u8 macs[12];

	__builtin_memcpy(macs, ep->pod_mac, 6);
	__builtin_memcpy(macs + 6, ep->lxc_mac, 6);
	return bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0);
}

/*
 * ARP responder (Cilium's arp_respond): answer every IPv4-over-Ethernet ARP
 * request of a known local pod with the pod's lxc MAC, except requests for
 * the pod's own address (duplicate address detection). Anything else goes
 * to the stack unchanged.
 */
static __always_inline int handle_arp(struct __sk_buff *skb)
{
	struct eth_arp f;
	struct vxmon_endpoint_info *ep;
	__be32 sip, tip;

	if (bpf_skb_load_bytes(skb, 0, &f, sizeof(f)) < 0)
		return TC_ACT_OK;
	if (f.arp.ar_hrd != bpf_htons(1) || f.arp.ar_pro != bpf_htons(ETH_P_IP) ||
	    f.arp.ar_hln != 6 || f.arp.ar_pln != 4 || f.arp.ar_op != bpf_htons(ARPOP_REQUEST_))
		return TC_ACT_OK;

	sip = f.arp.ar_sip;
	tip = f.arp.ar_tip;
	if (tip == sip)
		return TC_ACT_OK;
	ep = bpf_map_lookup_elem(&vxmon_endpoints, &sip);
	if (!ep)
		return TC_ACT_OK;

	__builtin_memcpy(f.eth.h_dest, f.eth.h_source, 6);
	__builtin_memcpy(f.eth.h_source, ep->lxc_mac, 6);
	f.arp.ar_op = bpf_htons(ARPOP_REPLY_);
	__builtin_memcpy(f.arp.ar_tha, f.arp.ar_sha, 6);
	__builtin_memcpy(f.arp.ar_sha, ep->lxc_mac, 6);
	f.arp.ar_tip = sip;
	f.arp.ar_sip = tip;
	if (bpf_skb_store_bytes(skb, 0, &f, sizeof(f), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/* ---- programs --------------------------------------------------------- */

SEC("tc")
int vxmon_from_container(struct __sk_buff *skb)
{
	struct cfg c;
	struct pkt4 p;
	struct vxmon_endpoint_info *src, *dst;
	struct vxmon_tunnel_key tk;
	struct vxmon_tunnel_info *tun;
	struct bpf_tunnel_key key;
	__u32 src_id, dst_label;
	__u16 src_ep;
	__u8 reason;

	load_cfg(&c);

	if (skb->protocol == bpf_htons(ETH_P_ARP_))
		return handle_arp(skb);
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return send_drop(skb, &c, VXMON_DROP_UNKNOWN_L3, 0, 0, 0, 0, VXMON_FILE_LXC,
				 __LINE__, 0);
	if (parse_ipv4(skb, &p) < 0)
		return send_drop(skb, &c, VXMON_DROP_INVALID, 0, 0, 0, 0, VXMON_FILE_LXC,
				 __LINE__, 0);

	src = bpf_map_lookup_elem(&vxmon_endpoints, &p.saddr);
	if (!src)
		return send_drop(skb, &c, VXMON_DROP_INVALID_SIP, 0, 0, 0, 0, VXMON_FILE_LXC,
				 __LINE__, p.is_vxlan);
	src_id = src->identity;
	src_ep = src->endpoint_id;

	dst_label = ipcache_identity(p.daddr);
	reason = ct_lookup(&p);

	send_trace(skb, &c, VXMON_TRACE_FROM_LXC, src_ep, src_id, dst_label, 0, reason,
		   skb->ifindex, 0, p.is_vxlan);

	dst = bpf_map_lookup_elem(&vxmon_endpoints, &p.daddr);
	if (dst) {
		__u32 lxc_ifindex = dst->lxc_ifindex;
		__u16 dst_ep = dst->endpoint_id;

		dst_label = dst->identity;
		if (reason != VXMON_TRACE_REASON_CT_REPLY && policy_denied(src_id, dst_label, &p))
			return send_drop(skb, &c, VXMON_DROP_POLICY, dst_ep, src_id, dst_label,
					 dst_ep, VXMON_FILE_LXC, __LINE__, p.is_vxlan);
		if (reason == VXMON_TRACE_REASON_POLICY)
			ct_create(&p);
		if (rewrite_macs(skb, dst) < 0)
			return send_drop(skb, &c, VXMON_DROP_INVALID, dst_ep, src_id, dst_label,
					 dst_ep, VXMON_FILE_LXC, __LINE__, p.is_vxlan);
		send_trace(skb, &c, VXMON_TRACE_TO_LXC, dst_ep, src_id, dst_label, dst_ep, reason,
			   lxc_ifindex, p.saddr, p.is_vxlan);
		return bpf_redirect_peer(lxc_ifindex, 0);
	}

	tk.prefixlen = 32;
	tk.ip = p.daddr;
	tun = bpf_map_lookup_elem(&vxmon_tunnel_map, &tk);
	if (!tun)
		return send_drop(skb, &c, VXMON_DROP_NO_TUNNEL_ENDPOINT, src_ep, src_id, dst_label,
				 0, VXMON_FILE_LXC, __LINE__, p.is_vxlan);
	if (reason == VXMON_TRACE_REASON_POLICY)
		ct_create(&p);

	__builtin_memset(&key, 0, sizeof(key));
	key.remote_ipv4 = bpf_ntohl(tun->remote_ip);
	key.tunnel_id = src_id;
	key.tunnel_ttl = VXMON_TUNNEL_TTL;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return send_drop(skb, &c, VXMON_DROP_NO_TUNNEL_KEY, src_ep, src_id, dst_label, 0,
				 VXMON_FILE_LXC, __LINE__, p.is_vxlan);

	send_trace(skb, &c, VXMON_TRACE_TO_OVERLAY, src_ep, src_id, dst_label, 0, reason,
		   c.vxlan_ifindex, 0, p.is_vxlan);
	return bpf_redirect(c.vxlan_ifindex, 0);
}

SEC("tc")
int vxmon_from_overlay(struct __sk_buff *skb)
{
	struct cfg c;
	struct pkt4 p;
	struct bpf_tunnel_key key;
	struct vxmon_endpoint_info *dst;
	__u32 src_id, dst_label, lxc_ifindex;
	__u16 dst_ep;
	__u8 reason;

	load_cfg(&c);

	__builtin_memset(&key, 0, sizeof(key));
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return send_drop(skb, &c, VXMON_DROP_NO_TUNNEL_KEY, 0, 0, 0, 0, VXMON_FILE_OVERLAY,
				 __LINE__, 0);
	src_id = key.tunnel_id;

	if (skb->protocol != bpf_htons(ETH_P_IP)) {
		send_trace(skb, &c, VXMON_TRACE_FROM_OVERLAY, 0, src_id, 0, 0,
			   VXMON_TRACE_REASON_UNKNOWN, skb->ifindex, 0, 0);
		return send_drop(skb, &c, VXMON_DROP_UNKNOWN_L3, 0, src_id, 0, 0,
				 VXMON_FILE_OVERLAY, __LINE__, 0);
	}
	if (parse_ipv4(skb, &p) < 0) {
		send_trace(skb, &c, VXMON_TRACE_FROM_OVERLAY, 0, src_id, 0, 0,
			   VXMON_TRACE_REASON_UNKNOWN, skb->ifindex, 0, 0);
		return send_drop(skb, &c, VXMON_DROP_INVALID, 0, src_id, 0, 0, VXMON_FILE_OVERLAY,
				 __LINE__, 0);
	}

	reason = ct_lookup(&p);
	dst = bpf_map_lookup_elem(&vxmon_endpoints, &p.daddr);
	dst_label = dst ? dst->identity : ipcache_identity(p.daddr);

	send_trace(skb, &c, VXMON_TRACE_FROM_OVERLAY, 0, src_id, dst_label, 0, reason,
		   skb->ifindex, 0, p.is_vxlan);

	if (!dst) {
		/* A known pod of another node (we do not forward overlay to
		 * overlay) is unroutable; an unknown address is an unknown target. */
		if (dst_label)
			return send_drop(skb, &c, VXMON_DROP_UNROUTABLE, 0, src_id, dst_label, 0,
					 VXMON_FILE_OVERLAY, __LINE__, p.is_vxlan);
		return send_drop(skb, &c, VXMON_DROP_UNKNOWN_TARGET, 0, src_id, 0, 0,
				 VXMON_FILE_OVERLAY, __LINE__, p.is_vxlan);
	}
	lxc_ifindex = dst->lxc_ifindex;
	dst_ep = dst->endpoint_id;

	if (reason != VXMON_TRACE_REASON_CT_REPLY && policy_denied(src_id, dst_label, &p))
		return send_drop(skb, &c, VXMON_DROP_POLICY, dst_ep, src_id, dst_label, dst_ep,
				 VXMON_FILE_OVERLAY, __LINE__, p.is_vxlan);
	if (reason == VXMON_TRACE_REASON_POLICY)
		ct_create(&p);
	if (rewrite_macs(skb, dst) < 0)
		return send_drop(skb, &c, VXMON_DROP_INVALID, dst_ep, src_id, dst_label, dst_ep,
				 VXMON_FILE_OVERLAY, __LINE__, p.is_vxlan);

	send_trace(skb, &c, VXMON_TRACE_TO_LXC, dst_ep, src_id, dst_label, dst_ep, reason,
		   lxc_ifindex, p.saddr, p.is_vxlan);
	return bpf_redirect_peer(lxc_ifindex, 0);
}

SEC("tc")
int vxmon_from_network(struct __sk_buff *skb)
{
	struct cfg c;

	load_cfg(&c);
	if (c.events_mode == VXMON_EVENTS_OFF || !(c.flags & VXMON_CFG_TRACE_UNDERLAY))
		return TC_ACT_OK;
	if (!skb_is_vxlan(skb))
		return TC_ACT_OK;
	send_trace(skb, &c, VXMON_TRACE_FROM_NETWORK, 0, 0, 0, 0, VXMON_TRACE_REASON_UNKNOWN,
		   skb->ifindex, 0, 1);
	return TC_ACT_OK;
}
