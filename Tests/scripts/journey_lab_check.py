#!/usr/bin/env python3
"""Checks `vxmon journey -o json --summary` output from a lab run (Tests/VxmonBPFTests/JourneyLabTests.swift)
against oracles that are not vxmon's journey code: the lab's state file (which pod is where, with which
security identity), ping's own output (which sequence numbers were answered, and their RTT), and the
recording of the same run read by an independent .vxrec reader (vxrec_events.py, written from the spec).

    journey_lab_check.py pings  --lab-state LAB.json --from POD --to POD --id ID --count N --hops 4|5
                                --journeys J.json --ping PING.txt --recording R.vxrec
    journey_lab_check.py policy --lab-state LAB.json --from POD --to POD --id ID --count N
                                --journeys J.json --ping PING.txt
    journey_lab_check.py lost   --lab-state LAB.json --journeys J.json --stderr ERR.txt

Prints one line per check ("ok: ..." or "FAIL: ..."), then a last line `figures {...}` (JSON: what was
measured), and exits 1 if any check failed.
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxrec_events  # noqa: E402

failures = []
figures = {}


def check(condition, message, details=None):
    """Records one check; `details` (a list) shows at most 10 examples of what went wrong."""
    if condition:
        print("ok: " + message)
    else:
        line = "FAIL: " + message
        if details:
            line += " (%d cases; first: %s)" % (len(details), "; ".join(str(d) for d in details[:10]))
        print(line)
        failures.append(message)


def finish():
    print("figures " + json.dumps(figures, sort_keys=True))
    sys.exit(1 if failures else 0)


def load_lab(path):
    with open(path) as f:
        lab = json.load(f)
    pods = {p["name"]: p for p in lab["pods"]}
    return lab, pods


def load_journeys(path):
    """The journey records and the summary record of a `vxmon journey -o json --summary` run."""
    journeys, summaries, other = [], [], 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            record = json.loads(line)
            if "journey" in record:
                journeys.append(record["journey"])
            elif "journey_summary" in record:
                summaries.append(record["journey_summary"])
            else:
                other += 1
    check(other == 0, "every line is a journey or journey_summary record (%d others)" % other)
    check(len(summaries) == 1, "one journey_summary record, last (%d)" % len(summaries))
    return journeys, summaries[-1] if summaries else {}


def parse_ping(path):
    """Seq -> RTT bound in ns, and ping's transmitted/received totals.

    The run uses `ping -U` (user-to-user: a send time taken before the request leaves, a receive time after
    the reply arrived), which brackets the datapath's events of both journeys. iputils ping measures the RTT
    in whole microseconds (two microsecond timestamps, each truncated) and prints it in ms: below 1 ms with
    3 decimals, exactly; from 1 ms with 2, 1 or 0 decimals, rounded to the nearest 10, 100 or 1000 µs
    (ping_common.c). So the real interval between its two timestamps is below the printed value plus 1 µs
    (3 decimals) or plus half the printed step (rounded values)."""
    text = open(path).read()
    rtt = {}
    for m in re.finditer(r"icmp_seq=(\d+) ttl=\d+ time=(\d+)(?:\.(\d+))? ms", text):
        seq, whole, frac = int(m.group(1)), int(m.group(2)), m.group(3) or ""
        printed_ns = whole * 1_000_000 + (int(frac) * 10 ** (6 - len(frac)) if frac else 0)
        step_ns = 10 ** (6 - len(frac))
        bound = printed_ns + (1000 if step_ns == 1000 else step_ns // 2)
        rtt[seq] = (printed_ns, bound, m.group(0).split("time=")[1])
    totals = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    return rtt, (int(totals.group(1)), int(totals.group(2))) if totals else (None, None)


def expected_path(source_node, destination_node, underlay):
    path = [(source_node, "from-endpoint"), (source_node, "to-overlay")]
    if underlay:
        path.append((destination_node, "from-network"))
    return path + [(destination_node, "from-overlay"), (destination_node, "to-endpoint")]


def hop_points(j):
    return [(h["node"], h["point"]) for h in j["hops"]]


def check_summary_sums(summary, journeys):
    """The summary's counts add up, and agree with the journey records printed."""
    s = summary
    check(s.get("events") == s.get("hops", 0) + s.get("hops_past_limit", 0) + s.get("events_of_no_journey", 0),
          "summary: events %s = hops %s + hops_past_limit %s + events_of_no_journey %s" % (
              s.get("events"), s.get("hops"), s.get("hops_past_limit"), s.get("events_of_no_journey")))
    outcomes = s.get("outcomes", {})
    check(sum(outcomes.values()) == s.get("shown"),
          "summary: journeys by outcome %s sum to shown %s" % (outcomes, s.get("shown")))
    check(s.get("shown") == len(journeys), "summary: shown %s = journey records %d" % (s.get("shown"), len(journeys)))
    recount = {k: 0 for k in outcomes}
    for j in journeys:
        recount[j["outcome"]] = recount.get(j["outcome"], 0) + 1
    check(recount == outcomes, "summary: outcomes %s = the records' outcomes %s" % (outcomes, recount))
    complete = sum(1 for j in journeys if j["complete"])
    check(s.get("complete") == complete, "summary: complete %s = complete records %d" % (s.get("complete"), complete))
    missing = sum(len(j.get("missing", [])) for j in journeys)
    check(s.get("missing_hops") == missing, "summary: missing_hops %s = the records' missing hops %d" % (
        s.get("missing_hops"), missing))
    hops = sum(len(j["hops"]) for j in journeys)
    check(hops <= s.get("hops", 0), "the records' hops %d <= summary hops %s" % (hops, s.get("hops")))


