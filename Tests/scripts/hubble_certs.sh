#!/usr/bin/env bash
# Makes the certificates of the Hubble TLS test with openssl (P-256 keys, valid 2 days):
#   hubble_certs.sh DIR IP...
# DIR/ca.pem: the CA; DIR/server.pem + server.key: signed by it, for the names a Relay checks
# (*.default.hubble-grpc.cilium.io) and each IP; DIR/client.pem + client.key: a client signed by it;
# DIR/rogue.pem + rogue.key: a client signed by another CA (DIR/rogue-ca.pem).
set -euo pipefail
dir=$1
shift
cd "$dir"
ca() { # name subject
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 2 \
		-keyout "$1.key" -out "$1.pem" -subj "/CN=$2" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() { # name ca subject extensions
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-keyout "$1.key" -out "$1.csr" -subj "/CN=$3" 2>/dev/null
	printf '%s\n' "$4" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 \
		-extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
ca ca vxmon-test-hubble-ca
ca rogue-ca vxmon-test-rogue-ca
sans="DNS:*.default.hubble-grpc.cilium.io"
for ip in "$@"; do sans="$sans,IP:$ip"; done
leaf server ca '*.default.hubble-grpc.cilium.io' "subjectAltName=$sans
extendedKeyUsage=serverAuth"
leaf client ca hubble-relay-client "extendedKeyUsage=clientAuth"
leaf rogue rogue-ca hubble-relay-client "extendedKeyUsage=clientAuth"
