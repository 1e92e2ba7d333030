"""Adapter heads on the device (#36): a server run with --adapter sends the head in its manifest, and the page's worker
(static/ondevice/head.js) applies it as load_recognizer(adapter=...) does. Real heads fitted by ferkit.adapt on real
labelled photos (FER-2013 PublicTest faces labelled by valence), the real server, Debian's Chromium, and the
Python Recognizer with the same head in the same test: the same faces, label and probabilities within 0.02, the base
model's probabilities kept, the adapter named (also on the real page). One head reads the base model's outputs alone,
one also the blendshapes and head pose (the worker then runs the face-feature stage unasked, as Python turns it on),
one also the mesh embedding; a head fitted on another model is refused."""
from __future__ import annotations

import base64
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from .conftest import encode, start_server
from .test_browser import launch, playwright_instance, wait_until  # noqa: F401
from .test_ondevice_parity import WORKER_HARNESS, assert_same_faces

pytestmark = [pytest.mark.browser, pytest.mark.data]  # the heads are fitted on FER-2013 faces

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "examples" / "astronaut.png"
PROBABILITY, BLENDSHAPE, POSE_DEGREES = 0.02, 0.02, 2.0
MODELS_TIMEOUT = 120_000  # ms: the first load compiles the wasm and the models; slow on a shared, loaded machine
VALENCE = {"happy": "positive", "surprise": "positive", "neutral": "neutral",
           "angry": "negative", "disgust": "negative", "fear": "negative", "sad": "negative"}


def labelled_photos(fer_dataset, folder: Path, per_class: int = 25):
    """Labelled photos for ferkit.adapt: FER-2013 PublicTest faces (selection data), each enlarged on a padded
    ground so that the default detector finds it, saved as PNG files and labelled by valence (positive, negative,
    neutral), `per_class` of each -> LabelledSet."""
    from ferkit.adapt import LabelledSet
    from ferkit.scenes import pad_face

    public = fer_dataset.split("PublicTest")
    valence = np.array([VALENCE[public.classes[k]] for k in public.labels])
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    paths, labels = [], []
    for label in ("positive", "neutral", "negative"):
        for i in rng.choice(np.flatnonzero(valence == label), per_class, replace=False):
            path = folder / f"{label}-{i}.png"
            cv2.imwrite(str(path), pad_face(public.pixels[i], 144))
            paths.append(str(path))
            labels.append(label)
    return LabelledSet(paths, labels, [Path(p).name for p in paths], source=str(folder))


@pytest.fixture(scope="module")
def heads(fer_dataset, tmp_path_factory) -> dict[str, Path]:
    """name -> head file: "valence" (ferkit.adapt on the default model's outputs alone), "valence-features" (fitted
    on the outputs, blendshapes and head pose of the same faces, as adapt's second feature set), "valence-embedding"
    (those and the mesh embedding, its third) and "other-model" (adapt on fer2013, not the server's model)."""
    from ferkit import load_recognizer
    from ferkit.adapt import AdaptConfig, Head, adapt, available_features, collect_faces, face_features, fit_head_arrays
    from ferkit.head import file_sha256

    folder = tmp_path_factory.mktemp("heads")
    data = labelled_photos(fer_dataset, folder / "photos")
    out = {}
    config = AdaptConfig(folds=4, min_per_class=10)
    for name, model in (("valence", None), ("other-model", "fer2013")):
        head = adapt(load_recognizer(model), data, config, name=name).head
        assert head.feature_groups == ("log_probabilities",)
        head.save(out.setdefault(name, folder / f"{name}.json"))
    rec = load_recognizer(features=("blendshapes", "pose", "embedding"))
    collected = collect_faces(rec, data)
    faces, classes = collected.faces, ("neutral", "negative", "positive")
    assert len(faces) >= 0.8 * len(data.images)  # the detector found most
    y = np.array([classes.index(label) for label in collected.labels])
    offered = available_features(faces[0])
    for name, groups in (("valence-features", ("log_probabilities", "blendshapes", "head_pose")),
                         ("valence-embedding", ("log_probabilities", "blendshapes", "head_pose", "mesh_embedding"))):
        names = [n for n in offered if n.partition(":")[0] in groups]
        x = np.stack([face_features(f, names) for f in faces])
        mean, scale, w, b = fit_head_arrays(x, y, len(classes), 10.0)
        base = {"name": rec.name, "file": rec.model_path.name, "sha256": file_sha256(rec.model_path),
                "labels": list(rec.labels)}
        Head(name, classes, tuple(names), mean, scale, w, b, base).save(out.setdefault(name, folder / f"{name}.json"))
    return out


def views() -> dict[str, bytes]:
    """name -> encoded photo: the sample photo and generated views of it (darkened, turned, mirrored beside a dimmer
    copy, small, a close-up)."""
    astronaut = cv2.imread(str(PHOTO))
    turned = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((223, 120), 15, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REFLECT)
    return {"astronaut.png": PHOTO.read_bytes(),
            "darkened": encode((astronaut * 0.4).astype(np.uint8)),
            "turned 15 degrees": encode(turned),
            "two faces": encode(np.hstack([astronaut, (astronaut[:, ::-1] * 0.5).astype(np.uint8)])),
            "small (240 px)": encode(cv2.resize(astronaut, (240, 240), interpolation=cv2.INTER_AREA)),
            "close-up": encode(astronaut[40:240, 130:330], ".jpg")}


