"""The face features through the server: FERKIT_FEATURES / serve --features puts the AUs, head pose and mesh in
/api/v1/analyze answers and live messages; without it the answers carry none of their keys (as before)."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from .conftest import start_server
from .test_browser import playwright_instance  # noqa: F401  (the module's Chromium, for the page test below)

PHOTO = Path(__file__).resolve().parents[2] / "examples" / "astronaut.png"


@pytest.fixture(scope="module")
def feature_server():
    server, stop = start_server(features="all")
    yield server
    stop()


def analyze(server) -> dict:
    r = httpx.post(f"{server.url}/api/v1/analyze", files={"file": ("astronaut.png", PHOTO.read_bytes(), "image/png")},
                   timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_uploads_get_the_features_and_live_frames_too(feature_server):
    face = analyze(feature_server)["faces"][0]
    assert len(face["mesh"]) == 478 and len(face["mesh"][0]) == 3
    assert face["action_units"]["AU12"] > 0.5 and len(face["blendshapes"]) == 52
    assert set(face["head_pose"]) == {"yaw", "pitch", "roll"}
    with connect(f"{feature_server.ws_url}/api/v1/live", max_size=None, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        ws.send(PHOTO.read_bytes())
        msg = json.loads(ws.recv(timeout=30))
        assert msg["type"] == "result" and "head_pose" in msg["faces"][0] and "action_units" in msg["faces"][0]
    schema = httpx.get(f"{feature_server.url}/openapi.json", timeout=10).json()
    assert {"mesh", "action_units", "head_pose"} <= set(schema["components"]["schemas"]["FaceResult"]["properties"])


def test_without_features_no_feature_key_appears(server):
    face = analyze(server)["faces"][0]
    assert not {"mesh", "blendshapes", "action_units", "head_pose", "adapter", "base_probabilities"} & set(face)


def test_a_bad_features_setting_stops_serve_with_its_message():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "ferkit", "serve", "--features", "smile"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "unknown face feature 'smile'" in r.stderr


@pytest.mark.browser
def test_the_page_shows_a_real_servers_features(feature_server, playwright_instance):
    """In Chromium, against a server run with every feature: the sample photo's card lists AU12 among the three
    strongest AU estimates and its head pose; the mesh toggle draws the 478 points over the photo."""
    from .test_browser import axe_violations, launch, open_page, upload

    browser = launch(playwright_instance)
    page, errors = open_page(browser, feature_server.url, 800, 1280)
    answer = upload(page, PHOTO)
    assert len(answer["faces"][0]["mesh"]) == 478
    card = page.locator("#photo-faces .face").first
    aus = card.locator(".aus").inner_text()
    assert aus.split("\n")[2] == "AU12 lip corner puller", aus  # the strongest first, named, on the 0-100 scale
    pose = card.locator(".pose").inner_text()
    assert pose.startswith("Head: ") and "(yaw " in pose, pose
    page.locator("#mesh-toggle").check()
    assert page.get_attribute("canvas.mesh", "data-points") == "478" and page.locator("canvas.mesh").is_visible()
    assert axe_violations(page) == [] and errors == []
    browser.close()


def test_the_answer_is_face_to_dict_and_the_schema_describes_every_key(feature_server):
    """The worker sends `Face.to_dict()` as it is (plus heatmap): every key the library writes is a field of the
    API's FaceResult, and the whole answer validates against AnalyzeResult, so a key added to to_dict cannot go
    undocumented (the schema once repeated Face's fields by hand and dropped new ones)."""
    import cv2

    from ferkit import load_recognizer
    from ferkit.server.routes.schemas import AnalyzeResult, FaceResult

    answer = analyze(feature_server)
    AnalyzeResult.model_validate(answer)
    library = load_recognizer(features="all").analyze(cv2.imread(str(PHOTO)))[0].to_dict()
    (face,) = answer["faces"]
    assert set(face) == set(library) | {"heatmap"}
    assert set(library) <= set(FaceResult.model_fields), set(library) - set(FaceResult.model_fields)
    assert set(answer) <= set(AnalyzeResult.model_fields) and answer["faces_left_out"] == 0
