#!/usr/bin/env bash
# The main job: bring the lab up, drive cross-node traffic, show `vxmon -vv` live, tear the lab down.
#   scripts/demo.sh [PATH-TO-VXMON]        (make demo runs it after installing and building)
set -euo pipefail
vxmon=${1:-.build/debug/vxmon}
export VXMON_LAB=${VXMON_LAB:-vxmon}

cleanup() { "$vxmon" lab down >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== vxmon lab up" >&2
"$vxmon" lab up
"$vxmon" endpoint list
echo >&2
"$vxmon" tunnel list

ip_of() { "$vxmon" endpoint list -o json | jq -r --arg pod "$1" '.[] | select(.pod == $pod) | .ip'; }
dst=$(ip_of worker-pod1)
src_pod=worker2-pod1

# Traffic starts once the monitor is attached: a cross-node ping (worker2 -> worker), a ping to an
# address no tunnel entry covers (a drop), then a flow denied by policy (Policy denied drops).
(
	sleep 1
	"$vxmon" lab exec "$src_pod" -- ping -c 3 -i 0.3 "$dst" >&2
	"$vxmon" lab exec "$src_pod" -- ping -c 1 -W 1 10.0.9.1 >/dev/null 2>&1 || true
	"$vxmon" policy add --from "$src_pod" --to worker-pod1 --deny >&2
	"$vxmon" lab exec "$src_pod" -- ping -c 1 -W 1 "$dst" >/dev/null 2>&1 || true
) &
traffic=$!

echo "== vxmon -vv (live, 5 seconds)" >&2
"$vxmon" -vv --duration 5
wait "$traffic" || true
echo "== vxmon lab down" >&2
