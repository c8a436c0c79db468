#!/usr/bin/env python3
"""Validate `vxmon journey -o json|yaml` output against docs/journey-schema.json and the recording it
came from.

    validate_journey.py RECORDING.vxrec [--json OUT.json] [--yaml OUT.yaml] [--summary]
                        [--schema docs/journey-schema.json] [--cilium 1.13|latest]

Syntax and schema:
  * every JSON line parses, with no duplicate keys, and validates against the schema (draft 2020-12,
    ipv4/ipv6 formats checked); every YAML document loads with PyYAML (no duplicate keys) and
    validates too; with both, the YAML documents are the JSON objects, with the same keys in the same
    order; the journey_summary record, if any, is the last one (--summary: there must be one).
Each journey against the recording, read by vxrec_events.py (written from the specs, not from vxmon):
  * every hop is an event of the recording: same node, point (observation point / drop /
    policy-verdict) and time_ns, of the journey's packet (addresses, protocol, IP ID, ports, TCP
    sequence and acknowledgment, ICMP type, code, echo id and sequence), each event used once; the
    hop repeats the event's identities, ifindex, drop reason, tunnel header (VNI, outer addresses) and
    the interface's name on its node;
  * time and start_time are time_ns and start_time_ns in RFC 3339; start_time_ns is the first hop's;
    since_start_ns = time_ns - first hop's time_ns; delta_ns = time_ns - previous hop's time_ns unless
    clock_offset_ns is given (then delta_ns = that difference - clock_offset_ns, to rounding, and the
    two hops are on different nodes); latency_ns = the sum of delta_ns (to rounding with corrections);
  * the outcome agrees with the last hop (a drop for dropped, to-endpoint/host/stack/proxy for
    delivered), stopped_at is the last hop's place, drop_reason is the last hop's;
  * the VNI is the first tunnel header's (vxlan-header) or the first from-overlay trace's source
    identity (tunnel-key), and equals the source pod's identity (the recording's pod= records); a
    request's and reply's vnis agree with each other's vni; a reply's record follows its request's;
  * source_pod / destination_pod are the pods of the recording at those addresses.
Counts:
  * every event of a trace/drop/policy-verdict type with an IP packet is a hop of exactly one journey
    when every journey is shown (else at most one), the rest being counted as hops past the limit;
  * the summary's counts add up and agree with the records and the recording: events = samples,
    hops + hops_past_limit = events with an IP packet, events_of_no_journey = the others, shown =
    records, outcomes, complete, missing_hops, lost samples and records, per-path counts, stops,
    where the incomplete ones stopped, step and end-to-end counts, maxima and percentiles (recomputed
    from the records' delta_ns and latency_ns).

Exit status 0 when everything holds, 1 otherwise; every problem is printed.
"""
import argparse
import collections
import datetime
import ipaddress
import json
import math
import os
import sys

import jsonschema
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxrec_events  # noqa: E402

TERMINAL = {"to-endpoint", "to-host", "to-stack", "to-proxy"}
PROTOCOLS = {1: "ICMPv4", 58: "ICMPv6", 6: "TCP", 17: "UDP", 132: "SCTP"}


# The strict JSON and YAML readers (duplicate keys refused) are the event validator's.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from validate_structured import DuplicateKey, no_duplicates, read_yaml  # noqa: E402


class Report:
    def __init__(self):
        self.problems = 0
        self.kinds = collections.Counter()
        self.checked = collections.Counter()

    def fail(self, where, message, kind=None):
        self.problems += 1
        kind = kind or message
        self.kinds[kind] += 1
        if self.kinds[kind] <= 5:
            print("FAIL %s: %s" % (where, message))

    def check(self, ok, where, message, kind=None):
        if not ok:
            self.fail(where, message, kind)
        return ok


def rfc3339(ns):
    seconds, fraction = divmod(ns, 10 ** 9)
    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % fraction


