"""The page's on-device mode (issue 36), end to end in Debian's Chromium against a real ferkit server: the page runs
ferkit's models in its worker (static/ondevice/worker.js) and sends no image. Every request and every WebSocket the
page makes is watched; a fake camera plays the public-domain astronaut; axe-core checks both modes.
"""
from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest


from .test_browser import (ASTRONAUT, CAMERA_ARGS, astronaut_camera, axe_violations, launch,  # noqa: F401
                           open_page, playwright_instance, sample_photos, wait_until, web)

pytestmark = pytest.mark.browser

ALL_IMPACTS = ("minor", "moderate", "serious", "critical")
# The first bytes of the image formats a browser could send: JPEG, PNG, GIF, WebP (RIFF), BMP.
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"BM")
LARGEST_BODY = 2_000   # bytes: the page's own JSON bodies (a correction, a like) are far smaller than any photo
# Debian's Chromium 156 ignores V8's --noexpose-wasm; jitless V8 has no WebAssembly at all (as in browsers'
# "enhanced security" modes), which is the browser the fallback is for.
NO_WASM_ARGS = ["--js-flags=--jitless"]
MODELS_TIMEOUT = 120_000   # ms: the first load compiles the wasm and the models; slow on a shared, loaded machine


class Traffic:
    """Every request and WebSocket of a page, and what of it could carry image data."""

    def __init__(self, page):
        self.requests: list[tuple[str, str, int]] = []      # method, url, body bytes
        self.image_bodies: list[str] = []                   # requests whose body is (or could be) an image
        self.sockets: list[str] = []
        self.frames_sent: list[int] = []                    # sizes of the WebSocket messages the page sent
        page.on("request", self._request)
        page.on("websocket", self._websocket)

    def _request(self, request):
        body = request.post_data_buffer or b""
        self.requests.append((request.method, request.url, len(body)))
        if body.startswith(IMAGE_MAGIC) or len(body) > LARGEST_BODY or "/api/v1/analyze" in request.url:
            self.image_bodies.append(f"{request.method} {request.url} ({len(body)} bytes)")

    def _websocket(self, ws):
        self.sockets.append(ws.url)
        ws.on("framesent", lambda payload: self.frames_sent.append(len(payload)))

    def posts(self) -> list[str]:
        return [f"{m} {u}" for m, u, _ in self.requests if m not in ("GET", "HEAD")]


def open_ondevice(playwright_instance, web, *extra, width=1280, height=800):
    """A Chromium that runs WebAssembly, on the page, its traffic watched from the first request; the on-device models
    loaded (the detector and classifier: the face features may follow)."""
    browser = launch(playwright_instance, *extra, ondevice=True)
    page = browser.new_page(viewport={"width": width, "height": height})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    traffic = Traffic(page)
    page.goto(web.url)
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_attribute("body", "data-mode") == "device"
    wait_until(page, "document.querySelector('#where').dataset.core === 'ready'", MODELS_TIMEOUT)
    return browser, page, errors, traffic


def labels(web) -> list[str]:
    """The server's model's labels (the default's are FER+'s eight, not FER-2013's seven)."""
    return httpx.get(f"{web.url}/api/v1/info", timeout=30).json()["labels"]


def start_live_on_the_device(playwright_instance, web, camera):
    """A browser in on-device mode with a fake camera playing `camera`, live mode started and a face drawn:
    (browser, page, errors, traffic)."""
    browser, page, errors, traffic = open_ondevice(
        playwright_instance, web, *CAMERA_ARGS, f"--use-file-for-fake-video-capture={camera}")
    page.click("#tab-live")
    page.click("#live-start")
    wait_until(page, "Number(document.querySelector('#overlay').dataset.faces || 0) >= 1", MODELS_TIMEOUT)
    return browser, page, errors, traffic


def where(page) -> str:
    return page.inner_text("#where-text")


def faces_drawn(page) -> int:
    return int(page.evaluate("Number(document.querySelector('#overlay').dataset.faces || 0)"))


def frame_drawn(page) -> int:
    return int(page.evaluate("Number(document.querySelector('#overlay').dataset.frame || 0)"))


