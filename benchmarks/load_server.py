"""Load on the web app over loopback, beside the library's own rate on the same uploads, in one run.

For each --features setting (default: none, then all): first the library's rate (decode + analyze of the same
JPEGs, one process per core, as many photos as it can in --library-seconds); then `ferkit serve` (started here on a
free port, default settings) with POST /api/v1/analyze at 1, 4 and 16 concurrent clients, and live mode (WebSocket)
frames per second for --live-clients camera clients; then the library's rate again. Each server rate is given as a
share of the mean of the two library rates. With --baseline-src DIR, the server is also run from another checkout's src/ (an older ferkit) in the
same run, for a before/after figure.

    python benchmarks/load_server.py                      # the figures for the README and docs/web.md
    python benchmarks/load_server.py --requests 8 --live-seconds 2 --concurrency 1 4 --features none   # a quick check
    python benchmarks/load_server.py --baseline-src /tmp/before --features none --rounds 3   # CPU on a shared machine
    git worktree add /tmp/before 9ae720b && python benchmarks/load_server.py --baseline-src /tmp/before

Images are real FER-2013 faces ($FERKIT_DATA or ../shared/data/fer2013) in a 640x480 JPEG (uploads) and a
480x360 JPEG (live frames, the size the page sends). Every request must succeed: errors are counted,
printed, and make the exit status 1. Live clients behave like the page: at most 2 frames in flight.

Where an upload's time goes: "server CPU ms/req" is the CPU time of the server's processes over the level divided
by its requests, then split: "event loop" (the server's own process: HTTP, multipart, the hand-off to a worker and
the answer) and "workers" (the analysis workers: decoding, Recognizer.analyze, the result's JSON and the pipes).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def face_frames(faces: np.ndarray, width: int, height: int, detector: str, count: int = 8,
                detect_side: int | None = None) -> list[bytes]:
    """JPEGs of the first `count` of `faces` (real FER-2013 faces) that `detector` finds (at yunet's `detect_side`
    where given), one per frame."""
    from ferkit.detect import create_detector
    from ferkit.scenes import scene

    det = create_detector(detector, **({"long_side": detect_side} if detect_side else {}))
    out = []
    for face in faces[:400]:
        frame = scene(face, width, height, int(height * 0.45))
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok and len(det.detect(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))[0]) == 1:
            out.append(jpeg.tobytes())
        if len(out) == count:
            return out
    raise SystemExit(f"only {len(out)} detectable faces found for {width}x{height} frames")


def start_server(threads: int | None, detector: str | None, live_detector: str | None,
                 features: str = "", detect_side: int | None = None, src: str | None = None) -> tuple[subprocess.Popen, str]:
    """`ferkit serve` with its default process layout; `src`: run another checkout's src/ (a baseline)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "ferkit", "serve", "--port", str(port)] + (["--threads", str(threads)] if threads else []) \
        + (["--detector", detector] if detector else []) + (["--live-detector", live_detector] if live_detector else []) \
        + (["--detect-side", str(detect_side)] if detect_side else []) + (["--features", features] if features else [])
    env = dict(os.environ, PYTHONPATH=str(Path(src) / "src")) if src else None
    workers = 2  # the requests below reach every process before timing (uvicorn processes or analysis workers)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                for _ in range(4 * workers):  # every worker process must have loaded its model before timing
                    httpx.get(url + "/healthz", timeout=30)
                time.sleep(3)
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"ferkit serve did not start:\n{proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.2)


def server_cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU of the server process (the event loop) and of its children (the analysis workers), from
    /proc."""
    own = children = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if int(entry) == pid:
            own += seconds
        elif int(fields[1]) == pid:  # fields[1]: the parent's pid
            children += seconds
    return own, children


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


# ---------------------------------------------------------------- POST /api/v1/analyze
def analyze_request(host: str, image: bytes) -> bytes:
    """One complete HTTP/1.1 POST /api/v1/analyze (multipart, keep-alive), built once and sent as it is."""
    boundary = "ferkitload0123456789"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"face.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /api/v1/analyze HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length (what uvicorn sends for JSON)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next(int(l.split(b":", 1)[1]) for l in lines[1:] if l[:15].lower() == b"content-length:")
    return status, await reader.readexactly(length)


async def analyze_level(url: str, images: list[bytes], clients: int, requests: int, max_seconds: float) -> dict:
    """`clients` keep-alive connections, each sending its next request when the last is answered. The requests
    are built beforehand and written to the socket as they are (asyncio streams, no HTTP client library), so
    the load generator spends well under a millisecond of CPU a request: on a 2-core machine every
    millisecond it spends is one the server does not get. Each answer is still read whole and checked."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    wire = [analyze_request(f"{host}:{port}", image) for image in images]
    latencies: list[float] = []
    inside: list[float] = []   # the server's own elapsed_ms: decoding and analyze, in its worker thread
    errors: list[str] = []
    counter = iter(range(requests))
    deadline = time.perf_counter() + max_seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    writer.write(wire[i % len(wire)])
                    status, body = await asyncio.wait_for(read_response(reader), 60)
                    answer = json.loads(body)
                    if status != 200 or len(answer["faces"]) != 1:
                        errors.append(f"{status} {body[:80]!r}")
                        continue
                    inside.append(answer["elapsed_ms"])
                except Exception as e:  # a benchmark counts every failure, whatever its kind
                    errors.append(repr(e))
                    return  # the connection's state is unknown after a failure: this client stops
                latencies.append(time.perf_counter() - t0)
        finally:
            writer.close()

    reader, writer = await asyncio.open_connection(host, int(port))  # warm-up
    writer.write(wire[0])
    await read_response(reader)
    writer.close()
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return {"clients": clients, "requests": len(latencies), "errors": errors, "throughput": len(latencies) / wall,
            "p50_ms": pct(latencies, 50) * 1000, "p99_ms": pct(latencies, 99) * 1000,
            "inside_ms": statistics.mean(inside) if inside else float("nan")}


