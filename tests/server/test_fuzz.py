"""A bounded, seeded fuzz campaign against the real server over real HTTP and WebSockets (the full one, with
memory and file-creation checks, is benchmarks/fuzz_server.py): no input a client can send gets a 5xx,
drops the connection, or logs an error, and the server answers normally afterwards.
"""
from __future__ import annotations

import json
import random

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from .fuzz_inputs import extreme_aspects, image_inputs, request_for, ws_messages

SEED = 19
UPLOADS = 300
WS_MESSAGES = 150


def _check_answer(r: httpx.Response, label: str) -> None:
    assert r.status_code < 500, (label, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), (label, r.headers["content-type"])
    body = r.json()
    if r.status_code >= 400:
        assert isinstance(body["detail"], str) and body["detail"], (label, body)
    else:
        assert r.status_code == 200 and isinstance(body["faces"], list), (label, body)


def test_malformed_uploads_get_4xx_json_on_a_kept_connection(server, face_image):
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}
    # one keep-alive connection: a dropped connection would surface as a transport error
    with httpx.Client(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=1)) as client:
        for label, data in image_inputs(SEED, UPLOADS, face_image):
            family, headers, body = request_for(rng, data)
            r = client.post("/api/v1/analyze", content=body, headers=headers)
            _check_answer(r, f"{label} / {family}")
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert client.get("/healthz").json()["model_loaded"] is True
    assert server.error_messages() == []
    # the campaign reached every outcome, not just the first refusal
    assert {200, 400, 413, 415, 422} <= set(statuses), statuses


@pytest.mark.parametrize("label, data", list(extreme_aspects()), ids=lambda x: x if isinstance(x, str) else "")
def test_extreme_aspect_ratios_are_answered(http, server, label, data):
    """Issue 19, item 1: these reached cv2.resize with a zero side in detection and answered 500."""
    r = http.post("/api/v1/analyze", files={"file": ("wide.png", data, "image/png")})
    _check_answer(r, label)
    with connect(f"{server.ws_url}/api/v1/live", max_size=None, open_timeout=10) as ws:
        ws.recv(timeout=10)
        ws.send(data)
        msg = json.loads(ws.recv(timeout=30))
        assert msg["type"] in ("result", "error")
        if msg["type"] == "error":
            assert "server error" not in msg["detail"], msg


def test_websocket_garbage_gets_an_answer_each_and_the_socket_stays_open(server, face_image):
    answers: dict[str, int] = {}
    with connect(f"{server.ws_url}/api/v1/live", max_size=None, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        for label, message in ws_messages(SEED, WS_MESSAGES, face_image):
            ws.send(message)  # one at a time, so none is dropped as stale and each has its answer
            msg = json.loads(ws.recv(timeout=30))
            assert msg["type"] in ("result", "error", "pong"), (label, msg)
            if msg["type"] == "error":
                assert "server error" not in msg["detail"], (label, msg)
            answers[msg["type"]] = answers.get(msg["type"], 0) + 1
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"
    assert server.error_messages() == []
    assert {"result", "error", "pong"} <= set(answers), answers


# ---------------------------------------------------------------- the app's own OpenAPI, by schemathesis
schemathesis = pytest.importorskip("schemathesis")


@pytest.fixture(scope="module")
def openapi_server(tmp_path_factory):
    """A server whose music feedback goes to a temporary file, not the user's own."""
    from ferkit.music import FeedbackStore, Recommender, load_catalog

    from .conftest import TEST_LIMITS, start_server

    store = FeedbackStore(tmp_path_factory.mktemp("music") / "feedback.sqlite")
    running, stop = start_server(configure=lambda app: setattr(app.state, "ferkit_music", Recommender(load_catalog(), store)),
                                 **TEST_LIMITS)
    yield running
    stop()


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(data=st.data())
def _call_as_documented(operation, data):
    case = data.draw(operation.as_strategy())
    # positive_data_acceptance is left out: bytes the schema allows are refused when they are not an image,
    # and a well-formed track id when no track has it; a schema cannot say either
    case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])


def test_every_operation_answers_as_documented(openapi_server):
    """schemathesis: generated valid and invalid requests for every operation in /openapi.json; never a 5xx, and
    every answer's status, content type and body are the ones documented."""
    schema = schemathesis.openapi.from_url(f"{openapi_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    for operation in operations:
        _call_as_documented(operation)
    assert openapi_server.error_messages() == []
