"""On-device mode (#36): the BlazeFace close-up retry (pipeline.js's port of YuNetDetector.detect_faces' last step) in
Debian's Chromium against the Python pipeline in the same test, with the parity test's worker, helpers and tolerances
(boxes and landmarks within 2 px, probabilities within 0.02, the same emotion).

No photo in the parity test reaches the retry: YuNet's second look (the image inside a margin) finds every close-up
there. A washed-out close-up does not: the astronaut's head cropped tight and faded to 8 % of its contrast on a light
grey, as a fogged or over-exposed webcam gives it. YuNet, which reads raw 0-255 pixels, scores it under 0.2 in both
looks; BlazeFace scores it about 0.8, over the 0.75 its retry keeps.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from .conftest import encode
from .test_browser import playwright_instance  # noqa: F401
from .test_ondevice_parity import assert_same_faces, on_device, recognizer, server, worker_page  # noqa: F401

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]


def washed_out_closeups() -> dict[str, bytes]:
    """name -> PNG: the astronaut's head (190x180 px) at 8 % contrast, as it is and enlarged twice (a 360x380 photo)."""
    head = cv2.imread(str(ROOT / "examples" / "astronaut.png"))[40:220, 130:320]
    faded = cv2.convertScaleAbs(head, alpha=0.08, beta=60)        # pixel values 60-80
    lighter = cv2.convertScaleAbs(head, alpha=0.08, beta=128)     # 128-148
    return {"washed-out close-up": encode(faded),
            "washed-out close-up, light": encode(lighter),
            "washed-out close-up, enlarged 2x": encode(cv2.resize(faded, None, fx=2, fy=2,
                                                                  interpolation=cv2.INTER_CUBIC))}


def test_washed_out_closeups_take_the_blazeface_retry(recognizer):  # noqa: F811
    """In Python: YuNet finds nothing in either look, and the face comes from BlazeFace (so the parity below is the
    retry's)."""
    from ferkit.images import decode_image

    for name, data in washed_out_closeups().items():
        image = decode_image(data, name)
        assert len(recognizer.detector.raw(image)) == 0 and len(recognizer.detector.raw_with_margin(image)) == 0, name
        faces = [f.to_dict() for f in recognizer.analyze(image)]
        assert [f["detector"] for f in faces] == ["blazeface"], (name, faces)


def test_blazeface_retry_matches_the_python_pipeline(worker_page, recognizer):  # noqa: F811
    from ferkit.images import decode_image

    page, manifest = worker_page
    assert manifest["closeup"]["name"] == "blazeface"
    for name, data in washed_out_closeups().items():
        image = decode_image(data, name)
        py = [f.to_dict() for f in recognizer.analyze(image)]
        js = on_device(page, data)
        assert (js["width"], js["height"]) == (image.shape[1], image.shape[0]), name
        assert [f["detector"] for f in js["faces"]] == ["blazeface"], (name, js["faces"])
        assert_same_faces(js["faces"], py, name)