# ---------------------------------------------------------------- the library's own rate
def _library_worker(args) -> int:
    """One process: decode + analyze the uploads round and round for `seconds` -> photos done."""
    images, features, detect_side, threads, seconds, start_at = args
    from ferkit import load_recognizer
    from ferkit.images import decode_image

    rec = load_recognizer(features=features or None, threads=threads, detect_side=detect_side)
    for data in images:  # warm up
        rec.analyze(decode_image(data, "warm-up"))
    while time.time() < start_at:  # every process starts timing together
        time.sleep(0.01)
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        rec.analyze(decode_image(images[done % len(images)], "photo"))
        done += 1
    return done


def library_rate(images: list[bytes], features: str, detect_side: int | None, seconds: float) -> float:
    """Photos a second the library decodes and analyses with one process per core (the server's worker layout)."""
    import multiprocessing

    from ferkit.batch.local import default_workers

    n = default_workers()
    start_at = time.time() + 20  # model loading and warm-up first
    with multiprocessing.get_context("spawn").Pool(n) as pool:
        done = pool.map(_library_worker, [(images, features, detect_side, 1, seconds, start_at)] * n)
    return sum(done) / seconds


# ---------------------------------------------------------------- live mode (WebSocket)
async def live_client(ws_url: str, frames: list[bytes], seconds: float, in_flight: int = 2) -> dict:
    from websockets.asyncio.client import connect

    results, errors, rtts = 0, [], []
    sent_at: dict[int, float] = {}
    async with connect(ws_url + "/api/v1/live", max_size=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello"
        sent = answered = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            while sent - answered < in_flight:
                sent += 1
                sent_at[sent] = time.perf_counter()
                await ws.send(frames[sent % len(frames)])
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(0.01, end - time.perf_counter())))
            except asyncio.TimeoutError:
                break
            answered = max(answered, msg.get("frame") or answered)
            if msg["type"] == "result":
                results += 1
                rtts.append(time.perf_counter() - sent_at[msg["frame"]])
            else:
                errors.append(msg.get("detail", str(msg)))
        wall = time.perf_counter() - t0
    return {"fps": results / wall, "errors": errors, "rtt_p50_ms": pct(rtts, 50) * 1000, "rtt_p99_ms": pct(rtts, 99) * 1000,
            "dropped": sent - results - len(errors)}


async def live_level(url: str, frames: list[bytes], clients: int, seconds: float) -> list[dict]:
    ws_url = url.replace("http://", "ws://")
    return await asyncio.gather(*(live_client(ws_url, frames, seconds) for _ in range(clients)))


