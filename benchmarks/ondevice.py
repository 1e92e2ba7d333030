"""On-device mode (#36) speed: the page's Web Worker (onnxruntime-web, wasm, one thread) in headless Chromium beside
the Python pipeline on the same machine, on the same 640x480 frames. Prints figures, asserts nothing.

    python benchmarks/ondevice.py               # ~2 minutes
    python benchmarks/ondevice.py --seconds 3   # a quicker run
    python benchmarks/ondevice.py --server-cpu 60   # only figure 4, ~4 minutes

Frames: the example photo's face (examples/astronaut.png) on a grey 640x480 ground, moving 4 px per frame, posted to
the worker as ImageBitmaps in a loop (live=true, one frame at a time, as the page does with its camera), with the
face features off and "all". Figures:
  1. results/s in the browser, features off and all;
  2. ms per stage, browser beside Python (ferkit.track.FaceTracker as the server's live mode runs it, on the same
     frames): the detection step (frames where the detector ran) and the following step (frames in between), the
     classifier, the face features, the whole frame;
  3. first result on a warm cache: from opening the page to the worker's first result, the runtime and models in
     the browser's cache (a second tab after a first visit).
  4. (--server-cpu S) the server's CPU per live viewer: `ferkit serve` as a subprocess, the real page in Chromium with
     a fake camera (a .y4m of the same moving face), a live session of S seconds on the device, then one of S seconds
     on the server, and S seconds with no viewer; the server's CPU time (its process and its analysis worker
     processes, from /proc) over each span, as % of one core.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from _data import cpu_name

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 4
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]

# The page side: a worker from the manifest, frames made once as ImageData, posted one after another.
START_WORKER = """async () => {
    const t0 = performance.now();
    const manifest = await (await fetch("/api/v1/ondevice")).json();
    const worker = new Worker("/static/ondevice/worker.js", {type: "module"});
    window.bench = {worker, manifest};
    const next = () => new Promise((resolve) => { worker.onmessage = (e) => resolve(e.data); });
    worker.postMessage({type: "init", manifest});
    const ready = await next();
    if (ready.type !== "ready") throw new Error(JSON.stringify(ready));
    return performance.now() - t0;
}"""
LOAD_FRAMES = """async (pngs) => {  // the frames as ImageData (the pixels a camera frame gives a canvas)
    window.bench.images = await Promise.all(pngs.map(async (b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const bitmap = await createImageBitmap(new Blob([bytes]), {colorSpaceConversion: "none"});
        const ctx = new OffscreenCanvas(bitmap.width, bitmap.height).getContext("2d");
        ctx.drawImage(bitmap, 0, 0);
        return ctx.getImageData(0, 0, bitmap.width, bitmap.height);
    }));
}"""
RUN_FRAMES = """async ([seconds, features]) => {
    const {worker, images} = window.bench;
    const answer = () => new Promise((resolve) => { worker.onmessage = (e) => {
        if (e.data.type === "result" || e.data.type === "error") resolve(e.data); }; });
    worker.postMessage({type: "reset", session: "bench"});
    const out = [], t0 = performance.now();
    for (let i = 0; performance.now() - t0 < seconds * 1000; i++) {
        const image = images[i % images.length];
        worker.postMessage({type: "analyze", id: i, image, features, live: true, session: "bench"});
        const r = await answer();
        if (r.type === "error") throw new Error(r.message);
        out.push({...r.timings, detected: r.faces.some((f) => f.detected), faces: r.faces.length});
    }
    return {seconds: (performance.now() - t0) / 1000, frames: out};
}"""
FIRST_RESULT = """async () => {
    const t0 = performance.timeOrigin;
    const manifest = await (await fetch("/api/v1/ondevice")).json();
    const worker = new Worker("/static/ondevice/worker.js", {type: "module"});
    const next = (type) => new Promise((resolve) => { worker.onmessage = (e) => {
        if (e.data.type === type || e.data.type === "error") resolve(e.data); }; });
    worker.postMessage({type: "init", manifest});
    await next("ready");
    const image = new ImageData(640, 480);  // a blank frame: the time to a first answer, whatever it holds
    worker.postMessage({type: "analyze", id: 1, image, features: "off", live: false, session: ""});
    const r = await next("result");
    return {ms: performance.timeOrigin + performance.now() - t0, faces: r.faces.length};
}"""


def frames(n: int = 30) -> list[np.ndarray]:
    """640x480 BGR frames: the astronaut's head and shoulders moving right and back, 4 px per frame."""
    astronaut = cv2.imread(str(ROOT / "examples" / "astronaut.png"))[:360, 60:460]
    out = []
    for i in range(n):
        frame = np.full((480, 640, 3), 110, np.uint8)
        x = 40 + 4 * (i if i < n // 2 else n - i)
        frame[60:420, x:x + 400] = astronaut
        out.append(frame)
    return out


def start_server():
    import uvicorn

    from ferkit.server import Settings, create_app
    from ferkit.server.protocols import uvicorn_options

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings = Settings(host="127.0.0.1", port=sock.getsockname()[1], workers=1)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), **uvicorn_options(settings)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{settings.port}", server, thread


