#!/usr/bin/env bash
# Differential check of vxmon's Cilium-compatible dissection against real gopacket v1.1.19.
#   tools/gopacket-diff/run.sh [SEED] [COUNT]
# Needs Debian's golang-1.19-go and golang-github-google-gopacket-dev (apt). Tunnel decoding is
# turned off on the vxmon side, since decoding VXLAN/Geneve inner frames is a deliberate difference.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/gopacketdiff"
cp "$here/main.go" "$work/src/gopacketdiff/"
GO111MODULE=off GOPATH="$work:/usr/share/gocode" /usr/lib/go-1.19/bin/go build -o "$work/ref" gopacketdiff
cd "$work"
python3 "$here/fuzz.py" "${1:-1}" "${2:-2000}" "$work"
python3 "$root/tools/raw2vxrec.py" pkts.raw pkts.vxrec
./ref < pkts.hex > ref.out
vxmon=${VXMON:-$root/.build/release/vxmon}
"$vxmon" replay pkts.vxrec -vv --vxlan-ports '' --geneve-ports '' --threads 1 > vv.out
"$vxmon" replay pkts.vxrec --vxlan-ports '' --geneve-ports '' --threads 1 > default.out
python3 "$here/compare.py" "$work"
