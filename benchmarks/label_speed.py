"""How fast `ferkit label` lets a keyboard go: a scripted Chromium session answers faces with no thinking time (the
true label's key, or Enter where the model's guess is right) and waits for each next face to show. The figure is a
floor on what the page sustains, not a human's pace. Also: how long the first face takes to show with --photos
photos, while the rest are still being analysed in the background.

    python -m benchmarks.label_speed --photos 10000 --faces 100

Photos: PrivateTest faces of FER-2013 in 320x240 frames (200 distinct files; beyond that, hard links to them under
other names, each analysed as a photo of its own). Needs the [serve] and [dev] extras and Debian's Chromium.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2

from benchmarks._data import cpu_name, fer2013

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
DISTINCT = 200


def make_photos(folder: Path, n: int, data) -> dict[str, str]:
    """n photos in folder/pNN/ (20 people) -> true label by file name."""
    from ferkit.data import load_dataset
    from ferkit.scenes import scene

    test = load_dataset(fer2013(data)).split("PrivateTest")
    truth = {}
    for i in range(n):
        person = folder / f"p{i % 20:02d}"
        person.mkdir(parents=True, exist_ok=True)
        j = i % DISTINCT
        path = person / f"{i:05d}.png"
        if i < DISTINCT:
            cv2.imwrite(str(path), scene(test.pixels[j]))
        else:
            os.link(folder / f"p{j % 20:02d}" / f"{j:05d}.png", path)
        truth[path.name] = test.classes[test.labels[j]]
    return truth


def wait(page, expression: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        page.wait_for_timeout(5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=int, default=1000)
    p.add_argument("--faces", type=int, default=100, help="faces answered by keyboard")
    p.add_argument("--data", default=None)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        truth = make_photos(tmp / "photos", args.photos, args.data)
        labels = sorted(set(truth.values()), key=["angry", "disgust", "fear", "happy", "sad", "surprise",
                                                  "neutral"].index)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "ferkit", "label", str(tmp / "photos"), "--out",
                                 str(tmp / "labels.csv"), "--labels", ",".join(labels), "--person-from", "folder",
                                 "--port", str(port)], stdout=subprocess.DEVNULL)
        try:
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.05)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/")
                wait(page, "document.body.dataset.ready === 'true' && !!document.body.dataset.path")
                first = time.monotonic() - started
                state = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state").read())
                analysed_then = state["counts"]["analysed"]
                t0 = time.monotonic()
                for k in range(args.faces):
                    face = page.evaluate("document.body.dataset.path")
                    want = truth[face.split("#")[0].rsplit("/", 1)[1]]
                    page.keyboard.press("Enter" if page.evaluate("document.body.dataset.guess") == want else
                                        str(labels.index(want) + 1))
                    wait(page, f"document.body.dataset.answered === '{k + 1}' && document.body.dataset.path !== "
                               f"{json.dumps(face)} && document.body.dataset.path !== ''")
                seconds = time.monotonic() - t0
                state = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state").read())
                browser.close()
        finally:
            proc.kill()
            proc.wait()
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores as the OS shows them)")
    print(f"{args.photos} photos: the first face showed {first:.1f} s after the command started, with "
          f"{analysed_then} photos analysed; the rest were analysed in the background")
    print(f"keyboard only, no thinking time: {args.faces} faces in {seconds:.1f} s = "
          f"{args.faces / seconds * 60:.0f} faces a minute (a floor on what the page sustains, while "
          f"{state['counts']['analysed']} of {args.photos} photos had been analysed)")


if __name__ == "__main__":
    main()
