"""`ferkit report`: the real `ferkit video` (every feature) on a clip of 3 real faces, its report opened in Debian's
Chromium with no network; and the report of a real `ferkit batch` result."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests._videos import make_grid_video, pick_faces

from ferkit import EMOTIONS
from ferkit.batch import run as batch_run
from ferkit.report import write_report
from ferkit.video import analyze_video

pytest.importorskip("pandas")
pytestmark = pytest.mark.data
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ANGRY, HAPPY, SURPRISE = 0, 3, 5


def ferkit(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferkit", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def three(tmp_path_factory, detectable_faces):
    """(video output folder, report.html): three people in a 3 s clip, through the real commands. The video is named
    relative to its folder, as a user in that folder would, and the report is made from elsewhere."""
    folder = tmp_path_factory.mktemp("three")
    labels = [HAPPY, SURPRISE, ANGRY]
    make_grid_video(folder / "three.mp4", pick_faces(detectable_faces, labels), labels, n_frames=30, fps=10)
    video = ferkit("video", "three.mp4", "--out", "three_ferkit", "--features", "all", "--no-progress",
                   "--no-annotate", cwd=folder)
    assert video.returncode == 0, video.stderr
    out = folder / "three_ferkit"
    report = ferkit("report", out, "--out", folder / "report.html", cwd=tmp_path_factory.mktemp("elsewhere"))
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip() == f"wrote {folder / 'report.html'}"
    return out, folder / "report.html"


@pytest.fixture(scope="module")
def page(three):
    """The report in Chromium: an offline context, every request other than file: and data: aborted (and kept)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    _, report = three
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(offline=True)
        requests, console = [], []

        def route(r):
            requests.append(r.request.url)
            r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort()

        context.route("**/*", route)
        tab = context.new_page()
        tab.on("console", lambda m: console.append(m.text))
        tab.on("requestfailed", lambda r: requests.append(r.url))
        tab.goto(report.as_uri(), wait_until="load")
        yield tab, requests, console
        browser.close()


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())["faces"]


@pytest.mark.browser
def test_the_report_opens_offline_and_shows_three_people(three, page):
    out, _ = three
    tab, requests, console = page
    assert len(summary_of(out)) == 3                     # the clip gives 3 people
    assert tab.locator("section.person").count() == 3
    assert tab.locator("table.people tr[data-track]").count() == 3
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert console == []                                 # no blocked resource, no policy violation
    images = tab.evaluate("[...document.images].map(i => [i.src.slice(0, 23), i.complete, i.naturalWidth])")
    assert images == [["data:image/jpeg;base64,", True, 112]] * 6   # a face per person, in the table and its section
    assert tab.locator("section.person svg").count() == 9           # emotions, action units and pose, per person
    assert tab.locator("section.person svg path").count() >= 3 * (2 * len(EMOTIONS) + 5 + 3)
    assert "centred moving average over 1 s" in tab.inner_text("section.person")


@pytest.mark.browser
def test_the_reports_numbers_are_the_summarys(three, page):
    out, _ = three
    tab, _, _ = page
    summary = summary_of(out)
    cells = tab.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-track]')].map(t =>
        [t.tagName + t.dataset.track, Object.fromEntries([...t.querySelectorAll('[data-field]')].map(
            c => [c.dataset.field, [c.dataset.value, c.textContent]]))]))""")
    for track, s in summary.items():
        row = cells["TR" + track]
        assert row["seconds"] == [str(s["seconds"]), f"{s['seconds']:.1f} s"]
        assert row["first-last"][0] == f"{s['first']}-{s['last']}"
        assert row["dominant"][0] == s["dominant"]
        assert row["looking_away"] == [str(s["looking_away"]), f"{s['looking_away']:.1%}"]
        section = cells["SECTION" + track]
        for k in EMOTIONS:
            assert row[f"share-{k}"] == [str(s["share"][k]), f"{s['share'][k]:.1%}"]
            assert section[f"share-{k}"][0] == str(s["share"][k])
            assert section[f"mean-{k}"] == [str(s["mean_probabilities"][k]), f"{s['mean_probabilities'][k]:.3f}"]
        for unit, mean in s["mean_action_units"].items():
            assert section[f"mean-{unit}"] == [str(mean), f"{mean:.3f}"]
        text = tab.inner_text(f"#person-{track} .facts")
        assert f"On screen {s['seconds']:.1f} s ({s['rows']} analysed frames" in text


def test_without_the_video_the_report_says_so(three, tmp_path):
    out, _ = three
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    text = write_report(moved, tmp_path / "r.html").read_text()
    assert "<img" not in text
    assert text.count("the file is no longer at its path: no crop") == 6
    assert text.count('class="person"') == 3


def test_a_video_without_faces(recognizer, tmp_path):
    import cv2

    from tests._videos import HEIGHT, WIDTH, canvas

    clip = tmp_path / "empty_room.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (WIDTH, HEIGHT))
    for _ in range(8):
        writer.write(cv2.cvtColor(canvas(), cv2.COLOR_GRAY2BGR))
    writer.release()
    analyze_video(clip, recognizer, tmp_path / "out", annotate=False)
    text = write_report(tmp_path / "out", tmp_path / "r.html").read_text()
    assert "People: 0" in text and "No face was found in the analysed frames." in text
    assert "8 analysed frames: 8 with no face, 0 that could not be decoded." in text


def test_a_batch_report_counts_what_batch_counted(tmp_path, three):
    out, _ = three
    (tmp_path / "astronaut.png").write_bytes((ROOT / "examples" / "astronaut.png").read_bytes())
    (tmp_path / "broken.jpg").write_bytes(b"<html>not a photo</html>")
    inputs = [tmp_path / "astronaut.png", tmp_path / "broken.jpg", out.parent / "three.mp4"]
    summary = batch_run([str(p) for p in inputs], out=tmp_path / "r.jsonl", workers=1, features="pose", fps=5)
    text = write_report(tmp_path / "r.jsonl", tmp_path / "r.html").read_text()
    values = dict(re.findall(r'data-field="([^"]+)" data-value="([^"]*)"', text))
    from tests.conftest import default_labels

    for k in default_labels():  # the batch ran the default model
        assert int(values[f"faces-{k}"]) == summary.emotions.get(k, 0)
    assert sum(int(values[f"faces-{k}"]) for k in default_labels()) == summary.faces > 3
    assert text.count("<tr data-row=") == summary.faces and text.count("<img") == summary.faces
    assert (f"3 inputs: {summary.inputs['ok']} with a face, {summary.inputs.get('no_face', 0)} without, "
            f"{summary.inputs['error']} that could not be analysed; {summary.faces} faces") in text
    assert html.escape(summary.first_errors[0]) in text and "Errors: 1" in text


def test_cli_errors_are_messages(tmp_path):
    missing = ferkit("report", tmp_path / "nothing")
    assert missing.returncode == 1 and missing.stderr == f"ferkit: {tmp_path / 'nothing'}: no such file or folder\n"
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    wrong = ferkit("report", tmp_path / "x.csv", "--out", tmp_path / "no" / "r.html")
    assert wrong.returncode == 2 and "does not exist; create it first" in wrong.stderr
    other = ferkit("report", tmp_path / "x.csv")
    assert other.returncode == 1 and "x.csv: no column source, status, emotion" in other.stderr
    assert "Traceback" not in missing.stderr + wrong.stderr + other.stderr
