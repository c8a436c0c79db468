#!/usr/bin/env python3
"""Follows GetFlows on every node of a lab at once (grpcio; stubs from vxmon's .proto by
grpcio-tools) while something floods the lab, and reports what each follower got.

    hubble_flood.py PROTO_DIR LAB_JSON SECONDS OUT_JSON [READY_FILE]

For each node: flows received, lost-events notices by source and the events they count, the
receive rate over the time flows arrived, and the server's seen_flows before and after (ServerStatus).
The streams end once the servers are quiet and the followers have caught up (or after 60 s more).
READY_FILE is created once every stream is open. Exits 1 if a stream fails."""
import json
import sys
import threading
import time

from vxmon_protos import compile_protos


def main():
    proto_dir, lab_json, seconds, out_path = sys.argv[1:5]
    ready = sys.argv[5] if len(sys.argv) > 5 else None
    compile_protos(proto_dir)
    import grpc
    from flow import flow_pb2
    from observer import observer_pb2, observer_pb2_grpc

    with open(lab_json) as f:
        nodes = {n["name"]: n["ip"] + ":4244" for n in json.load(f)["nodes"]}
    stubs = {name: observer_pb2_grpc.ObserverStub(grpc.insecure_channel(a)) for name, a in nodes.items()}
    before = {name: s.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5).seen_flows for name, s in stubs.items()}
    results = {name: {"flows": 0, "notices": {}, "lost": {}, "first": None, "last": None, "error": None} for name in nodes}
    calls = {}
    opened = threading.Barrier(len(nodes) + 1)

    def follow(name):
        r = results[name]
        call = stubs[name].GetFlows(observer_pb2.GetFlowsRequest(follow=True))
        calls[name] = call
        opened.wait()
        try:
            for response in call:
                now = time.time()
                kind = response.WhichOneof("response_types")
                if kind == "flow":
                    r["flows"] += 1
                    r["first"] = r["first"] or now
                    r["last"] = now
                elif kind == "lost_events":
                    source = flow_pb2.LostEventSource.Name(response.lost_events.source)
                    r["notices"][source] = r["notices"].get(source, 0) + 1
                    r["lost"][source] = r["lost"].get(source, 0) + response.lost_events.num_events_lost
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                r["error"] = f"{e.code().name}: {e.details()}"

    threads = [threading.Thread(target=follow, args=(n,), daemon=True) for n in nodes]
    for t in threads:
        t.start()
    opened.wait()
    time.sleep(0.3)
    if ready:
        open(ready, "w").close()
    time.sleep(float(seconds))
    # The streams are cancelled only once the servers are quiet (seen_flows unchanged for a second: a
    # slow build may still be taking in the agent's backlog) and each follower has caught up with
    # what its server took in (flows received plus flows told missed), or after 60 s.
    def status():
        return {name: s.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5).seen_flows for name, s in stubs.items()}

    last, deadline = status(), time.time() + 60
    while time.time() < deadline:
        time.sleep(1.0)
        now = status()
        caught_up = all(results[n]["flows"] + results[n]["lost"].get("HUBBLE_RING_BUFFER", 0) >= now[n] - before[n]
                        for n in nodes)
        if now == last and caught_up:
            break
        last = now
    for call in calls.values():
        call.cancel()
    for t in threads:
        t.join(10)
    after = {name: s.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5).seen_flows for name, s in stubs.items()}
    report = {}
    for name, r in results.items():
        span = (r["last"] - r["first"]) if r["first"] and r["last"] and r["last"] > r["first"] else 0
        report[name] = {
            "flows": r["flows"], "notices": r["notices"], "lost": r["lost"], "error": r["error"],
            "seen_delta": after[name] - before[name], "rate": r["flows"] / span if span else 0.0, "span": span,
        }
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    for name, r in sorted(report.items()):
        print(f"hubble_flood: {name}: {r['flows']} flows at {r['rate']:.0f}/s over {r['span']:.1f} s; "
              f"seen by the server {r['seen_delta']}; lost {r['lost']} in {r['notices']} notices"
              + (f"; ERROR {r['error']}" if r["error"] else ""))
    sys.exit(1 if any(r["error"] for r in report.values()) else 0)


if __name__ == "__main__":
    main()
