#!/usr/bin/env python3
"""Helpers for bench/api.sh (standard library only).

  tools.py startup BIN RUNS        time from exec to /readyz 200 on an empty SQLite data dir
  tools.py count BASE TOKEN        number of agents (walks the cursor pages)
  tools.py seed BASE TOKEN N       create agents until there are at least N
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def startup(binary, runs):
    times = []
    for _ in range(runs):
        port = free_port()
        with tempfile.TemporaryDirectory() as data:
            env = dict(os.environ, MONTI_DATA_DIR=data, MONTI_LOG_LEVEL="warn")
            env.pop("MONTI_DATABASE_URL", None)
            start = time.perf_counter()
            proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while not ready(port):
                if proc.poll() is not None or time.perf_counter() - start > 10:
                    raise SystemExit("server did not become ready")
                time.sleep(0.0005)
            times.append((time.perf_counter() - start) * 1000)
            proc.terminate()
            proc.wait()
    print(f"startup to ready (empty SQLite data dir, {runs} runs): "
          f"min {min(times):.1f} ms, median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")


def request(base, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def count(base, token):
    total, cursor = 0, None
    while True:
        page = request(base, token, "GET", "/api/v1/agents?limit=500" + (f"&cursor={cursor}" if cursor else ""))
        total += len(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return total


def seed(base, token, target):
    have = count(base, token)
    missing = max(0, target - have)
    stamp = int(time.time() * 1000)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: request(base, token, "POST", "/api/v1/agents",
                                        {"name": f"Seed agent {stamp}-{i}", "skills": ["seed"]}), range(missing)))
    return have + missing


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "startup":
        startup(sys.argv[2], int(sys.argv[3]))
    elif cmd == "count":
        print(count(sys.argv[2], sys.argv[3]))
    elif cmd == "seed":
        print(seed(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    else:
        raise SystemExit(__doc__)
