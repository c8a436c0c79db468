"""Compares gopacket's dissection (ref.out) with vxmon's -vv and default renderings of the same packets."""
import difflib
import sys

work = sys.argv[1]
ref = open(f"{work}/ref.out").read().split("====\n")[:-1]
vv = open(f"{work}/vv.out").read().split("-" * 78 + "\n")[1:]
default = open(f"{work}/default.out").read().splitlines()
hexes = open(f"{work}/pkts.hex").read().split("\n")
bad = 0
for i, (r, v, d) in enumerate(zip(ref, vv, default)):
    lines = r.splitlines()
    summary, expected = lines[-1][len("SUMMARY: "):], lines[:-1]
    got = v.splitlines()[1:]  # after the CPU/MARK header line
    got_summary = d.split("orig-ip 0.0.0.0: ", 1)[1]
    if hexes[i] == "":
        expected = []  # Cilium does not dissect an empty capture
    if expected != got or summary != got_summary:
        bad += 1
        if bad <= 5:
            print("CASE", i, hexes[i])
            for line in difflib.unified_diff(expected + ["SUMMARY " + summary], got + ["SUMMARY " + got_summary],
                                             "gopacket", "vxmon", lineterm="", n=0):
                print(line)
print(f"{len(ref)} packets, {bad} mismatches")
sys.exit(1 if bad or len(ref) != len(vv) or len(ref) != len(default) else 0)