# ---------------------------------------------------------------- photo mode
def test_photo_mode_on_the_device_uploads_nothing(web, playwright_instance, sample_photos, tmp_path):
    browser, page, errors, traffic = open_ondevice(playwright_instance, web)
    assert where(page) == "On this device: nothing is uploaded"
    assert page.locator("#where").is_visible() and page.is_checked("#where-device")
    assert axe_violations(page, ALL_IMPACTS) == [], "device mode, nothing analysed yet"

    # a file: the astronaut as a 640x480 photo; the result drawn by the same code as the server's, said to be local
    page.set_input_files("#file-input", str(sample_photos["640x480"]))
    wait_until(page, "document.querySelectorAll('#photo-faces .face').length === 1", MODELS_TIMEOUT)
    caption = page.inner_text("#photo-caption")
    assert caption.startswith("640 × 480 pixels; 1 face;") and "on this device (detect" in caption, caption
    card = page.locator("#photo-faces .face").first
    assert card.get_attribute("data-emotion") in labels(web)
    assert page.locator("#photo-boxes .face-box").count() == 1
    assert page.inner_text("#photo-message").startswith("1 face found")
    # the server's answer for the same photo agrees on the face (the parity test checks the numbers closely)
    served = httpx.post(f"{web.url}/api/v1/analyze", files={"file": sample_photos["640x480"].read_bytes()},
                        timeout=60).json()["faces"][0]
    shown = page.evaluate("JSON.parse(document.querySelector('#json-code').textContent).faces[0]")
    assert shown["emotion"] == served["emotion"]
    assert all(abs(shown["box"][k] - served["box"][k]) <= 2 for k in "xywh"), (shown["box"], served["box"])
    assert axe_violations(page, ALL_IMPACTS) == [], "device mode, a photo's result"

    # the heat map is the server's: asked for here, the page says so
    page.check("#heatmap-toggle")
    assert page.locator("#heatmap-note").is_visible() and "server only" in page.inner_text("#heatmap-note")
    page.uncheck("#heatmap-toggle")

    # an example, a paste and a drop; an unreadable file; "Wrong?" sends two labels
    page.click("button.example >> nth=0")
    wait_until(page, "document.querySelector('#photo-message').textContent.startsWith('1 face found')", MODELS_TIMEOUT)
    png = list(sample_photos["350"].read_bytes())
    drop = "document.querySelector('#dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, " \
           "cancelable: true}))"
    paste = "document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}))"
    for dispatch in (drop, paste):
        page.evaluate("document.querySelector('#photo-message').textContent = ''")
        page.evaluate("""bytes => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], 'face.png', {type: 'image/png'}));
            %s;
        }""" % dispatch, png)
        wait_until(page, "document.querySelector('#photo-message').textContent.startsWith('1 face found')",
                   MODELS_TIMEOUT)
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"these are notes, not a picture")
    page.set_input_files("#file-input", str(notes))
    wait_until(page, "document.querySelector('#photo-message').classList.contains('error')")
    assert "not an image" in page.inner_text("#photo-message")
    page.set_input_files("#file-input", str(sample_photos["640x480"]))
    page.wait_for_selector("#photo-faces .face .wrong button")
    card = page.locator("#photo-faces .face").first
    card.get_by_role("button", name=re.compile("wrong", re.I)).click()
    with page.expect_response(lambda r: "/api/v1/corrections" in r.url) as answer:
        card.get_by_role("button", name="Send").click()
    assert answer.value.status == 201

    assert traffic.image_bodies == [] and traffic.sockets == []
    assert traffic.posts() == [f"POST {web.url}/api/v1/corrections"]
    assert errors == []
    browser.close()