@pytest.fixture(scope="module")
def spread_faces(fer_dataset) -> list[np.ndarray]:
    """Six PrivateTest faces on a padded ground that the default detector finds, two of each valence: where the
    heads' answers spread over their classes (on the sample photo every head says positive)."""
    from ferkit.detect import create_detector
    from ferkit.scenes import pad_face

    private, detector, out = fer_dataset.split("PrivateTest"), create_detector(), []
    for label in ("positive", "neutral", "negative"):
        patches = [pad_face(private.pixels[i], 144) for i in range(200)
                   if VALENCE[private.classes[private.labels[i]]] == label]
        out += [p for p in patches if len(detector.detect_faces(p)) == 1][:2]
    return out


class Device:
    """A Chromium page of the real server with the on-device worker started from the server's manifest."""

    def __init__(self, playwright_instance, url: str, manifest: dict | None = None):  # noqa: F811
        self.manifest = manifest or httpx.get(f"{url}/api/v1/ondevice", timeout=30).json()
        self.browser = launch(playwright_instance)
        self.page = self.browser.new_page()
        self.page.goto(url)
        self.ready = self.page.evaluate(WORKER_HARNESS, self.manifest)

    def analyze(self, data: bytes, **options) -> dict:
        answer = self.page.evaluate("([b64, options]) => window.ondevice(b64, options)",
                                    [base64.b64encode(data).decode(), options])
        assert answer["type"] == "result", answer
        return answer

    def close(self):
        self.browser.close()


def served(adapter: Path):
    return start_server(workers=1, adapter=str(adapter))


def assert_same_adapted(js: list[dict], py: list[dict], where: str, adapter: str) -> None:
    """The faces agree as the parity test asks (box, landmarks, label, probabilities over the head's classes), and
    the adapter's own keys: its name, and the base model's probabilities within 0.02."""
    assert_same_faces(js, py, where)
    for i, (a, b) in enumerate(zip(js, py)):
        assert a["adapter"] == b["adapter"] == adapter, f"{where}, face {i}"
        assert list(a["base_probabilities"]) == list(b["base_probabilities"]), f"{where}, face {i}"
        worst = max(abs(a["base_probabilities"][k] - v) for k, v in b["base_probabilities"].items())
        assert worst <= PROBABILITY, f"{where}, face {i}: base probabilities differ by {worst:.4f}"


def compare_views(device: Device, recognizer, adapter: str, **options) -> list:
    """Every view on the device and in Python -> the (device, Python) face pairs."""
    from ferkit.images import decode_image

    pairs = []
    for name, data in views().items():
        py = [f.to_dict() for f in recognizer.analyze(decode_image(data, name))]
        js = device.analyze(data, **options)["faces"]
        assert_same_adapted(js, py, name, adapter)
        pairs += list(zip(js, py))
    assert len(pairs) >= len(views())  # every view had its face
    return pairs


def assert_head_js_is_head_py(device: Device, recognizer, faces: list[np.ndarray]) -> None:
    """head.js's applyHead in the page on the features of Python's faces (unrounded: base probabilities, blendshapes,
    head pose, embedding) gives Head.apply's probabilities within 1e-9 and its label: the arithmetic is the same (the
    end-to-end comparison also carries the two pipelines' own differences)."""
    faces = [f for image in faces for f in recognizer.analyze(image)]
    inputs = [{"face": {"probabilities": f.base_probabilities},
               "measured": None if f.blendshapes is None and f.mesh_embedding is None else
               {"blendshapes": f.blendshapes, "head_pose": f.head_pose,
                "embedding": None if f.mesh_embedding is None else np.asarray(f.mesh_embedding, np.float64).tolist()}}
              for f in faces]
    applied = device.page.evaluate("""async ([head, inputs]) => {
        const {applyHead} = await import("/static/ondevice/head.js");
        return inputs.map(({face, measured}) => applyHead(head, face, measured));
    }""", [device.manifest["adapter"], inputs])
    assert len({f.emotion for f in faces}) >= 2  # the answers spread over the classes
    for js, py in zip(applied, faces):
        assert js["emotion"] == py.emotion and js["adapter"] == py.adapter and js["base_probabilities"] == py.base_probabilities
        assert max(abs(js["probabilities"][k] - v) for k, v in py.probabilities.items()) <= 1e-9, (js, py.probabilities)


@pytest.mark.parametrize("name, stages", [("valence", []), ("valence-features", ["blendshapes", "pose"]),
                                          ("valence-embedding", ["blendshapes", "pose", "embedding"])])