class PythonPipeline:
    """The server's live pipeline in this process (a FaceTracker as server.worker makes it), on the same frames; each
    call of `run` adds per-frame ms (the detection step, the following step, the classifier, the features, the whole
    frame) to `frames`."""

    def __init__(self, images: list[np.ndarray], features: str):
        from ferkit import load_recognizer
        from ferkit.server import Settings
        from ferkit.server.worker import LargestFaces
        from ferkit.track import FaceTracker

        s = Settings()
        self.images, self.features, self.frames, self.seconds, self.i = images, features, [], 0.0, 0
        self.rec = rec = load_recognizer(features=features or None, threads=1)
        self.tracker = FaceTracker(rec, detector=LargestFaces(rec.detector, s.max_faces),
                                   detect_every=s.live_detect_every, detect_side=s.live_detect_side)
        faces_for, features_of = rec.faces_for, rec._features
        self.inside = {"classify_ms": 0.0, "features_ms": 0.0}

        def timed(name, fn):  # the classifier (faces_for) and the features inside process(), timed apart
            def call(*a, **kw):
                t = time.perf_counter()
                out = fn(*a, **kw)
                self.inside[name] = (time.perf_counter() - t) * 1000
                return out
            return call

        rec.faces_for, rec._features = timed("classify_ms", faces_for), timed("features_ms", features_of)

    def run(self, seconds: float) -> None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            self.inside.update(classify_ms=0.0, features_ms=0.0)
            t = time.perf_counter()
            faces = self.tracker.process(self.images[self.i % len(self.images)])
            total = (time.perf_counter() - t) * 1000
            self.i += 1
            classify = self.inside["classify_ms"] - self.inside["features_ms"]
            self.frames.append({"detect_ms": total - self.inside["classify_ms"], "classify_ms": classify,
                                "features_ms": self.inside["features_ms"], "total_ms": total,
                                "detected": any(f.detected for f in faces)})
        self.seconds += time.perf_counter() - t0


