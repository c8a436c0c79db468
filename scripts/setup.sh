#!/usr/bin/env bash
# Installs what vxmon needs on a fresh Debian 12 machine and mounts bpffs. Idempotent; run as root.
#   scripts/setup.sh demo   what `make demo` runs: building vxmon and the BPF object, `vxmon lab up`,
#                           scripts/demo.sh (the default)
#   scripts/setup.sh test   the demo's packages plus the test suite's oracles and tools (`make test`)
# apt-get update runs only when a package is missing; nothing is downloaded when all is there.
set -euo pipefail

profile=${1:-demo}
case "$profile" in
demo | test) ;;
*)
	echo "usage: $0 [demo|test]" >&2
	exit 2
	;;
esac

# The demo: libbpf and libelf to build and link vxmon (pkg-config finds libbpf), iproute2 for the lab's
# namespaces and links (`vxmon lab up`), ping and jq for scripts/demo.sh.
packages=(libbpf-dev libelf-dev pkgconf iproute2 iputils-ping jq)
lean=()
if [[ $profile == test ]]; then
	# tshark (with capinfos) is the oracle of the flow and pcapng tests, Go's encoding/gob that of the
	# agent socket tests, tcpdump captures the lab's wires in the privileged tests; they fail without
	# them. bpftool and nc are for looking at a lab by hand. python3-h2 is the raw HTTP/2 client of the
	# Hubble stream-limit test; openssl makes its TLS test's certificates.
	packages+=(tcpdump tshark golang-go bpftool netcat-openbsd python3-h2 openssl)
	# chromium renders the journey drawing (`vxmon journey --svg/--html`) headless in the tests, to a
	# screenshot they check; prometheus gives promtool, which lints the agent's /metrics exposition, and
	# the Prometheus server the metrics tests scrape with. Both without their recommends (a desktop's
	# daemons and printing; node exporters), chromium about 140 MB.
	lean=(chromium prometheus)
fi
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
lean_missing=()
for p in "${lean[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || lean_missing+=("$p")
done
if ((${#missing[@]} + ${#lean_missing[@]})); then
	echo "setup ($profile): installing ${missing[*]} ${lean_missing[*]}" >&2
	apt-get update -qq
fi
if ((${#missing[@]})); then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ((${#lean_missing[@]})); then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${lean_missing[@]}" >/dev/null
fi

if [[ $profile == test ]]; then
	# The structured-output tests validate with jsonschema and PyYAML; the Hubble output tests parse
	# with Google's protobuf library, its .proto compiled by grpcio-tools; the metrics tests parse the
	# agent's /metrics with Prometheus's own Python client library.
	if ! python3 -c 'import jsonschema, yaml, grpc_tools, google.protobuf, prometheus_client' 2>/dev/null; then
		echo "setup ($profile): installing python jsonschema, PyYAML, protobuf, grpcio-tools and prometheus_client" >&2
		python3 -m pip install -q jsonschema pyyaml protobuf grpcio grpcio-tools prometheus_client
	fi
fi

# libbpf pins the lab's maps and programs here. Mode 0700, as systemd mounts it: bpffs's own default is
# 1777, where any user could make /sys/fs/bpf/vxmon before vxmon does (vxmon then refuses to use it).
# A bpffs already mounted is left as it is.
if ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf -o mode=0700
fi
