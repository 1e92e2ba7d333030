"""The face features in the browser (static/ondevice/features.js on onnxruntime-web) against the Python stage
(ferkit.mesh through the Recognizer), in Debian's Chromium, on the same pixels and the same face dicts: mesh within
2 px, blendshapes and action units within 0.02, head pose within 2 degrees, element by element.

The models reach the browser over a test-only route of the real server (the manifest's model route is another
branch's); the page it opens carries the CSP the runtime needs (wasm compilation)."""
from __future__ import annotations

import base64
import re
import statistics
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from fastapi.responses import HTMLResponse, Response

from ferkit import load_recognizer
from ferkit.mesh import FACE_WEIGHTS

from .conftest import start_server
from .test_browser import launch, playwright_instance  # noqa: F401  (the module's Chromium)

pytestmark = pytest.mark.browser

ASTRONAUT = Path(__file__).resolve().parents[2] / "examples" / "astronaut.png"
MESH_PX, BLEND_TOL, AU_TOL, POSE_DEG = 2.0, 0.02, 0.02, 2.0
FEATURE_KEYS = ("mesh", "blendshapes", "action_units", "head_pose")
TEST_PAGE = "/ondevice-features-test"


def add_test_routes(app):
    """A blank page whose CSP lets the wasm runtime compile, and the face-feature files by name."""
    @app.get(TEST_PAGE)
    async def page():
        return HTMLResponse("<!doctype html><title>features</title>", headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'"})

    @app.get(TEST_PAGE + "/files/{name}")
    async def files(name: str):
        if name not in ("face_mesh_v2.onnx", "face_blendshapes_v2.onnx", "canonical_face.json"):
            return Response(status_code=404)
        return Response((FACE_WEIGHTS / name).read_bytes(), media_type="application/octet-stream")


@pytest.fixture(scope="module")
def page(playwright_instance):  # noqa: F811
    server, stop = start_server(configure=add_test_routes)
    browser = launch(playwright_instance)
    tab = browser.new_page()
    errors = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(server.url + TEST_PAGE)
    tab.evaluate("""async () => {
        const ort = await import("/static/ondevice/ort/ort.wasm.min.mjs");
        ort.env.wasm.wasmPaths = "/static/ondevice/ort/";
        ort.env.wasm.numThreads = 1;
        const features = await import("/static/ondevice/features.js");
        const entry = (name) => ({url: "/ondevice-features-test/files/" + name});
        const fetchBytes = async (e) => (await fetch(e.url)).arrayBuffer();
        const tables = (await (await fetch("/api/v1/ondevice")).json()).feature_tables;  // mesh.py's lists
        const sessions = await features.loadFeatureSessions(ort, {mesh: entry("face_mesh_v2.onnx"),
            blendshapes: entry("face_blendshapes_v2.onnx"), canonical_face: entry("canonical_face.json")}, fetchBytes,
            tables);
        window.run = async (b64, width, height, face, repeats) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const rgba = {data: new Uint8ClampedArray(bytes.buffer), width, height};
            const ms = [];
            let out;
            for (let i = 0; i < repeats; i++) {
                const t = performance.now();
                out = await features.faceFeatures(ort, sessions, rgba, face);
                ms.push(performance.now() - t);
            }
            return {out, ms};
        };
    }""")
    yield tab, errors
    browser.close()
    stop()


@pytest.fixture(scope="module")
def recognizer():
    return load_recognizer(features="all")


def views() -> dict[str, np.ndarray]:
    """The example photo's face as given, turned 25 degrees, mirrored, small (0.4x), and cut by the image's edge
    (the crop reaches past it): BGR images."""
    img = cv2.imread(str(ASTRONAUT))
    h, w = img.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0)
    return {"as given": img, "turned": cv2.warpAffine(img, turn, (w, h), borderMode=cv2.BORDER_REFLECT),
            "mirrored": img[:, ::-1].copy(), "small": cv2.resize(img, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA),
            "at the edge": img[60:, 140:].copy()}


def face_dict(face) -> dict:
    """What the worker hands faceFeatures: the face's dict with its landmarks at full precision (to_dict rounds them
    to 0.1 px, which moves a small face's blendshapes by up to 0.02: the eye-look ones; the worker has them unrounded)."""
    return {**face.to_dict(), "landmarks": [[float(x), float(y)] for x, y in face.landmarks]}


def in_browser(page, image: np.ndarray, face: dict, repeats: int = 1) -> tuple[dict, list[float]]:
    rgba = cv2.cvtColor(image, cv2.COLOR_BGR2RGBA)
    got = page.evaluate("([b64, w, h, face, n]) => window.run(b64, w, h, face, n)",
                        [base64.b64encode(rgba.tobytes()).decode(), image.shape[1], image.shape[0], face, repeats])
    return got["out"], got["ms"]


def assert_same_features(got: dict, want: dict, what: str) -> None:
    assert list(got) == list(FEATURE_KEYS), f"{what}: keys {list(got)}"
    assert len(got["mesh"]) == len(want["mesh"]) == 478, what
    for i, (g, w) in enumerate(zip(got["mesh"], want["mesh"])):
        assert len(g) == len(w) == 3, f"{what}: mesh point {i}"
        for k in range(3):
            assert abs(g[k] - w[k]) <= MESH_PX, f"{what}: mesh point {i} {'xyz'[k]} {g[k]} vs Python {w[k]}"
    for key, tol in (("blendshapes", BLEND_TOL), ("action_units", AU_TOL), ("head_pose", POSE_DEG)):
        assert list(got[key]) == list(want[key]), f"{what}: {key} names {list(got[key])} vs {list(want[key])}"
        for name, w in want[key].items():
            assert abs(got[key][name] - w) <= tol, f"{what}: {key} {name} {got[key][name]} vs Python {w}"


@pytest.mark.parametrize("view", list(views()))
def test_features_match_python(page, recognizer, view):
    tab, errors = page
    image = views()[view]
    faces = recognizer.analyze(image)
    assert len(faces) == 1, f"{view}: {len(faces)} faces found"
    want = faces[0].to_dict()
    got, _ = in_browser(tab, image, face_dict(faces[0]))
    assert_same_features(got, {k: want[k] for k in FEATURE_KEYS}, view)
    assert not errors


def test_a_box_without_landmarks_is_cropped_again_from_its_first_mesh(page, recognizer):
    """A face known by its box alone (a tracker's): Python's FaceMesh.refine path."""
    tab, errors = page
    image = views()["as given"]
    box = recognizer.analyze(image)[0].box
    want = recognizer.analyze_boxes(image, [box])[0].to_dict()
    assert want["landmarks"] is None
    got, _ = in_browser(tab, image, {"box": want["box"], "landmarks": None})
    assert_same_features(got, {k: want[k] for k in FEATURE_KEYS}, "box only")
    assert not errors


def test_time_per_face(page, recognizer, record_property):
    """Not a speed limit: the ms of one face's features in Chromium (one wasm thread) and in Python (ONNX Runtime's
    default threads), medians of 10 after a first run, printed for the report (pytest -s)."""
    tab, _ = page
    image = views()["as given"]
    face = recognizer.analyze(image)[0]
    _, ms = in_browser(tab, image, face_dict(face), repeats=11)
    stage = recognizer.face_mesh
    rois = stage.rois([face.box], [face.landmarks])
    py = []
    for _ in range(11):
        t = time.perf_counter()
        stage.run(image, rois)
        py.append((time.perf_counter() - t) * 1000)
    chromium_ms, python_ms = statistics.median(ms[1:]), statistics.median(py[1:])
    record_property("chromium_ms", chromium_ms)
    record_property("python_ms", python_ms)
    print(f"\nface features, one face: Chromium {chromium_ms:.1f} ms, Python {python_ms:.1f} ms (medians of 10)")
    assert chromium_ms > 0 and python_ms > 0


# ---------------------------------------------------------------- through the worker, against the server
@pytest.fixture(scope="module")
def feature_server():
    server, stop = start_server(features="all", workers=1)
    yield server
    stop()


def test_the_worker_gives_the_servers_feature_keys_and_values(feature_server, playwright_instance):  # noqa: F811
    """The real page's worker (features "all", models from the manifest, sha256-checked) on the example photo and
    its turned copy, against the same server's /api/v1/analyze answer: the same feature keys, the features within the
    tolerances (the worker's own detection, and its landmarks rounded to 0.1 px, feed them, so its landmarks' differences are in the figures too)."""
    manifest = httpx.get(f"{feature_server.url}/api/v1/ondevice", timeout=30).json()
    browser = launch(playwright_instance)
    try:
        tab = browser.new_page()
        tab.goto(feature_server.url)
        tab.evaluate("""async (manifest) => {
            const worker = new Worker("/static/ondevice/worker.js", {type: "module"});
            const answers = new Map();
            let ready;
            const features = new Promise((resolve) => { ready = resolve; });
            worker.onmessage = (e) => {
                const m = e.data;
                if (m.type === "ready" && m.part === "features" || m.type === "error" && m.id === null) ready(m);
                else if (answers.has(m.id)) answers.get(m.id)(m);
            };
            worker.postMessage({type: "init", manifest});
            window.analyze = async (b64, id) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const image = await createImageBitmap(new Blob([bytes]), {colorSpaceConversion: "none", premultiplyAlpha: "none"});
                const answer = new Promise((resolve) => answers.set(id, resolve));
                worker.postMessage({type: "analyze", id, image, features: "all", live: false, session: ""}, [image]);
                return answer;
            };
            const m = await features;
            if (m.type !== "ready") throw new Error(m.message);
        }""", manifest)
        for i, name in enumerate(("as given", "turned")):
            png = cv2.imencode(".png", views()[name])[1].tobytes()
            want = httpx.post(f"{feature_server.url}/api/v1/analyze", files={"file": ("face.png", png, "image/png")},
                              timeout=60).json()["faces"]
            got = tab.evaluate("([b64, id]) => window.analyze(b64, id)", [base64.b64encode(png).decode(), i])
            assert got["type"] == "result", got
            assert len(got["faces"]) == len(want) == 1, name
            feature_keys = [sorted(set(FEATURE_KEYS) & set(face)) for face in (got["faces"][0], want[0])]
            assert feature_keys[0] == feature_keys[1] == sorted(FEATURE_KEYS), f"{name}: feature keys {feature_keys}"
            assert_same_features({k: got["faces"][0][k] for k in FEATURE_KEYS}, {k: want[0][k] for k in FEATURE_KEYS},
                                 f"worker, {name}")
            assert got["timings"]["features_ms"] > 0
    finally:
        browser.close()


@pytest.mark.parametrize("face, message", [
    ({"box": {"x": 1, "y": 2, "w": 3}, "landmarks": None}, "the face's box is not {x, y, w, h} numbers"),
    ({"box": {"x": 1, "y": 2, "w": 30, "h": 30}, "landmarks": [[1, 2]] * 4}, "the face's landmarks are not five"),
    ({"box": {"x": 1, "y": 2, "w": 30, "h": 30}, "landmarks": [[1, "2"]] * 5}, "the face's landmarks are not five"),
])
def test_a_malformed_face_gets_an_error_naming_the_field(page, face, message):
    tab, _ = page
    with pytest.raises(Exception, match=re.escape(message)):
        in_browser(tab, np.zeros((8, 8, 3), np.uint8), face)


def test_a_manifest_without_a_feature_file_is_named(page):
    tab, _ = page
    message = tab.evaluate("""async () => {
        const ort = await import("/static/ondevice/ort/ort.wasm.min.mjs");
        const features = await import("/static/ondevice/features.js");
        try {
            await features.loadFeatureSessions(ort, {mesh: {url: "x"}, blendshapes: {url: "y"}}, async () => new ArrayBuffer(0));
        } catch (e) { return e.message; }
    }""")
    assert message == "the manifest's features lack canonical_face"
