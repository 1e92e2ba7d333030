"""What the wheel ships: every model file of the source tree, each network stored once (setup.py, store_once.py),
answering as the files in git do."""
from __future__ import annotations

import hashlib

import numpy as np

import ferkit
from ferkit.recognizer import WEIGHTS_DIR, read_metadata
from tests.conftest import ROOT


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_wheel_stores_each_network_once(wheel_weights):
    """The wheel holds the tree's model files; all but `fer2013-accurate` byte for byte. That one leaves out the two
    members that ship alone and names them, with their files' sha256; the rest of its metadata is the tree's."""
    names = sorted(p.name for p in WEIGHTS_DIR.rglob("*") if p.is_file())
    assert sorted(p.name for p in wheel_weights.rglob("*") if p.is_file()) == names
    for p in WEIGHTS_DIR.rglob("*"):
        if p.is_file() and p.name != "fer2013-accurate.onnx":
            assert _sha(wheel_weights / p.relative_to(WEIGHTS_DIR)) == _sha(p), p.name
    tree, wheel = WEIGHTS_DIR / "fer2013-accurate.onnx", wheel_weights / "fer2013-accurate.onnx"
    meta, shipped_meta = read_metadata(tree), read_metadata(wheel)
    entries = shipped_meta.pop("shipped_members")
    assert shipped_meta == meta
    assert {(e["member"], e["name"]) for e in entries} == {("fer2013-v7", "fer2013"), ("fer2013-v2", "fer2013-robust")}
    for e in entries:
        assert e["sha256"] == _sha(WEIGHTS_DIR / f"{e['name']}.onnx")
        assert e["weight"] == next(m["weight"] for m in meta["ensemble"] if m["name"] == e["member"])
    assert tree.stat().st_size - wheel.stat().st_size > 3.5e6  # two ~2 MB networks


def test_the_wheels_accurate_model_answers_as_the_tree_file(stored_accurate):
    """On the README's photo (detector, crops, classifier) and on random faces, with and without flip TTA."""
    photo = ROOT / "examples" / "astronaut.png"
    tree, wheel = (ferkit.load_recognizer(p) for p in (WEIGHTS_DIR / "fer2013-accurate.onnx", stored_accurate))
    a, b = tree.analyze(photo), wheel.analyze(photo)
    assert len(a) == len(b) >= 1
    for x, y in zip(a, b):
        assert x.box == y.box and x.emotion == y.emotion
        np.testing.assert_allclose(list(y.probabilities.values()), list(x.probabilities.values()), atol=1e-5)
    faces = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    for tta in (False, "flip"):
        tree, wheel = (ferkit.load_recognizer(p, detector="none", tta=tta)
                       for p in (WEIGHTS_DIR / "fer2013-accurate.onnx", stored_accurate))
        np.testing.assert_allclose(wheel.classify(faces), tree.classify(faces), atol=1e-5)
