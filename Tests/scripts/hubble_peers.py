#!/usr/bin/env python3
"""Follows peer.Peer/Notify with grpcio (stubs from vxmon's .proto by grpcio-tools) and prints each
change as a line "TYPE name address", then "END <status code>" when the server ends the stream.

    hubble_peers.py PROTO_DIR ADDRESS READY_FILE

READY_FILE is created once the first changes (the current peers) have arrived."""
import sys

from vxmon_protos import compile_protos


def main():
    proto_dir, address, ready = sys.argv[1:4]
    compile_protos(proto_dir)
    import grpc
    from peer import peer_pb2, peer_pb2_grpc

    stub = peer_pb2_grpc.PeerStub(grpc.insecure_channel(address))
    count = 0
    try:
        for change in stub.Notify(peer_pb2.NotifyRequest(), timeout=60):
            print(peer_pb2.ChangeNotificationType.Name(change.type), change.name, change.address, flush=True)
            count += 1
            if count == 3:
                open(ready, "w").close()
        print("END OK", flush=True)
    except grpc.RpcError as e:
        print("END " + e.code().name, flush=True)


if __name__ == "__main__":
    main()
