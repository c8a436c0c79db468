#!/usr/bin/env python3
"""Hostile HTTP clients against vxmon's /metrics server, then a plain scrape.

  metrics_hostile.py HOST PORT [SECONDS]

Each check talks raw TCP (socket) or HTTP (http.client) to the server and records what came back:
- garbage bytes, a request line with no version, a header line without a colon: 400 or a closed
  connection, never a 200;
- POST /metrics: 405 with Allow: GET; GET /other: 404; HTTP/2.0 request line: 505;
- a 100 KiB header: 431 (the server reads at most 8 KiB of a request head), or the connection closed;
- slowloris: 30 connections that send a request one byte at a time, a byte per second, for SECONDS
  (default 6), and 300 connections that say nothing, all held open while plain scrapes are made:
  each of those scrapes must still get 200 and a body the text parser reads;
- a client that sends a request and never reads the response: the server must not wait for it.
Prints a JSON object with every outcome; exits 0 (the caller asserts).
"""
import http.client
import json
import socket
import sys
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

HOST, PORT = sys.argv[1], int(sys.argv[2])
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 6.0
results = {}


def raw(payload, read_timeout=15):
    """Sends payload on a fresh connection and returns the status line (or '' if closed silently)."""
    s = socket.create_connection((HOST, PORT), timeout=read_timeout)
    try:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return data.split(b"\r\n", 1)[0].decode("latin-1")
    finally:
        s.close()


def scrape():
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read().decode("utf-8")
        families = list(text_string_to_metric_families(body))
        return {"status": r.status, "families": len(families), "bytes": len(body)}
    except Exception as e:
        return {"error": repr(e)}
    finally:
        c.close()


results["garbage"] = raw(b"\x00\xff\x13garbage\r\n\r\n")
results["no_version"] = raw(b"GET /metrics\r\n\r\n")
results["header_without_colon"] = raw(b"GET /metrics HTTP/1.1\r\nHost localhost\r\n\r\n")
results["post"] = raw(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
results["other_path"] = raw(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
results["http2_line"] = raw(b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n")
results["huge_header"] = raw(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (100 << 10) + b"\r\n\r\n")

# A request whose response is never read: the server writes what the socket takes and moves on.
lazy = socket.create_connection((HOST, PORT), timeout=5)
lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
lazy.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")

stop = threading.Event()


def slowloris():
    conns = []
    for _ in range(30):
        try:
            conns.append(socket.create_connection((HOST, PORT), timeout=5))
        except OSError:
            pass
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 64
    i = 0
    while not stop.is_set() and i < len(request):
        for c in conns:
            try:
                c.send(request[i : i + 1])
            except OSError:
                pass
        i += 1
        stop.wait(1.0)
    for c in conns:
        c.close()


silent = []
for _ in range(300):
    try:
        silent.append(socket.create_connection((HOST, PORT), timeout=5))
    except OSError:
        break
results["silent_connections_opened"] = len(silent)
thread = threading.Thread(target=slowloris)
thread.start()
scrapes = []
deadline = time.monotonic() + SECONDS
while time.monotonic() < deadline:
    scrapes.append(scrape())
    time.sleep(0.5)
stop.set()
thread.join()
for c in silent:
    c.close()
lazy.close()
results["scrapes_under_attack"] = scrapes
results["scrape_after"] = scrape()
print(json.dumps(results))
