#!/usr/bin/env python3
"""JourneySocketTests' Python side: splits a recording by node into gob streams (Go's encoding/gob,
gobpayload.go), serves them as one fake Cilium agent per node, paced, and is the oracle of the journeys
and recordings vxmon makes of them.

    journey_sockets.py split RECORDING GOBPAYLOAD OUTDIR
    journey_sockets.py serve GAP SCHEDULE NODE=SOCKET:STREAM...
    journey_sockets.py journeys RECORDING VXMON_JSON REPLAY_JSON
    journey_sockets.py recorded RECORDING MERGED FIRST
"""
import json, os, select, socket, struct, subprocess, sys, time

# The gob stream's messages are split as the reconnect test's fake agent splits them.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_cilium_agent import messages  # noqa: E402

POINTS = {0: "to-endpoint", 1: "to-proxy", 2: "to-host", 3: "to-stack", 4: "to-overlay", 5: "from-endpoint",
          6: "from-proxy", 7: "from-host", 8: "from-stack", 9: "from-overlay", 10: "from-network",
          11: "to-network"}

def samples(path):
    """(node, body) of every sample of a .vxrec file, read as spec/vxrec.md says."""
    data = open(path, "rb").read()
    assert data[:8] == b"VXMONREC", path
    o, node, out = struct.unpack_from("<H", data, 10)[0], None, []
    while o + 24 <= len(data):
        kind, _, cpu, _, length, _ = struct.unpack_from("<HHIQII", data, o)
        body = data[o + 24:o + 24 + length]
        if kind == 4 and body.startswith(b"node="):
            node = body[5:].decode()
        elif kind == 1:
            out.append((node, cpu, body))
        o = (o + 24 + length + 7) & ~7
    return out

def packet(body):
    """A trace notification (Cilium's trace_notify, v0 or v1): point, ICMP (src, dst, type, id, seq), VNI."""
    assert body[0] == 4, "not a trace"
    version = struct.unpack_from("<H", body, 14)[0]
    p = body[32 if version == 0 else 48:]
    assert p[12:14] == b"\x08\x00"
    ip, vni = 14, None
    if p[ip + 9] == 17 and struct.unpack_from(">H", p, ip + (p[ip] & 15) * 4 + 2)[0] in (8472, 4789):
        udp = ip + (p[ip] & 15) * 4
        vni = int.from_bytes(p[udp + 12:udp + 15], "big")
        ip = udp + 16 + 14
    assert p[ip + 9] == 1, "not ICMP"
    icmp = ip + (p[ip] & 15) * 4
    src, dst = socket.inet_ntoa(p[ip + 12:ip + 16]), socket.inet_ntoa(p[ip + 16:ip + 20])
    return POINTS[body[1]], (src, dst, p[icmp], struct.unpack_from(">H", p, icmp + 4)[0],
                             struct.unpack_from(">H", p, icmp + 6)[0]), vni

def split(recording, gob, out):
    runs, lines = [], {}
    for node, cpu, body in samples(recording):
        lines.setdefault(node, []).append("9 %d 0 %s\n" % (cpu, body.hex()))
        if runs and runs[-1][0] == node:
            runs[-1][1] += 1
        else:
            runs.append([node, 1])
    for node, ls in lines.items():
        with open(os.path.join(out, node + ".gob"), "wb") as f:
            subprocess.run([gob, "encode"], input="".join(ls).encode(), stdout=f, check=True)
    print(" ".join("%s:%d" % (n, c) for n, c in runs))

def serve(gap, schedule, agents):
    """One fake agent per node: its stream's type first, then the runs of samples in the recording's
    order, `gap` seconds apart; then every connection is closed."""
    servers, streams, conns = {}, {}, {}
    for arg in agents:
        node, rest = arg.split("=", 1)
        path, stream = rest.rsplit(":", 1)
        streams[node] = messages(open(stream, "rb").read())
        servers[node] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        servers[node].bind(path)
        servers[node].listen(1)
    print("listening", flush=True)
    while len(conns) < len(servers):
        ready, _, _ = select.select([s for n, s in servers.items() if n not in conns], [], [], 60)
        if not ready:
            sys.exit("nobody connected")
        for s in ready:
            conns[next(n for n, x in servers.items() if x is s)] = s.accept()[0]
    sent = {}
    for node, conn in conns.items():
        conn.sendall(streams[node][0])
        sent[node] = 1
    for run in schedule.split(","):
        node, count = run.split(":")
        time.sleep(float(gap))
        conns[node].sendall(b"".join(streams[node][sent[node]:sent[node] + int(count)]))
        sent[node] += int(count)
    for conn in conns.values():
        conn.close()
    print("sent", flush=True)

