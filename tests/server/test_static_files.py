"""The page's static files: gzip when accepted (same bytes once unpacked), Cache-Control, ETag revalidation (304)."""
from __future__ import annotations

import httpx


def test_static_text_is_compressed_and_revalidated(server):
    with httpx.Client(base_url=server.url, timeout=30) as raw:
        plain = raw.get("/static/app.js", headers={"Accept-Encoding": "identity"})
        packed = raw.get("/static/app.js", headers={"Accept-Encoding": "gzip, deflate"})
        assert plain.status_code == packed.status_code == 200
        assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip"
        assert packed.content == plain.content                      # httpx unpacks it: the same file
        assert int(packed.headers["content-length"]) < len(plain.content) / 2
        assert packed.headers["content-type"].startswith("text/javascript")
        for r in (plain, packed):
            assert r.headers["cache-control"] == "no-cache" and r.headers["vary"] == "Accept-Encoding"
            again = raw.get("/static/app.js", headers={"If-None-Match": r.headers["etag"],
                                                       "Accept-Encoding": "gzip"})
            assert again.status_code == 304 and again.content == b""
        css = raw.get("/static/style.css", headers={"Accept-Encoding": "gzip"})
        assert css.headers["content-encoding"] == "gzip" and css.headers["content-type"].startswith("text/css")
        assert raw.head("/static/app.js", headers={"Accept-Encoding": "gzip"}).status_code == 200
        photo = raw.get("/static/examples/astronaut.jpg", headers={"Accept-Encoding": "gzip"})
        assert photo.status_code == 200 and "content-encoding" not in photo.headers
        assert photo.headers["cache-control"] == "public, max-age=86400"
        assert raw.get("/static/nothing.js").status_code == 404


def test_a_bad_range_is_refused_in_json(server):
    """A malformed or unsatisfiable Range gets the API's error shape, {"detail": ...}; a good one is still served."""
    with httpx.Client(base_url=server.url, timeout=30) as raw:
        size = len(raw.get("/static/examples/astronaut.jpg").content)
        for header, status in (("bytes", 400), ("pages=0-10", 400), ("bytes=abc-def", 400),
                               (f"bytes={size + 10}-{size + 20}", 416)):
            r = raw.get("/static/examples/astronaut.jpg", headers={"Range": header})
            assert r.status_code == status and r.headers["content-type"] == "application/json", (header, r.text)
            detail = r.json()["detail"]
            assert f'"{header}"' in detail and "b'" not in detail, detail
        part = raw.get("/static/examples/astronaut.jpg", headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and len(part.content) == 100
        assert raw.get("/static/app.js", headers={"Range": "bytes", "Accept-Encoding": "gzip"}).status_code == 400
