#!/usr/bin/env python3
"""Counts the samples of a .vxrec recording by node and message type, written from the format's spec
(/work/shared/spec/vxrec.md) alone: the oracle of tests that compare vxmon's counters with what the
datapath emitted.

  vxrec_count.py FILE

Prints JSON: {"samples": {node: {type_byte: count}}, "lost": {node: count}, "truncated": bool,
"events": [[node, type_byte, subtype_byte, time_ns], ...] (every sample, in file order)}.
The node of a record is the value of the last `node=` metadata record before it (the agent's stream
says it whenever the node changes); "" before any.
"""
import json
import struct
import sys


def main():
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    if len(data) < 16 or data[:8] != b"VXMONREC":
        print("not a .vxrec file", file=sys.stderr)
        return 1
    version, header_len = struct.unpack_from("<HH", data, 8)
    offset = header_len
    node = ""
    samples = {}
    events = []
    lost = {}
    truncated = False
    while offset < len(data):
        if offset + 24 > len(data):
            truncated = True
            break
        kind, _, cpu, time_ns, length, _ = struct.unpack_from("<HHIQII", data, offset)
        body = data[offset + 24 : offset + 24 + length]
        if len(body) < length:
            truncated = True
            break
        if kind == 1 and length > 0:
            per = samples.setdefault(node, {})
            per[body[0]] = per.get(body[0], 0) + 1
            events.append([node, body[0], body[1] if length > 1 else 0, time_ns])
        elif kind == 2 and length >= 8:
            lost[node] = lost.get(node, 0) + struct.unpack_from("<Q", body)[0]
        elif kind == 4:
            text = body.decode("utf-8", "replace")
            if text.startswith("node="):
                node = text[5:]
        offset += 24 + length
        offset = (offset + 7) // 8 * 8
    print(json.dumps({"samples": samples, "lost": lost, "truncated": truncated, "events": events}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
