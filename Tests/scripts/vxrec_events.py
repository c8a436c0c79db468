#!/usr/bin/env python3
"""An independent reader of .vxrec recordings, for tests: written from spec/vxrec.md (the container)
and spec/cilium-monitor-format.md (the samples), not from vxmon's Swift reader.

    import vxrec_events
    rec = vxrec_events.read("samples/cross_node_ping.vxrec")
    for e in rec.events: print(e.node, e.time_ns, e.point, e.packet)

or, from the command line, one JSON object per sample record:

    vxrec_events.py FILE [--cilium 1.13|latest]

What it gives, per sample record (`Event`): the node it belongs to (the last `node=`/`host=` metadata
record before it; an empty value clears it), its time (the record header's time_ns, which vxmon's
recordings fill with the datapath's own time of the event), the message type and subtype, and for
trace (4), drop (1) and policy-verdict (5) messages the header fields a journey hop repeats
(identities, ifindex, drop reason) and the packet (`Packet`): Ethernet (one 802.1Q tag at most) ->
IPv4/IPv6 -> TCP/UDP/SCTP/ICMP, and through a UDP tunnel (VXLAN on 8472/4789, Geneve on 6081) to the
inner Ethernet frame and its IP packet. `Packet.key` is the IP packet the event is about: the inner one
of a tunnel packet, else the only one; None when there is none (ARP, a cut header).

Per recording (`Recording`): the events, the `pod=` metadata records as dicts, interface names per
(node, ifindex), lost records and their sample counts, and whether the file ended inside a record.
"""
import json
import struct
import sys

# Trace observation points (spec 4.2); the names of latest Cilium (12 and 13 exist there only).
POINTS = {
    0: "to-endpoint", 1: "to-proxy", 2: "to-host", 3: "to-stack", 4: "to-overlay", 5: "from-endpoint",
    6: "from-proxy", 7: "from-host", 8: "from-stack", 9: "from-overlay", 10: "from-network",
    11: "to-network", 12: "from-crypto", 13: "to-crypto",
}

TRACE, DROP, POLICY_VERDICT = 4, 1, 5


class FormatError(ValueError):
    pass


class Key:
    """The IP packet an event is about: addresses, protocol, and what tells it from its neighbours."""

    def __init__(self, version, source, destination, protocol):
        self.version = version          # 4 or 6
        self.source = source            # text
        self.destination = destination
        self.protocol = protocol        # IP protocol number (for IPv6: after the extension headers)
        self.ip_id = 0                  # IPv4 identification, IPv6 fragment header's id
        self.fragment_offset = 0
        self.source_port = None         # TCP/UDP/SCTP
        self.destination_port = None
        self.tcp_seq = None
        self.tcp_ack = None
        self.icmp_type = None
        self.icmp_code = None
        self.icmp_id = None             # ICMP(v6) messages with 8 header bytes: identifier
        self.icmp_seq = None            # ... and sequence

    def as_dict(self):
        return {k: v for k, v in vars(self).items() if v is not None}

    def __repr__(self):
        return "Key(%s)" % self.as_dict()


class Tunnel:
    def __init__(self, kind, vni, outer_source, outer_destination):
        self.kind = kind                # "vxlan" or "geneve"
        self.vni = vni
        self.outer_source = outer_source
        self.outer_destination = outer_destination

    def as_dict(self):
        return dict(vars(self))


class Packet:
    def __init__(self):
        self.outer = None               # Key of the outermost IP packet
        self.tunnel = None              # Tunnel, when the outer packet is UDP to a tunnel port
        self.inner = None               # Key of the inner IP packet of a tunnel
        self.inner_frame = False        # the inner Ethernet header is complete
        self.inner_ethertype = None

    @property
    def key(self):
        """The inner packet of a tunnel; None for a tunnel frame that holds no IP (ARP); else the outer."""
        if self.tunnel is not None:
            if self.inner is not None:
                return self.inner
            if self.inner_frame and self.inner_ethertype not in (0x0800, 0x86DD):
                return None
        return self.outer

    def as_dict(self):
        return {
            "outer": self.outer.as_dict() if self.outer else None,
            "tunnel": self.tunnel.as_dict() if self.tunnel else None,
            "inner": self.inner.as_dict() if self.inner else None,
        }


