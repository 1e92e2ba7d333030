"""`ferkit label` without a browser (issue 35): its inputs, the store (each photo analysed once, every answer on disk,
the CSV `ferkit adapt` reads, the order faces are asked in) and the running estimate. Real model, real files; the
page itself is driven in Chromium by tests/test_label_browser.py."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import ferkit
from ferkit.adapt import read_labelled
from ferkit.cli import main
from ferkit.label.store import MIN_PER_CLASS, SKIP, LabelError, LabelStore, estimate, find_photos, person_rule

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "astronaut.png"


@pytest.fixture(scope="module")
def rec():
    return ferkit.load_recognizer()


@pytest.fixture
def photos(tmp_path) -> Path:
    """alice/astronaut.png (one face), bob/two.png (the astronaut and its mirror image: two faces), bob/bad.jpg
    (a PDF's first bytes)."""
    a = cv2.imread(str(PHOTO))
    (tmp_path / "photos" / "alice").mkdir(parents=True)
    (tmp_path / "photos" / "bob").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "alice" / "astronaut.png"), a)
    cv2.imwrite(str(tmp_path / "photos" / "bob" / "two.png"), np.concatenate([a, a[:, ::-1]], 1))
    (tmp_path / "photos" / "bob" / "bad.jpg").write_bytes(b"%PDF-1.4 not a photo")
    return tmp_path / "photos"


def _run(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("args, code, message", [
    (["{empty}"], 1, "no photos in this folder"),
    (["{tmp}/nowhere"], 1, "nowhere: no such file or folder"),
    (["{photos}", "--labels", "happy"], 2, "--labels 'happy': 1 labels; give 2 to 9"),
    (["{photos}", "--labels", "happy,Happy"], 2, "Happy, happy given more than once"),
    (["{photos}", "--labels", "happy,,sad"], 2, "an empty label"),
    (["{photos}", "--labels", ",".join(f"c{i}" for i in range(10))], 2, "10 labels; give 2 to 9"),
    (["{photos}", "--person-from", "p(["], 2, "--person-from 'p([': not 'folder' nor a regular expression"),
    (["{photos}", "--person-from", r"carol_(\d+)"], 1, "does not match {photos}/alice/astronaut.png"),
    (["{photos}", "--out", "{tmp}/labels.txt"], 1, "the labels file ends in .csv"),
    (["{photos}", "--out", "{tmp}/no/labels.csv"], 1, "no folder {tmp}/no"),
    (["{photos}", "--out", "{theirs}"], 1, "was not written by ferkit label"),
    (["{photos}", "--port", "70000"], 2, "--port 70000: a port is 0 to 65535"),
])
def test_bad_inputs_name_the_file_or_the_flag(photos, tmp_path, capsys, args, code, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "theirs.csv").write_text("path,label\n")
    where = {"tmp": tmp_path, "photos": photos, "empty": tmp_path / "empty", "theirs": tmp_path / "theirs.csv"}
    argv = [a.format(**where) for a in args]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "labels.csv")]
    got, err = _run(["label", *argv], capsys)
    assert got == code and message.format(**where) in err, err


