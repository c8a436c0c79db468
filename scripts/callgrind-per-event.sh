#!/usr/bin/env bash
# Replay instructions per event, per output mode, under valgrind's callgrind: instruction counts do
# not move with the machine's load, so two builds can be compared on a shared host.
#   scripts/callgrind-per-event.sh VXMON [VXMON ...]
# For each binary and mode: instructions replaying the first 10k and the first 50k events of a bulk
# recording (tools/gen_bulk.py, seed 1), single-threaded, output to /dev/null; prints the marginal
# instructions per event, (I(50k) - I(10k)) / 40k, which leaves out start-up and table building.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "callgrind-per-event: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
mkdir -p .build/bench
for n in 10000 50000; do
	f=.build/bench/bulk-$n.vxrec
	[ -f "$f" ] || python3 tools/gen_bulk.py $n "$f" --seed 1 >/dev/null
done
instructions() { # binary file args...
	local bin=$1 file=$2 out
	shift 2
	out=$(mktemp)
	valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" replay "$file" --threads 1 "$@" >/dev/null 2>"$out"
	sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out"
	rm -f "$out"
}
printf '%-10s %s\n' mode "$*"
for mode in default -vv json yaml jsonpb; do
	case $mode in
	default) args=() ;;
	-vv) args=(-vv) ;;
	*) args=(-o "$mode") ;;
	esac
	line=$(printf '%-10s' "$mode")
	for bin in "$@"; do
		a=$(instructions "$bin" .build/bench/bulk-10000.vxrec "${args[@]}")
		b=$(instructions "$bin" .build/bench/bulk-50000.vxrec "${args[@]}")
		line+=$(printf ' %10s' $(((b - a) / 40000)))
	done
	echo "$line"
done
