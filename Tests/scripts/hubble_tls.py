#!/usr/bin/env python3
"""Checks a lab's Hubble servers over TLS with grpcio: mutual TLS as Cilium's agent serves Hubble.

    hubble_tls.py PROTO_DIR LAB_JSON CERT_DIR

CERT_DIR holds ca.pem (the CA of the servers' and the good client's certificates), client.pem and
client.key (signed by it) and rogue.pem and rogue.key (signed by another CA). Checks, on every node:
ServerStatus over mutual TLS with the good client, the server's certificate checked against ca.pem
for the node's IP; Peer/Notify gives each node its TLS server name
(<node>.default.hubble-grpc.cilium.io) and a client that checks the certificate against that name, as
a Relay does, is served too; a client without a certificate, a client whose certificate another CA
signed, and a plaintext client are all refused. Prints one line per check; exits 1 on the first
failure."""
import json
import os
import sys

from vxmon_protos import compile_protos


def fail(message):
    print("hubble_tls: FAIL: " + message, flush=True)
    sys.exit(1)


def ok(message):
    print("hubble_tls: ok: " + message, flush=True)


def main():
    proto_dir, lab_json, cert_dir = sys.argv[1:4]
    compile_protos(proto_dir)
    import grpc
    from observer import observer_pb2, observer_pb2_grpc
    from peer import peer_pb2, peer_pb2_grpc

    def read(name):
        with open(os.path.join(cert_dir, name), "rb") as f:
            return f.read()

    ca, client_cert, client_key = read("ca.pem"), read("client.pem"), read("client.key")
    rogue_cert, rogue_key = read("rogue.pem"), read("rogue.key")
    with open(lab_json) as f:
        nodes = {n["name"]: n["ip"] + ":4244" for n in json.load(f)["nodes"]}

    good = grpc.ssl_channel_credentials(root_certificates=ca, private_key=client_key, certificate_chain=client_cert)

    def status(channel):
        return observer_pb2_grpc.ObserverStub(channel).ServerStatus(observer_pb2.ServerStatusRequest(), timeout=10)

    for name, address in sorted(nodes.items()):
        with grpc.secure_channel(address, good) as channel:
            r = status(channel)
            if not r.version:
                fail(f"{name}: ServerStatus without a version: {r}")
    ok("ServerStatus over mutual TLS on " + ", ".join(sorted(nodes)) + " (server certificate checked for the node IP)")

    with grpc.secure_channel(nodes["control-plane"], good) as channel:
        names = {}
        stream = peer_pb2_grpc.PeerStub(channel).Notify(peer_pb2.NotifyRequest(), timeout=10)
        for change in stream:
            names[change.name] = change.tls.server_name
            if len(names) == len(nodes):
                break
        stream.cancel()
    expected = {name: f"{name}.default.hubble-grpc.cilium.io" for name in nodes}
    if names != expected:
        fail(f"Peer/Notify TLS server names {names}, expected {expected}")
    ok("Peer/Notify gives every node its TLS server name <node>.default.hubble-grpc.cilium.io")

    name = "worker"
    options = [("grpc.ssl_target_name_override", names[name])]
    with grpc.secure_channel(nodes[name], good, options=options) as channel:
        status(channel)
    ok(f"{name}: served when its certificate is checked against {names[name]}, as a Relay checks it")

    refused = {
        "no client certificate": grpc.ssl_channel_credentials(root_certificates=ca),
        "a client certificate of another CA": grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=rogue_key, certificate_chain=rogue_cert),
    }
    for name, address in sorted(nodes.items()):
        for what, credentials in refused.items():
            with grpc.secure_channel(address, credentials) as channel:
                try:
                    status(channel)
                    fail(f"{name}: a client with {what} was served")
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.UNAVAILABLE:
                        fail(f"{name}: a client with {what}: {e.code().name}: {e.details()}")
        with grpc.insecure_channel(address) as channel:
            try:
                status(channel)
                fail(f"{name}: a plaintext client was served")
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    fail(f"{name}: a plaintext client: {e.code().name}: {e.details()}")
    ok("refused on every node: no client certificate, a certificate of another CA, plaintext")
    print("hubble_tls: all checks passed", flush=True)


if __name__ == "__main__":
    main()
