"""`ferkit recommend` and `ferkit music ...`: output, exit codes, feedback across invocations, photos."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from tests.conftest import pad_face

from ferkit.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "music.sqlite")


def test_recommend_emotion_json(capsys, db):
    code, out, err = run(capsys, "recommend", "--emotion", "sad", "--json", "--db", db)
    assert code == 0 and err == ""
    d = json.loads(out)
    assert (d["emotion"], d["strategy"], d["source"], d["notice"]) == ("sad", "match", "local", None)
    assert len(d["tracks"]) == 10
    assert {"id", "title", "artist", "genre", "year", "valence", "energy", "reason", "url"} <= set(d["tracks"][0])
    assert len({t["artist"] for t in d["tracks"]}) == 10


def test_recommend_table_lift_and_n(capsys, db):
    code, out, _ = run(capsys, "recommend", "-e", "angry", "-s", "lift", "-n", "4", "--db", db)
    assert code == 0
    assert out.startswith("4 tracks for angry (lift, from local):")
    assert [line.split(".")[0].strip() for line in out.splitlines() if line[:4].strip().rstrip(".").isdigit()] == \
        ["1", "2", "3", "4"]
    assert "Step 4 of 4 from angry toward uplifting" in out and "ferkit music like ID" in out


@pytest.mark.parametrize("argv, message", [
    (["-e", "bored"], "unknown emotion 'bored'; valid: angry, disgust, fear, happy, sad, surprise, neutral"),
    (["-e", "sad", "-s", "cheer"], "unknown strategy 'cheer'; valid: match, lift"),
    (["-e", "sad", "--provider", "deezer"], "unknown provider 'deezer'; valid: local, spotify"),
    (["-e", "sad", "-n", "0"], "-n must be between 1 and 500"),
    ([], "give either a PHOTO or --emotion"),
    (["photo.jpg", "-e", "sad"], "give either a PHOTO or --emotion"),
])
def test_usage_errors(capsys, db, argv, message):
    code, out, err = run(capsys, "recommend", *argv, "--db", db)
    assert code == 2 and out == "" and message in err


def test_own_catalog_and_its_errors(capsys, db, tmp_path):
    good = tmp_path / "mine.csv"
    good.write_text("track_id,track_name,artists,valence,energy,tempo,track_genre\n"
                    "5SuOikwiRyPMVoIQDJUgSV,Comedy,Gen Hoshino,0.715,0.461,87.9,acoustic\n"
                    "4qPNDBW1i3p13qLCt0Ki3A,Ghost - Acoustic,Ben Woodward,0.267,0.166,77.5,acoustic\n",
                    encoding="utf-8")
    code, out, _ = run(capsys, "recommend", "-e", "sad", "--catalog", str(good), "--json", "--db", db)
    d = json.loads(out)
    assert code == 0 and [t["title"] for t in d["tracks"]] == ["Ghost - Acoustic", "Comedy"]
    assert d["tracks"][0]["url"] == "https://open.spotify.com/track/4qPNDBW1i3p13qLCt0Ki3A"
    bad = tmp_path / "bad.csv"
    bad.write_text("track_name,artists,valence,energy\nA,B,0.5,0.5\nC,D,high,0.5\n", encoding="utf-8")
    code, out, err = run(capsys, "recommend", "-e", "sad", "--catalog", str(bad), "--db", db)
    assert code == 1 and f"{bad}: row 3: valence 'high' is not a number" in err
    code, _, err = run(capsys, "recommend", "-e", "sad", "--catalog", str(tmp_path / "none.csv"), "--db", db)
    assert code == 1 and "none.csv" in err
    code, out, _ = run(capsys, "music", "check", str(good))
    assert code == 0 and "2 tracks, 2 artists, 1 genres; ok" in out
    code, _, err = run(capsys, "music", "check", str(bad))
    assert code == 1 and "row 3" in err


def test_spotify_without_credentials_prints_a_notice(capsys, db, monkeypatch):
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    code, out, err = run(capsys, "recommend", "-e", "happy", "--provider", "spotify", "-n", "3", "--db", db)
    assert code == 0 and "3 tracks for happy (match, from local)" in out
    assert "notice: Spotify credentials are not set" in err and "local catalog" in err


def test_like_skip_list_wipe_across_invocations(capsys, db):
    _, out, _ = run(capsys, "recommend", "-e", "sad", "--json", "--db", db)
    tracks = json.loads(out)["tracks"]
    first, fifth = tracks[0], tracks[4]
    code, out, _ = run(capsys, "music", "skip", first["id"], "-e", "sad", "--db", db)
    assert code == 0 and out.strip() == f"skipped: {first['artist']} - {first['title']}"
    code, out, _ = run(capsys, "music", "like", fifth["id"], "--db", db)
    assert code == 0 and out.strip() == f"liked: {fifth['artist']} - {fifth['title']}"
    code, out, err = run(capsys, "music", "like", "nope", fifth["id"], "--db", db)
    assert code == 1 and "unknown track id 'nope'" in err and "liked:" in out  # the good id is still recorded
    code, out, _ = run(capsys, "music", "feedback", "--json", "--db", db)
    assert [(e["track_id"], e["action"]) for e in json.loads(out)] == [
        (first["id"], "skip"), (fifth["id"], "like"), (fifth["id"], "like")]
    _, out, _ = run(capsys, "recommend", "-e", "sad", "--json", "--db", db)
    reranked = [t["id"] for t in json.loads(out)["tracks"]]
    assert reranked[0] == fifth["id"] and reranked[1] != first["id"]
    _, out, _ = run(capsys, "recommend", "-e", "sad", "--json", "--db", db, "--no-feedback")
    assert [t["id"] for t in json.loads(out)["tracks"]] == [t["id"] for t in tracks]
    code, out, _ = run(capsys, "music", "wipe", "--db", db)
    assert code == 0 and out.startswith("wiped 3 feedback entries")
    _, out, _ = run(capsys, "music", "feedback", "--db", db)
    assert out.startswith("no feedback yet")
    _, out, _ = run(capsys, "recommend", "-e", "sad", "--json", "--db", db)
    assert [t["id"] for t in json.loads(out)["tracks"]] == [t["id"] for t in tracks]


def test_unusable_feedback_file(capsys, tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database " * 50)
    code, out, err = run(capsys, "recommend", "-e", "sad", "-n", "2", "--db", str(bad))
    assert code == 0 and "2 tracks for sad" in out and "notice: likes and skips not used" in err
    for argv in (["like", "8bd3c46f27"], ["feedback"], ["wipe"]):
        code, out, err = run(capsys, "music", *argv, "--db", str(bad))
        assert code == 1 and f"{bad}: cannot" in err and "Traceback" not in err


def test_moods_table(capsys):
    code, out, _ = run(capsys, "music", "moods")
    assert code == 0 and "sad          0.15    0.25  sad, melancholy" in out and "lift goal" in out


def test_db_from_environment(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FERKIT_MUSIC_DB", str(tmp_path / "env.sqlite"))
    _, out, _ = run(capsys, "recommend", "-e", "fear", "--json")
    tid = json.loads(out)["tracks"][0]["id"]
    assert run(capsys, "music", "like", tid)[0] == 0
    assert (tmp_path / "env.sqlite").is_file()


# ---------------------------------------------------------------- photos
@pytest.mark.data
def test_photo_detects_then_recommends(capsys, tmp_path, db, detectable_faces, recognizer):
    faces, _ = detectable_faces
    photo = tmp_path / "face.png"
    image = pad_face(faces[0])
    cv2.imwrite(str(photo), image)
    expected = max(recognizer.analyze(image), key=lambda f: f.box[2] * f.box[3]).emotion
    code, out, err = run(capsys, "recommend", str(photo), "--json", "--db", db, "-n", "5")
    assert code == 0, err
    assert err.startswith(f"{photo}: {expected} (")
    d = json.loads(out)
    assert d["emotion"] == expected and len(d["tracks"]) == 5
    code, out, _ = run(capsys, "recommend", str(photo), "--db", db, "-n", "2")
    assert code == 0 and out.startswith(f"{photo}: {expected}") and f"2 tracks for {expected}" in out


def test_photo_without_a_face_or_not_an_image(capsys, tmp_path, db):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 127, np.uint8))
    code, out, err = run(capsys, "recommend", str(blank), "--db", db)
    assert code == 3 and "no face found" in err and out == ""
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    code, out, err = run(capsys, "recommend", str(text), "--db", db)
    assert code == 1 and "notes.jpg" in err and out == ""


def test_entry_point_registers_the_commands(tmp_path):
    env = dict(os.environ, FERKIT_MUSIC_DB=str(tmp_path / "m.sqlite"))
    p = subprocess.run([sys.executable, "-m", "ferkit", "recommend", "-e", "happy", "-n", "2"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("2 tracks for happy (match, from local):")
    p = subprocess.run([sys.executable, "-m", "ferkit", "music", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and "wipe" in p.stdout and "like" in p.stdout
