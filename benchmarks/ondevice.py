"""On-device mode (#36) speed: the page's Web Worker (onnxruntime-web, wasm, one thread) in headless Chromium beside
the Python pipeline on the same machine, on the same 640x480 frames. Prints figures, asserts nothing.

    python benchmarks/ondevice.py               # ~2 minutes
    python benchmarks/ondevice.py --seconds 3   # a quicker run

Frames: the example photo's face (examples/astronaut.png) on a grey 640x480 ground, moving 4 px per frame, posted to
the worker as ImageBitmaps in a loop (live=true, one frame at a time, as the page does with its camera), with the
face features off and "all". Figures:
  1. results/s in the browser, features off and all;
  2. ms per stage, browser beside Python (ferkit.track.FaceTracker as the server's live mode runs it, on the same
     frames): the detection step (frames where the detector ran) and the following step (frames in between), the
     classifier, the face features, the whole frame;
  3. first result on a warm cache: from opening the page to the worker's first result, the runtime and models in
     the browser's cache (a second tab after a first visit).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
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
    args = parser.parse_args()
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

    print(f"On-device mode (#36): the page's worker (onnxruntime-web 1.31.1, wasm SIMD, 1 thread) in headless Chromium "
          f"beside the Python pipeline (ONNX Runtime, 1 thread), live on 640x480 frames with one face.")
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
    print(f"first result on a warm cache (page opened -> first result), 3 tries: "
          + ", ".join(f"{ms:.0f} ms" for ms in firsts))


if __name__ == "__main__":
    main()
