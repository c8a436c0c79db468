#!/usr/bin/env python3
"""Opens many GetFlows follow streams at once on one grpcio channel (one HTTP/2 connection) to a node's
observer and checks that a compliant client is served all of them: grpcio opens at most the server's
advertised SETTINGS_MAX_CONCURRENT_STREAMS at once and queues the rest, and the connection is never
reset (the channel never leaves READY, and no call fails except those this script cancels).

    hubble_streams.py PROTO_DIR ADDRESS TOTAL OUT_JSON

Each stream asks for the last flow and to follow (number=1, follow=true), so each is served its first
flow at once: the node's ring must hold a flow. Phase 1 waits until the number of streams served
stops growing (what grpcio opens at once); phase 2 cancels the served streams, which lets the queued
ones open, until all TOTAL have been served. OUT_JSON: {"total", "served", "concurrent",
"states", "errors"}. Exits 1 on the first failed check."""
import json
import sys
import threading
import time

from vxmon_protos import compile_protos


def fail(message):
    print("hubble_streams: FAIL: " + message, flush=True)
    sys.exit(1)


def main():
    proto_dir, address, total, out_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    compile_protos(proto_dir)
    import grpc
    from observer import observer_pb2, observer_pb2_grpc

    channel = grpc.insecure_channel(address)
    states = []
    channel.subscribe(lambda state: states.append(state.name), try_to_connect=True)
    stub = observer_pb2_grpc.ObserverStub(channel)
    status = stub.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=10)
    if status.num_flows < 1:
        fail(f"{address} holds no flow to serve ({status})")

    lock = threading.Lock()
    served = [False] * total
    errors = {}
    calls = [stub.GetFlows(observer_pb2.GetFlowsRequest(number=1, follow=True)) for _ in range(total)]

    def follow(i):
        try:
            for response in calls[i]:
                if response.WhichOneof("response_types") == "flow":
                    with lock:
                        served[i] = True
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                with lock:
                    errors[i] = f"{e.code().name}: {e.details()}"

    threads = [threading.Thread(target=follow, args=(i,), daemon=True) for i in range(total)]
    for t in threads:
        t.start()

    def count():
        with lock:
            return sum(served)

    # Phase 1: what the client opens at once (stable for 1.5 s, within 30 s).
    deadline, last, stable_since = time.time() + 30, -1, time.time()
    while time.time() < deadline:
        now = count()
        if now != last:
            last, stable_since = now, time.time()
        elif now > 0 and time.time() - stable_since >= 1.5:
            break
        time.sleep(0.1)
    concurrent = count()
    print(f"hubble_streams: {concurrent} of {total} streams served at once", flush=True)

    # Phase 2: end the served streams; the queued ones open in their place.
    cancelled = set()
    deadline = time.time() + 90
    while time.time() < deadline and count() < total and not errors:
        with lock:
            ready = [i for i in range(total) if served[i] and i not in cancelled]
        for i in ready:
            calls[i].cancel()
            cancelled.add(i)
        time.sleep(0.05)
    for call in calls:
        call.cancel()
    for t in threads:
        t.join(10)
    channel.close()

    after_ready = states[states.index("READY"):] if "READY" in states else states
    report = {"total": total, "served": count(), "concurrent": concurrent, "states": states,
              "errors": dict(list(errors.items())[:5]), "error_count": len(errors)}
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"hubble_streams: {report['served']} of {total} served; {len(errors)} errors; channel states {states}",
          flush=True)
    if errors:
        fail(f"{len(errors)} streams failed, e.g. {next(iter(errors.values()))}")
    if any(s != "READY" for s in after_ready):
        fail(f"the connection was lost: channel states {states}")
    if report["served"] != total:
        fail(f"only {report['served']} of {total} streams were served")
    print("hubble_streams: all streams served on one connection", flush=True)


if __name__ == "__main__":
    main()
