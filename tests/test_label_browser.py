"""`ferkit label` in Chromium (issue 35): 60 FER-2013 faces (59 photos, one with two faces, six people) labelled by
keyboard alone; the server killed with SIGKILL half-way and started again; every answer kept and the page resumed at
the next face; the CSV read by `ferkit adapt` as it is; axe-core finds nothing. Real model, real server process,
real browser, real files."""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.cli import main
from ferkit.scenes import scene
from tests.server.test_browser import axe_violations, launch, open_page, playwright_instance, wait_until  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.data, pytest.mark.slow]

LABELS = ("happy", "sad")
PERSONS = 6


@pytest.fixture(scope="module")
def photos(private_test, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """photos/pN/*.png: 29 happy and 29 sad PrivateTest faces, each in a 320x240 frame the detector finds one face
    in, and p0/two.png with a happy face left of a sad one. -> (folder, truth by 'path#face', the path below folder)."""
    from ferkit.detect import create_detector

    det = create_detector()
    root = tmp_path_factory.mktemp("label")
    folder = root / "photos"
    picked = {c: [] for c in LABELS}
    for i in range(len(private_test.labels)):
        c = private_test.classes[private_test.labels[i]]
        if c in picked and len(picked[c]) < 30:
            img = scene(private_test.pixels[i])
            if len(det.detect_faces(img)) == 1:
                picked[c].append(img)
        if all(len(v) == 30 for v in picked.values()):
            break
    truth = {}
    for n in range(29):
        for c in LABELS:
            person = f"p{(2 * n + LABELS.index(c)) % PERSONS}"
            (folder / person).mkdir(parents=True, exist_ok=True)
            name = f"{n:02d}-{c}.png"
            cv2.imwrite(str(folder / person / name), picked[c][n])
            truth[f"{person}/{name}#0"] = c
    two = np.concatenate([picked["happy"][29], picked["sad"][29]], 1)
    assert len(det.detect_faces(two)) == 2
    cv2.imwrite(str(folder / "p0" / "two.png"), two)
    truth["p0/two.png#0"], truth["p0/two.png#1"] = "happy", "sad"
    return folder, truth


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(folder: Path, out: Path, port: int, *more: Path) -> subprocess.Popen:
    """`ferkit label` as a user runs it, in its own process; returns once the page answers."""
    proc = subprocess.Popen([sys.executable, "-m", "ferkit", "label", str(folder), *map(str, more), "--out", str(out),
                             "--labels",
                             ",".join(LABELS), "--person-from", "folder", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=2) as r:
                json.load(r)
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"ferkit label did not start: {proc.stdout.read()}")
            time.sleep(0.2)


def shown(page) -> str:
    wait_until(page, "document.body.dataset.path !== undefined && document.body.dataset.path !== ''", 30_000)
    return page.evaluate("document.body.dataset.path")


def answer_by_key(page, truth: dict[str, str], answered: int) -> str:
    """Answer the face shown with its true label (Enter where the model's guess is right, else its key 1-9);
    -> the face answered."""
    face = shown(page)
    want = truth[face]
    page.keyboard.press("Enter" if page.evaluate("document.body.dataset.guess") == want else
                        str(LABELS.index(want) + 1))
    wait_until(page, f"document.body.dataset.answered === '{answered + 1}' && document.body.dataset.path !== "
                     f"{json.dumps(face)}")
    return face


def csv_rows(out: Path) -> dict[str, str]:
    """The CSV's answers by the page's names: 'path#face', the face of two.png from its box (the left one, x below
    320, is face 0: faces are numbered left to right)."""
    with open(out, newline="") as f:
        return {f"{r['path']}#{int(bool(r['box']) and int(r['box'].split()[0]) >= 320)}": r["label"] for r in csv.DictReader(f)}


def test_label_sixty_faces_by_keyboard_survive_kill_9_and_feed_adapt(photos, playwright_instance, tmp_path):
    folder, truth = photos
    out = tmp_path / "labels.csv"
    # the page's names for the faces: paths relative to the CSV's folder, as the CSV holds them
    truth = {f"{Path(os.path.relpath(folder / k.split('#')[0], tmp_path)).as_posix()}#{k.split('#')[1]}": v
             for k, v in truth.items()}
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"%PDF-1.4 a document, not a photo")
    proc = start(folder, out, port, broken)
    browser = launch(playwright_instance)
    try:
        page, errors = open_page(browser, url, 900, 1280)
        wait_until(page, "document.querySelector('#unreadable').textContent.includes('broken.jpg')")
        assert "PDF" in page.text_content("#unreadable")
        assert axe_violations(page, ("minor", "moderate", "serious", "critical")) == []
        assert "least sure" in page.text_content("#rule")

        asked = []
        for k in range(30):
            if k == 5:  # N, then Backspace back to it, then its label: one answer, changed, in its place
                face = shown(page)
                page.keyboard.press("n")
                wait_until(page, "document.body.dataset.answered === '6'")
                page.keyboard.press("Backspace")
                wait_until(page, f"document.body.dataset.back === '1' && document.body.dataset.path === "
                                 f"{json.dumps(face)}")
                assert "no usable face" in page.text_content("#status")
                page.keyboard.press(str(LABELS.index(truth[face]) + 1))
                wait_until(page, "document.body.dataset.back === '0' && document.body.dataset.path !== "
                                 f"{json.dumps(face)}")
                asked.append(face)
                continue
            if k == 10:  # a click works too, and leaves Enter to accept the next guess, not to click again
                face = shown(page)
                page.click(f"#choices button[data-label={truth[face]}]")
                wait_until(page, f"document.body.dataset.answered === '11' && document.body.dataset.path !== "
                                 f"{json.dumps(face)}")
                assert page.evaluate("document.activeElement.id") == "face-heading"
                asked.append(face)
                continue
            asked.append(answer_by_key(page, truth, k))
        assert errors == []

        proc.kill()  # SIGKILL: no handler runs, nothing is flushed on the way out
        proc.wait(10)
        kept = csv_rows(out)
        assert kept == {f: truth[f] for f in asked}, "every answer on disk, the changed one once"

        proc = start(folder, out, port, broken)
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        assert page.evaluate("document.body.dataset.answered") == "30"
        assert shown(page) not in asked  # resumed at the next face

        skipped = shown(page)
        page.keyboard.press("s")  # comes back once every other face has an answer
        wait_until(page, f"document.body.dataset.path !== {json.dumps(skipped)}")
        started = time.monotonic()
        for k in range(30, 60):
            asked.append(answer_by_key(page, truth, k))
        per_minute = 30 / (time.monotonic() - started) * 60
        assert asked[-1] == skipped
        wait_until(page, "document.body.dataset.face === ''")
        assert "Every face found so far has an answer" in page.text_content("#waiting")
        two = [i for i, f in enumerate(asked) if f.endswith(("p0/two.png#0", "p0/two.png#1"))]
        assert len(two) == 2 and two[1] == two[0] + 1, "a photo's faces one after the other"
        assert csv_rows(out) == truth
        # the estimate is recomputed in the background after each answer: wait for the one over all 60
        wait_until(page, "document.querySelector('#estimate').textContent.startsWith('Adapted head:') && "
                         "document.querySelector('#estimate').textContent.includes('from 60 labels')", 30_000)
        assert axe_violations(page, ("minor", "moderate", "serious", "critical")) == []

        page.click("#adapt")  # the button runs adapt on the CSV and writes its report (and the head, if it helps)
        wait_until(page, "['done', 'failed'].includes(document.body.dataset.adapt)", 180_000)
        assert page.evaluate("document.body.dataset.adapt") == "done", page.text_content("#adapt-status")
        assert (tmp_path / "labels-head-report" / "adapt-report.md").is_file()
        assert errors == []
        print(f"labelled 30 faces by keyboard in Chromium: {per_minute:.0f} faces a minute")
    finally:
        browser.close()
        proc.kill()
        proc.wait(10)

    with pytest.raises(SystemExit) as e:  # the CSV as it is, through `ferkit adapt`
        main(["adapt", str(out), "--out", str(tmp_path / "head.json"), "--force"])
    assert e.value.code == 0
    head = json.loads((tmp_path / "head.json").read_text())
    assert head["counts"] == {"happy": 30, "sad": 30} and head["skipped"] == 0  # two.png: each face by its box
    assert head["cross_validation"]["grouped"]