# ---------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16], help="concurrent upload clients per level")
    ap.add_argument("--requests", type=int, default=2000, help="requests per level (at most)")
    ap.add_argument("--max-seconds", type=float, default=15, help="time limit per level")
    ap.add_argument("--library-seconds", type=float, default=15, help="time the library's rate is measured over")
    ap.add_argument("--live-clients", type=int, default=3, help="live-mode camera clients (tabs), one face each")
    ap.add_argument("--live-seconds", type=float, default=15)
    ap.add_argument("--features", nargs="+", default=["none", "all"], help="ferkit serve --features, one run each")
    ap.add_argument("--threads", type=int, default=None, help="passed to ferkit serve --threads")
    ap.add_argument("--detector", default=None, help="passed to ferkit serve --detector (default: the server's, yunet)")
    ap.add_argument("--detect-side", type=int, default=None, help="passed to ferkit serve --detect-side (yunet's working size)")
    ap.add_argument("--live-detector", default=None, help="passed to ferkit serve --live-detector (default: the server's)")
    ap.add_argument("--baseline-src", default=None, help="another checkout whose server runs too, for a before/after")
    ap.add_argument("--rounds", type=int, default=1, help="run the servers this many times, in alternating order, and "
                    "give the medians (a shared machine's load moves between runs)")
    args = ap.parse_args()

    from ferkit.data import load_dataset
    from _data import cpu_name, fer2013  # --data, $FERKIT_DATA or ../shared/data/fer2013 (benchmarks/_data.py)

    faces = load_dataset(fer2013()).split("PrivateTest").pixels  # read once, framed twice
    from ferkit.detect import DEFAULT_DETECTOR

    uploads = face_frames(faces, 640, 480, args.detector or DEFAULT_DETECTOR, detect_side=args.detect_side)
    live_frames = face_frames(faces, 480, 360, args.live_detector or args.detector or DEFAULT_DETECTOR)
    print(f"ferkit web app load test on {platform.node()} ({os.cpu_count()} CPUs, {cpu_name()}); uploads: 640x480 "
          f"JPEGs with one real FER-2013 face; detector={args.detector or 'default'}"
          f"{f' at --detect-side {args.detect_side}' if args.detect_side else ''}")
    failed = False
    for features in args.features:
        features = "" if features == "none" else features
        # the library's rate before and after the server's runs, their mean the reference: a shared VM's speed
        # drifts by several per cent within minutes
        before = library_rate(uploads, features, args.detect_side, args.library_seconds)
        print(f"\n== features: {features or 'none'} ==\nlibrary (decode + analyze, one process per core), before the "
              f"servers: {before:.1f} photos/s")
        runs = [("this checkout", None)] + ([(f"baseline {args.baseline_src}", args.baseline_src)] if args.baseline_src else [])
        results: dict[str, list[list[tuple]]] = {label: [] for label, _ in runs}  # per run: each round's rows
        for round_ in range(args.rounds):
            for label, src in runs if round_ % 2 == 0 else runs[::-1]:  # alternating: drift hits every run alike
                bad, rows = run_level(args, uploads, live_frames, features, src, label)
                failed |= bad
                results[label].append(rows)
        after = library_rate(uploads, features, args.detect_side, args.library_seconds)
        lib = (before + after) / 2
        print(f"library after the servers: {after:.1f} photos/s; reference (mean) {lib:.1f} photos/s"
              + (f"\nmedians of {args.rounds} rounds:" if args.rounds > 1 else ""))
        for label, rounds in results.items():
            # per level: (clients, req/s, server CPU ms/req, event loop's, workers'), the median of the rounds
            levels = [(level[0][0], *(statistics.median(row[i] for row in level) for i in range(1, 5)))
                      for level in zip(*rounds)]
            print(f"  {label}: " + ", ".join(f"{c} clients {r:.1f} req/s = {100 * r / lib:.0f} % of the library"
                                           for c, r, *_ in levels))
            print(f"  {label}: server CPU ms/req " + ", ".join(
                f"{c} clients {cpu:.2f} (event loop {loop:.2f}, workers {workers:.2f})" for c, _, cpu, loop, workers in levels))
    if failed:
        print("\nFAILED: some requests had errors", file=sys.stderr)
    return 1 if failed else 0


def run_level(args, uploads, live_frames, features: str, src: str | None, label: str) -> tuple[bool, list[tuple]]:
    """Start a server, run the upload levels and the live clients, stop it -> (any errors, a row per level: clients,
    req/s, server CPU ms/req, the event loop's, the workers')."""
    proc, url = start_server(args.threads, args.detector, args.live_detector, features, args.detect_side, src)
    failed = False
    try:
        print(f"\nferkit serve ({label}), default processes, {url}")
        rates = []
        print(f"{'clients':>8} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'p99/p50':>8} {'server CPU ms/req':>18} {'event loop':>11} {'workers':>8} "
              f"{'client CPU ms/req':>18}")
        for c in args.concurrency:
            server0, client0 = server_cpu_seconds(proc.pid), time.process_time()
            r = asyncio.run(analyze_level(url, uploads, c, args.requests, args.max_seconds))
            loop_ms, workers_ms = (1000 * (b - a) / max(1, r["requests"])
                                   for a, b in zip(server0, server_cpu_seconds(proc.pid)))
            server_ms = loop_ms + workers_ms
            client_ms = 1000 * (time.process_time() - client0) / max(1, r["requests"])
            failed |= bool(r["errors"])
            rates.append((c, r["throughput"], server_ms, loop_ms, workers_ms))
            print(f"{c:>8} {r['requests']:>9} {len(r['errors']):>7} {r['throughput']:>8.1f} "
                  f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                  f"{r['p99_ms'] / r['p50_ms']:>8.2f} {server_ms:>18.2f} {loop_ms:>11.2f} {workers_ms:>8.2f} "
                  f"{client_ms:>18.1f}")
            for e in r["errors"][:5]:
                print(f"{'':>8} error: {e}")
        print(f"live mode: {args.live_clients} WebSocket clients, 480x360 JPEG frames with one face, at most 2 in "
              f"flight, {args.live_seconds:.0f} s")
        rows = asyncio.run(live_level(url, live_frames, args.live_clients, args.live_seconds))
        fps = [r["fps"] for r in rows]
        failed |= any(r["errors"] for r in rows)
        print(f"{'':>8} frames/s per client: {' '.join(f'{f:.1f}' for f in fps)} (min {min(fps):.1f}, "
              f"{sum(fps):.1f} in all); rtt p50 {statistics.mean(r['rtt_p50_ms'] for r in rows):.0f} ms, "
              f"errors {sum(len(r['errors']) for r in rows)}")
    finally:
        proc.terminate()
        proc.wait(30)
    return failed, rates


if __name__ == "__main__":
    sys.exit(main())
