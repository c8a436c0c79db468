#!/usr/bin/env python3
"""A fake Cilium agent for vxmon's reconnect test: serves a recorded monitor-socket stream (protocol 1.2,
gob messages) on a Unix socket, the way Cilium's agent serves each listener.

    fake_cilium_agent.py SOCKET STREAM CUT

The first connection gets the stream's messages up to message CUT (the type definition included) and is
closed; the socket then goes away for a moment (an agent restart), comes back, and the second connection
gets the whole stream from its first message, as a new listener of a restarted agent does. Prints
"listening" once per start, on stdout."""
import os
import socket
import sys
import time


def messages(data):
    """Splits a gob stream at its length prefixes."""
    out, i = [], 0
    while i < len(data):
        first = data[i]
        if first < 0x80:
            length, prefix = first, 1
        else:
            n = 256 - first
            length, prefix = int.from_bytes(data[i + 1:i + 1 + n], "big"), 1 + n
        out.append(data[i:i + prefix + length])
        i += prefix + length
    return out


def serve(path, payload):
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    print("listening", flush=True)
    conn, _ = server.accept()
    conn.sendall(payload)
    time.sleep(0.3)
    conn.close()
    server.close()
    os.unlink(path)


def main():
    path, stream, cut = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(stream, "rb") as f:
        parts = messages(f.read())
    serve(path, b"".join(parts[:cut]))
    time.sleep(1.0)
    serve(path, b"".join(parts))


if __name__ == "__main__":
    main()