class Event:
    def __init__(self, index, offset, node, cpu, time_ns, body):
        self.index = index              # record number, from 1
        self.offset = offset            # byte offset of the record header
        self.node = node
        self.cpu = cpu
        self.time_ns = time_ns
        self.body = body
        self.type = body[0] if body else None
        self.subtype = body[1] if len(body) > 1 else None
        self.decoded = False            # the header of a trace/drop/policy verdict was read
        self.source_identity = None
        self.destination_identity = None
        self.ifindex = None
        self.drop_reason = None         # drop: the subtype; policy verdict: -verdict when it denies
        self.policy_verdict = None
        self.packet = None

    @property
    def point(self):
        """The place a journey hop names: a trace's observation point, `drop`, `policy-verdict`."""
        if self.type == TRACE:
            return POINTS.get(self.subtype, "point %d" % self.subtype)
        if self.type == DROP:
            return "drop"
        if self.type == POLICY_VERDICT:
            return "policy-verdict"
        return None

    @property
    def key(self):
        return self.packet.key if self.packet is not None else None

    def as_dict(self):
        d = {"index": self.index, "node": self.node, "time_ns": self.time_ns, "cpu": self.cpu, "type": self.type,
             "subtype": self.subtype, "point": self.point}
        if self.decoded:
            d.update(source_identity=self.source_identity, destination_identity=self.destination_identity,
                     ifindex=self.ifindex, drop_reason=self.drop_reason)
            d["packet"] = self.packet.as_dict() if self.packet else None
            d["key"] = self.key.as_dict() if self.key else None
        return d


class Recording:
    def __init__(self):
        self.version = None
        self.events = []
        self.samples = 0
        self.pods = []                  # dicts of the pod= records (name, namespace, ip, identity, node, ...)
        self.metadata = []              # (node at the time, key, value)
        self.interfaces = {}            # (node, ifindex) -> [(record index, name)], in file order
        self.lost_records = 0
        self.lost_samples = 0
        self.truncated = False

    def pod_at(self, ip):
        for p in self.pods:
            if p.get("ip") == ip:
                return p
        return None


def _ipv4(b, o):
    return "%d.%d.%d.%d" % tuple(b[o:o + 4])


def _ipv6(b, o):
    import ipaddress
    return str(ipaddress.IPv6Address(bytes(b[o:o + 16])))


def _transport(k, b, t):
    """Fills the transport fields of `k` from the header at b[t:]."""
    have = len(b) - t
    p = k.protocol
    if p == 6:
        if have >= 18:
            k.source_port, k.destination_port, k.tcp_seq, k.tcp_ack = struct.unpack_from(">HHII", b, t)
    elif p == 17:
        if have >= 8:
            k.source_port, k.destination_port = struct.unpack_from(">HH", b, t)
    elif p == 132:
        if have >= 12:
            k.source_port, k.destination_port = struct.unpack_from(">HH", b, t)
    elif p in (1, 58):
        if have >= 4:
            k.icmp_type, k.icmp_code = b[t], b[t + 1]
        if have >= 8:
            k.icmp_id, k.icmp_seq = struct.unpack_from(">HH", b, t + 4)


