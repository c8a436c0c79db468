#!/usr/bin/env bash
# Installs what vxmon needs on a fresh Debian 12 machine and mounts bpffs. Idempotent; run as root.
set -euo pipefail

# tshark (with capinfos) is the oracle of the flow and pcapng tests, Go's encoding/gob that of the agent
# socket tests; they fail without them.
packages=(libbpf-dev libelf-dev bpftool iproute2 iputils-ping tcpdump jq netcat-openbsd tshark golang-go)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The structured-output tests validate with jsonschema and PyYAML; the Hubble output tests parse with
# Google's protobuf library, its .proto compiled by grpcio-tools.
if ! python3 -c 'import jsonschema, yaml, grpc_tools, google.protobuf' 2>/dev/null; then
	echo "setup: installing python jsonschema, PyYAML, protobuf and grpcio-tools" >&2
	python3 -m pip install -q jsonschema pyyaml protobuf grpcio grpcio-tools
fi

# libbpf pins the lab's maps and programs here.
if ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi
