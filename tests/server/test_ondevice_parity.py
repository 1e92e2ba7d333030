"""On-device mode (#36): the JavaScript pipeline (static/ondevice/worker.js + pipeline.js on onnxruntime-web) in
Debian's Chromium against the Python pipeline in the same test, on the same pixels. Tolerances (the issue's): boxes
and landmarks within 2 px, probabilities within 0.02, the same emotion, face by face; the same number of faces.
Photos: the repository's examples and copies of the astronaut made to take the pipeline's other paths (a turned
face, two faces, a small photo, a close-up that only YuNet's second look with a margin finds)."""
from __future__ import annotations

import base64
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from .conftest import encode, start_server
from .test_browser import launch, playwright_instance  # noqa: F401

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
BOX_PX, LANDMARK_PX, PROBABILITY = 2, 2, 0.02


@pytest.fixture(scope="module")
def server():
    running, stop = start_server(workers=1)
    yield running
    stop()


# Starts the on-device worker from a manifest in the page and defines window.ondevice(b64, options) -> the worker's
# answer and window.ondeviceReset(session); resolves with the worker's "ready" (or start-up error) message.
WORKER_HARNESS = """async (manifest) => {
    const worker = new Worker("/static/ondevice/worker.js", {type: "module"});
    const waiting = new Map();   // id -> resolve
    let onReady;
    const ready = new Promise((resolve) => { onReady = resolve; });
    worker.onmessage = (e) => {
        const m = e.data;
        if (m.type === "ready" && m.part === "core") onReady(m);
        else if (m.type === "error" && m.id === null) onReady(m);
        else if (waiting.has(m.id)) { waiting.get(m.id)(m); waiting.delete(m.id); }
    };
    let next = 0;
    // a PNG or JPEG (base64) -> decoded as the page decodes a photo -> the worker's answer
    window.ondevice = async (b64, options) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const image = await createImageBitmap(new Blob([bytes]), {colorSpaceConversion: "none", premultiplyAlpha: "none"});
        const id = ++next;
        const answer = new Promise((resolve) => waiting.set(id, resolve));
        worker.postMessage({type: "analyze", id, image, features: "off", live: false, session: "", ...options}, [image]);
        return answer;
    };
    window.ondeviceReset = (session) => worker.postMessage({type: "reset", session});
    worker.postMessage({type: "init", manifest});
    return ready;
}"""


@pytest.fixture(scope="module")
def recognizer():
    from ferkit import load_recognizer

    return load_recognizer()


@pytest.fixture(scope="module")
def worker_page(server, playwright_instance):  # noqa: F811
    """The real page with the on-device worker started from the server's manifest: (page, manifest)."""
    manifest = httpx.get(f"{server.url}/api/v1/ondevice", timeout=30).json()
    browser = launch(playwright_instance)
    page = browser.new_page()
    page.goto(server.url)
    ready = page.evaluate(WORKER_HARNESS, manifest)
    assert ready["type"] == "ready", ready
    yield page, manifest
    browser.close()


def on_device(page, data: bytes, **options) -> dict:
    answer = page.evaluate("([b64, options]) => window.ondevice(b64, options)", [base64.b64encode(data).decode(), options])
    assert answer["type"] == "result", answer
    return answer


def assert_same_faces(js: list[dict], py: list[dict], where: str, probability: float = PROBABILITY) -> None:
    """The two runtimes' faces, left to right, agree face by face within the tolerances."""
    assert len(js) == len(py), f"{where}: {len(js)} faces on the device, {len(py)} in Python"
    for i, (a, b) in enumerate(zip(js, py)):
        at = f"{where}, face {i}"
        assert set(a) == set(b), f"{at}: keys {sorted(a)} != {sorted(b)}"
        for k in "xywh":
            assert abs(a["box"][k] - b["box"][k]) <= BOX_PX, f"{at}: box {a['box']} != {b['box']}"
        assert a["detector"] == b["detector"], at
        assert (a["landmarks"] is None) == (b["landmarks"] is None), at
        if b["landmarks"] is not None:
            diff = np.abs(np.array(a["landmarks"]) - np.array(b["landmarks"])).max()
            assert diff <= LANDMARK_PX, f"{at}: landmarks differ by {diff:.2f} px"
        assert list(a["probabilities"]) == list(b["probabilities"]), at
        worst = max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in b["probabilities"])
        assert worst <= probability, f"{at}: probabilities differ by {worst:.4f}: {a['probabilities']} {b['probabilities']}"
        assert a["emotion"] == b["emotion"], at
        assert abs(a["detector_score"] - b["detector_score"]) <= 0.02, at


def photos() -> dict[str, bytes]:
    """name -> encoded photo: the examples as they are, and generated copies of the astronaut."""
    astronaut = cv2.imread(str(ROOT / "examples" / "astronaut.png"))
    turned = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((223, 120), 20, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REFLECT)
    blurred_closeup = cv2.GaussianBlur(astronaut[60:200, 150:300], (31, 31), 0)  # YuNet finds it with the margin only
    return {"astronaut.png": (ROOT / "examples" / "astronaut.png").read_bytes(),
            "rocket.jpg": (ROOT / "examples" / "rocket.jpg").read_bytes(),
            "turned 20 degrees": encode(turned),
            "two faces (1024 px: shrunk to 640)": encode(np.hstack([astronaut, astronaut[:, ::-1]])),
            "small (200 px: enlarged)": encode(cv2.resize(astronaut, (200, 200), interpolation=cv2.INTER_AREA)),
            "close-up": encode(astronaut[70:180, 165:285]),
            "blurred close-up": encode(blurred_closeup)}


