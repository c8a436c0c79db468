#!/usr/bin/env python3
"""Write a .vxrec of N trace notifications (v0, to-endpoint), each a UDP packet of its own flow.

    gen_distinct_flows.py N OUTFILE

Flow i goes from 10.(i>>16 & 255).(i>>8 & 255).(i & 255) port 1024 + (i >> 24) to 10.255.0.1 port 53,
so every event is a distinct flow: what `vxmon stats` and `--summary` count and rank at their worst
(`make bench` times `vxmon stats` on a million of them). Standard library only; deterministic.
"""
import struct
import sys

HEADER = b"VXMONREC" + struct.pack("<HHI", 1, 16, 0)


def event(i):
    udp = struct.pack("!HHHH", 1024 + (i >> 24), 53, 8, 0)
    src = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0x4000, 64, 17, 0, src, bytes([10, 255, 0, 1]))
    frame = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + udp
    # struct trace_notify v0: type 4, observation point 0 (to-endpoint), then lengths and version 0.
    notify = struct.pack("<BBHIIHHIIHBBI", 4, 0, 0, 0, len(frame), len(frame), 0, 0, 0, 0, 0, 0, 0)
    data = notify + frame
    return struct.pack("<HHIQII", 1, 0, 0, 0, len(data), 0) + data + b"\0" * ((-len(data)) % 8)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    n = int(sys.argv[1])
    with open(sys.argv[2], "wb") as out:
        out.write(HEADER)
        chunk = []
        for i in range(n):
            chunk.append(event(i))
            if len(chunk) == 65536:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))


if __name__ == "__main__":
    main()
