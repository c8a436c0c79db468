#!/usr/bin/env python3
"""Builds the .vxrec events of this directory (not their expected outputs, which are written by hand).

Each event is a sample of ../vectors (the shared Cilium 1.13 vectors) with a few header or packet
bytes changed, as README.md describes, so that the packet layers Cilium printed for the original
stay known. Writes the raw record framing and converts it with the shared tool raw2vxrec.py:

    python3 make_vectors.py [--raw2vxrec /work/shared/tools/raw2vxrec.py] [--out DIR]
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "vectors")


def sample(name):
    """(cpu, body) of the single kind-1 record of ../vectors/NAME.vxrec."""
    b = open(os.path.join(SHARED, name + ".vxrec"), "rb").read()
    o = 16
    while o + 24 <= len(b):
        kind, _, cpu, _, length, _ = struct.unpack("<HHIQII", b[o:o + 24])
        if kind == 1:
            return cpu, bytearray(b[o + 24:o + 24 + length])
        o += 24 + ((length + 7) & ~7)
    raise SystemExit("no sample in %s" % name)


def le16(v):
    return struct.pack("<H", v)


def le32(v):
    return struct.pack("<I", v)


def le64(v):
    return struct.pack("<Q", v)


def events():
    out = {}

    # Fix 1: trace v0 (32-byte header, no orig_ip).
    cpu, v1 = sample("trace_v1_to_stack_icmp6")  # to-stack, IPv6 flag, orig-ip f00d::1
    hdr = bytearray(v1[:32])
    hdr[14:16] = le16(0)  # version 0
    out["trace_v0_ipv6_flag_icmp6"] = (cpu, hdr + v1[48:])

    cpu, syn = sample("drop_policy_denied_tcp")
    packet = syn[36:]  # the 62-byte SYN
    hdr = bytearray(32)
    hdr[0:2] = bytes([4, 0])  # trace, to-endpoint
    hdr[2:4] = le16(0)  # source
    hdr[4:8] = le32(0x1EE7B1D5)  # hash
    hdr[8:12] = le32(len(packet))  # len_orig
    hdr[12:14] = le16(len(packet))  # len_cap
    hdr[14:16] = le16(0)  # version 0
    hdr[16:20] = le32(2)  # src_label: world
    hdr[20:24] = le32(8287)  # dst_label
    hdr[24:26] = le16(1277)  # dst_id
    hdr[26] = 0  # reason: new
    hdr[27] = 0  # flags: IPv4
    hdr[28:32] = le32(17)  # ifindex
    out["trace_v0_ipv4_flag_tcp_syn"] = (cpu, hdr + packet)

    # Fix 2: recorder timestamp.
    cpu, rec = sample("recorder_capture_ingress")
    r = bytearray(rec)
    r[1] = 2  # egress
    r[2:4] = le16(7)  # rule
    r[8:16] = le64(0xFEDCBA9876543210)  # >= 2^63
    out["recorder_capture_ts_negative"] = (cpu, r)
    r = bytearray(rec)
    r[8:16] = le64(0x1075BCD15)  # 2^32 + 123456789: more than a u32 tv_sec
    out["recorder_capture_ts_64bit"] = (cpu, r)

    # Fix 3: flag bits 1.13 does not have.
    cpu, t = sample("trace_v1_to_overlay_icmp")
    ip = t[48 + 14:]  # the ping without its Ethernet header (an L3-device capture)
    hdr = bytearray(t[:48])
    hdr[8:12] = le32(len(ip))
    hdr[12:14] = le16(len(ip))
    hdr[27] = 0x02  # L3 device (latest only)
    out["trace_v1_l3flag_ipv4_packet"] = (cpu, hdr + ip)
    pad = bytearray(t)
    pad[27] = 0xFE  # every bit but IPv6
    out["trace_v1_flags_pad_bits_icmp"] = (cpu, pad)

    cpu, d = sample("drop_policy_denied_tcp")
    ip = d[36 + 14:]  # the SYN from its IPv4 header (48 bytes)
    hdr = bytearray(d[:36])
    hdr[8:12] = le32(len(ip))
    hdr[12:14] = le16(len(ip) + 4)  # see README: what 1.13 dissects (everything after byte 36)
    hdr[14] = 2  # drop v2 (latest, 40-byte header)
    out["drop_v2_l3flag_in_113"] = (cpu, hdr + bytes([0x02, 0, 0, 0]) + ip)

    cpu, p = sample("policy_verdict_ingress_allow_l3l4")
    p = bytearray(p)
    p[27] |= 0x80  # latest's l3 bit; pad in 1.13
    out["policy_verdict_l3bit_ignored"] = (cpu, p)

    # Fix 4: VXLAN without the I flag; Geneve version 1 with O and C.
    cpu, v = sample("trace_v1_from_network_vxlan")
    x = bytearray(v)
    x[48 + 42] = 0x00  # VXLAN flags: I clear
    out["trace_v1_vxlan_iflag_clear"] = (cpu, x)
    g = bytearray(v)
    g[48 + 36:48 + 38] = struct.pack(">H", 6081)  # UDP destination port
    g[48 + 42:48 + 46] = bytes([0x40, 0xC0, 0x65, 0x58])  # version 1, no options, O, C, Ethernet
    out["trace_v1_geneve_v1_oam_critical"] = (cpu, g)

    # Fix 5: tunnel packets cut before the inner addresses.
    for name, cap in (("trace_v1_vxlan_inner_eth_cut", 60), ("trace_v1_vxlan_inner_ipv4_cut", 72)):
        c = bytearray(v[:48 + cap])
        c[12:14] = le16(cap)  # len_cap; len_orig stays 120
        out[name] = (cpu, c)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw2vxrec", default="/work/shared/tools/raw2vxrec.py")
    ap.add_argument("--out", default=HERE)
    a = ap.parse_args()
    for name, (cpu, body) in sorted(events().items()):
        with tempfile.NamedTemporaryFile(suffix=".raw", delete=False) as f:
            f.write(le32(cpu) + le32(len(body)) + bytes(body))
            raw = f.name
        try:
            subprocess.run([sys.executable, a.raw2vxrec, raw, os.path.join(a.out, name + ".vxrec")], check=True)
        finally:
            os.unlink(raw)
        print("%s: cpu %d, %d bytes" % (name, cpu, len(body)))


if __name__ == "__main__":
    main()
