#!/usr/bin/env python3
"""Seeds the fuzz corpora from the test fixtures and samples (standard library only).

decoder: every sample body of every .vxrec; vxrec and journey: the small recordings; agent: the agent-socket
stream; filter: NUL-separated flag lists. Usage: fuzz_seeds.py CORPUS_DIR
"""
import glob, os, struct, sys

out = sys.argv[1]
root = os.path.join(os.path.dirname(__file__), "..")
recordings = sorted(glob.glob(os.path.join(root, "Tests/Fixtures/vectors*/*.vxrec")) + glob.glob(os.path.join(root, "samples/*.vxrec")))


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


for path in recordings:
    b = open(path, "rb").read()
    base = os.path.basename(path)[:-6]
    if len(b) <= 64 << 10:
        put("vxrec", base, b)
        put("journey", base, b)
    o = (struct.unpack_from("<H", b, 10)[0] + 7) & ~7 if len(b) >= 16 else len(b)
    n = 0
    while o + 24 <= len(b):
        kind, length = struct.unpack_from("<H", b, o)[0], struct.unpack_from("<I", b, o + 16)[0]
        if o + 24 + length > len(b):
            break
        if kind == 1 and n < 64:
            put("decoder", f"{base}-{n}", b[o + 24:o + 24 + length])
            n += 1
        o += 24 + ((length + 7) & ~7)

for path in glob.glob(os.path.join(root, "Tests/Fixtures/vectors/*.bin")):
    put("agent", os.path.basename(path), open(path, "rb").read())

flags = [
    ["--ip", "10.0.0.0/8", "--not", "--port", "53"],
    ["--from-ip", "f00d::/16", "--protocol", "icmpv6", "--outer"],
    ["-t", "drop", "--drop-reason", "Policy denied", "--verdict", "dropped"],
    ["--pod", "default/p", "--vni", "19773", "--observation-point", "TO_OVERLAY"],
    ["--tcp-flags", "SYN,!ACK", "--interface", "lxc1", "--node", "worker", "--identity", "reserved:host"],
]
for i, f in enumerate(flags):
    put("filter", f"flags-{i}", b"\0".join(x.encode() for x in f))
