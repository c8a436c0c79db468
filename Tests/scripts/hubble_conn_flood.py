#!/usr/bin/env python3
"""A flood of TCP connections to a node's observer that never speak, held until told to let go.

    hubble_conn_flood.py HOST PORT COUNT READY_FILE RELEASE_FILE OUT_JSON [MAX_SECONDS]

Connects COUNT times (non-blocking, 2 s per connection at most: past the listen backlog connects may
hang), waits a second, then counts the connections the server closed (a read returns end of file at
once: refused) and those still open (a read would block), writes both to OUT_JSON and creates
READY_FILE. Then holds everything until RELEASE_FILE exists (or MAX_SECONDS, 120 by default), closes
all, and rewrites OUT_JSON with the final counts. Exits 0."""
import errno
import json
import os
import select
import socket
import sys
import time


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ready, release, out_path = sys.argv[4], sys.argv[5], sys.argv[6]
    max_seconds = float(sys.argv[7]) if len(sys.argv) > 7 else 120.0

    pending, failed = [], 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((host, port))
        if rc not in (0, errno.EINPROGRESS):
            failed += 1
            s.close()
            continue
        pending.append(s)
    # Wait for the handshakes (the kernel completes them from the backlog, accepted or not).
    connected = []
    deadline = time.time() + 2.0
    while pending and time.time() < deadline:
        _, writable, _ = select.select([], pending, [], max(0.0, deadline - time.time()))
        for s in writable:
            pending.remove(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.append(s)
            else:
                failed += 1
                s.close()
    unfinished = len(pending)
    time.sleep(1.0)

    def classify():
        closed, open_ = 0, 0
        for s in connected:
            try:
                data = s.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                closed += 1 if data == b"" else 0
                open_ += 0 if data == b"" else 1
            except BlockingIOError:
                open_ += 1
            except (ConnectionResetError, OSError):
                closed += 1
        return closed, open_

    def write(phase):
        closed, open_ = classify()
        report = {"phase": phase, "requested": count, "connected": len(connected), "unfinished": unfinished,
                  "failed": failed, "closed_by_server": closed, "open": open_}
        with open(out_path + ".tmp", "w") as f:
            json.dump(report, f)
        os.rename(out_path + ".tmp", out_path)
        print(f"hubble_conn_flood: {report}", flush=True)

    write("held")
    open(ready, "w").close()
    deadline = time.time() + max_seconds
    while not os.path.exists(release) and time.time() < deadline:
        time.sleep(0.1)
    write("released")
    for s in connected + pending:
        s.close()


if __name__ == "__main__":
    main()
