#!/usr/bin/env bash
# Produces the README's live transcripts, the examples that need a running lab: what `make demo`
# shows (scripts/demo.sh itself, on its own lab) and the Recipes (drop storm, VNI on the underlay, jq
# one-liners, Wireshark export, tmux). It brings up its own labs, drives the traffic each example
# needs, prints every transcript as a terminal shows it (`$ command`, then its output) and writes each
# to DIR/<name>.txt for pasting into README.md. The labs are always taken down, also on failure or
# Ctrl-C. The replay examples of the README are not here: Tests/VxmonCLITests/ReadmeExampleTests.swift
# runs them and compares.
#
# usage: scripts/readme-examples.sh [-o DIR] [path/to/vxmon]
#   Needs root, bpffs, the BPF object (make -C bpf), jq, tshark and tmux. vxmon defaults to
#   .build/debug/vxmon (swift build --product vxmon). DIR defaults to a new temporary directory.
#   Labs: $README_LAB (default readme) for the recipes, $README_LAB-demo for the demo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=
while getopts o: opt; do
	case $opt in
	o) out=$OPTARG ;;
	*) sed -n '10,13p' "$0" >&2; exit 64 ;;
	esac
done
shift $((OPTIND - 1))
vxmon=$(realpath "${1:-$root/.build/debug/vxmon}")
[ -x "$vxmon" ] || { echo "readme-examples: no vxmon at $vxmon (swift build --product vxmon)" >&2; exit 1; }
for tool in jq tshark tmux; do
	command -v "$tool" >/dev/null || { echo "readme-examples: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
lab=${README_LAB:-readme}
demo_lab=$lab-demo
export VXMON_LAB=$lab
# The transcripts say `vxmon`: this one.
export PATH=$(dirname "$vxmon"):$PATH
export NO_COLOR=1
work=$(mktemp -d /tmp/vxmon-readme.XXXXXX)
mkdir -p "${out:=$work/transcripts}"
out=$(realpath "$out")
# A tmux server of our own (its sessions get this environment, and nobody else's server is touched).
export TMUX_TMPDIR=$work
unset TMUX

cleanup() {
	tmux kill-server >/dev/null 2>&1 || true
	VXMON_LAB=$demo_lab vxmon lab down >/dev/null 2>&1 || true
	vxmon lab down >/dev/null 2>&1 || true
	rm -rf "$work/run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/run"
cd "$work/run"

# transcript NAME: the steps that follow go to $out/NAME.txt.
transcript() {
	current=$out/$1.txt
	: >"$current"
}
# step COMMAND: "$ COMMAND" and what it prints (stdout and stderr, as on a terminal), run by bash in the
# working directory, with `vxmon` on PATH. Its exit status is not checked: the output shows it.
step() {
	printf '$ %s\n' "$1" >>"$current"
	bash -c "$1" >>"$current" 2>&1 || true
}
# live COMMAND TRAFFIC...: step COMMAND (a monitor that ends by itself) while TRAFFIC runs, started
# once the monitor has had 1.5 s to attach.
live() {
	local cmd=$1
	shift
	(
		sleep 1.5
		"$@"
	) >/dev/null 2>&1 &
	local traffic=$!
	step "$cmd"
	wait "$traffic" || true
}
ping_pod() { # ping_pod POD DST [COUNT [INTERVAL]]
	vxmon lab exec "$1" -- ping -c "${3:-1}" -i "${4:-1}" -W 1 "$2" || true
}

# --- make demo: scripts/demo.sh as make demo runs it, on its own lab. Its stdout is what the README
# shows (the lab's tables, then `vxmon -vv`); its stderr (progress, ping) goes to demo.stderr.txt.
echo "readme-examples: demo (lab $demo_lab)" >&2
VXMON_LAB=$demo_lab "$root/scripts/demo.sh" "$vxmon" >"$out/demo.full.txt" 2>"$out/demo.stderr.txt" || {
	echo "readme-examples: scripts/demo.sh failed, see $out/demo.stderr.txt" >&2
	exit 1
}
# The README's excerpt: the first three events of `vxmon -vv`, then "...".
sep=------------------------------------------------------------------------------
awk -v sep=$sep '$0 == sep { n++ } n >= 1 && n <= 3 { print } n > 3 { print "..."; exit }' "$out/demo.full.txt" >"$out/demo.txt"

echo "readme-examples: lab $lab up (--trace-underlay)" >&2
vxmon lab down >/dev/null 2>&1 || true
vxmon lab up --trace-underlay >/dev/null

# --- A drop storm, filtered to one pod: two pods' pings denied, one pod's drops shown.
storm() {
	ping_pod worker2-pod1 10.0.1.10 20 0.1 &
	ping_pod worker2-pod2 10.0.1.10 20 0.1 &
	wait
}
transcript drop-storm
step "vxmon policy add --from worker2-pod1 --to worker-pod1 --proto icmp --deny"
step "vxmon policy add --from worker2-pod2 --to worker-pod1 --proto icmp --deny"
live "vxmon --verdict dropped --from-pod worker2-pod1 --timestamps --duration 4 --summary" storm
vxmon policy remove --from worker2-pod1 --to worker-pod1 --proto icmp >/dev/null
vxmon policy remove --from worker2-pod2 --to worker-pod1 --proto icmp >/dev/null

# --- A VNI on the underlay: worker2-pod1 (identity 19773) pings worker-pod2; then worker2's two pods
# ping a pod each on worker and control-plane.
two_pings() {
	ping_pod worker2-pod1 10.0.1.11
	ping_pod worker2-pod2 10.0.0.10
}
transcript vni
live "vxmon --vni 19773 --duration 3" ping_pod worker2-pod1 10.0.1.11
live "vxmon --outer --from-ip 172.18.0.4 -n --duration 3        # everything worker2 (172.18.0.4) sends on the underlay" two_pings

# --- jq one-liners on live JSON.
transcript jq
live "vxmon -o json --duration 3 > ping.json      # while: vxmon lab exec worker2-pod1 -- ping -c 1 10.0.1.11" \
	ping_pod worker2-pod1 10.0.1.11
step "jq -r 'select(.tunnel) | [.time, .node_name, .trace_observation_point, .tunnel.vni, .IP.source, .IP.destination] | @tsv' ping.json"
step "jq -r '[.node_name, .trace_observation_point] | @tsv' ping.json | sort | uniq -c"

# --- Wireshark export.
transcript wireshark
live "vxmon -q --write-pcap ping.pcapng --duration 3" ping_pod worker2-pod1 10.0.1.11
step "tshark -r ping.pcapng -d udp.port==8472,vxlan -T fields -e frame.number -e frame.interface_name -e ip.src -e ip.dst -e vxlan.vni 2>/dev/null"
step "tshark -r ping.pcapng -d udp.port==8472,vxlan -T fields -e frame.comment 2>/dev/null | sed -n 3p"

# --- Tailing in tmux: a detached session wide enough for whole lines, read back with capture-pane.
transcript tmux
step "tmux new-session -d -s vx -x 250 -y 40 'vxmon --timestamps --protocol icmp --from-pod worker2-pod1'"
sleep 1.5
ping_pod worker2-pod1 10.0.1.10 >/dev/null 2>&1
sleep 1
printf '$ %s\n' "tmux capture-pane -p -J -t vx" >>"$current"
# (without the pane's empty lines below the output)
tmux capture-pane -p -J -t vx | awk 'NF { last = NR } { line[NR] = $0 } END { for (i = 1; i <= last; i++) print line[i] }' >>"$current"
tmux kill-session -t vx 2>/dev/null || true

for f in demo drop-storm vni jq wireshark tmux; do
	printf '== %s (%s)\n' "$f" "$out/$f.txt"
	cat "$out/$f.txt"
	echo
done
echo "readme-examples: transcripts in $out" >&2