def test_the_head_applies_on_the_device_as_in_python(heads, spread_faces, playwright_instance, name,  # noqa: F811
                                                    stages):
    """The server's head in the manifest, applied by the worker: the faces of load_recognizer(adapter=...) on the
    sample photo's views, and head.js's arithmetic that of head.py on faces whose answers spread over the classes. A head reading face features turns their stage on with features "off" (the face carries what Python's
    does: blendshapes, action units, head pose; no mesh); the mesh embedding comes from the mesh model with that
    output, served beside the shipped one. Live mode's tracker relabels its faces too."""
    from ferkit import load_recognizer
    from ferkit.mesh import MESH_MODEL, with_shared_map_output

    recognizer = load_recognizer(adapter=heads[name])
    assert list(recognizer.features) == stages
    running, stop = served(heads[name])
    device = None
    try:
        device = Device(playwright_instance, running.url)
        manifest = device.manifest
        assert manifest["available"] and manifest["reason"] is None, manifest["reason"]
        head = manifest["adapter"]
        assert head["name"] == name and head["classes"] == ["neutral", "negative", "positive"]
        assert head["stage_features"] == stages and head["base_model"]["sha256"] == manifest["classifier"]["sha256"]
        embedding = manifest["features"].get("mesh_embedding")
        assert (embedding is not None) == ("embedding" in stages)
        if embedding:  # the very graph FaceMesh runs for this head, cached and checked like the shipped files
            r = httpx.get(running.url + embedding["url"], timeout=60)
            assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert r.content == with_shared_map_output(MESH_MODEL.read_bytes()) and len(r.content) == embedding["bytes"]
        assert device.ready["type"] == "ready", device.ready
        for a, b in compare_views(device, recognizer, name):
            if not stages:
                assert not {"mesh", "blendshapes", "action_units", "head_pose"} & set(a)
                continue
            assert "mesh" not in a and {"blendshapes", "action_units", "head_pose"} <= set(a)
            assert max(abs(a["blendshapes"][k] - v) for k, v in b["blendshapes"].items()) <= BLENDSHAPE
            assert max(abs(a["head_pose"][k] - v) for k, v in b["head_pose"].items()) <= POSE_DEGREES
        assert_head_js_is_head_py(device, recognizer, spread_faces)
        photo = views()["turned 15 degrees"]
        py = recognizer.analyze(cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR))[0].to_dict()
        live = device.analyze(photo, live=True, session="s")["faces"][0]
        assert live["adapter"] == name and live["emotion"] == py["emotion"] and "id" in live
        assert max(abs(live["probabilities"][k] - v) for k, v in py["probabilities"].items()) <= PROBABILITY
        everything = device.analyze(photo, features="all")["faces"][0]
        assert "mesh" in everything and everything["adapter"] == name
    finally:
        if device:
            device.close()
        stop()


def test_the_page_names_the_adapter_in_on_device_mode(heads, playwright_instance):  # noqa: F811
    """The real page, on the device: the photo's face card names the adapter, its bars are the head's classes, and
    no photo went to the server."""
    running, stop = served(heads["valence"])
    browser = launch(playwright_instance, ondevice=True)
    try:
        page = browser.new_page()
        posted = []
        page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
        page.goto(running.url)
        page.wait_for_selector("body[data-ready=true]")
        assert page.get_attribute("body", "data-mode") == "device"
        wait_until(page, "document.querySelector('#where').dataset.core === 'ready'", MODELS_TIMEOUT)
        page.set_input_files("#file-input", str(PHOTO))
        wait_until(page, "document.querySelectorAll('#photo-faces .face').length === 1", MODELS_TIMEOUT)
        card = page.locator("#photo-faces .face").first
        assert card.locator(".adapter").inner_text() == "Adapter: valence"
        assert sorted(card.locator(".probs li").evaluate_all("(items) => items.map((li) => li.dataset.label)")) == \
            ["negative", "neutral", "positive"]
        assert "on this device" in page.inner_text("#photo-caption") and posted == []
    finally:
        browser.close()
        stop()


def test_a_head_fitted_on_another_model_is_refused(heads, playwright_instance):  # noqa: F811
    """`ferkit serve` refuses it (Python's check), and so does the worker, should a manifest pair them: init answers
    the error that sends the page to the server, naming both models."""
    import subprocess
    import sys

    from ferkit.server.routes.ondevice import _adapter

    r = subprocess.run([sys.executable, "-m", "ferkit", "serve", "--port", "0", "--adapter", str(heads["other-model"])],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "fitted on the model 'fer2013'" in r.stderr, r.stderr
    running, stop = served(heads["valence"])
    device = None
    try:
        manifest = httpx.get(f"{running.url}/api/v1/ondevice", timeout=30).json()
        manifest["adapter"] = _adapter(str(heads["other-model"]))
        device = Device(playwright_instance, running.url, manifest)
        assert device.ready["type"] == "error" and device.ready["id"] is None, device.ready
        assert "the adapter other-model was fitted on the model \"fer2013\"" in device.ready["message"]
        assert f"not on {manifest['classifier']['name']}" in device.ready["message"]
    finally:
        if device:
            device.close()
        stop()