def recording_index(path):
    """(node, point, time_ns) -> the packets (inner ICMP/UDP key) of the recording's events there."""
    rec = vxrec_events.read(path)
    index = {}
    by_packet = {}
    for e in rec.events:
        if e.point is None:
            continue
        k = e.key
        packet = None
        if k is not None:
            packet = (k.source, k.destination, k.protocol, k.icmp_type, k.icmp_id, k.icmp_seq, k.source_port,
                      k.destination_port, k.ip_id)
        index.setdefault((e.node, e.point, e.time_ns), []).append((packet, e))
        if packet is not None:
            by_packet.setdefault(packet, []).append(e)
    return rec, index, by_packet


def journey_packet(j):
    return (j["source"], j["destination"], 1 if j["protocol"] == "ICMPv4" else None, j.get("icmp_type"),
            j.get("icmp_id"), j.get("icmp_seq"), j.get("source_port"), j.get("destination_port"), j.get("ip_id"))


def pings(a):
    _, pods = load_lab(a.lab_state)
    src, dst = pods[a.source], pods[a.destination]
    journeys, summary = load_journeys(a.journeys)
    rtt, (transmitted, received) = parse_ping(a.ping)
    figures.update(ping_transmitted=transmitted, ping_received=received, journey_records=len(journeys),
                   summary={k: summary.get(k) for k in ("events", "hops", "journeys", "shown", "complete", "pairs",
                                                        "lost_samples", "timed_out", "evicted", "missing_hops")})
    seqs = set(range(1, a.count + 1))
    check(transmitted == a.count and received == a.count and set(rtt) == seqs,
          "ping: %s transmitted, %s received, %d replies printed (of %d)" % (transmitted, received, len(rtt), a.count))

    ours = [j for j in journeys if j.get("protocol") == "ICMPv4" and j.get("icmp_id") == a.id]
    requests = {j["icmp_seq"]: j for j in ours if j["source"] == src["ip"] and j["destination"] == dst["ip"]
                and j.get("icmp_type") == 8}
    replies = {j["icmp_seq"]: j for j in ours if j["source"] == dst["ip"] and j["destination"] == src["ip"]
               and j.get("icmp_type") == 0}
    figures.update(requests=len(requests), replies=len(replies))
    n_req = sum(1 for j in ours if j.get("icmp_type") == 8)
    n_rep = sum(1 for j in ours if j.get("icmp_type") == 0)
    check(n_req == a.count and set(requests) == seqs,
          "%d request journeys (id %d), one per seq 1..%d: %d" % (a.count, a.id, a.count, n_req))
    check(n_rep == a.count and set(replies) == seqs,
          "%d reply journeys (id %d), one per seq 1..%d: %d" % (a.count, a.id, a.count, n_rep))
    check(len(ours) == n_req + n_rep, "no other journeys of id %d (%d)" % (a.id, len(ours) - n_req - n_rep))

    underlay = a.hops == 5
    paths = {"request": expected_path(src["node"], dst["node"], underlay),
             "reply": expected_path(dst["node"], src["node"], underlay)}
    vnis = {"request": src["identity"], "reply": dst["identity"]}
    bad = {k: [] for k in ("outcome", "path", "pair", "vni", "missing")}
    for role, table, other in (("request", requests, replies), ("reply", replies, requests)):
        for seq, j in sorted(table.items()):
            where = "%s seq %d" % (role, seq)
            if not (j["outcome"] == "delivered" and j["complete"] is True and j.get("close_reason") == "ended"):
                bad["outcome"].append("%s: %s complete=%s %s" % (
                    where, j["outcome"], j["complete"], j.get("close_reason")))
            if hop_points(j) != paths[role] or len(j["hops"]) != a.hops:
                bad["path"].append("%s: %s" % (where, hop_points(j)))
            if j.get("missing") or j.get("lost_samples_during"):
                bad["missing"].append("%s: missing %s lost %s" % (
                    where, j.get("missing"), j.get("lost_samples_during")))
            partner = other.get(seq)
            if j.get("role") != role or partner is None or j.get("paired_with") != partner["id"]:
                bad["pair"].append("%s: role %s paired_with %s" % (where, j.get("role"), j.get("paired_with")))
            if j.get("vni") != vnis[role] or j.get("vnis") != vnis:
                bad["vni"].append("%s: vni %s vnis %s" % (where, j.get("vni"), j.get("vnis")))
            if underlay:
                tunnel_vnis = [h.get("vni") for h in j["hops"] if h["point"] == "from-network"]
                if tunnel_vnis != [vnis[role]] or j.get("vni_source") != "vxlan-header":
                    bad["vni"].append("%s: from-network VNI %s, vni_source %s" % (
                        where, tunnel_vnis, j.get("vni_source")))
    check(not bad["outcome"], "every journey delivered, complete, ended", bad["outcome"])
    check(not bad["path"], "every journey has the %d hops of its path (request %s)" % (a.hops, paths["request"]),
          bad["path"])
    check(not bad["missing"], "no journey misses a hop or saw lost samples", bad["missing"])
    check(not bad["pair"], "each request is paired with the reply of its seq", bad["pair"])
    check(not bad["vni"], "request VNI = %s's identity %d, reply VNI = %s's identity %d (lab state)" % (
        src["name"], vnis["request"], dst["name"], vnis["reply"]), bad["vni"])
    check(summary.get("lost_samples") == 0 and summary.get("timed_out") == 0 and summary.get("evicted") == 0,
          "summary: nothing lost, timed out or evicted (%s, %s, %s)" % (
              summary.get("lost_samples"), summary.get("timed_out"), summary.get("evicted")))
    check_summary_sums(summary, journeys)

    # Times: each hop is an event of the recording (same node, point, time, packet); a journey holds every
    # event of its packet; its latency and deltas are differences of those times.
    rec, index, by_packet = recording_index(a.recording)
    figures.update(recording_samples=rec.samples, recording_lost=rec.lost_samples)
    check(not rec.truncated, "the recording is whole")
    bad_time, bad_count, bad_latency, bad_vni = [], [], [], []
    for j in list(requests.values()) + list(replies.values()):
        where = "%s seq %d" % (j["role"], j["icmp_seq"])
        packet = journey_packet(j)
        for h in j["hops"]:
            here = index.get((h["node"], h["point"], h["time_ns"]), [])
            if not any(p == packet for p, _ in here):
                bad_time.append("%s: %s %s at %d" % (where, h["node"], h["point"], h["time_ns"]))
        events = by_packet.get(packet, [])
        if len(events) != len(j["hops"]):
            bad_count.append("%s: %d hops, %d events of its packet" % (where, len(j["hops"]), len(events)))
        for e in events:
            if e.packet.tunnel is not None and e.packet.tunnel.vni != vnis[j["role"]]:
                bad_vni.append("%s: %s %s VXLAN VNI %d" % (where, e.node, e.point, e.packet.tunnel.vni))
        times = [h["time_ns"] for h in j["hops"]]
        first = times[0]
        if (j["latency_ns"] != times[-1] - first or j["start_time_ns"] != first
                or [h["since_start_ns"] for h in j["hops"]] != [t - first for t in times]
                or [h["delta_ns"] for h in j["hops"]] != [0] + [b - c for b, c in zip(times[1:], times)]):
            bad_latency.append("%s: latency %s, times %s" % (where, j["latency_ns"], times))
    check(not bad_time, "every hop's time_ns is the time of an event of its node, point and packet in the recording",
          bad_time)
    check(not bad_count, "every journey has as many hops as the recording has events of its packet", bad_count)
    check(not bad_vni, "the recording's VXLAN headers carry the same VNIs", bad_vni)
    check(not bad_latency, "latency_ns, since_start_ns and delta_ns are differences of the hops' times", bad_latency)

    # End to end against ping: request + reply latency within the RTT ping printed for that seq.
    over, slack = [], []
    for seq in sorted(seqs & set(requests) & set(replies) & set(rtt)):
        total = requests[seq]["latency_ns"] + replies[seq]["latency_ns"]
        printed, bound, text = rtt[seq]
        slack.append(printed - total)
        if total >= bound:
            over.append("seq %d: %d + %d = %d ns > time=%s" % (
                seq, requests[seq]["latency_ns"], replies[seq]["latency_ns"], total, text))
    check(bool(slack) and not over, "request + reply latency < ping's RTT for every seq (%d)" % len(slack), over)
    if slack:
        slack.sort()
        lat = sorted(requests[s]["latency_ns"] + replies[s]["latency_ns"] for s in requests if s in replies)
        rtts = sorted(v[0] for v in rtt.values())
        figures.update(min_rtt_minus_latencies_ns=slack[0], median_rtt_minus_latencies_ns=slack[len(slack) // 2],
                       median_latencies_ns=lat[len(lat) // 2], median_rtt_ns=rtts[len(rtts) // 2])
    finish()


def policy(a):
    _, pods = load_lab(a.lab_state)
    src, dst = pods[a.source], pods[a.destination]
    journeys, summary = load_journeys(a.journeys)
    rtt, (transmitted, received) = parse_ping(a.ping)
    figures.update(ping_transmitted=transmitted, ping_received=received)
    check(transmitted == a.count and received == 0 and not rtt,
          "ping: %s transmitted, %s received (the policy denies it)" % (transmitted, received))
    ours = [j for j in journeys if j.get("protocol") == "ICMPv4" and j.get("icmp_id") == a.id]
    figures.update(journeys=len(ours))
    requests = {j["icmp_seq"]: j for j in ours if j["source"] == src["ip"] and j["destination"] == dst["ip"]
                and j.get("icmp_type") == 8}
    check(len(ours) == a.count and set(requests) == set(range(1, a.count + 1)),
          "%d request journeys (id %d), one per seq, no reply: %d journeys" % (a.count, a.id, len(ours)))
    path = [(src["node"], "from-endpoint"), (src["node"], "to-overlay"), (dst["node"], "from-overlay"),
            (dst["node"], "drop")]
    bad = []
    for seq, j in sorted(requests.items()):
        last = j["hops"][-1] if j["hops"] else {}
        stopped = j.get("stopped_at") or {}
        if not (j["outcome"] == "dropped" and j["complete"] is False and j.get("role") == "single"
                and j.get("drop_reason") == "Policy denied" and j.get("drop_reason_code") == 133
                and stopped.get("node") == dst["node"] and stopped.get("point") == "drop"
                and last.get("kind") == "drop" and last.get("drop_reason_code") == 133
                and hop_points(j) == path and not j.get("missing")):
            bad.append("seq %d: %s" % (seq, json.dumps({k: j.get(k) for k in (
                "outcome", "complete", "role", "drop_reason", "drop_reason_code", "stopped_at", "missing")})
                + " hops %s" % hop_points(j)))
    check(not bad, "every request ends at its drop on %s: Policy denied (133), after %s" % (
        dst["node"], path[:-1]), bad)
    stops = [p for p in summary.get("paths", []) if p.get("source_node") == src["node"]
             and p.get("destination_node") == dst["node"]]
    where = {s["where"]: s["journeys"] for p in stops for s in p.get("stopped_at", [])}
    figures.update(stopped_at=where)
    check(where.get("%s drop" % dst["node"], 0) >= a.count,
          "summary: the path %s -> %s says %d stopped at '%s drop' (%s)" % (
              src["node"], dst["node"], a.count, dst["node"], where))
    check_summary_sums(summary, journeys)
    finish()


def lost(a):
    lab, _ = load_lab(a.lab_state)
    node_of = {p["ip"]: p["node"] for p in lab["pods"]}
    journeys, summary = load_journeys(a.journeys)
    err = open(a.stderr).read()
    m = re.search(r"the datapath counted (\d+) failed perf outputs", err)
    datapath = int(m.group(1)) if m else None
    s = summary
    figures.update(summary={k: s.get(k) for k in ("events", "hops", "hops_past_limit", "events_of_no_journey",
                                                  "journeys", "shown", "complete", "outcomes", "pairs", "missing_hops",
                                                  "timed_out", "evicted", "lost_samples", "lost_records")},
                   datapath_failed_outputs=datapath)
    check(s.get("lost_samples", 0) > 0, "samples were lost (%s)" % s.get("lost_samples"))
    check(datapath is not None and s.get("lost_samples", 0) <= datapath,
          "lost samples %s <= the datapath's count of failed perf outputs %s" % (s.get("lost_samples"), datapath))
    check(s.get("missing_hops", 0) <= s.get("lost_samples", 0),
          "missing hops %s <= lost samples %s" % (s.get("missing_hops"), s.get("lost_samples")))
    check_summary_sums(summary, journeys)

    unexplained, false_complete, kinds = [], [], {}
    for j in journeys:
        src, dst = node_of.get(j["source"]), node_of.get(j["destination"])
        kind = "complete" if j["complete"] else j["outcome"]
        kinds[kind] = kinds.get(kind, 0) + 1
        summary_of = "#%d %s %s seq/port %s: %s complete=%s missing=%s lost_during=%s hops=%s" % (
            j["id"], j["role"], j["protocol"], j.get("icmp_seq", j.get("destination_port")), j["outcome"],
            j["complete"], [(x["node"], x["point"]) for x in j.get("missing", [])], j.get("lost_samples_during"),
            hop_points(j))
        if j["complete"]:
            # A complete journey between pods of two nodes has every hop of its path, once.
            if src and dst and src != dst and hop_points(j) != expected_path(src, dst, False):
                false_complete.append(summary_of)
            continue
        explained = j["outcome"] == "lost" or (
            j["outcome"] in ("delivered", "dropped") and j.get("missing") and j.get("lost_samples_during", 0) > 0)
        if not explained:
            unexplained.append(summary_of)
    figures.update(by_kind=kinds, unexplained=len(unexplained), complete_without_every_hop=len(false_complete))
    check(not false_complete, "every complete journey between two nodes' pods has exactly the 4 hops of its path",
          false_complete)
    check(not unexplained, "every incomplete journey is explained: outcome lost, or delivered/dropped with missing "
          "hops and lost_samples_during > 0", unexplained)
    finish()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("pings", "policy", "lost"):
        p = sub.add_parser(name)
        p.add_argument("--lab-state", required=True)
        p.add_argument("--journeys", required=True)
        if name != "lost":
            p.add_argument("--from", dest="source", required=True)
            p.add_argument("--to", dest="destination", required=True)
            p.add_argument("--id", type=int, required=True)
            p.add_argument("--count", type=int, required=True)
            p.add_argument("--ping", required=True)
        if name == "pings":
            p.add_argument("--hops", type=int, choices=[4, 5], required=True)
            p.add_argument("--recording", required=True)
        if name == "lost":
            p.add_argument("--stderr", required=True)
    a = ap.parse_args()
    {"pings": pings, "policy": policy, "lost": lost}[a.command](a)


if __name__ == "__main__":
    main()
