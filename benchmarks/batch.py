"""`ferkit batch` throughput, side by side in one run: photos/s for the local engine at 1 and 2 workers and the Ray
engine on one and two single-CPU nodes (a real loopback cluster: `ray start --head` then `ray start --address`),
the Ray engine's rate when actors keep dying (poisoned photos that kill the actor reading them: their chunks are
retried task by task on the actors), the work per minute of 640x480 video sampled at 5 fps, and the driver's peak
memory on a large manifest.

    python benchmarks/batch.py [--photos 3000] [--video-seconds 60] [--no-ray] [--detect-side PX]
                               [--poison 4] [--rss-entries 100000]

Photos: 640x480 JPEGs with one face each (the public-domain astronaut of ../shared/samples, shifted). Each figure
is the steady rate: images analysed over the span from the first Recognizer.analyze_many call to the last, across
all workers (timestamps logged by each worker; decoding and hand-offs included, worker start-up not: the wall time
with start-up is printed beside it), and the workers' CPU time per image over that span, which concurrent load
on the machine inflates less than the rates. 960 photos are 60 chunks of 16: the steady rate a long run sees
(with 240, 15 chunks, one of two workers does 8 and the other 7, idle for the last eighth of the span). Video: a
synthetic clip of the same face moving, written here at 30 fps; seconds of work per minute of video for one
worker, scaled from the clip's length.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferkit.batch.inputs import chunks, plan
from ferkit.batch.local import local_engine
from ferkit.batch.work import RecognizerSpec

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT.parent / "shared" / "samples" / "astronaut.png"


def frame(shift: int) -> np.ndarray:
    img = cv2.resize(cv2.imread(str(ASTRONAUT)), (400, 400))
    out = np.full((480, 640, 3), 90, np.uint8)
    x = 120 + shift
    out[40:440, x:x + 400] = img
    return out


def make_photos(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        p = folder / f"photo_{i:04d}.jpg"
        cv2.imwrite(str(p), frame(i % 200 - 100), [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(str(p))
    return paths


def make_video(path: Path, seconds: float, fps: float = 30.0) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    n = int(seconds * fps)
    for i in range(n):
        writer.write(frame(int(100 * np.sin(2 * np.pi * i / (4 * fps)))))
    writer.release()
    return str(path)


@dataclass(frozen=True)
class TimedSpec(RecognizerSpec):
    """Each worker's Recognizer, with the start and end of each analyze_many call logged to a file per process."""
    log: str = ""

    def load(self):
        return _Timed(super().load(), Path(self.log) / f"{socket.gethostname()}-{os.getpid()}.txt")


@dataclass(frozen=True)
class PoisonSpec(TimedSpec):
    """TimedSpec whose worker process dies (os._exit) on any image 333 pixels wide: an actor that crashes."""

    def load(self):
        rec = super().load()
        rec.poison = True
        return rec


