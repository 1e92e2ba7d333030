"""The server's faster paths (issue 33): the analysis pool's pipes read and written by the event loop itself, and
small multipart bodies parsed on the loop. Real workers, a real server; each test fails if the fast path loses a
job, mixes two jobs' answers or hangs."""
from __future__ import annotations

import asyncio
import json
import time

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def big_noisy_jpeg() -> bytes:
    """A 2400x1800 JPEG of noise (several MB): many pipe-fulls to write, and a while to decode."""
    noise = np.random.default_rng(33).integers(0, 256, (1800, 2400, 3), np.uint8)
    return cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


@pytest.fixture(scope="module")
def astronaut_png_bytes() -> bytes:
    return (ROOT / "examples" / "astronaut.png").read_bytes()


def _run_with_pool(scenario):
    """asyncio.run(scenario(pool)) with a started one-worker AnalysisPool of the default settings, closed after."""
    from ferkit.server.main import pool_config
    from ferkit.server.pool import AnalysisPool
    from ferkit.server.settings import Settings

    async def main():
        pool = AnalysisPool(pool_config(Settings()), workers=1, max_queue=4)
        await pool.start()
        try:
            return await scenario(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


async def _until_busy(pool) -> None:
    deadline = time.monotonic() + 30
    while not pool._busy[0]:
        assert time.monotonic() < deadline, "the job never reached the worker"
        await asyncio.sleep(0.002)


def test_a_caller_cancelled_mid_job_leaves_the_worker_in_step(big_noisy_jpeg, astronaut_png_bytes):
    """A live session that ends with a frame in flight cancels its caller: the job still runs to its end on the
    worker, so the next job gets its own answer (not the cancelled one's) and no worker is replaced."""
    async def scenario(pool):
        first = asyncio.create_task(pool.analyze(big_noisy_jpeg, "noise.jpg", 40_000_000, False))
        await _until_busy(pool)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        answer = json.loads(await pool.analyze(astronaut_png_bytes, "astronaut.png", 40_000_000, False))
        return answer, pool.replaced

    answer, replaced = _run_with_pool(scenario)
    h, w = cv2.imread(str(ROOT / "examples" / "astronaut.png")).shape[:2]
    assert answer["image"] == {"width": w, "height": h} and len(answer["faces"]) == 1
    assert replaced == 0


def test_a_pool_closed_mid_job_ends_the_job_at_once(big_noisy_jpeg):
    """Closing the pool (the server stopping) kills a worker in the middle of its pipes: the job waiting on them
    ends with WorkerLost at once, not after the wall-time backstop (30 s and more)."""
    from ferkit.server.pool import WorkerLost

    async def scenario(pool):
        job = asyncio.create_task(pool.analyze(big_noisy_jpeg, "noise.jpg", 40_000_000, False))
        await _until_busy(pool)
        t0 = time.monotonic()
        await pool.close()
        with pytest.raises(WorkerLost):
            await asyncio.wait_for(job, 10)
        return time.monotonic() - t0

    assert _run_with_pool(scenario) < 5


def test_multipart_uploads_on_either_side_of_the_inline_limit(http, face_jpeg, astronaut_png_bytes):
    """Bodies up to INLINE_MULTIPART_BYTES are parsed on the event loop, larger ones in a thread: both answer the
    same way, a photo with its face, a malformed body with the same 400."""
    from ferkit.server.routes.analyze import INLINE_MULTIPART_BYTES

    assert len(face_jpeg) < INLINE_MULTIPART_BYTES < len(astronaut_png_bytes) < 1_400_000
    for name, data, ctype in (("face.jpg", face_jpeg, "image/jpeg"), ("astronaut.png", astronaut_png_bytes, "image/png")):
        r = http.post("/api/v1/analyze", files={"file": (name, data, ctype)})
        assert r.status_code == 200 and len(r.json()["faces"]) == 1, (name, r.text[:200])
        # the same photo, then a part whose header has no colon: refused once the photo's part is parsed
        body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n"
                b"Content-Type: image/jpeg\r\n\r\n" + data +
                b"\r\n--b0undary\r\nContent-Disposition form-data\r\n\r\nx\r\n--b0undary--\r\n")
        r = http.post("/api/v1/analyze", content=body, headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
        assert r.status_code == 400 and "malformed multipart body" in r.json()["detail"], (name, r.text[:200])
