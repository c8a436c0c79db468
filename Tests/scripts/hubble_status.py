#!/usr/bin/env python3
"""ServerStatus from each ADDRESS through grpcio (plaintext), with a 10 s deadline each.

    hubble_status.py PROTO_DIR ADDRESS...

Prints one line per address; exits 1 if any call fails."""
import sys

from vxmon_protos import compile_protos


def main():
    compile_protos(sys.argv[1])
    import grpc
    from observer import observer_pb2, observer_pb2_grpc

    failed = False
    for address in sys.argv[2:]:
        with grpc.insecure_channel(address) as channel:
            try:
                r = observer_pb2_grpc.ObserverStub(channel).ServerStatus(observer_pb2.ServerStatusRequest(), timeout=10)
                print(f"hubble_status: {address}: ok, {r.num_flows} flows, {r.version}", flush=True)
            except grpc.RpcError as e:
                print(f"hubble_status: {address}: FAIL {e.code().name}: {e.details()}", flush=True)
                failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
