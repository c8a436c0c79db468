#!/usr/bin/env python3
"""Each CLI flow filter and its Hubble FlowFilter twin select the same flows, on a live lab: the CLI's
side is `vxmon replay REC -o jsonpb --cilium latest FLAGS` of a recording the lab's agent made, the
other side the lab's Hubble observers over gRPC (Python grpcio, stubs generated from vxmon's .proto
files), asked for the same time window on every node. Both sides are parsed into flow.Flow messages
by Google's protobuf library and compared as multisets, with the flow's time left out (the recorder
and the servers stamp events in two processes). Run inside a namespace that reaches the nodes' IPs:

    hubble_twins.py PROTO_DIR LAB_JSON VXMON RECORDING START END TWINS_JSON

START and END are RFC 3339 times; TWINS_JSON is a list of {"cli": [flags], "whitelist": [FlowFilter
JSON], "blacklist": [...]}. Prints one line per twin; exits 1 if any differs or selects nothing."""
import json
import subprocess
import sys
from collections import Counter

from vxmon_protos import compile_protos


def main():
    proto_dir, lab_json, vxmon, recording, start, end, twins_json = sys.argv[1:8]
    compile_protos(proto_dir)
    import grpc
    from google.protobuf import json_format, timestamp_pb2
    from flow import flow_pb2
    from observer import observer_pb2, observer_pb2_grpc

    with open(lab_json) as f:
        topo = json.load(f)
    with open(twins_json) as f:
        twins = json.load(f)
    observers = {n["name"]: observer_pb2_grpc.ObserverStub(grpc.insecure_channel(n["ip"] + ":4244")) for n in topo["nodes"]}
    since, until = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    since.FromJsonString(start)
    until.FromJsonString(end)
    lo, hi = since.ToNanoseconds(), until.ToNanoseconds()

    def key(flow):
        f = flow_pb2.Flow()
        f.CopyFrom(flow)
        f.ClearField("time")
        return f.SerializeToString(deterministic=True)

    def describe(k):
        f = flow_pb2.Flow()
        f.ParseFromString(k)
        return f"{f.node_name} {f.event_type.type}/{f.event_type.sub_type} {f.IP.source}->{f.IP.destination} {f.Summary}"

    failed = False
    for twin in twins:
        cli = twin["cli"]
        run = subprocess.run([vxmon, "replay", recording, "-o", "jsonpb", "--cilium", "latest", *cli],
                             capture_output=True, text=True)
        if run.returncode != 0 or run.stderr:
            print(f"hubble_twins: FAIL: vxmon replay {' '.join(cli)}: status {run.returncode}: {run.stderr}")
            failed = True
            continue
        mine = Counter()
        for line in run.stdout.splitlines():
            response = json_format.Parse(line, observer_pb2.GetFlowsResponse())
            if response.HasField("flow") and lo <= response.flow.time.ToNanoseconds() <= hi:
                mine[key(response.flow)] += 1
        request = observer_pb2.GetFlowsRequest(since=since, until=until)
        for kind in ("whitelist", "blacklist"):
            for filter_json in twin.get(kind, []):
                getattr(request, kind).append(json_format.ParseDict(filter_json, flow_pb2.FlowFilter()))
        theirs = Counter()
        for name, stub in observers.items():
            for response in stub.GetFlows(request, timeout=10):
                if response.HasField("flow"):
                    theirs[key(response.flow)] += 1
        label = f"{' '.join(cli)} / {json.dumps({k: twin[k] for k in ('whitelist', 'blacklist') if twin.get(k)})}"
        if mine != theirs or not mine:
            failed = True
            only_cli = list((mine - theirs).elements())[:5]
            only_grpc = list((theirs - mine).elements())[:5]
            print(f"hubble_twins: FAIL: {label}: CLI {sum(mine.values())} flows, gRPC {sum(theirs.values())}; "
                  f"only CLI: {[describe(k) for k in only_cli]}; only gRPC: {[describe(k) for k in only_grpc]}")
        else:
            print(f"hubble_twins: ok: {label}: {sum(mine.values())} flows")
    if failed:
        sys.exit(1)
    print("hubble_twins: all twins agree")


if __name__ == "__main__":
    main()
