#!/usr/bin/env python3
"""Times Health/Check and Observer/ServerStatus on one node while hostile requests run against it
(grpcio; stubs from vxmon's .proto by grpcio-tools). Every call must answer within BOUND_MS.

    hubble_hostile.py PROTO_DIR ADDRESS WALKERS STALLED OUT_JSON [BOUND_MS]

The hostile load, each part in its own process so that the measuring one shares no interpreter lock
with it:
- WALKERS processes that each send, over and over, the costliest GetFlows a request may be: the most
  filters the server takes (64 whitelist filters, 1,024 values in all), every value a 256-byte
  node_name pattern that matches nothing, so that every flow of the ring is tested against all of them;
- one follower with the same filters (every new flow is tested too);
- STALLED follow streams that never read, each on its own connection, with BDP probing off so that
  the client's window stays at 64 KiB and the server's writes wait.

The node's ring must be full (ServerStatus num_flows == max_flows) or the walk would cost nothing; the
script checks it first. Then, from a connection of its own (made and warmed before the clock starts),
20 Health checks and 20 ServerStatus calls, each timed; at every call at least one walk must be in
flight (counted by the walkers), or the measure did not measure what it says. Prints every figure and
writes them to OUT_JSON; exits 1 if any call took BOUND_MS or more, or the load was not there."""
import json
import multiprocessing as mp
import sys
import time

PATTERN = ("*" + "worker2*" * 40)[:255] + "x"  # 256 bytes, many stars, no node name matches
assert len(PATTERN.encode()) == 256


def request(observer_pb2, flow_pb2, follow):
    filters = [flow_pb2.FlowFilter(node_name=[PATTERN] * 16) for _ in range(64)]
    return observer_pb2.GetFlowsRequest(whitelist=filters, follow=follow)


def walker(proto_dir, address, in_flight, walks, errors):
    from vxmon_protos import compile_protos
    compile_protos(proto_dir)
    import grpc
    from flow import flow_pb2
    from observer import observer_pb2, observer_pb2_grpc
    stub = observer_pb2_grpc.ObserverStub(grpc.insecure_channel(address))
    req = request(observer_pb2, flow_pb2, False)
    while True:
        with in_flight.get_lock():
            in_flight.value += 1
        t0 = time.time()
        try:
            n = sum(1 for _ in stub.GetFlows(req))
        except grpc.RpcError as e:
            errors.put(f"walker: {e.code().name}: {e.details()}")
            return
        finally:
            with in_flight.get_lock():
                in_flight.value -= 1
        if n:
            errors.put(f"walker: {n} flows matched filters that match nothing")
            return
        walks.put(time.time() - t0)


def follower(proto_dir, address, errors):
    from vxmon_protos import compile_protos
    compile_protos(proto_dir)
    import grpc
    from flow import flow_pb2
    from observer import observer_pb2, observer_pb2_grpc
    stub = observer_pb2_grpc.ObserverStub(grpc.insecure_channel(address))
    try:
        for _ in stub.GetFlows(request(observer_pb2, flow_pb2, True)):
            errors.put("follower: a flow matched filters that match nothing")
            return
    except grpc.RpcError as e:
        errors.put(f"follower: {e.code().name}: {e.details()}")


def stalled(proto_dir, address, count, ready):
    from vxmon_protos import compile_protos
    compile_protos(proto_dir)
    import grpc
    from observer import observer_pb2, observer_pb2_grpc
    calls = []
    for i in range(count):
        channel = grpc.insecure_channel(address, options=[("grpc.http2.bdp_probe", 0), ("vxmon.stalled", i)])
        calls.append(observer_pb2_grpc.ObserverStub(channel).GetFlows(observer_pb2.GetFlowsRequest(follow=True)))
    ready.set()
    time.sleep(3600)  # never reads; killed by the parent


def main():
    proto_dir, address, walkers, count, out_path = sys.argv[1:6]
    bound_ms = float(sys.argv[6]) if len(sys.argv) > 6 else 100.0
    from vxmon_protos import compile_protos
    compile_protos(proto_dir)
    import grpc
    from health import health_pb2, health_pb2_grpc
    from observer import observer_pb2, observer_pb2_grpc

    channel = grpc.insecure_channel(address)
    health = health_pb2_grpc.HealthStub(channel)
    observer = observer_pb2_grpc.ObserverStub(channel)
    status = observer.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=10)
    if status.num_flows != status.max_flows:
        print(f"hubble_hostile: the ring holds {status.num_flows} of {status.max_flows} flows; it must be full")
        sys.exit(1)

    # Spawned, not forked: grpcio is already running in this process.
    ctx = mp.get_context("spawn")
    in_flight, walks, errors, ready = ctx.Value("i", 0), ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=walker, args=(proto_dir, address, in_flight, walks, errors), daemon=True)
             for _ in range(int(walkers))]
    procs.append(ctx.Process(target=follower, args=(proto_dir, address, errors), daemon=True))
    procs.append(ctx.Process(target=stalled, args=(proto_dir, address, int(count), ready), daemon=True))
    for p in procs:
        p.start()
    ready.wait(60)
    # Every walker has sent its first request (the walk takes seconds): wait until they are all in flight.
    deadline = time.time() + 30
    while in_flight.value < int(walkers) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)

    # The measuring connection is up before the clock starts (a new connection is not what is timed).
    health.Check(health_pb2.HealthCheckRequest(), timeout=30)
    figures = {"health_ms": [], "status_ms": [], "walks_in_flight": []}
    for _ in range(20):
        figures["walks_in_flight"].append(in_flight.value)
        t0 = time.perf_counter()
        health.Check(health_pb2.HealthCheckRequest(), timeout=60)
        t1 = time.perf_counter()
        observer.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=60)
        t2 = time.perf_counter()
        figures["health_ms"].append(round((t1 - t0) * 1000, 2))
        figures["status_ms"].append(round((t2 - t1) * 1000, 2))
        figures["walks_in_flight"].append(in_flight.value)
        time.sleep(0.05)

    for p in procs:
        p.kill()
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    durations = []
    while not walks.empty():
        durations.append(round(walks.get(), 2))
    figures["walk_seconds"] = durations
    figures["errors"] = problems
    figures["max_ms"] = max(figures["health_ms"] + figures["status_ms"])
    figures["bound_ms"] = bound_ms
    with open(out_path, "w") as f:
        json.dump(figures, f, indent=1)
    print(f"hubble_hostile: Health/Check ms {figures['health_ms']}")
    print(f"hubble_hostile: ServerStatus ms {figures['status_ms']}")
    print(f"hubble_hostile: walks in flight at each call {figures['walks_in_flight']}; "
          f"walks finished meanwhile {durations} s; {count} stalled followers")
    print(f"hubble_hostile: slowest {figures['max_ms']} ms (bound {bound_ms} ms)" + (f"; ERRORS {problems}" if problems else ""))
    ok = figures["max_ms"] < bound_ms and not problems and min(figures["walks_in_flight"]) >= 1
    if min(figures["walks_in_flight"]) < 1:
        print("hubble_hostile: a call was made while no walk ran: the load was not there")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
