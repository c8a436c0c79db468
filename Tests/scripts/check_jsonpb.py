#!/usr/bin/env python3
"""Checks `vxmon -o jsonpb` output with Google's protobuf library as the oracle.

    check_jsonpb.py PROTO_DIR [--cilium CILIUM_J_FILE [--cilium-text CILIUM_DEFAULT_FILE]] < lines

Every line must parse with `json_format.Parse` (strict: an unknown field or enum name fails) into
`observer.GetFlowsResponse` compiled from PROTO_DIR (vxmon's .proto subset, by grpcio-tools' protoc),
and round-trip: printed again with the proto field names and parsed again, it gives the same message,
and the same JSON object (timestamps compared as instants). With --cilium, line i is also compared with
line i of Cilium 1.13's `cilium monitor -j` output for the same events (trace events only): verdict,
event type, observation point, trace reason and is_reply from the CT state, identities, interface
index, and the addresses and ports of the packet (the inner ones for a tunnel packet, which Cilium 1.13
does not decode; its outer ones must then equal the `tunnel` field). With --cilium-text (Cilium's
default text of the same events, one line each), a trace's `orig-ip` there is the source Hubble reports
in `IP.source` (the packet's own source is what `-j` shows).
Prints one summary line; exits 1 on the first difference, saying which line and why."""
import json
import sys

from vxmon_protos import compile_protos


def normalise(value):
    """Timestamps as (seconds, nanos) strings, so 3, 6 and 9 fraction digits compare equal."""
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str) and len(value) > 20 and value.endswith("Z") and value[4] == "-" and value[10] == "T":
        head, _, frac = value[:-1].partition(".")
        return head + "." + (frac + "000000000")[:9]
    return value


def fail(message):
    print("check_jsonpb: " + message)
    sys.exit(1)


def main():
    proto_dir = sys.argv[1]
    cilium = None
    if "--cilium" in sys.argv:
        with open(sys.argv[sys.argv.index("--cilium") + 1]) as f:
            cilium = [json.loads(line) for line in f if line.strip()]
    originals = None
    if "--cilium-text" in sys.argv:
        import re
        with open(sys.argv[sys.argv.index("--cilium-text") + 1]) as f:
            originals = [m.group(1) if (m := re.search(r" orig-ip (\S+):", line)) else None for line in f]
    compile_protos(proto_dir)
    from google.protobuf import json_format
    from observer import observer_pb2

    count = flows = lost = 0
    for n, line in enumerate(sys.stdin, 1):
        line = line.rstrip("\n")
        message = observer_pb2.GetFlowsResponse()
        try:
            json_format.Parse(line, message)
        except json_format.ParseError as e:
            fail(f"line {n}: does not parse as GetFlowsResponse: {e}")
        printed = json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None)
        again = observer_pb2.GetFlowsResponse()
        json_format.Parse(printed, again)
        if again != message:
            fail(f"line {n}: the message changed in a round trip")
        if normalise(json.loads(printed)) != normalise(json.loads(line)):
            fail(f"line {n}: printed again it differs:\n  {line}\n  {printed}")
        count += 1
        kind = message.WhichOneof("response_types")
        flows += kind == "flow"
        lost += kind == "lost_events"
        if cilium is not None:
            compare(n, message.flow, cilium[n - 1], originals[n - 1] if originals else None)
    if cilium is not None and count != len(cilium):
        fail(f"{count} lines, Cilium's file has {len(cilium)}")
    print(f"check_jsonpb: {count} lines parse and round-trip ({flows} flows, {lost} lost events)")


REASONS = {"new": "NEW", "established": "ESTABLISHED", "reply": "REPLY", "related": "RELATED", "reopened": "REOPENED"}


def compare(n, flow, c, original=None):
    from flow import flow_pb2

    def want(what, got, expected):
        if got != expected:
            fail(f"line {n}: {what} is {got!r}, Cilium's event says {expected!r}")

    want("type", c["type"], "trace")
    want("verdict", flow_pb2.Verdict.Name(flow.verdict), "FORWARDED")
    want("event_type.type", flow.event_type.type, 4)
    want("trace_observation_point", flow_pb2.TraceObservationPoint.Name(flow.trace_observation_point),
         c["observationPoint"].upper().replace("-", "_"))
    state = c.get("state", "unknown")
    if state in REASONS:
        want("trace_reason", flow_pb2.TraceReason.Name(flow.trace_reason), REASONS[state])
        want("is_reply", flow.HasField("is_reply") and flow.is_reply.value, state == "reply")
        want("is_reply present", flow.HasField("is_reply"), True)
    else:
        want("is_reply present", flow.HasField("is_reply"), False)
    want("source.identity", flow.source.identity, c["srcLabel"])
    want("destination.identity", flow.destination.identity, c["dstLabel"])
    want("interface.index", flow.interface.index, int(c.get("ifindex", "0")))
    summary = c.get("summary", {})
    l3, l4 = summary.get("l3"), summary.get("l4")
    outer = flow.tunnel.IP if flow.HasField("tunnel") else flow.IP
    if l3:
        translated = original not in (None, "0.0.0.0", "::") and not flow.HasField("tunnel")
        want("IP.source (outer)", outer.source, original if translated else l3["src"])
        want("IP.destination (outer)", outer.destination, l3["dst"])
    if l4 and flow.HasField("tunnel"):
        want("tunnel UDP ports", (str(flow.tunnel.l4.UDP.source_port), str(flow.tunnel.l4.UDP.destination_port)),
             (l4["src"], l4["dst"]))
    elif l4:
        proto = flow.l4.WhichOneof("protocol")
        ports = getattr(flow.l4, proto) if proto in ("TCP", "UDP", "SCTP") else None
        want("l4 ports", (str(ports.source_port), str(ports.destination_port)) if ports else None, (l4["src"], l4["dst"]))


if __name__ == "__main__":
    main()
