#!/usr/bin/env python3
"""Hostile background traffic for the soak (bench/soak.sh with HOSTILE=1):
for SECONDS, without credentials, in parallel —

- declared: POST /api/verify announcing a 200 MB body, sending none (413);
- chunked: POST /api/keys with a chunked body of up to 20 MiB, read while sent (413);
- slow: POST /api/verify sending its 100-byte body a byte a second (408 at the
  runner's --request-timeout).

Prints `HOSTILE <kind> <requests> <unexpected>` per kind at the end;
"unexpected" is any answer other than the one above (a 500, no answer).

    bench/hostile.py URL SECONDS
"""

import socket
import sys
import threading
import time
from urllib.parse import urlparse

url = urlparse(sys.argv[1])
until = time.monotonic() + float(sys.argv[2])
counts = {}
lock = threading.Lock()


def record(kind, ok):
    with lock:
        n, bad = counts.get(kind, (0, 0))
        counts[kind] = (n + 1, bad + (0 if ok else 1))


def status_of(sock):
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    return int(data.split(b" ", 2)[1])


def connect():
    s = socket.create_connection((url.hostname, url.port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def declared():
    while time.monotonic() < until:
        with connect() as s:
            s.sendall(b"POST /api/verify HTTP/1.1\r\nhost: keygate\r\n"
                      b"content-type: application/json\r\ncontent-length: 209715200\r\n\r\n")
            record("declared", status_of(s) == 413)


def chunked():
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20))
    while time.monotonic() < until:
        with connect() as s:
            s.sendall(b"POST /api/keys HTTP/1.1\r\nhost: keygate\r\n"
                      b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")

            def send():
                try:
                    for _ in range(20):
                        s.sendall(chunk)
                    s.sendall(b"0\r\n\r\n")
                except OSError:
                    pass

            writer = threading.Thread(target=send)
            writer.start()
            try:
                record("chunked", status_of(s) == 413)
            except OSError:
                record("chunked", False)
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the server closed it first
            writer.join()


def slow():
    while time.monotonic() < until:
        with connect() as s:
            s.sendall(b"POST /api/verify HTTP/1.1\r\nhost: keygate\r\n"
                      b"content-type: application/json\r\ncontent-length: 100\r\n\r\n")
            done = threading.Event()

            def trickle():
                for _ in range(100):
                    if done.wait(1.0):
                        return
                    try:
                        s.sendall(b" ")
                    except OSError:
                        return

            writer = threading.Thread(target=trickle)
            writer.start()
            try:
                record("slow", status_of(s) == 408)
            except OSError:
                record("slow", False)
            done.set()
            writer.join()


threads = [threading.Thread(target=f) for f in (declared, declared, chunked, chunked, slow, slow)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for kind, (n, bad) in sorted(counts.items()):
    print(f"HOSTILE {kind} {n} {bad}", flush=True)
