#!/usr/bin/env python3
"""Checks that a node's observer serves flows (grpcio; stubs from vxmon's .proto by grpcio-tools):
pings from a pod, then asks GetFlows for ICMP flows from that pod, until some come or SECONDS pass.

    hubble_restarted.py PROTO_DIR ADDRESS SOURCE_NETNS SOURCE_IP DESTINATION_IP SECONDS

Run against a vxmon-hubble that has just been started, whose rings start empty: any flow it returns
was taken in after it started. Exits 0 once GetFlows returned one, 1 if none came in time."""
import subprocess
import sys
import time

from vxmon_protos import compile_protos


def main():
    proto_dir, address, netns, source, destination, seconds = sys.argv[1:7]
    compile_protos(proto_dir)
    import grpc
    from flow import flow_pb2
    from observer import observer_pb2, observer_pb2_grpc

    stub = observer_pb2_grpc.ObserverStub(grpc.insecure_channel(address))
    request = observer_pb2.GetFlowsRequest(
        number=20, whitelist=[flow_pb2.FlowFilter(source_ip=[source], protocol=["icmp"])])
    deadline = time.time() + float(seconds)
    last = "no answer yet"
    while time.time() < deadline:
        subprocess.run(["ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "1", destination],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            flows = [r.flow for r in stub.GetFlows(request, timeout=5) if r.HasField("flow")]
            status = stub.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5)
        except grpc.RpcError as e:
            last = f"{e.code().name}: {e.details()}"
            time.sleep(0.5)
            continue
        if flows:
            print(f"hubble_restarted: {address}: {len(flows)} ICMP flows from {source} "
                  f"(first {flows[0].IP.source} -> {flows[0].IP.destination}); seen_flows {status.seen_flows}")
            return 0
        last = f"no ICMP flow from {source} yet (seen_flows {status.seen_flows})"
        time.sleep(0.5)
    print(f"hubble_restarted: {address}: {last} after {seconds} s")
    return 1


if __name__ == "__main__":
    sys.exit(main())