def write_y4m(path: Path, images: list[np.ndarray], fps: int) -> None:
    """BGR frames -> an uncompressed YUV 4:2:0 .y4m, the format Chromium's fake camera plays (in a loop)."""
    h, w = images[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image in images:
            f.write(b"FRAME\n" + cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes())


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process and every live descendant, plus its reaped children's: /proc/PID/stat
    fields 14-17 (utime, stime, cutime, cstime) in clock ticks."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
            except OSError:  # the process ended while we looked
                continue
            stats[int(entry.name)] = (int(fields[1]), [int(x) for x in fields[11:15]])
    ticks, todo = 0, [pid]
    while todo:
        p = todo.pop()
        utime, stime, cutime, cstime = stats[p][1]
        ticks += utime + stime + cutime + cstime
        todo += [child for child, (ppid, _) in stats.items() if ppid == p]
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_for(page, expression: str, timeout: float) -> None:
    """Poll a JavaScript expression until truthy (the page's CSP forbids the eval of Playwright's wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout:g} s: {expression}")
        time.sleep(0.2)


def server_cpu(seconds: float) -> None:
    """Figure 4: the server's CPU per live viewer, on the device and on the server (and with no viewer at all)."""
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="ferkit-ondevice-cpu-"))
    camera = tmp / "camera.y4m"
    write_y4m(camera, frames(), fps=30)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "FERKIT_MUSIC_DB": str(tmp / "music.sqlite"),
           "FERKIT_CORRECTIONS_DB": str(tmp / "corrections.sqlite")}
    server = subprocess.Popen([sys.executable, "-m", "ferkit", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:  # up when the model has loaded (/api/v1/ondevice answers 503 until then)
            try:
                if httpx.get(f"{url}/api/v1/ondevice", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ferkit serve did not start (exit code {server.poll()})")
            time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS + [
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}"])
            for mode in ("device", "server"):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                context.add_init_script(f"localStorage.setItem('ferkit.analysis', '{mode}')")
                page = context.new_page()
                page.goto(url)
                wait_for(page, f"document.body.dataset.ready === 'true' && document.body.dataset.mode === '{mode}'", 60)
                if mode == "device":
                    wait_for(page, "document.querySelector('#where').dataset.core === 'ready'", 120)
                page.click("#tab-live")
                page.click("#live-start")
                wait_for(page, "Number(document.querySelector('#overlay').dataset.faces || 0) >= 1", 120)
                page.wait_for_timeout(3000)  # past the start: the models compiled, the first frames answered
                frame0, cpu0, t0 = page.evaluate("Number(document.querySelector('#overlay').dataset.frame)"), \
                    tree_cpu_seconds(server.pid), time.monotonic()
                page.wait_for_timeout(seconds * 1000)
                frame1, cpu1, t1 = page.evaluate("Number(document.querySelector('#overlay').dataset.frame)"), \
                    tree_cpu_seconds(server.pid), time.monotonic()
                page.click("#live-stop")
                context.close()
                rows.append((f"live, {'on this device' if mode == 'device' else 'on the server'}",
                             100 * (cpu1 - cpu0) / (t1 - t0), (frame1 - frame0) / (t1 - t0)))
            browser.close()
        cpu0, t0 = tree_cpu_seconds(server.pid), time.monotonic()
        time.sleep(seconds)
        rows.append(("no viewer", 100 * (tree_cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0), 0.0))
    finally:
        server.terminate()
        server.wait(30)
    print("Server CPU per live viewer: `ferkit serve` (defaults) as a subprocess, the page in headless Chromium with a "
          f"fake camera (640x480, one face), {seconds:g} s per row; CPU of the server's process tree from /proc.")
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores, shared: other work running). Load average at the end: "
          + ", ".join(f"{x:.1f}" for x in os.getloadavg()) + " (1, 5, 15 min).")
    print()
    print(f"{'':28}{'server CPU, % of a core':>25}{'results/s on the page':>24}")
    for name, cpu, rate in rows:
        print(f"{name:28}{cpu:25.2f}{rate:24.1f}")


def figures(frames: list[dict], seconds: float) -> dict:
    med = lambda v: statistics.median(v) if v else float("nan")  # noqa: E731
    return {"rate": len(frames) / seconds, "detect": med([x["detect_ms"] for x in frames if x["detected"]]),
            "follow": med([x["detect_ms"] for x in frames if not x["detected"]]),
            "classify": med([x["classify_ms"] for x in frames]), "features": med([x["features_ms"] for x in frames]),
            "total": med([x["total_ms"] for x in frames])}


def main() -> None:
    import base64

    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per runtime and features setting")
    parser.add_argument("--server-cpu", type=float, metavar="S",
                        help="measure only the server's CPU per live viewer, S seconds per mode (figure 4)")
    args = parser.parse_args()
    if args.server_cpu:
        server_cpu(args.server_cpu)
        return
    images = frames()
    pngs = [base64.b64encode(cv2.imencode(".png", f)[1].tobytes()).decode() for f in images]
    url, server, thread = start_server()
    python = {"off": PythonPipeline(images, ""), "all": PythonPipeline(images, "all")}
    browser_frames = {"off": [], "all": []}
    browser_seconds = {"off": 0.0, "all": 0.0}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            context = browser.new_context()
            page = context.new_page()
            page.goto(url)
            cold_ready = page.evaluate(START_WORKER)
            page.evaluate(LOAD_FRAMES, pngs)
            page.evaluate(RUN_FRAMES, [2, "all"])  # warm-up: every model run once
            for warm_up in python.values():
                warm_up.run(1)
            # the machine is shared: both runtimes measured in turns, ROUNDS times, so a busy spell hits both
            for _ in range(ROUNDS):
                for features in ("off", "all"):
                    run = page.evaluate(RUN_FRAMES, [args.seconds / ROUNDS, features])
                    browser_frames[features] += run["frames"]
                    browser_seconds[features] += run["seconds"]
                    python[features].run(args.seconds / ROUNDS)
            page.close()
            firsts = []
            for _ in range(3):  # a second visit: the runtime and the models come from the browser's cache
                tab = context.new_page()
                tab.goto(url)
                firsts.append(tab.evaluate(FIRST_RESULT)["ms"])
                tab.close()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    results = {}
    for features in ("off", "all"):
        results[("browser", features)] = figures(browser_frames[features], browser_seconds[features])
        results[("python", features)] = figures(python[features].frames, python[features].seconds)

    print("On-device mode (#36): the page's worker (onnxruntime-web 1.31.1, wasm SIMD, 1 thread) in headless Chromium "
          "beside the Python pipeline (ONNX Runtime, 1 thread), live on 640x480 frames with one face.")
    print(f"CPU: {cpu_name()} (a shared machine, other work running: figures are indicative). "
          f"{args.seconds:g} s per runtime and setting, in {ROUNDS} turns; medians per frame. Load average at the "
          f"end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.")
    print()
    print(f"{'':24}{'browser off':>13}{'python off':>13}{'browser all':>13}{'python all':>13}")
    rows = [("results/s", "rate", "{:13.1f}"), ("detection step ms", "detect", "{:13.1f}"),
            ("following step ms", "follow", "{:13.1f}"), ("classifier ms", "classify", "{:13.1f}"),
            ("face features ms", "features", "{:13.1f}"), ("whole frame ms", "total", "{:13.1f}")]
    for label, key, fmt in rows:
        print(f"{label:24}" + "".join(fmt.format(results[(side, f)][key])
                                      for f in ("off", "all") for side in ("browser", "python")))
    print()
    print("(detection step: frames where the detector ran, YuNet on the 320-pixel copy, with the tracker's bookkeeping;"
          " following step: the frames in between; browser ms from the worker's own timings, Python's from the same"
          " calls timed in this process.)")
    print(f"first visit, worker ready (runtime + models fetched, compiled): {cold_ready:.0f} ms")
    print("first result on a warm cache (page opened -> first result), 3 tries: "
          + ", ".join(f"{ms:.0f} ms" for ms in firsts))


if __name__ == "__main__":
    main()
