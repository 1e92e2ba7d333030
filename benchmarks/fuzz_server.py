"""The full fuzz campaign against a real `ferkit serve` (issue 19): malformed uploads, WebSocket garbage and
protocol abuse, >= 10,000 inputs. Prints counts by status, 5xx, dropped connections, whether the server stayed
alive, its peak RSS above idle (from /proc), lines it wrote to its log, and the files it created while the
inputs ran (strace -f on the server process, every open/creat/mkdir/rename/link that creates a path).

    python -m benchmarks.fuzz_server                      # from the repository root; ~10 minutes on 2 cores
    python -m benchmarks.fuzz_server --uploads 500 --ws 200 --abuse 50   # a quick look

The inputs come from tests/server/fuzz_inputs.py (the test suite runs a small seeded share of them). The server
runs with its default settings (10 MB uploads, 40 Mpx) so the memory figure is the one users get. Exit status
1 when any target is missed: a 5xx, a dropped connection, a server death, a created file or a log line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.server.fuzz_inputs import extreme_aspects, image_inputs, large_images, request_for, ws_messages

CREATING = re.compile(r"O_CREAT|\bcreat\(|\bmkdir(at)?\(|\brename(at2?)?\(|\blink(at)?\(|\bsymlink(at)?\(")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def server_pid(parent: int, port: int) -> int:
    """The `ferkit serve` process strace started (found by its parent and its --port argument)."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"serve\0--port\0{port}".encode() in (proc / "cmdline").read_bytes() \
                    and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                return int(proc.name)
        except OSError:
            continue
    raise RuntimeError("the server process was not found")