def same_ip(a, b):
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def key_order(obj):
    """The keys of every mapping, in order, as nested lists (to compare JSON's order with YAML's)."""
    if isinstance(obj, dict):
        return [(k, key_order(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        return [key_order(v) for v in obj]
    return None


def schema_errors(validator, obj, where, report):
    if validator.is_valid(obj):
        return
    # Explain against the record kind's own branch rather than the top-level oneOf.
    if isinstance(obj, dict) and len(obj) == 1 and next(iter(obj)) in ("journey", "journey_summary"):
        branch = [b for b in validator.schema["oneOf"] if next(iter(obj)) in b["required"]]
        validator = jsonschema.Draft202012Validator(dict(validator.schema, oneOf=branch), format_checker=validator.format_checker)
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        if error.context:
            error = jsonschema.exceptions.best_match(error.context)
        path = "/".join(map(str, error.absolute_path))
        report.fail(where, "schema: %s at /%s" % (error.message[:300], path),
                    kind="schema: %s at %s" % (error.validator, "/".join(p if isinstance(p, str) else "N" for p in error.absolute_path)))


def load_json(path, validator, report):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        report.fail(path, "output does not end with a newline")
    objects = []
    for n, line in enumerate(text.splitlines(), 1):
        where = "%s:%d" % (os.path.basename(path), n)
        try:
            obj = json.loads(line, object_pairs_hook=no_duplicates)
        except DuplicateKey as e:
            report.fail(where, "%s in one object" % e)
            obj = json.loads(line)
        except ValueError as e:
            report.fail(where, "not valid JSON (%s): %s" % (e, line[:300]))
            continue
        report.checked["json lines"] += 1
        schema_errors(validator, obj, where, report)
        objects.append(obj)
    return objects


def load_yaml(path, validator, report):
    docs = read_yaml(path, report)
    if docs is None:
        return []
    for n, d in enumerate(docs, 1):
        report.checked["yaml documents"] += 1
        schema_errors(validator, d, "%s doc %d" % (os.path.basename(path), n), report)
    return docs


def split_records(objects, name, want_summary, report):
    journeys, summary = [], None
    for n, o in enumerate(objects, 1):
        if not isinstance(o, dict):
            report.fail("%s record %d" % (name, n), "not a mapping")
        elif "journey" in o:
            if summary is not None:
                report.fail("%s record %d" % (name, n), "a journey record after the journey_summary record")
            journeys.append(o["journey"])
        elif "journey_summary" in o:
            if summary is not None:
                report.fail("%s record %d" % (name, n), "a second journey_summary record")
            summary = o["journey_summary"]
    if want_summary and summary is None:
        report.fail(name, "no journey_summary record (--summary)")
    return journeys, summary


def key_matches(j, k):
    """The event's packet key `k` is the journey's packet."""
    if k is None:
        return False
    if not (same_ip(j.get("source"), k.source) and same_ip(j.get("destination"), k.destination)):
        return False
    if j.get("protocol") != PROTOCOLS.get(k.protocol, "IP-%d" % k.protocol):
        return False
    if j.get("ip_id") != k.ip_id:
        return False
    proto = j.get("protocol")
    if proto in ("TCP", "UDP", "SCTP"):
        if (j.get("source_port"), j.get("destination_port")) != (k.source_port or 0, k.destination_port or 0):
            return False
    if proto == "TCP" and (j.get("tcp_seq"), j.get("tcp_ack")) != (k.tcp_seq or 0, k.tcp_ack or 0):
        return False
    if proto in ("ICMPv4", "ICMPv6"):
        if (j.get("icmp_type"), j.get("icmp_code")) != (k.icmp_type or 0, k.icmp_code or 0):
            return False
        if "icmp_id" in j and (j["icmp_id"], j["icmp_seq"]) != (k.icmp_id or 0, k.icmp_seq or 0):
            return False
    return True


def hop_place(h):
    return {k: h.get(k) for k in ("node", "point", "interface", "ifindex")}


class Checker:
    def __init__(self, rec, report):
        self.rec = rec
        self.report = report
        self.by_place = collections.defaultdict(list)
        self.journey_events = []
        for e in rec.events:
            if e.type in (vxrec_events.TRACE, vxrec_events.DROP, vxrec_events.POLICY_VERDICT) and e.decoded and e.key is not None:
                self.journey_events.append(e)
                self.by_place[(e.node, e.point, e.time_ns)].append(e)
        self.used = {}

    def pod_name(self, ip):
        for p in self.rec.pods:
            if same_ip(p.get("ip", ""), ip):
                return p
        return None

    def check_hop_event(self, j, i, h, where):
        r = self.report
        candidates = [e for e in self.by_place.get((h.get("node"), h.get("point"), h.get("time_ns")), [])
                      if id(e) not in self.used and key_matches(j, e.key)]
        if not candidates:
            others = self.by_place.get((h.get("node"), h.get("point"), h.get("time_ns")), [])
            why = "no event of the recording at that node, point and time" if not others else \
                "the event(s) there are of another packet or already a hop of another journey"
            r.fail(where, "hop %d (%s %s %s) is no event of the recording: %s" % (i, h.get("node"), h.get("point"), h.get("time_ns"), why),
                   kind="hop is no event")
            return
        e = candidates[0]
        self.used[id(e)] = (j.get("id"), i)
        r.checked["hops matched to events"] += 1
        for side, mine, theirs, address in (("source", h.get("source_identity"), e.source_identity, j.get("source")),
                                            ("destination", h.get("destination_identity"), e.destination_identity, j.get("destination"))):
            if e.type == vxrec_events.POLICY_VERDICT and theirs == 0:
                # A policy verdict names only the remote identity; the local one is the pod's at that
                # address when the recording knows it (as Hubble takes it from the ipcache), else 0.
                pod = self.pod_name(address or "")
                ok = mine == 0 or (pod is not None and mine == pod.get("identity"))
            else:
                ok = mine == theirs
            r.check(ok, where, "hop %d %s_identity %r, the event's %r" % (i, side, mine, theirs))
        r.check(h.get("ifindex") == e.ifindex, where, "hop %d ifindex %r, the event's %r" % (i, h.get("ifindex"), e.ifindex))
        expect_kind = {vxrec_events.TRACE: "trace", vxrec_events.DROP: "drop", vxrec_events.POLICY_VERDICT: "policy-verdict"}[e.type]
        r.check(h.get("kind") == expect_kind, where, "hop %d kind %r, the event is a %s" % (i, h.get("kind"), expect_kind))
        if e.drop_reason is not None and e.type != vxrec_events.TRACE:
            r.check(h.get("drop_reason_code") == e.drop_reason, where, "hop %d drop_reason_code %r, the event's %r" % (i, h.get("drop_reason_code"), e.drop_reason))
        else:
            r.check("drop_reason_code" not in h, where, "hop %d has a drop_reason_code the event has not" % i)
        # The tunnel header: present when the event saw the encapsulated packet (its key is the inner one).
        t = e.packet.tunnel if e.packet is not None and e.packet.inner is not None else None
        if t is None:
            r.check("tunnel" not in h, where, "hop %d names a tunnel, the event's packet has none" % i)
        else:
            r.check(h.get("tunnel") == t.kind and h.get("vni") == t.vni, where,
                    "hop %d tunnel %r VNI %r, the event's packet %s VNI %d" % (i, h.get("tunnel"), h.get("vni"), t.kind, t.vni))
            r.check(same_ip(h.get("outer_source", ""), t.outer_source) and same_ip(h.get("outer_destination", ""), t.outer_destination),
                    where, "hop %d outer %r -> %r, the event's %s -> %s" % (i, h.get("outer_source"), h.get("outer_destination"), t.outer_source, t.outer_destination))
        # The name is looked up when the journey is printed: one the recording gave for the ifindex
        # on that node (usually before the event; a later one may win), null when none came before it.
        names = self.rec.interfaces.get((e.node, e.ifindex), [])
        if e.ifindex == 0:
            r.check(h.get("interface") is None, where, "hop %d interface %r for ifindex 0" % (i, h.get("interface")))
        elif h.get("interface") is None:
            r.check(not any(n < e.index for n, _ in names), where, "hop %d has no interface name, the recording names ifindex %d on %s before: %r" % (
                i, e.ifindex, e.node, [name for n, name in names if n < e.index]))
        else:
            r.check(h.get("interface") in [name for _, name in names], where, "hop %d interface %r, the recording names ifindex %d on %s %r" % (
                i, h.get("interface"), e.ifindex, e.node, [name for _, name in names]))

    def check_journey(self, j, where):
        r = self.report
        hops = j.get("hops") or []
        if not hops:
            return
        first = hops[0]
        r.check(j.get("start_time_ns") == first.get("time_ns"), where, "start_time_ns %r is not the first hop's time_ns %r" % (j.get("start_time_ns"), first.get("time_ns")))
        if isinstance(j.get("start_time_ns"), int):
            r.check(j.get("start_time") == rfc3339(j["start_time_ns"]), where, "start_time %r, start_time_ns says %s" % (j.get("start_time"), rfc3339(j["start_time_ns"])))
        corrected = False
        total = 0
        for i, h in enumerate(hops):
            t = h.get("time_ns")
            if not isinstance(t, int):
                continue
            r.check(h.get("time") == rfc3339(t), where, "hop %d time %r, time_ns says %s" % (i, h.get("time"), rfc3339(t)))
            r.check(h.get("since_start_ns") == t - first["time_ns"], where, "hop %d since_start_ns %r, time_ns - first time_ns = %d" % (i, h.get("since_start_ns"), t - first["time_ns"]))
            d = h.get("delta_ns")
            if i == 0:
                r.check(d == 0 and "clock_offset_ns" not in h, where, "the first hop's delta_ns is %r (clock_offset_ns %r)" % (d, h.get("clock_offset_ns")))
            else:
                raw = t - hops[i - 1]["time_ns"]
                if "clock_offset_ns" in h:
                    corrected = True
                    r.check(h.get("node") != hops[i - 1].get("node"), where, "hop %d is corrected for a clock offset on the node of the hop before" % i)
                    r.check(isinstance(d, int) and abs(d - (raw - h["clock_offset_ns"])) <= 1, where,
                            "hop %d delta_ns %r, (time_ns difference %d) - (clock_offset_ns %d) = %d" % (i, d, raw, h["clock_offset_ns"], raw - h["clock_offset_ns"]))
                else:
                    r.check(d == raw, where, "hop %d delta_ns %r, time_ns difference %d" % (i, d, raw), kind="delta_ns is not the time difference")
            if isinstance(d, int):
                total += d
            self.check_hop_event(j, i, h, where)
        lat = j.get("latency_ns")
        if corrected:
            r.check(isinstance(lat, int) and abs(lat - total) <= len(hops), where, "latency_ns %r, sum of delta_ns %d" % (lat, total))
        else:
            r.check(lat == total, where, "latency_ns %r, sum of delta_ns %d" % (lat, total), kind="latency_ns is not the sum of delta_ns")
            r.check(lat == hops[-1].get("time_ns", 0) - first.get("time_ns", 0), where, "latency_ns %r, last time_ns - first time_ns = %d" % (lat, hops[-1].get("time_ns", 0) - first.get("time_ns", 0)))
            r.check(all(hops[k].get("since_start_ns", 0) <= hops[k + 1].get("since_start_ns", 0) for k in range(len(hops) - 1)),
                    where, "hops are not in time order")
        last = hops[-1]
        outcome = j.get("outcome")
        if outcome == "dropped":
            r.check(last.get("kind") == "drop", where, "dropped, but the last hop is a %r" % last.get("kind"))
            r.check(j.get("drop_reason_code") == last.get("drop_reason_code") and j.get("drop_reason") == last.get("drop_reason"),
                    where, "drop_reason %r/%r, the last hop's %r/%r" % (j.get("drop_reason"), j.get("drop_reason_code"), last.get("drop_reason"), last.get("drop_reason_code")))
        elif outcome == "delivered":
            r.check(last.get("kind") == "trace" and last.get("point") in TERMINAL, where, "delivered, but the last hop is %r %r" % (last.get("kind"), last.get("point")))
        else:
            r.check(last.get("kind") != "drop" and not (last.get("kind") == "trace" and last.get("point") in TERMINAL),
                    where, "%s, but the last hop %r ends the journey" % (outcome, last.get("point")))
        if "stopped_at" in j:
            r.check(j["stopped_at"] == hop_place(last), where, "stopped_at %r, the last hop is at %r" % (j["stopped_at"], hop_place(last)))
        # The VNI, and the source pod's identity it carries.
        tunnelled = [h for h in hops if "tunnel" in h]
        overlay = [h for h in hops if h.get("kind") == "trace" and h.get("point") == "from-overlay"]
        if tunnelled:
            r.check(j.get("vni_source") == "vxlan-header" and j.get("vni") == tunnelled[0].get("vni"), where,
                    "vni %r (%r), the first tunnel header's is %r" % (j.get("vni"), j.get("vni_source"), tunnelled[0].get("vni")))
        elif overlay:
            r.check(j.get("vni_source") == "tunnel-key" and j.get("vni") == overlay[0].get("source_identity"), where,
                    "vni %r (%r), the first from-overlay trace's source identity is %r" % (j.get("vni"), j.get("vni_source"), overlay[0].get("source_identity")))
        else:
            r.check("vni" not in j, where, "vni %r without a tunnel header or from-overlay trace" % j.get("vni"))
        src, dst = self.pod_name(j.get("source", "")), self.pod_name(j.get("destination", ""))
        if "vni" in j and src is not None:
            r.check(j["vni"] == src.get("identity"), where, "vni %r, the source pod %s's identity is %r" % (j["vni"], src.get("name"), src.get("identity")),
                    kind="vni is not the source pod's identity")
            r.checked["vni = source pod identity"] += 1
        for field, pod in (("source_pod", src), ("destination_pod", dst)):
            want = None if pod is None else "%s/%s" % (pod.get("namespace", "default"), pod.get("name"))
            r.check(j.get(field) == want, where, "%s %r, the recording's pod there is %r" % (field, j.get(field), want))


def check_pairs(journeys, report):
    by_id = {}
    for j in journeys:
        if j.get("id") in by_id:
            report.fail("journey %r" % j.get("id"), "id used twice")
        by_id[j.get("id")] = j
    for n, j in enumerate(journeys):
        where = "journey %r" % j.get("id")
        role = j.get("role")
        if role not in ("request", "reply"):
            continue
        p = by_id.get(j.get("paired_with"))
        if not report.check(p is not None, where, "paired_with %r is no journey of the output" % j.get("paired_with")):
            continue
        report.check(p.get("paired_with") == j.get("id") and p.get("role") == ("reply" if role == "request" else "request"),
                     where, "paired with %r, which is a %r paired with %r" % (p.get("id"), p.get("role"), p.get("paired_with")))
        if role == "request":
            report.check(n + 1 < len(journeys) and journeys[n + 1] is p, where, "its reply's record does not follow it")
            req, rep = j, p
        else:
            req, rep = p, j
        report.check(j.get("vnis") == {"request": req.get("vni"), "reply": rep.get("vni")}, where,
                     "vnis %r, the request's vni is %r and the reply's %r" % (j.get("vnis"), req.get("vni"), rep.get("vni")))
        if role == "request":
            report.check(same_ip(j.get("source", ""), p.get("destination", "")) and same_ip(j.get("destination", ""), p.get("source", "")),
                         where, "its reply %r goes %r -> %r" % (p.get("id"), p.get("source"), p.get("destination")))
            report.checked["request/reply pairs"] += 1


def percentile_ok(reported, values, p):
    """vxmon's histogram percentile: the least value of the bucket holding the rank (<= 1/64 under)."""
    if not values:
        return reported == 0
    s = sorted(max(v, 0) for v in values)
    rank = max(math.ceil(len(s) * p), 1)
    true = s[rank - 1]
    return reported in s and reported <= true and true - reported <= true / 64


def check_summary(summary, journeys, checker, report):
    r = report
    rec = checker.rec
    where = "journey_summary"
    ip_events = len(checker.journey_events)
    r.check(summary["events"] == rec.samples, where, "events %d, the recording has %d samples" % (summary["events"], rec.samples))
    r.check(summary["events"] == summary["hops"] + summary["hops_past_limit"] + summary["events_of_no_journey"], where,
            "events %d != hops %d + hops_past_limit %d + events_of_no_journey %d" % (summary["events"], summary["hops"], summary["hops_past_limit"], summary["events_of_no_journey"]))
    r.check(summary["hops"] + summary["hops_past_limit"] == ip_events, where,
            "hops + hops_past_limit = %d, the recording has %d trace/drop/policy-verdict events with an IP packet" % (summary["hops"] + summary["hops_past_limit"], ip_events))
    r.check(summary["events_of_no_journey"] == rec.samples - ip_events, where,
            "events_of_no_journey %d, the recording has %d events without an IP packet" % (summary["events_of_no_journey"], rec.samples - ip_events))
    r.check(summary["shown"] == len(journeys), where, "shown %d, %d journey records" % (summary["shown"], len(journeys)))
    r.check(summary["journeys"] >= summary["shown"], where, "journeys %d < shown %d" % (summary["journeys"], summary["shown"]))
    tally = collections.Counter(j.get("outcome") for j in journeys)
    r.check(summary["outcomes"] == {o: tally.get(o, 0) for o in ("delivered", "dropped", "lost", "unfinished")}, where,
            "outcomes %r, the records have %r" % (summary["outcomes"], dict(tally)))
    r.check(summary["complete"] == sum(1 for j in journeys if j.get("complete")), where, "complete %d" % summary["complete"])
    r.check(summary["missing_hops"] == sum(len(j.get("missing", [])) for j in journeys), where, "missing_hops %d" % summary["missing_hops"])
    r.check(summary["lost_samples"] == rec.lost_samples and summary["lost_records"] == rec.lost_records, where,
            "lost %d samples in %d records, the recording %d in %d" % (summary["lost_samples"], summary["lost_records"], rec.lost_samples, rec.lost_records))
    requests = sum(1 for j in journeys if j.get("role") == "request")
    listed = sum(len(j.get("hops", [])) for j in journeys)
    extra = sum(j.get("extra_hops", 0) for j in journeys)
    r.check(summary["pairs"] >= requests, where, "pairs %d < %d request records" % (summary["pairs"], requests))
    unused = [e for e in checker.journey_events if id(e) not in checker.used]
    if summary["shown"] == summary["journeys"]:
        closes = collections.Counter(j.get("close_reason") for j in journeys)
        r.check(summary["timed_out"] == closes.get("timeout", 0) and summary["evicted"] == closes.get("evicted", 0)
                and summary["superseded"] == closes.get("superseded", 0), where,
                "timed_out %d / evicted %d / superseded %d, the records' close reasons %r"
                % (summary["timed_out"], summary["evicted"], summary["superseded"], dict(closes)))
        # Every journey is shown: every event with an IP packet is a hop of exactly one of them.
        r.check(summary["pairs"] == requests, where, "pairs %d, %d request records" % (summary["pairs"], requests))
        r.check(summary["hops"] == listed and summary["hops_past_limit"] == extra, where,
                "hops %d / past limit %d, the records list %d hops and %d past the limit" % (summary["hops"], summary["hops_past_limit"], listed, extra))
        r.check(len(unused) == extra, where, "%d events with an IP packet are in no journey (%d hops past the limit): first at record %s, %s %s %s" % (
            len(unused), extra, unused[0].index if unused else "-", unused[0].node if unused else "", unused[0].point if unused else "", unused[0].time_ns if unused else ""))
        for e in unused:
            r.check(any(j.get("extra_hops", 0) > 0 and key_matches(j, e.key) for j in journeys), where,
                    "the event at record %d (%s %s) is in no journey" % (e.index, e.node, e.point), kind="event in no journey")
        r.checked["events each in one journey"] += ip_events - len(unused)
    else:
        r.check(listed <= summary["hops"] and extra <= summary["hops_past_limit"], where, "the records list more hops than the summary counts")
    # Paths, recomputed from the records.
    paths = collections.OrderedDict()
    for j in journeys:
        hops = j.get("hops", [])
        if not hops:
            continue
        if j.get("outcome") in ("delivered", "dropped"):
            end = hops[-1].get("node")
        else:
            pod = checker.pod_name(j.get("destination", ""))
            end = pod.get("node") if pod is not None and pod.get("node") else None
        paths.setdefault((hops[0].get("node"), end), []).append(j)
    got = {(p["source_node"], p["destination_node"]): p for p in summary["paths"]}
    r.check(sum(p["journeys"] for p in summary["paths"]) + summary["journeys_on_further_paths"] == summary["shown"], where,
            "the paths' journeys do not add up to shown")
    if summary["journeys_on_further_paths"] == 0:
        r.check(set(got) == set(paths), where, "paths %s, the records make %s" % (sorted(got, key=str), sorted(paths, key=str)))
    for key, js in paths.items():
        p = got.get(key)
        if p is None:
            continue
        pw = "%s path %s -> %s" % (where, key[0], key[1])
        complete = [j for j in js if j.get("complete")]
        r.check(p["journeys"] == len(js) and p["complete"] == len(complete) and p["incomplete"] == len(js) - len(complete), pw,
                "journeys %d / complete %d / incomplete %d, the records %d / %d" % (p["journeys"], p["complete"], p["incomplete"], len(js), len(complete)))
        tally = collections.Counter(j.get("outcome") for j in js)
        r.check(p["outcomes"] == {o: tally.get(o, 0) for o in ("delivered", "dropped", "lost", "unfinished")}, pw, "outcomes %r" % p["outcomes"])
        # An incomplete journey stopped at its last hop; one delivered with a gap, at its first missing
        # hop (a node not known is `the far node`, a node without a name `-`: both null in the records).
        stops = collections.Counter()
        for j in js:
            if j.get("complete"):
                continue
            if j.get("outcome") == "delivered" and j.get("missing"):
                m = j["missing"][0]
                stops["delivered without %s on %s" % (m.get("point"), m.get("node") or "-")] += 1
            else:
                stops["%s %s" % (j["hops"][-1].get("node") or "-", j["hops"][-1].get("point"))] += 1
        if len(stops) <= 64:
            said = collections.Counter()
            for s in p["stopped_at"]:
                w = s["where"]
                if w.startswith("delivered without ") and w.endswith(" on the far node"):
                    w = w[:-len("the far node")] + "-"
                said[w] += s["journeys"]
            r.check(said == stops, pw, "stopped_at %r, the records %r" % (p["stopped_at"], dict(stops)))
        ends = [j.get("latency_ns", 0) for j in complete]
        e2e = p["end_to_end"]
        r.check(e2e["count"] == len(ends) and e2e["max_ns"] == max([max(v, 0) for v in ends] or [0]), pw,
                "end_to_end %r, the complete journeys' latency_ns %r" % (e2e, ends))
        r.check(percentile_ok(e2e["p50_ns"], ends, 0.5) and percentile_ok(e2e["p99_ns"], ends, 0.99), pw,
                "end_to_end p50/p99 %d/%d do not fit the latencies %r" % (e2e["p50_ns"], e2e["p99_ns"], sorted(ends)))
        steps = collections.OrderedDict()
        for j in complete:
            hs = j["hops"]
            for i in range(1, len(hs)):
                a, b = hs[i - 1], hs[i]
                if a.get("node") == b.get("node"):
                    label = "%s -> %s" % (a.get("point"), b.get("point"))
                else:
                    label = "%s %s -> %s %s" % (a.get("node") or "-", a.get("point"), b.get("node") or "-", b.get("point"))
                steps.setdefault(label, []).append(b.get("delta_ns", 0))
        if len(steps) <= 64:
            r.check([s["step"] for s in p["hops"]] == list(steps), pw, "steps %r, the records make %r" % ([s["step"] for s in p["hops"]], list(steps)))
        for s in p["hops"]:
            values = steps.get(s["step"], [])
            r.check(s["count"] == len(values) and s["max_ns"] == max([max(v, 0) for v in values] or [0]), pw,
                    "step %r count %d max %d, the records' delta_ns %r" % (s["step"], s["count"], s["max_ns"], values))
            r.check(percentile_ok(s["p50_ns"], values, 0.5) and percentile_ok(s["p99_ns"], values, 0.99), pw,
                    "step %r p50/p99 %d/%d do not fit the delta_ns %r" % (s["step"], s["p50_ns"], s["p99_ns"], sorted(values)))
        r.checked["paths"] += 1
    corrected_pairs = set()
    for c in summary["clock_offsets"]:
        r.check(c["corrected"] == (abs(c["offset_ns"]) > c["bound_ns"]), where, "clock offset %r: corrected does not say |offset| > bound" % c)
        if c["corrected"]:
            corrected_pairs.add(frozenset((c["node_a"], c["node_b"])))
    for j in journeys:
        hs = j.get("hops", [])
        for i in range(1, len(hs)):
            if "clock_offset_ns" in hs[i]:
                r.check(frozenset((hs[i - 1].get("node"), hs[i].get("node"))) in corrected_pairs, "journey %r" % j.get("id"),
                        "hop %d is corrected, the summary corrects no clock between %s and %s" % (i, hs[i - 1].get("node"), hs[i].get("node")))


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recording", help="the .vxrec vxmon journey read")
    ap.add_argument("--json", help="vxmon journey -o json output")
    ap.add_argument("--yaml", help="vxmon journey -o yaml output")
    ap.add_argument("--summary", action="store_true", help="the output must end with a journey_summary record")
    ap.add_argument("--schema", default=os.path.join(here, "..", "..", "docs", "journey-schema.json"))
    ap.add_argument("--cilium", default="1.13", choices=["1.13", "latest"], help="the release vxmon was told (layouts)")
    a = ap.parse_args(argv)
    if not a.json and not a.yaml:
        ap.error("give --json and/or --yaml")

    with open(a.schema, encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    report = Report()
    rec = vxrec_events.read(a.recording, release=a.cilium)
    if rec.truncated:
        report.fail(a.recording, "the recording ends inside a record")

    outputs = []
    if a.json:
        outputs.append(("json", load_json(a.json, validator, report)))
    if a.yaml:
        docs = load_yaml(a.yaml, validator, report)
        if a.json:
            objects = outputs[0][1]
            report.check(len(docs) == len(objects), a.yaml, "%d YAML documents, %d JSON lines" % (len(docs), len(objects)))
            for n, (d, o) in enumerate(zip(docs, objects), 1):
                if report.check(d == o, "%s doc %d" % (a.yaml, n), "the YAML document differs from JSON line %d" % n):
                    report.check(key_order(d) == key_order(o), "%s doc %d" % (a.yaml, n), "keys in another order than JSON line %d" % n)
        outputs.append(("yaml", docs))

    for name, objects in outputs:
        journeys, summary = split_records(objects, name, a.summary, report)
        checker = Checker(rec, report)
        for j in journeys:
            if isinstance(j, dict):
                checker.check_journey(j, "%s journey %r" % (name, j.get("id")))
                report.checked["%s journeys" % name] += 1
        check_pairs([j for j in journeys if isinstance(j, dict)], report)
        if isinstance(summary, dict) and validator.is_valid({"journey_summary": summary}):
            check_summary(summary, [j for j in journeys if isinstance(j, dict)], checker, report)

    print("checked: " + ", ".join("%d %s" % (v, k) for k, v in sorted(report.checked.items())))
    if report.problems:
        for kind, n in report.kinds.items():
            if n > 5:
                print("  ... %d problems of this kind in total: %s" % (n, kind[:120]))
        print("%d problem(s)" % report.problems)
        return 1
    print("journey output valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