def _ip(b, o):
    """The IP packet at b[o:]: (Key, offset of its transport header or None), or (None, None)."""
    if len(b) - o < 1:
        return None, None
    version = b[o] >> 4
    if version == 4:
        if len(b) - o < 20:
            return None, None
        ihl = (b[o] & 0x0F) * 4
        k = Key(4, _ipv4(b, o + 12), _ipv4(b, o + 16), b[o + 9])
        k.ip_id = struct.unpack_from(">H", b, o + 4)[0]
        k.fragment_offset = struct.unpack_from(">H", b, o + 6)[0] & 0x1FFF
        if k.fragment_offset != 0 or ihl < 20:
            return k, None
        return k, o + ihl
    if version == 6:
        if len(b) - o < 40:
            return None, None
        k = Key(6, _ipv6(b, o + 8), _ipv6(b, o + 24), 0)
        nxt = b[o + 6]
        at = o + 40
        for _ in range(8):
            if nxt in (0, 43, 60):          # hop-by-hop, routing, destination options
                if len(b) - at < 2:
                    k.protocol = nxt
                    return k, None
                nxt, at = b[at], at + (b[at + 1] + 1) * 8
                continue
            if nxt == 44:                   # fragment
                if len(b) - at < 8:
                    k.protocol = nxt
                    return k, None
                k.ip_id = struct.unpack_from(">I", b, at + 4)[0]
                k.fragment_offset = struct.unpack_from(">H", b, at + 2)[0] >> 3
                nxt, at = b[at], at + 8
                if k.fragment_offset != 0:
                    k.protocol = nxt
                    return k, None
                continue
            break
        k.protocol = nxt
        return k, at
    return None, None


def _ethernet(b, o):
    """(ethertype, offset of the payload) of the Ethernet frame at b[o:], or (None, None)."""
    if len(b) - o < 14:
        return None, None
    ethertype = struct.unpack_from(">H", b, o + 12)[0]
    o += 14
    if ethertype == 0x8100:
        if len(b) - o < 4:
            return None, None
        ethertype = struct.unpack_from(">H", b, o + 2)[0]
        o += 4
    return ethertype, o


def parse_packet(b, l3=False, vxlan_ports=(8472, 4789), geneve_ports=(6081,)):
    """Parses a captured packet (Ethernet first, or IP first for an L3 device)."""
    p = Packet()
    if l3:
        o = 0
    else:
        ethertype, o = _ethernet(b, 0)
        if ethertype not in (0x0800, 0x86DD):
            return p
    key, t = _ip(b, o)
    p.outer = key
    if key is None or t is None or key.protocol != 17 or len(b) - t < 8:
        if key is not None and t is not None:
            _transport(key, b, t)
        return p
    _transport(key, b, t)
    dport = key.destination_port
    u = t + 8
    if dport in vxlan_ports:
        if len(b) - u < 8:
            return p
        p.tunnel = Tunnel("vxlan", int.from_bytes(bytes(b[u + 4:u + 7]), "big"), key.source, key.destination)
        inner_at = u + 8
    elif dport in geneve_ports:
        if len(b) - u < 8:
            return p
        options = (b[u] & 0x3F) * 4
        p.tunnel = Tunnel("geneve", int.from_bytes(bytes(b[u + 4:u + 7]), "big"), key.source, key.destination)
        inner_at = u + 8 + options
    else:
        return p
    ethertype, o = _ethernet(b, inner_at)
    if ethertype is None:
        return p
    p.inner_frame = True
    p.inner_ethertype = ethertype
    if ethertype in (0x0800, 0x86DD):
        inner, it = _ip(b, o)
        if inner is not None:
            if it is not None:
                _transport(inner, b, it)
            p.inner = inner
    return p


def _decode(e, release, vxlan_ports, geneve_ports):
    """Reads the header of a trace, drop or policy verdict, and its packet (spec section 3)."""
    b = e.body
    if e.type == TRACE:
        if release == "1.13":
            if len(b) < 16:
                return
            version = struct.unpack_from("<H", b, 14)[0]
            header = {0: 32, 1: 48}.get(version)
        else:
            if len(b) < 32:
                return
            header = {0: 32, 1: 48, 2: 56}.get(b[14])
        if header is None or len(b) < header:
            return
        e.source_identity, e.destination_identity = struct.unpack_from("<II", b, 16)
        flags = b[27]
        e.ifindex = struct.unpack_from("<I", b, 28)[0]
        l3 = release != "1.13" and flags & 0x02 != 0
    elif e.type == DROP:
        if len(b) < 16:
            return
        if release == "1.13":
            header = 36
        else:
            header = {0: 36, 1: 36, 2: 40, 3: 48}.get(b[14])
        if header is None or len(b) < header:
            return
        e.source_identity, e.destination_identity = struct.unpack_from("<II", b, 16)
        e.ifindex = struct.unpack_from("<I", b, 32)[0]
        e.drop_reason = e.subtype
        flags = b[36] if release != "1.13" and b[14] >= 2 else 0
        l3 = flags & 0x02 != 0
    elif e.type == POLICY_VERDICT:
        header = 32 if release == "1.13" else 40
        if len(b) < header:
            return
        remote, verdict = struct.unpack_from("<Ii", b, 16)
        flags = b[27]
        ingress = flags & 0x3 == 1
        e.source_identity, e.destination_identity = (remote, 0) if ingress else (0, remote)
        e.policy_verdict = verdict
        e.ifindex = 0
        if -255 <= verdict < 0:
            e.drop_reason = -verdict
        l3 = release != "1.13" and flags & 0x80 != 0
    else:
        return
    e.decoded = True
    captured = min(struct.unpack_from("<H", b, 12)[0], len(b) - header)
    if captured > 0:
        e.packet = parse_packet(b[header:header + captured], l3=l3, vxlan_ports=vxlan_ports, geneve_ports=geneve_ports)


