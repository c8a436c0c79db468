#!/usr/bin/env bash
# Re-records the lab samples: brings up a fresh lab, records each scenario with `vxmon record`, renders
# every recording with `vxmon replay` (default text, -vv, JSON, YAML) and takes the lab down again.
# Needs root, bpffs, the BPF object (make -C bpf) and python3 (for the TCP/UDP exchange).
# usage: samples/record.sh [path/to/vxmon]      (run from anywhere; writes next to this script)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vxmon=${1:-$here/../.build/release/vxmon}
lab=vxmon-samples
export VXMON_LAB=$lab

cleanup() { "$vxmon" lab down >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$vxmon" lab down >/dev/null
# The samples show the underlay too (from-network on eth0) and come through Cilium's own transport.
"$vxmon" lab up --trace-underlay >/dev/null

# record NAME SECONDS COMMAND...: record all nodes while COMMAND runs (started after 0.5 s).
record() {
	local name=$1 seconds=$2
	shift 2
	"$vxmon" record -w "$here/$name.vxrec" --buffer perf --duration "$seconds" 2>/dev/null &
	local rec=$!
	sleep 0.5
	"$@" >/dev/null 2>&1 || true
	wait "$rec"
}

# cross_node_ping: worker2-pod1 (10.0.2.10) -> worker-pod1 (10.0.1.10), two echo requests.
record cross_node_ping 2.5 "$vxmon" lab exec worker2-pod1 -- ping -c 2 -i 0.5 -W 1 10.0.1.10

# same_node_ping: worker-pod1 -> worker-pod2, delivered locally by vxmon_from_container.
record same_node_ping 1.5 "$vxmon" lab exec worker-pod1 -- ping -c 1 -W 1 10.0.1.11

# no_tunnel: 10.0.9.1 is in no pod CIDR, so there is no tunnel entry: drop 160 on worker2.
record no_tunnel 1.5 "$vxmon" lab exec worker2-pod1 -- ping -c 1 -W 1 10.0.9.1

# policy_denied: deny ICMP worker2-pod1 -> worker-pod1; the request is dropped (133) on worker.
"$vxmon" policy add --from worker2-pod1 --to worker-pod1 --proto icmp --deny >/dev/null
record policy_denied 1.5 "$vxmon" lab exec worker2-pod1 -- ping -c 1 -W 1 10.0.1.10
"$vxmon" policy remove --from worker2-pod1 --to worker-pod1 --proto icmp >/dev/null

# tcp_udp: a TCP request/response (port 8080) and a UDP request/response (port 5000) from
# worker2-pod1 to worker-pod1, with one-shot python3 servers in worker-pod1.
server='
import socket, sys
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 8080)); t.listen(1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5000))
print("ready", flush=True)
c, _ = t.accept(); c.sendall(c.recv(64).upper()); c.close()
d, a = u.recvfrom(64); u.sendto(d.upper(), a)
'
client='
import socket
s = socket.create_connection(("10.0.1.10", 8080), timeout=2); s.sendall(b"hello vxmon\n"); s.recv(64); s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2); u.sendto(b"ping vxmon\n", ("10.0.1.10", 5000)); u.recvfrom(64)
'
"$vxmon" lab exec worker-pod1 -- python3 -c "$server" >"$here/.server.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do grep -q ready "$here/.server.log" 2>/dev/null && break; sleep 0.1; done
rm -f "$here/.server.log"
record tcp_udp 2 "$vxmon" lab exec worker2-pod1 -- python3 -c "$client"
wait "$server_pid" || true

for f in "$here"/*.vxrec; do
	s=${f%.vxrec}
	"$vxmon" replay "$f" >"$s.txt"
	"$vxmon" replay -vv "$f" >"$s.vv.txt"
	"$vxmon" replay -o json "$f" >"$s.json"
	"$vxmon" replay -o yaml "$f" >"$s.yaml"
done
echo "recorded: $(cd "$here" && ls *.vxrec | tr '\n' ' ')"