class _Timed:
    def __init__(self, rec, path: Path):
        self.rec, self.path, self.poison = rec, path, False

    def __getattr__(self, name):
        return getattr(self.rec, name)

    def analyze_many(self, images):
        if self.poison and any(img.shape[1] == 333 for img in images):
            os._exit(9)
        t0, c0 = time.time(), time.process_time()
        faces = self.rec.analyze_many(images)
        with open(self.path, "a") as fh:
            fh.write(f"{t0} {time.time()} {len(images)} {c0} {time.process_time()}\n")
        return faces


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (every process; /proc/stat, Linux)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class BusySampler(threading.Thread):
    """(time.time(), machine busy seconds) every 20 ms while an engine runs: the machine's CPU over any span."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples, self.stop = [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.time(), machine_busy_seconds()))
            self.stop.wait(0.02)

    def over(self, start: float, end: float) -> float:
        at = lambda t: min(self.samples, key=lambda s: abs(s[0] - t))[1]  # noqa: E731
        return at(end) - at(start)


def timed(make_engine, log: Path, spec: RecognizerSpec) -> tuple[float, float, int, float, float]:
    """(steady rate, wall seconds with start-up, units, workers' CPU ms per unit, the rest of the machine's CPU ms per
    unit): the rate is the images analysed over the span from the first analyze_many call's start to the last one's
    end, in all workers (decoding and hand-offs between the calls included; worker start-up and Ray's scheduling
    before the first call not). The rest is everything else busy over that span: the driver (the parent process),
    and with Ray its node daemons; what two workers on two cores lose to it, they cannot scale by."""
    shutil.rmtree(log, ignore_errors=True)
    log.mkdir()
    sampler = BusySampler()
    sampler.start()
    t0 = time.monotonic()
    total = sum(chunk.units for chunk, _ in make_engine(TimedSpec(**dataclasses.asdict(spec), log=str(log))))
    wall = time.monotonic() - t0
    sampler.stop.set()
    sampler.join()
    calls, cpu = [], 0.0
    for f in log.iterdir():
        mine = [tuple(map(float, ln.split())) for ln in f.read_text().splitlines()]
        calls += mine
        cpu += mine[-1][4] - mine[0][3]   # the worker's CPU time over its span: decoding between calls included
    start, end = min(c[0] for c in calls), max(c[1] for c in calls)
    assert sum(c[2] for c in calls) == total
    rest = max(0.0, sampler.over(start, end) - cpu)
    return total / (end - start), wall, total, 1000 * cpu / total, 1000 * rest / total


def line(name: str, r, unit: str = "photos") -> str:
    rate, wall, total, cpu_ms, rest_ms = r
    return (f"{name:<28} {rate:7.1f} {unit}/s  {cpu_ms:6.1f} CPU ms each, {rest_ms:5.1f} elsewhere  ({total} {unit}, "
            f"{wall:5.1f} s wall with start-up)")


class Cluster:
    """A Ray cluster on loopback: a head and `add_node()` more, one CPU each; stopped by process group id."""

    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.temp = tempfile.mkdtemp(prefix="rayfk", dir="/tmp")
        self.procs = [self._start("--head", "--port", str(self.port), "--temp-dir", self.temp,
                                  "--include-dashboard", "false")]
        self.wait(1)

    def _start(self, *args):
        ray_cli = Path(sys.executable).with_name("ray")
        return subprocess.Popen([str(ray_cli), "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
                                 "--disable-usage-stats", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})

    def add_node(self):
        self.procs.append(self._start("--address", self.address))
        self.wait(len(self.procs))

    def wait(self, nodes: int):
        import ray

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level="ERROR")
                ok = sum(n["Alive"] for n in ray.nodes()) == nodes
                ray.shutdown()
                if ok:
                    return
            except (ConnectionError, RuntimeError):
                ray.shutdown()
            time.sleep(2)
        raise RuntimeError(f"Ray cluster: {nodes} nodes not up")

    def stop(self):
        import signal

        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.temp, ignore_errors=True)


def driver_peak_rss(entries: int, workers: int = 2) -> dict[tuple[int, str], tuple[float, float]]:
    """{(manifest entries, "first" or "rerun"): (peak RSS of the driver in MB, seconds)} for 1,000, 10,000 and
    `entries` entries: `ferkit batch`'s run() in a fresh process over a manifest of paths that do not exist (error
    rows: the driver's own bookkeeping, the plan, parts and final combine into Parquet, without the cost of
    analysing real photos), local engine; then the rerun of each with one input more (the earlier OUT's rows read
    back, one task analysed). 10,000: past the Parquet writer's first full row group (records.PARQUET_ROWS rows),
    a fixed cost that 1,000 entries do not reach."""
    code = ("import sys, time; from ferkit import batch\n"
            "if __name__ == '__main__':\n"
            "    t = time.monotonic()\n"
            "    batch.run(sys.argv[1:-2], out=sys.argv[-2], workers=int(sys.argv[-1]), batch_size=64)\n"
            "    hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1]\n"
            "    print(int(hwm) / 1024, time.monotonic() - t)\n")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted({1000, 10_000, entries}):
            man = Path(tmp) / f"m{n}.txt"
            man.write_text("".join(f"{tmp}/missing/p{i:06d}.jpg\n" for i in range(n)))
            for step, more in (("first", []), ("rerun", [f"{tmp}/missing/late.jpg"])):
                res = subprocess.run([sys.executable, "-c", code, str(man), *more, f"{tmp}/r{n}.parquet", str(workers)],
                                     capture_output=True, text=True, check=True)
                out[n, step] = tuple(map(float, res.stdout.split()))
    return out


def rss_line(entries: int) -> str:
    peaks = driver_peak_rss(entries)
    return "\n".join(f"driver peak RSS, local engine, Parquet out, {what}: " + ", ".join(
        f"{peaks[n, step][0]:.0f} MB for {n:,} entries ({peaks[n, step][1]:.0f} s)"
        for n in sorted({n for n, _ in peaks}, reverse=True))
        for step, what in (("first", "first run"), ("rerun", "rerun with one input more")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=3000)
    ap.add_argument("--poison", type=int, default=4, help="photos that kill the Ray actor reading them (0: none)")
    ap.add_argument("--rss-entries", type=int, default=100_000, help="manifest entries for the driver's peak memory")
    ap.add_argument("--skip-local", action="store_true", help="leave out the local engine's photo figures")
    ap.add_argument("--video-seconds", type=float, default=60.0)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--detect-side", type=int, default=None, help="yunet's working size (ferkit batch --detect-side)")
    ap.add_argument("--only-rss", action="store_true", help="the driver's peak memory alone (no photos, no video)")
    args = ap.parse_args()
    if args.only_rss:
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        print(rss_line(args.rss_entries))
        return
    spec = RecognizerSpec(detect_side=args.detect_side)
    name, labels, detector = spec.describe()
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    print(f"machine: {os.cpu_count()} cores, {cpu}; load average before: {os.getloadavg()[0]:.1f}")
    side = f" at --detect-side {args.detect_side}" if args.detect_side else " (working side 640)"
    print(f"model {name}, detector {detector}{side}, batch size 16, video sampled at 5 fps\n")
    with tempfile.TemporaryDirectory() as tmp:
        photos = list(chunks(plan(make_photos(Path(tmp) / "photos", args.photos))))
        results, log = {}, Path(tmp) / "log"
        for w in () if args.skip_local else (1, 2):
            results[f"local, {w} worker{'s' * (w > 1)}"] = timed(lambda ts: local_engine(photos, ts, 5.0, workers=w), log, spec)
        if not args.no_ray:
            from ferkit.batch.ray_engine import ray_engine

            cluster = Cluster()
            try:
                results["ray, 1 node (1 CPU)"] = timed(lambda ts: ray_engine(photos, ts, 5.0, address=cluster.address), log, spec)
                cluster.add_node()
                results["ray, 2 nodes (1 CPU each)"] = timed(lambda ts: ray_engine(photos, ts, 5.0, address=cluster.address), log, spec)
                if args.poison:  # the poisoned photos spread through the run, each in a chunk of its own batch
                    bad = Path(tmp) / "poison"
                    bad.mkdir()
                    poison = []
                    for i in range(args.poison):
                        cv2.imwrite(str(bad / f"poison_{i}.png"), np.zeros((100, 333, 3), np.uint8))
                        poison.append(str(bad / f"poison_{i}.png"))
                    paths = [t.source for c in photos for t in c.tasks]
                    step = len(paths) // (args.poison + 1)
                    for i, p in enumerate(poison):
                        paths.insert((i + 1) * step + i, p)
                    mixed = list(chunks(plan(paths)))

                    def poisoned(ts):
                        ps = PoisonSpec(**dataclasses.asdict(ts))
                        return ((c, r) for c, r in ray_engine(mixed, ps, 5.0, address=cluster.address)
                                if not any(t.source in poison for t in c.tasks))
                    results[f"ray, 2 nodes, {args.poison} poisoned"] = timed(poisoned, log, spec)
            finally:
                cluster.stop()
        for k, r in results.items():
            print(line(k, r))
        rate = {k: r[0] for k, r in results.items()}
        if not args.skip_local:
            print(f"\nlocal 2 workers / 1 worker: {rate['local, 2 workers'] / rate['local, 1 worker']:.2f}x")
        if not args.no_ray:
            print(f"ray 2 nodes / 1 node:       {rate['ray, 2 nodes (1 CPU each)'] / rate['ray, 1 node (1 CPU)']:.2f}x")
            if not args.skip_local:
                print(f"ray 2 nodes / local 2 workers: {rate['ray, 2 nodes (1 CPU each)'] / rate['local, 2 workers']:.2f}")
            if args.poison:
                print(f"ray 2 nodes with {args.poison} poisoned photos ({2 * args.poison} actor deaths, their chunks "
                      f"retried task by task) / without: "
                      f"{rate[f'ray, 2 nodes, {args.poison} poisoned'] / rate['ray, 2 nodes (1 CPU each)']:.2f}")

        video = make_video(Path(tmp) / "clip.mp4", args.video_seconds)
        vtasks = list(chunks(plan([video], 5.0)))
        rate, wall, frames, cpu_ms, _ = timed(lambda ts: local_engine(vtasks, ts, 5.0, workers=1), log, spec)
        per_minute = frames / rate * 60 / args.video_seconds
        print(f"\nvideo: a {args.video_seconds:g} s 640x480 30 fps clip, {frames} frames analysed at 5 fps, 1 worker: "
              f"{rate:.1f} frames/s, {cpu_ms:.1f} CPU ms each ({wall:.1f} s wall with start-up)")
        print(f"  -> {per_minute:.1f} s of work per minute of video per worker ({60 / per_minute:.1f}x real time; "
              f"a 10-minute clip: about {10 * per_minute:.0f} s, extrapolated from this clip)")
    if args.rss_entries:
        print("\n" + rss_line(args.rss_entries))
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