def fail(message):
    print(message)
    sys.exit(1)

def journeys(recording, got_path, replay_path):
    # What the recording says: each ICMP packet's hops (node, point) in order, and its VNI.
    want = {}
    for node, _, body in samples(recording):
        point, key, vni = packet(body)
        j = want.setdefault(key, {"hops": [], "vni": None})
        j["hops"].append([node, point])
        if vni is not None and j["vni"] is None:
            j["vni"] = vni
    got = [json.loads(l)["journey"] for l in open(got_path) if l.strip()]
    replay = [json.loads(l)["journey"] for l in open(replay_path) if l.strip()]
    if len(got) != len(want):
        fail("%d journeys, the recording has %d packets" % (len(got), len(want)))
    by_id = {j["id"]: j for j in got}
    pairs = 0
    for j in got:
        key = (j["source"], j["destination"], j["icmp_type"], j["icmp_id"], j["icmp_seq"])
        if key not in want:
            fail("a journey of no packet of the recording: %r" % (key,))
        w = want.pop(key)
        hops = [[h["node"], h["point"]] for h in j["hops"]]
        if hops != w["hops"]:
            fail("%r: hops %r, the recording has %r" % (key, hops, w["hops"]))
        if (j["outcome"], j["complete"], j["missing"], j["vni"]) != ("delivered", True, [], w["vni"]):
            fail("%r: %s complete=%s missing=%r vni=%s; the recording's VNI %s" % (
                key, j["outcome"], j["complete"], j["missing"], j["vni"], w["vni"]))
        other = by_id.get(j.get("paired_with"))
        if other is None or other.get("paired_with") != j["id"]:
            fail("%r: not paired" % (key,))
        if j["role"] == "request":
            reply = (j["destination"], j["source"], 0, j["icmp_id"], j["icmp_seq"])
            if j["icmp_type"] != 8 or other["role"] != "reply" or \
                    (other["source"], other["destination"], other["icmp_type"], other["icmp_id"],
                     other["icmp_seq"]) != reply:
                fail("%r: paired with %r" % (key, other))
            if j["vnis"] != {"request": j["vni"], "reply": other["vni"]}:
                fail("%r: vnis %r" % (key, j["vnis"]))
            pairs += 1
    # As replaying the recording gives (the sockets carry no interface names, pods or kernel times).
    def shape(js):
        return [(j["role"], j["source"], j["destination"], j["icmp_type"], j["icmp_seq"], j["outcome"],
                 j["vni"], j["vnis"], [(h["node"], h["point"], h["kind"], h.get("vni")) for h in j["hops"]])
                for j in js]
    if shape(got) != shape(replay):
        fail("differs from the replay:\n%r\n%r" % (shape(got), shape(replay)))
    print("ok: %d journeys, %d hops, %d request/reply pairs" % (len(got), sum(len(j["hops"]) for j in got), pairs))

def recorded(recording, merged, first):
    """Each node's samples in the merged recording: the first connection's `first`, then all of them."""
    want, got = {}, {}
    for node, _, body in samples(recording):
        want.setdefault(node, []).append(body)
    for node, _, body in samples(merged):
        got.setdefault(node, []).append(body)
    if sorted(got) != sorted(want):
        fail("nodes %r, the recording's %r" % (sorted(got), sorted(want)))
    for node in sorted(want):
        expected = want[node][:int(first)] + want[node]
        if got[node] != expected:
            fail("%s: %d samples, %d expected, or their bytes differ" % (node, len(got[node]), len(expected)))
    print("ok: " + ", ".join("%s %d samples" % (n, len(got[n])) for n in sorted(got)))

if __name__ == "__main__":
    {"split": split, "serve": serve, "journeys": journeys, "recorded": recorded}[sys.argv[1]](
        *(sys.argv[2:4] + [sys.argv[4:]] if sys.argv[1] == "serve" else sys.argv[2:]))
