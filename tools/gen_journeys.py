#!/usr/bin/env python3
"""Write a .vxrec of cross-node ping journeys: what `vxmon journey` follows, at any size.

    gen_journeys.py N OUTFILE [--flows F] [--gap-ns G] [--lose-every K]

N trace events (Cilium 1.13 trace_notify v1) of N/10 pings between pods on two nodes, as the lab's
datapath emits them with the underlay traced: for each packet from-endpoint and to-overlay on the
sender, from-network (the VXLAN packet on eth0), from-overlay and to-endpoint on the receiver; the
echo reply comes back the same way. F pings are in flight at once (default 64, interleaved), each
from its own pod pair; events are G ns apart (default 1000). Node changes are `node=` metadata
records, as `vxmon record` writes them, and `pod=` records name the pods. `--lose-every K` leaves out
every K-th event and writes a lost record (count 1) in its place. OUTFILE - writes to standard
output (`gen_journeys.py 10000000 - | vxmon journey - -o none --summary`). Standard library only;
deterministic.
"""
import argparse
import struct
import sys

HEADER = b"VXMONREC" + struct.pack("<HHI", 1, 16, 0)
NODES = ("worker2", "worker")
UNDERLAY = {"worker2": bytes([172, 18, 0, 4]), "worker": bytes([172, 18, 0, 3])}
IFINDEX = {"eth0": 2, "cilium_vxlan": 3, "lxc": 4}
FROM_ENDPOINT, TO_OVERLAY, FROM_NETWORK, FROM_OVERLAY, TO_ENDPOINT = 5, 4, 10, 9, 0


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def record(kind, time_ns, body, cpu=0):
    return struct.pack("<HHIQII", kind, 0, cpu, time_ns, len(body), 0) + body + b"\0" * ((-len(body)) % 8)


def inner_packet(src, dst, icmp_type, ident, seq, ip_id):
    payload = bytes(range(56))
    icmp = struct.pack("!BBHHH", icmp_type, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), ip_id, 0x4000, 64, 1, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + icmp


def frame(src_mac, dst_mac, l3):
    return dst_mac + src_mac + b"\x08\x00" + l3


def vxlan(outer_src, outer_dst, vni, inner):
    vx = struct.pack("!BBHI", 0x08, 0, 0, vni << 8) + inner
    udp = struct.pack("!HHHH", 43622, 8472, 8 + len(vx), 0) + vx
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, outer_src, outer_dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return frame(b"\x02\x42" + outer_src, b"\x02\x42" + outer_dst, ip + udp)


def trace(point, source_ep, src_id, dst_id, ifindex, pkt, dst_ep=0, state=0):
    # struct trace_notify v1: type 4, subtype = observation point, source, hash, len_orig, len_cap,
    # version 1, src_label, dst_label, dst_id, reason, flags, ifindex, orig_ip (16 bytes).
    cap = min(len(pkt), 128)
    hdr = struct.pack("<BBHIIHHIIHBBI16s", 4, point, source_ep, 0xCF84ADEA, len(pkt), cap, 1, src_id, dst_id, dst_ep,
                      state, 0, ifindex, b"\0" * 16)
    return hdr + pkt[:cap]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--flows", type=int, default=64)
    ap.add_argument("--gap-ns", type=int, default=1000)
    ap.add_argument("--lose-every", type=int, default=0)
    a = ap.parse_args()
    out = sys.stdout.buffer if a.out == "-" else open(a.out, "wb")
    out.write(HEADER)
    t = 1_800_000_000_000_000_000
    pods = []
    chunk = [record(4, t, b"node=worker2")]
    flows = max(1, min(a.flows, 250))
    for f in range(flows):
        # worker2's pod 10.0.2.(f+2) talks to worker's pod 10.0.1.(f+2); identities by pod.
        pods.append((bytes([10, 0, 2, f + 2]), bytes([10, 0, 1, f + 2]), 20000 + f, 30000 + f))
        for (ip, node, ident) in ((pods[-1][0], "worker2", 20000 + f), (pods[-1][1], "worker", 30000 + f)):
            name = "%s-p%d" % (node, f)
            chunk.append(record(4, t, ("pod=name=%s,namespace=default,ip=%s,identity=%d,node=%s,endpoint=%d" % (
                name, ".".join(map(str, ip)), ident, node, (100 if node == "worker2" else 200) + f)).encode()))
    current = "worker2"
    written = 0
    seq = 0
    ip_id = 1
    lost_at = a.lose_every
    while written < a.n:
        seq += 1
        for f in range(flows):
            if written >= a.n:
                break
            psrc, pdst, sid, did = pods[f]
            for direction in (0, 1):
                if written >= a.n:
                    break
                if direction == 0:
                    src, dst, s_id, d_id, snode, dnode, itype = psrc, pdst, sid, did, "worker2", "worker", 8
                else:
                    src, dst, s_id, d_id, snode, dnode, itype = pdst, psrc, did, sid, "worker", "worker2", 0
                ip_id = (ip_id + 1) & 0xFFFF
                inner = inner_packet(src, dst, itype, 0x1000 + f, seq & 0xFFFF, ip_id)
                pod_frame = frame(b"\x0a\x58" + src, b"\x0e\x58" + src, inner)
                hops = [
                    (snode, FROM_ENDPOINT, 100 + f, s_id, d_id, IFINDEX["lxc"], pod_frame),
                    (snode, TO_OVERLAY, 100 + f, s_id, d_id, IFINDEX["cilium_vxlan"], pod_frame),
                    (dnode, FROM_NETWORK, 0, 0, 0, IFINDEX["eth0"],
                     vxlan(UNDERLAY[snode], UNDERLAY[dnode], s_id, pod_frame)),
                    (dnode, FROM_OVERLAY, 0, s_id, d_id, IFINDEX["cilium_vxlan"], pod_frame),
                    (dnode, TO_ENDPOINT, 200 + f, s_id, d_id, IFINDEX["lxc"], frame(b"\x0e\x58" + dst, b"\x0a\x58" + dst, inner)),
                ]
                for (node, point, ep, s, d, ifi, pkt) in hops:
                    if written >= a.n:
                        break
                    t += a.gap_ns
                    written += 1
                    if a.lose_every and written % a.lose_every == 0:
                        chunk.append(record(2, t, struct.pack("<Q", 1)))
                        continue
                    if node != current:
                        chunk.append(record(4, t, ("node=" + node).encode()))
                        current = node
                    chunk.append(record(1, t, trace(point, ep, s, d, ifi, pkt, dst_ep=ep if point == TO_ENDPOINT else 0)))
                if len(chunk) >= 8192:
                    out.write(b"".join(chunk))
                    chunk = []
    out.write(b"".join(chunk))
    out.flush()


if __name__ == "__main__":
    main()
