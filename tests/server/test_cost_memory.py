"""Memory the event loop's process keeps after refused uploads (issue 33): a refused upload is freed when its answer
is sent, not at the next full collection of the garbage collector.

The analysis worker's refusal came back to the event loop as an exception whose traceback held the frames that
held the upload (the pool thread's, the pool's and the route's), in a reference cycle with the exception: each
refused upload then stayed in memory until Python's next full collection, which a server with few long-lived
objects runs rarely (the cost campaign's refused bombs kept 60-117 MB so). The test runs with the collector off,
so that only reference counting frees memory, and counts Python's own allocations (tracemalloc) in the process
that runs the server: no timing, no resident-memory noise from other processes."""
from __future__ import annotations

import gc
import tracemalloc

import pytest

from .test_cost import multipart

UPLOADS = 30
SIZE = 1_400_000  # under the test server's 1.5 MB upload limit: read in full, sent to a worker, refused there


@pytest.fixture()
def collector_off():
    gc.collect()
    gc.disable()
    tracemalloc.start(1)
    try:
        yield
    finally:
        tracemalloc.stop()
        gc.enable()
        gc.collect()


@pytest.mark.parametrize("as_form", [False, True], ids=["raw body", "multipart"])
def test_refused_uploads_are_freed_with_their_answer(http, server, collector_off, as_form):
    junk = b"\x00not an image" + bytes(range(256)) * (SIZE // 256)  # no image format's signature: a 415
    headers, body = (multipart([("file", junk)]) if as_form else
                     ({"Content-Type": "application/octet-stream"}, junk))
    http.post("/api/v1/analyze", content=body, headers=headers)  # the first request's one-off allocations
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(UPLOADS):
        r = http.post("/api/v1/analyze", content=body, headers=headers)
        assert r.status_code == 415 and "upload" in r.json()["detail"], r.text[:300]
    kept = tracemalloc.get_traced_memory()[0] - before
    # before the fix every upload stayed: 30 x 1.4 MB = 42 MB; allowed: a few uploads' worth, for buffers in flight
    assert kept < 4 * SIZE, f"{kept / 1e6:.1f} MB still allocated after {UPLOADS} refused uploads of {SIZE / 1e6:.1f} MB"