def test_photos_match_the_python_pipeline(worker_page, recognizer):
    from ferkit.images import decode_image

    page, _ = worker_page
    counted = 0
    for name, data in photos().items():
        image = decode_image(data, name)
        py = [f.to_dict() for f in recognizer.analyze(image)]
        js = on_device(page, data)
        assert (js["width"], js["height"]) == (image.shape[1], image.shape[0]), name
        assert js["faces_left_out"] == 0 and set(js["timings"]) == {"detect_ms", "classify_ms", "features_ms", "total_ms"}
        assert_same_faces(js["faces"], py, name)
        counted += len(py)
    assert counted >= 7  # the comparison saw faces (one each but the rocket's none, two in one)


def test_margin_look_is_what_finds_the_blurred_closeup(recognizer):
    """The blurred close-up above takes YuNet's second look (the margin), so the parity covers that path."""
    from ferkit.images import decode_image

    image = decode_image(photos()["blurred close-up"])
    assert len(recognizer.detector.raw(image)) == 0 and len(recognizer.detector.raw_with_margin(image)) == 1


def test_manifest_files_are_cached_and_checked(server, worker_page):
    _, manifest = worker_page
    entries = [manifest["classifier"], manifest["detector"], manifest["closeup"], *manifest["features"].values()]
    assert manifest["available"] and manifest["classifier"]["labels"] == list(manifest["classifier"]["metadata"]["labels"])
    import hashlib

    for entry in entries:
        r = httpx.get(server.url + entry["url"], timeout=30)
        assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert hashlib.sha256(r.content).hexdigest() == entry["sha256"] and len(r.content) == entry["bytes"]
        assert entry["url"].endswith("?v=" + entry["sha256"][:16])
    assert httpx.get(server.url + "/ondevice/models/..%2Fsettings.py", timeout=30).status_code == 404
    assert httpx.get(server.url + "/ondevice/models/fer2013.metrics.json", timeout=30).status_code == 404


def clip_frames(n: int = 14) -> list[bytes]:
    """A generated 640x480 clip: the astronaut's photo moving 3 px right and 2 px down per frame on a grey ground,
    then (from frame 10) a jump of 40 px, which following must catch between detections."""
    astronaut = cv2.imread(str(ROOT / "examples" / "astronaut.png"))[:360, 60:460]  # 400x360, the face in its upper part
    frames = []
    for i in range(n):
        frame = np.full((480, 640, 3), 110, np.uint8)
        x, y = 40 + 3 * i + (40 if i >= 10 else 0), 30 + 2 * i
        frame[y:y + 360, x:x + 400] = astronaut
        frames.append(encode(frame))
    return frames


def test_live_clip_matches_the_python_tracker(worker_page, recognizer):
    """live=true: the worker's tracker (detect every n-th frame on a smaller copy, follow between, ids) gives the
    server's live answers frame by frame: the same ids, the same detected/followed frames, the same numbers."""
    from ferkit.images import decode_image
    from ferkit.server.worker import LargestFaces
    from ferkit.track import FaceTracker

    page, manifest = worker_page
    s = manifest["settings"]
    assert s["detect_every"] > 1  # the clip has followed frames between detections
    tracker = FaceTracker(recognizer, detector=LargestFaces(recognizer.detector, s["max_faces"]),
                          detect_every=s["detect_every"], detect_side=s["live_detect_side"])
    followed = 0
    for i, data in enumerate(clip_frames()):
        py = [f.to_dict() for f in tracker.process(decode_image(data, f"frame {i}"))]
        js = on_device(page, data, live=True, session="clip")["faces"]
        assert_same_faces(js, py, f"frame {i}")
        assert [(f["id"], f["detected"]) for f in js] == [(f["id"], f["detected"]) for f in py], f"frame {i}"
        followed += sum(not f["detected"] for f in py)
    assert followed >= 5


def test_live_sessions_are_separate_and_reset(worker_page):
    page, _ = worker_page
    frames = clip_frames(2)
    first = on_device(page, frames[0], live=True, session="a")["faces"]
    other = on_device(page, frames[0], live=True, session="b")["faces"]
    assert [f["id"] for f in first] == [f["id"] for f in other] == [1]  # each session counts its own ids
    assert on_device(page, frames[1], live=True, session="a")["faces"][0]["detected"] is False  # followed
    page.evaluate("(session) => window.ondeviceReset(session)", "a")
    assert on_device(page, frames[1], live=True, session="a")["faces"][0]["detected"] is True  # a fresh tracker
    assert "id" not in on_device(page, frames[0])["faces"][0]  # photo mode: no tracker, no id


def test_features_all_adds_the_servers_feature_keys(worker_page):
    """features "all": the worker calls features.js per face and the face carries the keys and numbers the server's
    Recognizer(features="all") gives (mesh within 2 px, blendshapes and action units within 0.02)."""
    from ferkit import load_recognizer
    from ferkit.images import decode_image

    page, _ = worker_page
    data = photos()["two faces (1024 px: shrunk to 640)"]
    py = [f.to_dict() for f in load_recognizer(features="all").analyze(decode_image(data))]
    answer = on_device(page, data, features="all")
    js = answer["faces"]
    assert_same_faces([{k: v for k, v in f.items() if k in py[0]} for f in js],
                      [{k: v for k, v in f.items() if k in js[0]} for f in py], "features all")
    assert len(js) == 2 and all(set(a) == set(b) for a, b in zip(js, py))
    for a, b in zip(js, py):
        assert np.abs(np.array(a["mesh"])[:, :2] - np.array(b["mesh"])[:, :2]).max() <= 2
        for key in ("blendshapes", "action_units"):
            assert max(abs(a[key][k] - b[key][k]) for k in b[key]) <= 0.02, key
    assert answer["timings"]["features_ms"] > 0