def test_analysis_starts_before_the_face_feature_models_load(web, playwright_instance, sample_photos):
    """The face-feature models (mesh, blendshapes) are held back by the test's network; a photo is analysed meanwhile,
    and once they arrive the next photo gets its face features."""
    manifest = httpx.get(f"{web.url}/api/v1/ondevice", timeout=30).json()
    feature_urls = [part["url"] for part in manifest["features"].values()]
    assert feature_urls, "the manifest lists no face-feature models"
    browser = launch(playwright_instance, ondevice=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    held = []
    context.route(lambda url: any(url.endswith(u) for u in feature_urls), lambda route: held.append(route))  # later
    page = context.new_page()
    page.goto(web.url)
    page.wait_for_selector("body[data-ready=true]")
    wait_until(page, "document.querySelector('#where').dataset.core === 'ready'", MODELS_TIMEOUT)
    page.set_input_files("#file-input", str(sample_photos["640x480"]))
    wait_until(page, "document.querySelectorAll('#photo-faces .face').length === 1", MODELS_TIMEOUT)
    assert page.evaluate("document.querySelector('#where').dataset.features") is None
    assert "still loading" in page.inner_text("#where-load")
    assert held, "the page did not ask for the face-feature models"
    for route in held:
        route.continue_()
    wait_until(page, "document.querySelector('#where').dataset.features === 'ready'", MODELS_TIMEOUT)
    page.set_input_files("#file-input", str(sample_photos["350"]))
    wait_until(page, "document.querySelector('#photo-message').textContent.startsWith('1 face found')", MODELS_TIMEOUT)
    face = page.evaluate("JSON.parse(document.querySelector('#json-code').textContent).faces[0]")
    assert len(face.get("mesh") or []) > 0 and "head_pose" in face, sorted(face)
    assert page.locator("#photo-faces .face .pose").count() == 1          # drawn by the server mode's code
    # the visitor can switch them off (remembered), and the next photo comes without them
    page.uncheck("#features-toggle")
    page.evaluate("document.querySelector('#photo-message').textContent = ''")
    page.set_input_files("#file-input", str(sample_photos["640x480"]))
    wait_until(page, "document.querySelector('#photo-message').textContent.startsWith('1 face found')", MODELS_TIMEOUT)
    face = page.evaluate("JSON.parse(document.querySelector('#json-code').textContent).faces[0]")
    assert "mesh" not in face and "head_pose" not in face, sorted(face)
    assert page.evaluate("localStorage.getItem('ferkit.deviceFeatures')") == "false"
    browser.close()


# ---------------------------------------------------------------- live mode
def test_live_minute_on_the_device_sends_no_frame(web, playwright_instance, astronaut_camera):
    browser, page, errors, traffic = start_live_on_the_device(playwright_instance, web, astronaut_camera)
    first = frame_drawn(page)
    loaded = len(traffic.requests)
    seen, samples = 0, 0
    for _ in range(60):                       # a minute, sampled each second
        page.wait_for_timeout(1000)
        samples += 1
        seen += faces_drawn(page) >= 1
    frames = frame_drawn(page) - first
    # during the minute the server is asked for nothing but music for the mood (the page, runtime and models loaded)
    during = [url for _, url, _ in traffic.requests[loaded:]]
    assert all("/api/v1/recommendations?emotion=" in url for url in during), during
    assert frames >= 60, f"only {frames} results in 60 s"       # at least one a second, on a loaded machine
    assert seen >= 0.9 * samples, f"the face was drawn in {seen} of {samples} samples"
    assert float(page.inner_text("#live-fps")) > 0
    stages = page.inner_text("#live-stages")
    assert re.search(r"detect \d+ ms · classify \d+ ms", stages) and "this device" in stages, stages
    assert set(page.evaluate("document.querySelector('#overlay').dataset.emotions").split(",")) <= set(labels(web))
    assert axe_violations(page, ALL_IMPACTS) == [], "device mode, live"
    page.click("#live-stop")
    assert traffic.image_bodies == [] and traffic.sockets == [] and traffic.frames_sent == []
    assert all(method in ("GET", "HEAD") for method, _, _ in traffic.requests), traffic.posts()
    assert errors == []
    browser.close()


def test_switching_modes_mid_session(web, playwright_instance, astronaut_camera):
    browser, page, errors, traffic = start_live_on_the_device(playwright_instance, web, astronaut_camera)
    assert traffic.sockets == []

    # to the server: a WebSocket opens and carries the frames; the session goes on (the camera was not restarted)
    page.click("label[for=where-server]")
    assert where(page) == "On the server"
    wait_until(page, "document.querySelector('#overlay').dataset.frame && "
                     "document.querySelector('#live-stages').textContent.startsWith('server')", 30_000)
    wait_until(page, "Number(document.querySelector('#overlay').dataset.frame) >= 5", 30_000)
    assert page.is_disabled("#live-start") and faces_drawn(page) >= 1
    assert traffic.sockets == [f"{web.ws_url}/api/v1/live"] and len(traffic.frames_sent) >= 5
    assert re.search(r"server \d+ ms · queue \d+ ms", page.inner_text("#live-stages"))
    assert axe_violations(page, ALL_IMPACTS) == [], "server mode, live"

    # back to the device: the socket is closed, no more frames leave, and results keep coming from the worker
    page.click("label[for=where-device]")
    assert where(page) == "On this device: nothing is uploaded"
    wait_until(page, "document.querySelector('#live-stages').textContent.includes('this device')", 30_000)
    sent = len(traffic.frames_sent)
    before = frame_drawn(page)
    page.wait_for_timeout(5000)
    assert len(traffic.frames_sent) <= sent + 2          # at most the frames already on their way at the switch
    assert frame_drawn(page) > before and faces_drawn(page) >= 1
    # remembered: a reload starts on the device, and "On the server" after choosing it
    page.click("#live-stop")
    page.click("label[for=where-server]")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_attribute("body", "data-mode") == "server" and page.is_checked("#where-server")
    assert errors == []
    browser.close()


# ---------------------------------------------------------------- a browser that cannot
def test_without_webassembly_the_page_uses_the_server_and_says_why(web, playwright_instance, sample_photos):
    browser = launch(playwright_instance, *NO_WASM_ARGS, ondevice=True)
    page, errors = open_page(browser, web.url, 800, 1280)
    assert page.evaluate("typeof WebAssembly") == "undefined"
    assert page.get_attribute("body", "data-mode") == "server"
    assert where(page) == "On the server" and page.is_checked("#where-server")
    assert page.is_disabled("#where-device")
    why = page.inner_text("#where-why")
    assert "WebAssembly" in why and "analysed on the server" in why
    with page.expect_response(lambda r: "/api/v1/analyze" in r.url):
        page.set_input_files("#file-input", str(sample_photos["640x480"]))
    page.wait_for_selector("#photo-faces .face")
    assert "on the server" in page.inner_text("#photo-caption")
    assert axe_violations(page, ALL_IMPACTS) == [], "server mode (no WebAssembly), a photo's result"
    assert errors == []
    browser.close()
