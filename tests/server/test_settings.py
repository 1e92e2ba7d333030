"""Settings defaults and validation, and `ferkit serve` as a user starts it (a real process on a free port)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest


def test_defaults_match_the_documentation():
    from ferkit.server import Settings

    s = Settings()
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.max_upload_bytes == 10_000_000
    assert s.max_pixels == 40_000_000


def test_settings_from_the_environment(monkeypatch):
    from ferkit.server import Settings

    monkeypatch.setenv("FERKIT_MAX_UPLOAD_BYTES", "12345")
    assert Settings().max_upload_bytes == 12345
    with pytest.raises(ValueError, match="port"):
        Settings(port=70000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ferkit_serve_prints_the_url_and_serves():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ferkit", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "ferkit serve did not come up"
                time.sleep(0.1)
        assert r.json()["model_loaded"] is True
        assert "ferkit" in httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        proc.terminate()
        proc.wait(10)


def test_ferkit_serve_rejects_a_bad_port():
    r = subprocess.run([sys.executable, "-m", "ferkit", "serve", "--port", "70000"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "port" in r.stderr