def test_ten_thousand_photos_first_face_shows_while_the_rest_are_analysed(photos, playwright_instance, tmp_path):
    """10,000 photos (hard links to the 59 above under other names, each a photo of its own): the first face shows
    long before they are all analysed, the progress says how far the analysis is, and answering keeps pace."""
    folder, _ = photos
    sources = sorted(folder.rglob("*.png"))
    many = tmp_path / "many"
    for i in range(10_000):
        (many / f"p{i % 20:02d}").mkdir(parents=True, exist_ok=True)
        os.link(sources[i % len(sources)], many / f"p{i % 20:02d}" / f"{i:05d}.png")
    port = free_port()
    proc = start(many, tmp_path / "labels.csv", port)
    browser = launch(playwright_instance)
    try:
        page, errors = open_page(browser, f"http://127.0.0.1:{port}/", 900, 1280)
        shown(page)
        state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state"))
        assert state["analysing"] and state["counts"]["analysed"] < 5_000
        assert "of 10,000 photos analysed" in page.text_content("#progress")
        for k in range(10):
            page.keyboard.press("Enter" if page.evaluate("document.body.dataset.guess") else "1")
            wait_until(page, f"document.body.dataset.answered === '{k + 1}'")
        t0 = time.monotonic()
        json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/face"))
        assert time.monotonic() - t0 < 1.0, "choosing the next face among thousands stays quick"
        assert page.locator("#history img[loading=lazy]").count() == 8
        assert errors == []
    finally:
        browser.close()
        proc.kill()
        proc.wait(10)
