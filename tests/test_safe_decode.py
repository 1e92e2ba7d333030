"""ferkit.safe_decode: images decoded in child processes with hard CPU-time and memory limits (issue 26)."""
from __future__ import annotations

import io
import resource
import time

import numpy as np
import pytest
from PIL import Image

from ferkit.images import UnreadableImageError, UnsupportedImageFormatError, decode_image
from ferkit.safe_decode import DecodeLimitError, DecoderPool


def _png(w: int, h: int, noisy: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    pixels = (rng.random((h, w, 3)) * 255).astype(np.uint8) if noisy else np.zeros((h, w, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pool():
    with DecoderPool(workers=1) as p:
        yield p


def test_decodes_as_in_process_and_passes_refusals_through(pool):
    data = _png(320, 200, noisy=True)
    image = pool.decode(data, "a.png")
    assert np.array_equal(image, decode_image(data, "a.png")) and image.flags.writeable
    with pytest.raises(UnsupportedImageFormatError) as e:
        pool.decode(b"%PDF-1.7 ...", "doc.pdf")
    assert e.value.kind == "a PDF document" and str(e.value).startswith("doc.pdf: ")
    with pytest.raises(UnreadableImageError, match="truncated PNG"):
        pool.decode(data[:-12], "cut.png")
    assert pool.replaced == 0  # refusals are answers, not crashes: the child stays


def test_cpu_limit_ends_the_child_and_a_fresh_one_takes_over():
    data = _png(3600, 3600, noisy=True)  # about 0.1 s of user time to decode (the timer counts user time, in 10 ms ticks)
    with DecoderPool(workers=1, cpu_seconds=0.02) as pool:
        t0 = time.perf_counter()
        with pytest.raises(DecodeLimitError, match="CPU time"):
            pool.decode(data, "slow.png")
        assert time.perf_counter() - t0 < 10
        assert pool.replaced == 1
        assert pool.decode(_png(16, 16), "small.png").shape == (16, 16, 3)


def test_memory_limit_stays_in_the_child():
    big = _png(6000, 5000)  # 30 Mpx: 120 MB in Pillow, 90 MB of result (made first: making it takes memory here)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with DecoderPool(workers=1, memory_bytes=64_000_000) as pool:
        with pytest.raises(DecodeLimitError, match="memory"):
            pool.decode(big, "big.png")
        assert pool.decode(_png(16, 16), "small.png").shape == (16, 16, 3)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB: this process never held it


def test_concurrent_callers_share_the_children():
    from concurrent.futures import ThreadPoolExecutor

    data = [_png(64 + i, 48, noisy=True) for i in range(12)]
    with DecoderPool(workers=2) as pool, ThreadPoolExecutor(6) as ex:
        shapes = list(ex.map(lambda d: pool.decode(d, "x.png").shape, data))
        assert len(pool._all) <= 2
    assert shapes == [(48, 64 + i, 3) for i in range(12)]
