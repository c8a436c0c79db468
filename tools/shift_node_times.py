#!/usr/bin/env python3
"""Shift the times of one node's records in a .vxrec recording: a clock that differs from the others.

In a lab every node shares one kernel clock. This tool makes a recording look as if one node's clock
were off by OFFSET ns and ran DRIFT ppm fast (negative: slow), so that clock offset estimation
(`vxmon journey --summary`, clock_offsets) can be tested against a known, injected value:

    new_time = time + offset_ns + drift_ppm * 1e-6 * (time - t0)

with t0 the time of the first sample record of the file (any node), or --t0-ns. The arithmetic is
exact (integers and fractions), rounded to the nearest ns (halves away from zero).

Which records belong to the node: a recording of several nodes says whose records follow with a
metadata record `node=NAME`; every record from `node=NAME` (that record included) up to the next
`node=` record is NAME's. Records before the first `node=` record belong to no node. Every record of
the node with a non-zero time is shifted (samples, lost records, interface names, metadata); a time
of 0 means "unknown" and stays 0. Everything else is copied byte for byte.

The reader and writer follow the format's spec (spec/vxrec.md, version 1), not vxmon's code:
    file header: "VXMONREC", u16 version (1), u16 header_len (a reader skips to it), u32 reserved;
    record: u16 kind, u16 reserved, u32 cpu, u64 time_ns, u32 length, u32 reserved (little-endian),
            then `length` bytes of body, then zero bytes up to the next multiple of 8 counted from
            the start of the file.

Usage:
    tools/shift_node_times.py IN OUT --node worker --offset-ns 5000000 --drift-ppm 20

Exit status: 0 done (a summary line on stderr), 1 bad input (truncated file, unknown version, no
record of the node, a shifted time outside 1..2^64-1), 2 bad usage.
"""
import argparse
import struct
import sys
from fractions import Fraction

MAGIC = b"VXMONREC"
FILE_HEADER = struct.Struct("<8sHHI")
RECORD_HEADER = struct.Struct("<HHIQII")
KIND_SAMPLE, KIND_META = 1, 4
U64_MAX = (1 << 64) - 1


class VxrecError(Exception):
    pass


def read_vxrec(data):
    """Returns (header bytes, [(kind, reserved1, cpu, time_ns, body, reserved2)]) of a .vxrec v1 file."""
    if len(data) < FILE_HEADER.size:
        raise VxrecError("shorter than the 16-byte file header")
    magic, version, header_len, _ = FILE_HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise VxrecError("not a .vxrec file (magic %r)" % magic)
    if version != 1:
        raise VxrecError("version %d, this tool reads version 1" % version)
    if header_len < FILE_HEADER.size or header_len > len(data):
        raise VxrecError("header_len %d out of range" % header_len)
    records = []
    o = header_len
    while o < len(data):
        if o + RECORD_HEADER.size > len(data):
            raise VxrecError("truncated record header at offset %d" % o)
        kind, r1, cpu, time_ns, length, r2 = RECORD_HEADER.unpack_from(data, o)
        start = o + RECORD_HEADER.size
        if start + length > len(data):
            raise VxrecError("truncated record body at offset %d (%d bytes of %d)" % (o, len(data) - start, length))
        records.append((kind, r1, cpu, time_ns, data[start:start + length], r2))
        o = start + length
        o += -o % 8
    return data[:header_len], records


def write_vxrec(header, records):
    out = bytearray(header)
    for kind, r1, cpu, time_ns, body, r2 in records:
        out += RECORD_HEADER.pack(kind, r1, cpu, time_ns, len(body), r2)
        out += body
        out += b"\0" * (-len(out) % 8)
    return bytes(out)


def node_of(kind, body):
    """The NAME of a `node=NAME` metadata record, else None."""
    if kind == KIND_META and body.startswith(b"node="):
        return body[5:].decode("utf-8", "replace")
    return None


def round_half_away(q):
    n = abs(q.numerator) * 2 + q.denominator
    r = n // (2 * q.denominator)
    return r if q >= 0 else -r


def shift(records, node, offset_ns, drift_ppm, t0=None):
    """Shifts `node`'s records; returns (records, number shifted, t0 used)."""
    if t0 is None:
        t0 = next((r[3] for r in records if r[0] == KIND_SAMPLE and r[3] != 0), 0)
    rate = Fraction(drift_ppm) / 1_000_000
    current = None
    out = []
    count = 0
    for kind, r1, cpu, time_ns, body, r2 in records:
        name = node_of(kind, body)
        if name is not None:
            current = name
        if current == node and time_ns != 0:
            new = time_ns + offset_ns + round_half_away(rate * (time_ns - t0))
            if not 1 <= new <= U64_MAX:
                raise VxrecError("time %d shifted to %d, outside 1..2^64-1" % (time_ns, new))
            time_ns = new
            count += 1
        out.append((kind, r1, cpu, time_ns, body, r2))
    return out, count, t0


def main(argv):
    p = argparse.ArgumentParser(description="Shift the times of one node's records in a .vxrec file.")
    p.add_argument("input", help="the .vxrec to read")
    p.add_argument("output", help="the .vxrec to write")
    p.add_argument("--node", required=True, help="the node whose clock is shifted (as in its node=NAME record)")
    p.add_argument("--offset-ns", type=int, default=0, help="offset added to every time, ns")
    p.add_argument("--drift-ppm", type=Fraction, default=Fraction(0), help="drift, ppm of the time since t0")
    p.add_argument("--t0-ns", type=int, default=None, help="the time the drift counts from (default: first sample's)")
    args = p.parse_args(argv)
    try:
        with open(args.input, "rb") as f:
            header, records = read_vxrec(f.read())
        shifted, count, t0 = shift(records, args.node, args.offset_ns, args.drift_ppm, args.t0_ns)
        if count == 0:
            raise VxrecError("no record of node %r with a time" % args.node)
    except (OSError, VxrecError) as e:
        print("shift_node_times: %s: %s" % (args.input, e), file=sys.stderr)
        return 1
    with open(args.output, "wb") as f:
        f.write(write_vxrec(header, shifted))
    print("shift_node_times: %d records of %s shifted by %d ns + %s ppm since t0 %d" % (
        count, args.node, args.offset_ns, args.drift_ppm, t0), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
