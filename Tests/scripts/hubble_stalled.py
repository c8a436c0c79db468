#!/usr/bin/env python3
"""Opens follow streams that never read on one node during traffic, and reports what vxmon-hubble's
memory did and how each stream ended (grpcio; stubs from vxmon's .proto by grpcio-tools; memory from
/proc/PID/status).

    hubble_stalled.py PROTO_DIR ADDRESS COUNT HUBBLE_PID STALL_SECONDS OUT_JSON

Each stream has its own connection with BDP probing off, so the client's window stays at 64 KiB and
the server's writes wait once it is used up. Steps:
1. wait until the node's ring is full (the traffic runs), then read VmRSS: `before`;
2. open COUNT streams; read VmRSS every half second until STALL_SECONDS - 1: `held` is the largest;
3. at STALL_SECONDS + 2 read every stream to its end (at most 20 s): flows received, then the status
   (code and message) it ended with, or "OPEN" if it had not ended;
4. close every connection; `after` is VmRSS 5 s later.
Writes the figures to OUT_JSON; the test that runs it judges them."""
import json
import sys
import threading
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    proto_dir, address, count, pid, stall, out_path = sys.argv[1:7]
    count, stall = int(count), float(stall)
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from vxmon_protos import compile_protos
    compile_protos(proto_dir)
    import grpc
    from observer import observer_pb2, observer_pb2_grpc

    probe_channel = grpc.insecure_channel(address)
    probe = observer_pb2_grpc.ObserverStub(probe_channel)
    deadline = time.time() + 30
    while time.time() < deadline:
        s = probe.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=10)
        if s.num_flows == s.max_flows:
            break
        time.sleep(0.5)
    # Closed before the streams open: the server takes at most 100 connections from one address.
    probe_channel.close()
    time.sleep(1.0)
    before = rss_kb(pid)

    channels, calls = [], []
    for i in range(count):
        channel = grpc.insecure_channel(address, options=[("grpc.http2.bdp_probe", 0), ("vxmon.stalled", i)])
        channels.append(channel)
        calls.append(observer_pb2_grpc.ObserverStub(channel).GetFlows(observer_pb2.GetFlowsRequest(follow=True)))
    opened = time.time()
    held, samples = 0, []
    while time.time() < opened + stall - 1:
        time.sleep(0.5)
        rss = rss_kb(pid)
        samples.append(rss)
        held = max(held, rss)
    # The watch checks once a second and 100 connections open one by one: a margin of 5 s.
    time.sleep(max(0.0, opened + stall + 5 - time.time()))

    ends = [None] * count

    def drain(i):
        got = 0
        try:
            for _ in calls[i]:
                got += 1
            ends[i] = {"flows": got, "code": "OK", "details": "", "at": round(time.time() - opened, 2)}
        except grpc.RpcError as e:
            ends[i] = {"flows": got, "code": e.code().name, "details": e.details(), "at": round(time.time() - opened, 2)}

    threads = [threading.Thread(target=drain, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    stop = time.time() + 20
    for t in threads:
        t.join(max(0.0, stop - time.time()))
    for i in range(count):
        if ends[i] is None:
            ends[i] = {"flows": -1, "code": "OPEN", "details": "still open 20 s after the stall limit", "at": -1}
    for call in calls:
        call.cancel()
    for channel in channels:
        channel.close()
    time.sleep(5)
    after = rss_kb(pid)

    codes = {}
    for e in ends:
        codes[e["code"]] = codes.get(e["code"], 0) + 1
    report = {"before_kb": before, "held_kb": held, "after_kb": after, "samples_kb": samples, "count": count,
              "stall_seconds": stall, "codes": codes, "ends": ends}
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)
    flows = sorted(e["flows"] for e in ends)
    print(f"hubble_stalled: {count} stalled followers; vxmon-hubble VmRSS {before} kB before, at most {held} kB while "
          f"they were stalled ({(held - before) / count:.0f} kB each), {after} kB 5 s after they left")
    print(f"hubble_stalled: endings {codes}; flows each got before the end: min {flows[0]}, max {flows[-1]}; "
          f"first ending: {ends[0]}")


if __name__ == "__main__":
    main()