class Campaign:
    def __init__(self, url: str):
        self.url = url
        self.status: Counter = Counter()
        self.by_family: dict[str, Counter] = {}
        self.server_errors: list[str] = []
        self.dropped: list[str] = []
        self.lock = threading.Lock()

    def record(self, area: str, family: str, outcome: str | int, note: str = "") -> None:
        with self.lock:
            self.status[f"{area} {outcome}"] += 1
            self.by_family.setdefault(area, Counter())[f"{family.split()[0]} {outcome}"] += 1
            if isinstance(outcome, int) and outcome >= 500:
                self.server_errors.append(f"{area} {family}: {outcome} {note[:200]}")

    # ------------------------------------------------------------ uploads
    def uploads(self, n: int, seed: int, clients: int, face) -> None:
        inputs = list(image_inputs(seed, n, face)) + list(extreme_aspects())
        rng = random.Random(seed)
        jobs = [(label, *request_for(rng, data)) for label, data in inputs]
        shards = [jobs[i::clients] for i in range(clients)]

        def run(shard):
            with httpx.Client(base_url=self.url, timeout=120, limits=httpx.Limits(max_connections=1)) as client:
                for label, kind, headers, body in shard:
                    try:
                        r = client.post("/api/v1/analyze", content=body, headers=headers)
                    except httpx.TransportError as e:  # the server closed or reset the connection mid-answer
                        self.dropped.append(f"upload {label} / {kind}: {type(e).__name__}: {e}")
                        self.record("upload", label, "dropped")
                        continue
                    ok_json = r.headers.get("content-type", "").startswith("application/json")
                    self.record("upload", label, r.status_code if ok_json else f"{r.status_code}-not-json", r.text)

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(run, shards))

    # ------------------------------------------------------------ the largest valid uploads, one at a time
    def large(self, pid: int) -> list[tuple[str, int, int, float]]:
        """(label, size, status, peak RSS above the RSS before it, MB) per upload; the peak is reset before each."""
        out = []
        with httpx.Client(base_url=self.url, timeout=300) as client:
            for label, data in large_images():
                before = rss_kb(pid, "VmRSS")
                Path(f"/proc/{pid}/clear_refs").write_text("5")
                r = client.post("/api/v1/analyze", files={"file": ("big", data, "application/octet-stream")})
                self.record("upload", label, r.status_code, r.text)
                out.append((label, len(data), r.status_code, (rss_kb(pid, "VmHWM") - before) / 1024))
        return out

    # ------------------------------------------------------------ WebSocket
    def websocket(self, n: int, seed: int, clients: int, face) -> None:
        messages = list(ws_messages(seed, n, face))
        shards = [messages[i::clients] for i in range(clients)]
        ws_url = self.url.replace("http://", "ws://") + "/api/v1/live"

        def run(shard):
            i = 0
            while i < len(shard):  # one socket for the whole shard, unless the server drops it
                with connect(ws_url, max_size=None, open_timeout=30) as ws:
                    ws.recv(timeout=30)  # hello
                    for label, message in shard[i:]:
                        i += 1
                        try:
                            ws.send(message)  # one at a time: each message gets its own answer
                            answer = json.loads(ws.recv(timeout=120))
                        except ConnectionClosed as e:
                            self.dropped.append(f"websocket {label}: {e}")
                            self.record("websocket", label, "dropped")
                            break
                        outcome = answer["type"]
                        if outcome == "error" and "server error" in answer["detail"]:
                            outcome = 500
                        self.record("websocket", label, outcome, json.dumps(answer))

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(run, shards))
        # a text message that is not UTF-8: RFC 6455 requires closing with 1007 (counted apart, not a drop)
        for _ in range(10):
            with connect(ws_url, max_size=None, open_timeout=30) as ws:
                ws.recv(timeout=30)
                ws.send(b"\xff\xfe\xfd", text=True)
                try:
                    ws.recv(timeout=30)
                    self.record("websocket", "invalid-utf8", "answered")
                except ConnectionClosed as e:
                    self.record("websocket", "invalid-utf8", f"closed-{e.rcvd.code if e.rcvd else 'no-frame'}")

    # ------------------------------------------------------------ protocol abuse on raw sockets
    def abuse(self, n: int, seed: int) -> None:
        rng = random.Random(seed)
        host, port = self.url.removeprefix("http://").split(":")
        ok = b"Host: 127.0.0.1\r\n"
        cases = [
            ("big-header", b"GET /healthz HTTP/1.1\r\n" + ok + b"X-A: " + b"a" * 2_000_000 + b"\r\n\r\n"),
            ("many-headers", b"GET /healthz HTTP/1.1\r\n" + ok + b"".join(b"X-%d: 1\r\n" % i for i in range(20000)) + b"\r\n"),
            ("bad-host", b"GET /api/v1/info HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
            ("no-host-1.0", b"GET /healthz HTTP/1.0\r\n\r\n"),
            ("cross-origin", b"POST /api/v1/analyze HTTP/1.1\r\n" + ok + b"Origin: https://evil.example\r\n"
                             b"Content-Type: image/png\r\nContent-Length: 4\r\n\r\nabcd"),
            ("slash-redirect", b"GET /api/v1/info/ HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            ("huge-length", b"POST /api/v1/analyze HTTP/1.1\r\n" + ok + b"Content-Type: image/png\r\n"
                            b"Content-Length: 99999999999999999999\r\n\r\n"),
            ("negative-length", b"POST /api/v1/analyze HTTP/1.1\r\n" + ok + b"Content-Type: image/png\r\nContent-Length: -5\r\n\r\n"),
            ("bad-chunked", b"POST /api/v1/analyze HTTP/1.1\r\n" + ok + b"Content-Type: image/png\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
            ("json-bomb", b"POST /api/v1/feedback HTTP/1.1\r\n" + ok + b"Content-Type: application/json\r\n"
                          b"Content-Length: 200000\r\n\r\n" + b"[" * 100000 + b"]" * 100000),
            ("deep-json", b"POST /api/v1/feedback HTTP/1.1\r\n" + ok + b"Content-Type: application/json\r\n"
                          b"Content-Length: 10000\r\n\r\n" + b"[" * 5000 + b"]" * 5000),
            ("garbage-line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200)),  # a TLS hello
            ("method", b"BREW /healthz HTTP/1.1\r\n" + ok + b"\r\n"),
            ("ws-cross-origin", b"GET /api/v1/live HTTP/1.1\r\n" + ok + b"Origin: https://evil.example\r\nUpgrade: websocket\r\n"
                                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
            ("ws-bad-version", b"GET /api/v1/live HTTP/1.1\r\n" + ok + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               b"Sec-WebSocket-Key: x\r\nSec-WebSocket-Version: 99\r\n\r\n"),
            ("path-traversal", b"GET /static/../../../../etc/passwd HTTP/1.1\r\n" + ok + b"\r\n"),
            ("encoded-traversal", b"GET /static/%2e%2e/%2e%2e/pyproject.toml HTTP/1.1\r\n" + ok + b"\r\n"),
        ]
        for i in range(n):
            if i < len(cases):
                name, raw = cases[i]
            else:
                name, raw = "random-request", (rng.choice([b"GET ", b"POST ", b""]) + rng.choice([b"/", b"/api/v1/analyze ", b""])
                                               + rng.randbytes(rng.randrange(0, 400)) + b"\r\n\r\n")
            try:
                answer = b""
                with socket.create_connection((host, int(port)), timeout=30) as s:
                    s.sendall(raw)
                    s.settimeout(5)  # a kept-alive connection stays open after its answer
                    try:
                        while not re.match(rb"HTTP/1\.[01] \d{3}", answer):
                            part = s.recv(65536)
                            if not part:
                                break
                            answer += part
                    except socket.timeout:
                        pass
                m = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
                self.record("abuse", name, int(m.group(1)) if m else "closed-no-answer", answer[:200].decode("latin-1"))
            except OSError:  # reset or closed while we were still sending: the server refused to read on
                self.record("abuse", name, "reset")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uploads", type=int, default=8000, help="malformed uploads (plus hand-made cases and seeds)")
    ap.add_argument("--ws", type=int, default=2400, help="WebSocket messages")
    ap.add_argument("--abuse", type=int, default=300, help="raw protocol-abuse requests")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args(argv)
    if shutil.which("strace") is None:
        print("needs strace (apt-get install strace) to watch for files the server creates", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="ferkit-fuzz-"))
    port = free_port()
    trace, log = work / "strace.log", open(work / "server.log", "w+")
    env = {**os.environ, "FERKIT_MUSIC_DB": str(work / "music.sqlite"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(["strace", "-f", "-qq", "--seccomp-bpf", "-ttt", "-o", str(trace), "-e",
                             "trace=open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,link,linkat,symlink,symlinkat",
                             sys.executable, "-m", "ferkit", "serve", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).json()["model_loaded"]:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "ferkit serve did not come up"
        time.sleep(0.2)
    pid = server_pid(proc.pid, port)
    face = None  # seed images are generated (fuzz_inputs.seed_images): the campaign needs no data set
    # warm up (first inference, lazy imports), then take the idle figures and mark where the campaign starts
    seed_png = next(data for label, data in image_inputs(1, 0) if label == "valid png-grey")
    for _ in range(3):
        httpx.post(f"{url}/api/v1/analyze", content=seed_png, headers={"Content-Type": "image/png"}, timeout=60)
    time.sleep(1)
    idle_rss = rss_kb(pid, "VmRSS")
    idle_hwm = rss_kb(pid, "VmHWM")
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak to now, so VmHWM is the campaign's peak
        peak_reset = True
    except OSError:
        peak_reset = False
    log.flush()
    log_at = os.path.getsize(work / "server.log")
    t_start = time.time()

    c = Campaign(url)
    phases = {}
    large = []
    try:
        t0 = time.perf_counter()
        if peak_reset:
            large = c.large(pid)
        phases["large"] = round(time.perf_counter() - t0, 1)
        time.sleep(1)
        mixed_start = rss_kb(pid, "VmRSS")  # the heap keeps some of what the large uploads took
        if peak_reset:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        for name, run in (("uploads", lambda: c.uploads(args.uploads, args.seed, args.clients, face)),
                          ("websocket", lambda: c.websocket(args.ws, args.seed, args.clients, face)),
                          ("abuse", lambda: c.abuse(args.abuse, args.seed))):
            t0 = time.perf_counter()
            run()
            phases[name] = round(time.perf_counter() - t0, 1)
            print(f"  {name}: {phases[name]} s", file=sys.stderr, flush=True)
        alive = proc.poll() is None and httpx.get(f"{url}/healthz", timeout=30).status_code == 200
        peak = rss_kb(pid, "VmHWM")
        end_rss = rss_kb(pid, "VmRSS")
        t_end = time.time()
    finally:
        if proc.poll() is None:
            os.kill(pid, 15)  # the server; strace exits with it
        proc.wait(60)
    log.close()

    created, watched = [], 0
    for line in trace.read_text(errors="replace").splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and t_start <= float(parts[1]) <= t_end:
            watched += 1  # proof that the watch was live: every traced file call in the window
            if CREATING.search(parts[2]) and "= -1" not in parts[2]:
                created.append(parts[2][:200])
    log_lines = [ln for ln in (work / "server.log").read_text(errors="replace")[log_at:].splitlines() if ln.strip()]

    total = sum(c.status.values())
    print(f"ferkit fuzz campaign against `ferkit serve` (default settings), seed {args.seed}, {args.clients} clients")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores ({_cpu_name()}), Python {platform.python_version()}")
    print(f"inputs: {total:,}  (phases: {', '.join(f'{k} {v} s' for k, v in phases.items())})")
    print("\ncounts by area and outcome:")
    for key, n in sorted(c.status.items()):
        print(f"  {key:40s} {n:6,}")
    print("\nby input family (area: family outcome):")
    for area, counter in c.by_family.items():
        line = ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))
        print(f"  {area}: {line}")
    n5xx = sum(n for k, n in c.status.items() if re.search(r" 5\d\d", k))
    print(f"\n5xx answers: {n5xx}")
    for e in c.server_errors[:10]:
        print(f"  {e}")
    print(f"dropped connections: {len(c.dropped)}")
    for e in c.dropped[:10]:
        print(f"  {e}")
    print(f"server alive at the end: {alive}")
    print(f"RSS: idle {idle_rss / 1024:.0f} MB (start-up peak {idle_hwm / 1024:.0f} MB); {mixed_start / 1024:.0f} MB "
          f"after the large uploads; peak of the mixed campaign ({args.clients} clients at once) {peak / 1024:.0f} MB"
          f"{'' if peak_reset else ' (peak not reset: includes start-up)'}, {(peak - mixed_start) / 1024:+.0f} MB above "
          f"its start, {(peak - idle_rss) / 1024:+.0f} MB above idle; at the end {end_rss / 1024:.0f} MB")
    print("largest valid uploads, one at a time (peak RSS above the RSS before each):")
    for label, size, status, mb in large:
        print(f"  {label:28s} {size / 1e6:5.1f} MB file  {status}  {mb:+6.0f} MB")
    print(f"files created by the server during the campaign (strace): {len(created)} "
          f"(of {watched:,} open/creat/mkdir/rename/link calls traced in that time)")
    for line in created[:10]:
        print(f"  {line}")
    print(f"lines the server wrote to its log during the campaign: {len(log_lines)}")
    for line in log_lines[:10]:
        print(f"  {line[:200]}")
    if os.environ.get("FERKIT_FUZZ_KEEP"):
        print(f"(kept: {work})")
        return 1
    worst = max([mb for *_, mb in large] + [(peak - mixed_start) / 1024])
    missed = n5xx or c.dropped or not alive or created or log_lines or worst > 300
    shutil.rmtree(work, ignore_errors=True)
    return 1 if missed else 0


def _cpu_name() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "unknown CPU")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    return f"{name}, {'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'}"


if __name__ == "__main__":
    sys.exit(main())
