#!/usr/bin/env python3
"""A raw HTTP/2 client (Python's h2, not gRPC) that ignores the server's stream limit, against a node's
observer: the oracle of what goes on the wire.

    hubble_h2_refused.py PROTO_DIR HOST PORT EXPECTED_LIMIT

It reads the server's SETTINGS (SETTINGS_MAX_CONCURRENT_STREAMS must be EXPECTED_LIMIT), acknowledges
them, opens that many GetFlows follow streams (number=1, follow=true) and waits until each has
received a flow, then opens one more stream, which the server must refuse alone: RST_STREAM with
REFUSED_STREAM on that stream, no GOAWAY. The first streams then go on: each receives another flow
(something must make flows on the node meanwhile), a PING is answered, and after one of them is
cancelled a new stream is served in its place. Last, a client that goes on opening streams over the
limit: the server refuses them one by one, and past 200 refusals in 10 s ends the connection with
GOAWAY ENHANCE_YOUR_CALM instead of working for each. Prints one line per check; exits 1 on the
first failure."""
import socket
import struct
import sys
import time

from vxmon_protos import compile_protos

try:
    import h2  # noqa: F401
except ImportError:
    # Debian's python3-h2 (scripts/setup.sh) when python3 is another installation of the same version.
    sys.path.append("/usr/lib/python3/dist-packages")
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
import h2.events as events
from h2.settings import SettingCodes


def fail(message):
    print("hubble_h2_refused: FAIL: " + message, flush=True)
    sys.exit(1)


def ok(message):
    print("hubble_h2_refused: ok: " + message, flush=True)


class RudeConnection(H2Connection):
    """An h2 connection that opens streams over the peer's limit when `rude` is set."""
    rude = False

    @property
    def open_outbound_streams(self):
        return 0 if self.rude else super().open_outbound_streams


def main():
    proto_dir, host, port, expected = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    compile_protos(proto_dir)
    from observer import observer_pb2

    message = observer_pb2.GetFlowsRequest(number=1, follow=True).SerializeToString()
    body = struct.pack(">BI", 0, len(message)) + message
    headers = [(":method", "POST"), (":scheme", "http"), (":path", "/observer.Observer/GetFlows"),
               (":authority", f"{host}:{port}"), ("content-type", "application/grpc"), ("te", "trailers")]

    sock = socket.create_connection((host, port), timeout=20)
    conn = RudeConnection(H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())

    data_frames = {}
    responses = set()
    resets = {}
    state = {"settings": None, "goaway": None, "pong": False}

    def pump(until, seconds):
        deadline = time.time() + seconds
        while not until():
            if time.time() > deadline:
                return False
            sock.settimeout(max(0.05, deadline - time.time()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                if state.get("expect_goaway") and state["goaway"] is not None:
                    return True
                fail("the server closed the connection")
            for e in conn.receive_data(chunk):
                if isinstance(e, events.RemoteSettingsChanged):
                    if state["settings"] is None:
                        state["settings"] = {int(k): v.new_value for k, v in e.changed_settings.items()}
                elif isinstance(e, events.ResponseReceived):
                    responses.add(e.stream_id)
                elif isinstance(e, events.DataReceived):
                    data_frames[e.stream_id] = data_frames.get(e.stream_id, 0) + 1
                    conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, events.StreamReset):
                    resets[e.stream_id] = e.error_code
                elif isinstance(e, events.ConnectionTerminated):
                    state["goaway"] = e.error_code
                    if not state.get("expect_goaway"):
                        fail(f"GOAWAY {e.error_code!r} (last stream {e.last_stream_id})")
                    return True
                elif isinstance(e, events.PingAckReceived):
                    state["pong"] = True
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
        return True

    if not pump(lambda: state["settings"] is not None, 10):
        fail("no SETTINGS from the server")
    advertised = state["settings"].get(int(SettingCodes.MAX_CONCURRENT_STREAMS))
    if advertised != expected:
        fail(f"SETTINGS_MAX_CONCURRENT_STREAMS is {advertised} (None: not advertised), not {expected}: "
             f"{state['settings']}")
    ok(f"the server advertises SETTINGS_MAX_CONCURRENT_STREAMS {advertised}")

    def open_stream():
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers)
        conn.send_data(sid, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        return sid

    first = [open_stream() for _ in range(advertised)]
    if not pump(lambda: all(data_frames.get(s, 0) >= 1 for s in first), 30):
        fail(f"{sum(1 for s in first if data_frames.get(s, 0) >= 1)} of {advertised} streams served; "
             f"resets {resets}")
    ok(f"{advertised} follow streams open, each served a flow")

    conn.rude = True
    over = open_stream()
    conn.rude = False
    if not pump(lambda: over in resets, 10):
        fail(f"stream {over} (one over the limit) was not reset; responses {over in responses}")
    if resets[over] != ErrorCodes.REFUSED_STREAM:
        fail(f"stream {over} was reset with {resets[over]!r}, not REFUSED_STREAM")
    others = {s: c for s, c in resets.items() if s != over}
    if others:
        fail(f"other streams were reset too: {others}")
    ok(f"stream {over} (number {advertised + 1}) refused with RST_STREAM REFUSED_STREAM, alone")

    before = {s: data_frames.get(s, 0) for s in first}
    if not pump(lambda: all(data_frames.get(s, 0) > before[s] for s in first), 30):
        fail(f"{sum(1 for s in first if data_frames.get(s, 0) > before[s])} of {advertised} streams "
             "received a flow after the refusal")
    ok(f"the {advertised} streams go on: each received another flow after the refusal")

    conn.ping(b"vxmon-h2")
    sock.sendall(conn.data_to_send())
    if not pump(lambda: state["pong"], 10):
        fail("no PING acknowledgement after the refusal")
    ok("the connection answers PING")

    conn.reset_stream(first[0], ErrorCodes.CANCEL)
    sock.sendall(conn.data_to_send())
    again = open_stream()
    if not pump(lambda: data_frames.get(again, 0) >= 1 or again in resets, 10):
        fail(f"stream {again}, opened after one was cancelled, got nothing")
    if again in resets:
        fail(f"stream {again}, opened after one was cancelled, was reset with {resets[again]!r}")
    ok(f"after one stream was cancelled, stream {again} was served in its place")

    # A flood of streams over the limit: refused one by one, then the connection ends.
    state["expect_goaway"] = True
    refused_before = sum(1 for c in resets.values() if c == ErrorCodes.REFUSED_STREAM)
    conn.rude = True
    # Sent at once, without waiting for the refusals: on a loaded machine, waiting for each could
    # spread them over more than the server's 10 s window.
    try:
        for _ in range(250):
            open_stream()
    except (BrokenPipeError, ConnectionResetError):
        pass
    conn.rude = False
    if state["goaway"] is None:
        pump(lambda: state["goaway"] is not None, 10)
    refused = sum(1 for c in resets.values() if c == ErrorCodes.REFUSED_STREAM) - refused_before
    if state["goaway"] != ErrorCodes.ENHANCE_YOUR_CALM:
        fail(f"a flood of streams over the limit: GOAWAY {state['goaway']!r} after {refused} refusals, "
             "not ENHANCE_YOUR_CALM")
    if not 150 <= refused <= 201:
        fail(f"GOAWAY ENHANCE_YOUR_CALM after {refused} refused streams, not about 200")
    ok(f"a flood of streams over the limit: {refused} refused, then GOAWAY ENHANCE_YOUR_CALM")
    sock.close()
    print("hubble_h2_refused: all checks passed", flush=True)


if __name__ == "__main__":
    main()
