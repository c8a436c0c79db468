#!/usr/bin/env python3
"""Sends the costliest GetFlows a request may be (64 whitelist filters, 1,024 node_name patterns of 256
bytes that match nothing, over the node's full ring), cancels it after half a second, and reads
vxmon-hubble's CPU time (/proc/PID/stat, user + system) over the half second before the cancel and the
3 s after it (grpcio; stubs from vxmon's .proto by grpcio-tools).

    hubble_cancelled.py PROTO_DIR ADDRESS HUBBLE_PID

Prints "hubble_cancelled: cpu before X s, after Y s": the server's work on a request its client gave
up must stop, so Y is what it spends idle."""
import os
import sys
import time

from vxmon_protos import compile_protos


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime: fields 14 and 15 of stat(5), the 12th and 13th after the command.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    proto_dir, address, pid = sys.argv[1:4]
    compile_protos(proto_dir)
    import grpc
    from flow import flow_pb2
    from observer import observer_pb2, observer_pb2_grpc

    pattern = ("*" + "worker2*" * 40)[:255] + "x"
    request = observer_pb2.GetFlowsRequest(
        whitelist=[flow_pb2.FlowFilter(node_name=[pattern] * 16) for _ in range(64)])
    stub = observer_pb2_grpc.ObserverStub(grpc.insecure_channel(address))
    stub.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=10)
    start = cpu_seconds(pid)
    call = stub.GetFlows(request)
    time.sleep(0.5)
    call.cancel()
    cancelled = cpu_seconds(pid)
    time.sleep(3.0)
    end = cpu_seconds(pid)
    print(f"hubble_cancelled: cpu before {cancelled - start:.2f} s, after {end - cancelled:.2f} s")


if __name__ == "__main__":
    main()
