#!/usr/bin/env python3
"""Anonymous floods against `monti serve`: what they cost the server and other tenants.

  floods.py MONTI_BINARY PLUGIN_WASM [--seconds 15] [--connections N]

Starts `monti serve` on a fresh SQLite data directory with two tenants: `noisy` has a webhook
plugin padded to 31 MB installed and enabled, `calm` is the bystander. It measures the server's
idle RSS and tenant calm's API latency (GET /api/v1/agents, one request at a time), then for each
flood keeps its connections busy for that long (from another process, at nice 19 unless
--same-priority) while measuring again:

  unknown-hooks     (48 connections) POST /hooks/noisy/<made-up installation>/x and /hooks/<made-up tenant>/…/x
  uploads           (16) 30 MiB multipart bodies to POST /admin/plugins without a session
  csrf              (12) form posts to /login without a CSRF token
  ingest-anonymous  (4) 16 MiB NDJSON to POST /api/v1/events without a token
  ingest-oversize   (4) 16 MiB NDJSON of empty objects to POST /api/v1/events with noisy's token

Tenant calm calls from 127.0.0.1 and each flood from an address of its own (127.0.0.2, .3, …):
an attacker's address is not the tenants', and the server holds off an address whose anonymous
requests keep being refused (`http.anonymous_refusals_per_second`), so each flood starts with a
full budget.

Each line: the flood, connections it made and how many of them got an HTTP answer, peak RSS above idle (goal: at most 64 MB), tenant calm's
p50/p99 during the flood and p99 against the baseline (goal: at most 2x). Local addresses only;
every loop stops at its deadline.
"""
import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MIB = 1024 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cli(binary, data, *args):
    env = dict(os.environ, MONTI_DATA_DIR=data)
    env.pop("MONTI_DATABASE_URL", None)
    out = subprocess.run([binary, *args], env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def call(base, method, path, token=None, body=None, content_type=None):
    req = urllib.request.Request(base + path, method=method, data=body)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if content_type:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.read()


def pad(component, size):
    """The component with a custom section that brings it to `size` bytes."""
    name = b"monti-bench-padding"
    payload_len = max(0, size - len(component) - len(name) - 8)
    payload = bytes([len(name)]) + name + b"\0" * payload_len
    n, leb = len(payload), bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        leb.append(byte | (0x80 if n else 0))
        if not n:
            break
    return component + b"\0" + bytes(leb) + payload


def latencies(port, token, seconds, stop=None):
    """Tenant calm's GET /api/v1/agents, one at a time over one kept-alive connection (ms)."""
    out, deadline = [], time.monotonic() + seconds
    request = (
        f"GET /api/v1/agents?limit=50 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    sock = None
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            start = time.perf_counter()
            sock.sendall(request)
            read_response(sock)
            out.append((time.perf_counter() - start) * 1000)
        except OSError:
            sock = None
        time.sleep(0.005)
    if sock:
        sock.close()
    return out


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed")
        rest += chunk
    return head


def p(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def flood_worker(port, source, make_request, body_bytes, deadline, counter, lock):
    """One connection at a time: send the headers, then the body in 64 KiB chunks with blocking
    writes until the server answers and closes (or the body ends), read the answer, close.
    `counter` is [connections, answered]."""
    chunk = b"a" * 65536
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10,
                                          source_address=(source, 0)) as sock:
                sock.sendall(make_request(n))
                sent = 0
                try:
                    while sent < body_bytes and time.monotonic() < deadline:
                        sent += sock.send(chunk[: min(len(chunk), body_bytes - sent)])
                except OSError:
                    pass  # the server answered and closed before the body ended
                try:
                    answered = sock.recv(12).startswith(b"HTTP/1.1")
                except OSError:
                    answered = sent < body_bytes  # refused early; the reset ate the answer
                with lock:
                    counter[0] += 1
                    counter[1] += int(answered)
        except OSError:
            time.sleep(0.01)


def flood(port, source, make_request, body_bytes, seconds, connections, answered, niceness):
    """A process of its own (so the flood's threads do not hold up the measuring process), at
    lower priority unless asked otherwise: an attacker's own CPU is not the server's in
    production, and on one machine it would otherwise be the larger part of what is measured."""
    os.nice(niceness)
    counter, lock = [0, 0], threading.Lock()
    deadline = time.monotonic() + seconds
    workers = [threading.Thread(target=flood_worker, args=(port, source, make_request, body_bytes, deadline, counter, lock),
                                daemon=True) for _ in range(connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    answered[0].value, answered[1].value = counter


def run(args):
    binary, plugin = args.binary, args.plugin
    data = tempfile.mkdtemp(prefix="monti-floods-")
    cli(binary, data, "admin", "tenant", "create", "--slug", "noisy", "--name", "Noisy")
    cli(binary, data, "admin", "tenant", "create", "--slug", "calm", "--name", "Calm")
    token_a = cli(binary, data, "admin", "token", "create", "--tenant", "noisy", "--role", "tenant_admin")
    token_b = cli(binary, data, "admin", "token", "create", "--tenant", "calm", "--role", "tenant_admin")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, MONTI_DATA_DIR=data, MONTI_LOG_LEVEL="error")
    env.pop("MONTI_DATABASE_URL", None)
    server = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if call(base, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        with open(plugin, "rb") as f:
            component = pad(f.read(), 31 * MIB)
        status, body = call(base, "POST", "/api/v1/plugins", token_a, component, "application/wasm")
        installation = json.loads(body)["id"]
        config = json.dumps({"config": {"routes": {"/x": {"body": "ok"}}}, "enabled": True,
                             "approve_capabilities": True}).encode()
        call(base, "PATCH", "/api/v1/plugins/hostile-webhook", token_a, config, "application/json")
        for i in range(200):
            call(base, "POST", "/api/v1/agents", token_b,
                 json.dumps({"name": f"Agent {i}"}).encode(), "application/json")
        # A real hook request, so the plugin is loaded as in a running installation.
        call(base, "POST", f"/hooks/noisy/{installation}/x", body=b"{}")
        time.sleep(1)
        idle = rss_mib(server.pid)
        baseline = latencies(port, token_b, args.seconds / 2)
        base_p99 = p(baseline, 0.99)
        print(f"idle RSS {idle:.0f} MiB; tenant calm GET /api/v1/agents alone: "
              f"p50 {p(baseline, 0.5):.1f} ms, p99 {base_p99:.1f} ms ({len(baseline)} requests)")
        print(f"{'flood':<18} {'connections':>11} {'answered':>8} {'RSS above idle':>15} {'calm p50':>9} {'calm p99':>9} {'p99 vs alone':>13}")

        def req(method, path, extra, length=None):
            def make(n):
                p_ = path.replace("{n}", str(n))
                lines = [f"{method} {p_} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *extra]
                if length is not None:
                    lines.append(f"Content-Length: {length}")
                return ("\r\n".join(lines) + "\r\n\r\n").encode()
            return make

        # Connections per flood as the probe that found these used them (issue 14).
        floods = [
            ("unknown-hooks", 48, lambda n: req("POST", "/hooks/noisy/inst_{n}/x" if n % 2
                                                else "/hooks/t{n}/inst_{n}/x", [], 1024)(n), 1024),
            ("uploads", 16, req("POST", "/admin/plugins", ["Content-Type: multipart/form-data; boundary=x"],
                                30 * MIB), 30 * MIB),
            ("csrf", 12, req("POST", "/login", ["Content-Type: application/x-www-form-urlencoded"], 30), 30),
            ("ingest-anonymous", 4, req("POST", "/api/v1/events", ["Content-Type: application/x-ndjson"],
                                        16 * MIB), 16 * MIB),
            ("ingest-oversize", 4, req("POST", "/api/v1/events",
                                       ["Content-Type: application/x-ndjson", f"Authorization: Bearer {token_a}"],
                                       16 * MIB), 16 * MIB),
        ]
        if args.connections:
            floods = [(name, args.connections, make, size) for name, _, make, size in floods]
        for number, (name, connections, make, size) in enumerate(floods):
            answered = (multiprocessing.Value("q", 0), multiprocessing.Value("q", 0))
            flooder = multiprocessing.Process(target=flood,
                                              args=(port, f"127.0.0.{2 + number}", make, size, args.seconds,
                                                    connections, answered,
                                                    0 if args.same_priority else 19))
            peak = [idle]
            stop = threading.Event()

            def watch():
                while not stop.is_set():
                    peak[0] = max(peak[0], rss_mib(server.pid))
                    time.sleep(0.05)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            flooder.start()
            time.sleep(0.5)
            during = latencies(port, token_b, args.seconds - 1)
            flooder.join()
            stop.set()
            watcher.join()
            ratio = p(during, 0.99) / base_p99 if base_p99 else float("nan")
            print(f"{name:<18} {answered[0].value:>11} {answered[1].value:>8} {peak[0] - idle:>11.0f} MiB {p(during, 0.5):>7.1f}ms "
                  f"{p(during, 0.99):>7.1f}ms {ratio:>12.2f}x")
            time.sleep(1)
        print(f"RSS after all floods: {rss_mib(server.pid):.0f} MiB (idle was {idle:.0f} MiB)")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("plugin")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=0,
                        help="connections per flood (default: as the issue's probe: 48, 16, 12, 4, 4)")
    parser.add_argument("--same-priority", action="store_true",
                        help="run the flood at the server's priority (it then competes for the same CPU)")
    run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
