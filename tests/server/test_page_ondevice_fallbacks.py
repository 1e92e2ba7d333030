"""What the page does in on-device mode when part of it cannot run, in Debian's Chromium against a real ferkit server:
a face-feature model that does not load (its bytes differ from the manifest's sha256, or its URL answers 404) is
said so on the page, and the faces keep coming, with their emotions, from the worker; a browser whose WebAssembly
has no SIMD gets the server mode and the sentence saying why.

The failures are made on the browser's side of the network (Playwright answers the model's URL instead of the
server): the server, the worker and the page are the real ones, and the worker's own sha256 check is what refuses
the altered bytes.
"""
from __future__ import annotations

import httpx
import pytest

from .test_browser import (axe_violations, launch, open_page, playwright_instance, sample_photos,  # noqa: F401
                           wait_until, web)
from .test_page_ondevice import ALL_IMPACTS, MODELS_TIMEOUT, labels

pytestmark = pytest.mark.browser

# V8 as on a CPU without SSE4.1, where it has no WebAssembly SIMD (validation fails: "Wasm SIMD unsupported").
# Debian's Chromium 156 has no switch for SIMD itself: --js-flags=--no-experimental-wasm-simd and --no-wasm-simd are
# not V8 flags any more (SIMD shipped), and --disable-features=WebAssemblySimd is ignored; all three leave it on.
NO_SIMD_ARGS = ["--js-flags=--no-enable-sse4-1"]
# Does the runtime's own wasm (what the worker would compile) validate in this browser?
RUNTIME_VALIDATES = """async () => WebAssembly.validate(
    await (await fetch("/static/ondevice/ort/ort-wasm-simd-threaded.wasm")).arrayBuffer())"""


def altered(route):
    """The real model file with one byte changed: the same size, another sha256."""
    body = bytearray(httpx.get(route.request.url, timeout=60).content)
    body[len(body) // 2] ^= 0xFF
    route.fulfill(status=200, body=bytes(body), content_type="application/octet-stream")


def missing(route):
    route.fulfill(status=404, body="not found", content_type="text/plain")


@pytest.mark.parametrize("model, answer, reason", [("mesh", altered, "sha256"), ("blendshapes", missing, "HTTP 404")])
def test_face_features_that_fail_to_load_are_said_and_emotions_still_come(web, playwright_instance, sample_photos,
                                                                          model, answer, reason):
    url = httpx.get(f"{web.url}/api/v1/ondevice", timeout=30).json()["features"][model]["url"]
    browser = launch(playwright_instance, ondevice=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.route(lambda u: u.endswith(url), answer)
    page = context.new_page()
    errors, posts = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: posts.append(r.url) if r.method not in ("GET", "HEAD") else None)
    page.goto(web.url)
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_attribute("body", "data-mode") == "device"
    wait_until(page, "document.querySelector('#where').dataset.features === 'failed'", MODELS_TIMEOUT)

    # said in words under the bar, with the cause; the analysis stays on this device
    message = page.inner_text("#where-load")
    assert message.startswith("The face features failed to load (") and reason in message, message
    assert "emotions are still analysed on this device" in message
    assert page.locator("#where-load").is_visible()
    assert page.inner_text("#where-text") == "On this device: nothing is uploaded"
    assert page.is_checked("#where-device") and page.is_disabled("#features-toggle")
    assert not page.is_checked("#features-toggle")          # not shown as on; the stored choice is left as it was
    assert page.evaluate("localStorage.getItem('ferkit.deviceFeatures')") is None

    # a photo is analysed on the device: a face with its emotion, without the face features, nothing uploaded
    page.set_input_files("#file-input", str(sample_photos["640x480"]))
    wait_until(page, "document.querySelector('#photo-message').textContent.startsWith('1 face found')", MODELS_TIMEOUT)
    face = page.evaluate("JSON.parse(document.querySelector('#json-code').textContent).faces[0]")
    assert face["emotion"] in labels(web) and abs(sum(face["probabilities"].values()) - 1) < 0.01
    assert "mesh" not in face and "head_pose" not in face and "blendshapes" not in face, sorted(face)
    assert "on this device" in page.inner_text("#photo-caption")
    assert axe_violations(page, ALL_IMPACTS) == [], "device mode, the face features failed"
    assert posts == [] and errors == []
    browser.close()


def test_without_wasm_simd_the_page_uses_the_server_and_says_why(web, playwright_instance, sample_photos):
    # the same check in an ordinary Chromium first: the runtime validates there, and the page runs on the device
    browser = launch(playwright_instance, ondevice=True)
    page, _ = open_page(browser, web.url, 800, 1280)
    assert page.evaluate(RUNTIME_VALIDATES) is True and page.get_attribute("body", "data-mode") == "device"
    browser.close()

    browser = launch(playwright_instance, *NO_SIMD_ARGS, ondevice=True)
    page, errors = open_page(browser, web.url, 800, 1280)
    assert page.evaluate("typeof WebAssembly") == "object"          # WebAssembly is there, without SIMD
    assert page.evaluate(RUNTIME_VALIDATES) is False, "onnxruntime-web's wasm validates: this browser has SIMD"
    assert page.get_attribute("body", "data-mode") == "server"
    assert page.inner_text("#where-text") == "On the server" and page.is_checked("#where-server")
    assert page.is_disabled("#where-device")
    assert page.inner_text("#where-why") == ("This browser's WebAssembly has no SIMD, which on-device analysis needs, "
                                             "so photos and frames are analysed on the server.")
    with page.expect_response(lambda r: "/api/v1/analyze" in r.url):
        page.set_input_files("#file-input", str(sample_photos["640x480"]))
    page.wait_for_selector("#photo-faces .face")
    assert "on the server" in page.inner_text("#photo-caption")
    assert axe_violations(page, ALL_IMPACTS) == [], "server mode (no SIMD), a photo's result"
    assert errors == []
    browser.close()