def parse_pod(value):
    """A pod= metadata value: name=N,namespace=NS,ip=IP,identity=ID,node=NODE[,endpoint=E][,labels=...]."""
    pod = {}
    for item in value.split(","):
        if "=" not in item:
            return None
        k, v = item.split("=", 1)
        pod[k] = v
    if "identity" in pod:
        try:
            pod["identity"] = int(pod["identity"])
        except ValueError:
            return None
    return pod


def read(source, release="1.13", vxlan_ports=(8472, 4789), geneve_ports=(6081,)):
    """Reads a .vxrec file (a path, or its bytes)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        with open(source, "rb") as f:
            data = f.read()
    if len(data) < 16 or data[:8] != b"VXMONREC":
        raise FormatError("not a .vxrec file (magic)")
    rec = Recording()
    rec.version, header_len = struct.unpack_from("<HH", data, 8)
    if rec.version != 1:
        raise FormatError("unsupported .vxrec version %d" % rec.version)
    o = header_len
    node = None
    index = 0
    while o < len(data):
        if len(data) - o < 24:
            rec.truncated = True
            break
        kind, _, cpu, time_ns, length, _ = struct.unpack_from("<HHIQII", data, o)
        if len(data) - (o + 24) < length:
            rec.truncated = True
            break
        index += 1
        body = data[o + 24:o + 24 + length]
        if kind == 1:
            rec.samples += 1
            e = Event(index, o, node, cpu, time_ns, body)
            _decode(e, release, vxlan_ports, geneve_ports)
            rec.events.append(e)
        elif kind == 2:
            if length >= 8:
                rec.lost_records += 1
                rec.lost_samples += struct.unpack_from("<Q", body, 0)[0]
        elif kind == 3:
            if length >= 4:
                ifindex = struct.unpack_from("<I", body, 0)[0]
                name = body[4:].decode("utf-8", "replace")
                rec.interfaces.setdefault((node, ifindex), []).append((index, name))
        elif kind == 4:
            text = body.decode("utf-8", "replace")
            if "=" in text:
                key, value = text.split("=", 1)
                rec.metadata.append((node, key, value))
                if key in ("node", "host"):
                    node = value or None
                elif key == "pod":
                    pod = parse_pod(value)
                    if pod is not None:
                        rec.pods.append(pod)
        # Other kinds are skipped (spec: a reader skips kinds it does not know).
        pad = (o + 24 + length) % 8
        o = o + 24 + length + ((8 - pad) % 8)
    return rec


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="Print a .vxrec recording's samples as JSON lines.")
    ap.add_argument("file")
    ap.add_argument("--cilium", default="1.13", choices=["1.13", "latest"])
    a = ap.parse_args(argv)
    rec = read(a.file, release=a.cilium)
    for e in rec.events:
        print(json.dumps(e.as_dict()))
    print(json.dumps({"samples": rec.samples, "pods": rec.pods, "lost_records": rec.lost_records,
                      "lost_samples": rec.lost_samples, "truncated": rec.truncated}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