def test_each_photo_analysed_once_answers_kept_and_the_csv_is_adapts(photos, tmp_path, rec):
    out = tmp_path / "labels.csv"
    store = LabelStore(find_photos([photos]), out, ("happy", "sad", "neutral"), rec, person_rule("folder"))
    for i in store.pending_photos():
        store.analyse(i)
    assert store.counts()["faces"] == 3 and len(store.unreadable) == 1
    assert store.unreadable[0][1].startswith(str(photos / "bob" / "bad.jpg")) and "PDF" in store.unreadable[0][1]

    first = store.next_face()
    store.answer(first.id, "label", "happy")
    if first.faces_in_photo == 2:  # a photo with several faces shows each in turn
        assert store.next_face().photo == first.photo and store.next_face().index == 1 - first.index
    faces = sorted(store.faces.values(), key=lambda f: (f.photo, f.index))
    single = next(f for f in faces if f.faces_in_photo == 1)
    two = [f for f in faces if f.faces_in_photo == 2]
    for f in two:
        store.answer(f.id, "label", "happy")
    store.answer(single.id, SKIP)
    store.answer(two[1].id, "label", "sad")  # changed after Backspace: the CSV is rewritten, the order kept
    rows = out.read_text().splitlines()
    assert rows[0] == "path,label,person,box" and len(rows) == 3
    labels = {r.split(",")[3]: r.split(",")[1] for r in rows[1:]}
    assert labels == {" ".join(map(str, two[0].box)): "happy", " ".join(map(str, two[1].box)): "sad"}
    assert len((out.parent / "labels.csv.ferkit" / "answers.jsonl").read_text().splitlines()) == 5  # every answer, changes too

    data = read_labelled(out)  # exactly what `ferkit adapt` reads
    assert [Path(p).resolve() for p in data.images] == [(photos / "bob" / "two.png").resolve()] * 2
    assert data.labels == ["happy", "sad"] and data.groups == ["bob", "bob"]

    # a torn last line (killed while writing) is dropped; nothing is decoded again; the skipped face comes back last
    with open(out.parent / "labels.csv.ferkit" / "answers.jsonl", "a") as f:
        f.write('{"path": "../photos/al')
    again = LabelStore(find_photos([photos]), out, ("happy", "sad", "neutral"), rec, person_rule("folder"))
    assert again.pending_photos() == [] and again.counts()["faces"] == 3 and len(again.unreadable) == 1
    assert again.counts()["answered"] == 2 and again.next_face().id == single.id
    assert out.read_text().splitlines() == rows

    other = LabelStore(find_photos([photos]), out, ("happy", "sad", "neutral"), ferkit.load_recognizer(detector="haar"),
                       person_rule("folder"))
    assert len(other.pending_photos()) == 3, "another detector's faces are not this one's: analysed again"

    with pytest.raises(LabelError, match="holds the label 'sad', which is not in --labels happy,neutral"):
        LabelStore(find_photos([photos]), out, ("happy", "neutral"), rec, person_rule("folder"))


def test_least_sure_first_spread_over_people(tmp_path, rec):
    """Four photos (two people), each the astronaut; their probabilities set as the analyser records them."""
    folder = tmp_path / "p"
    for person in ("ann", "ben"):
        (folder / person).mkdir(parents=True)
        for n in range(2):
            cv2.imwrite(str(folder / person / f"{n}.png"), np.zeros((8, 8, 3), np.uint8))
    store = LabelStore(find_photos([folder]), tmp_path / "l.csv", ("happy", "sad"), rec, person_rule("folder"))
    tops = {"ann/0.png": 0.9, "ann/1.png": 0.5, "ben/0.png": 0.6, "ben/1.png": 0.95}
    for i, path in enumerate(store.photos):
        top = tops[f"{path.parent.name}/{path.name}"]
        store._take(i, {"faces": [{"box": [0, 0, 8, 8], "crop": f"{i:016x}-0.jpg", "context": None,
                                   "probabilities": {"happy": top, "sad": 1 - top}}], "shape": [8, 8]})
    asked = []
    while (face := store.next_face()) is not None:
        asked.append(f"{store.photos[face.photo].parent.name}/{store.photos[face.photo].name}")
        store.answer(face.id, "label", "happy")
    assert asked == ["ann/1.png", "ben/0.png", "ann/0.png", "ben/1.png"]


def test_running_estimate(rec):
    rng = np.random.default_rng(0)
    labels = ("happy", "sad")

    def answers(n, person_count):
        out = []
        for i in range(n):
            label = labels[i % 2]
            p = {c: 0.02 for c in rec.labels}
            p[label] = 0.55 + 0.3 * rng.random()  # the model leans towards the truth
            p["neutral" if label == "happy" else "happy"] += 0.3
            total = sum(p.values())
            out.append({"label": label, "person": f"p{i % person_count}", "probabilities": {c: v / total for c, v in p.items()}})
        return out

    few = estimate(answers(2 * MIN_PER_CLASS - 2, 6), labels, rec.labels, grouped=True)
    assert not few["ready"] and f"{MIN_PER_CLASS} labels in each of 2 classes" in few["reason"]
    e = estimate(answers(60, 6), labels, rec.labels, grouped=True)
    assert e["ready"] and e["n"] == 60 and e["grouped"] and e["baseline"] == "base model" and e["note"] == ""
    assert 0 <= e["base"] <= 1 and 0 <= e["adapted"] <= 1 and e["adapted"] >= 0.9
    ungrouped = estimate(answers(60, 3), labels, rec.labels, grouped=True)
    assert not ungrouped["grouped"] and "3 persons for 5 folds" in ungrouped["note"]
    assert json.dumps(e)  # what the page gets


def test_a_port_in_use_is_named(photos, tmp_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _run(["label", str(photos), "--out", str(tmp_path / "l.csv"), "--port", str(port)], capsys)
    assert code == 2 and f"--port {port}: cannot listen on 127.0.0.1:{port}" in err and "--port 0" in err
