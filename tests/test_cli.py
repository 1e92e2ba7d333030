import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import pad_face, small_face_photo


def ferkit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ferkit", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, detectable_faces):
    d = tmp_path_factory.mktemp("photos")
    face = d / "face.png"
    cv2.imwrite(str(face), cv2.cvtColor(pad_face(detectable_faces[0][0]), cv2.COLOR_GRAY2BGR))
    blank = d / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 127, np.uint8))
    bad = d / "bad.jpg"
    bad.write_bytes(b"GIF89a-but-truncated")
    return {"face": face, "blank": blank, "bad": bad, "dir": d}


@pytest.mark.data
def test_analyze_table_json_and_annotate(photos, tmp_path):
    r = ferkit("analyze", photos["face"], "--annotate", tmp_path / "new" / "ann.png", "--explain", tmp_path / "exp.png")
    assert r.returncode == 0, r.stderr
    assert "1 face" in r.stdout and "emotion" in r.stdout and "happy" in r.stdout  # the header names every class
    ann, exp = cv2.imread(str(tmp_path / "new" / "ann.png")), cv2.imread(str(tmp_path / "exp.png"))  # new/ created
    src = cv2.imread(str(photos["face"]))
    assert ann.shape == src.shape and np.abs(ann.astype(int) - src).sum() > 0  # a box and label were drawn
    assert exp.shape == src.shape and np.abs(exp.astype(int) - ann).sum() > 0  # and a heatmap
    r = ferkit("analyze", photos["face"], "--json")
    out = json.loads(r.stdout)  # one shape: an array, also for one photo
    assert [(o["file"], o["status"]) for o in out] == [(str(photos["face"]), "ok")]
    face = out[0]["faces"][0]
    from tests.conftest import default_labels

    assert set(face["probabilities"]) == set(default_labels())
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-3


def test_detect_side_finds_the_small_face_of_a_large_photo(tmp_path):
    """A 16-px face in a 1280x960 photo: at yunet's default working side (640) it is 8 px, below what it finds; at
    --detect-side 1280 it is found. Only yunet has a working side."""
    width = small_face_photo(tmp_path / "group.png")
    assert ferkit("analyze", tmp_path / "group.png").returncode == 3
    r = ferkit("analyze", tmp_path / "group.png", "--detect-side", "1280", "--json")
    assert r.returncode == 0, r.stderr
    (result,) = json.loads(r.stdout)
    (face,) = result["faces"]
    assert 600 <= face["box"]["x"] <= 600 + width and face["box"]["w"] < 30
    r = ferkit("analyze", tmp_path / "group.png", "--detector", "haar", "--detect-side", "1280")
    assert r.returncode == 2 and "--detect-side" in r.stderr


@pytest.mark.data
def test_no_face_in_some_or_in_all_images_have_their_own_exit_codes(photos):
    r = ferkit("analyze", photos["blank"])
    assert r.returncode == 3 and "no face found" in r.stdout
    r = ferkit("analyze", photos["blank"], photos["face"])
    assert r.returncode == 4 and "no face found" in r.stdout and "1 face" in r.stdout


@pytest.mark.data
def test_bad_file_fails_but_others_are_processed(photos):
    r = ferkit("analyze", photos["bad"], photos["face"], "--json")
    assert r.returncode == 1
    assert "bad.jpg" in r.stderr and ("not an image" in r.stderr or "corrupt" in r.stderr or "over the limit" in r.stderr)
    out = json.loads(r.stdout)
    assert [o["status"] for o in out] == ["error", "ok"]
    assert "bad.jpg" in out[0]["error"] and len(out[1]["faces"]) == 1
    r = ferkit("analyze", photos["dir"] / "missing.jpg")
    assert r.returncode == 1 and "no such file" in r.stderr


@pytest.fixture
def blanks(tmp_path):
    """A folder of faceless images (no FER-2013 needed): two at the top, one in a sub-folder, and things to skip."""
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    (d / ".hidden").mkdir()
    for path in (d / "a.png", d / "b.JPG", d / "sub" / "c.webp", d / ".hidden" / "d.png", d / ".e.png"):
        lower = path.with_suffix(path.suffix.lower())
        cv2.imwrite(str(lower), np.full((64, 80, 3), 127, np.uint8))
        lower.rename(path)
    (d / "notes.txt").write_text("not an image")
    return d


def test_a_folder_is_analysed_image_by_image_recursively(blanks, tmp_path):
    r = ferkit("analyze", blanks, "--json", "--annotate", tmp_path / "out")
    assert r.returncode == 3, r.stderr  # no face in any image
    assert [(o["file"], o["status"]) for o in json.loads(r.stdout)] == [
        (str(blanks / "a.png"), "no_face"), (str(blanks / "b.JPG"), "no_face"), (str(blanks / "sub" / "c.webp"), "no_face"),
        (str(blanks / "notes.txt"), "skipped")]   # named, not dropped (issue 28)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = ferkit("analyze", empty, blanks / "a.png", "--json")
    assert r.returncode == 1 and f"{empty}: a folder with no images in it" in r.stderr
    assert [o["status"] for o in json.loads(r.stdout)] == ["error", "no_face"]


def test_one_file_failing_in_the_middle_costs_none_of_the_others(blanks, tmp_path):
    """--no-detect gives every image a face; the sub-folder's output path is blocked by a file, so c.webp alone
    fails when its annotated copy is written, after a.png and b.JPG and before the photo given after the folder."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where the sub-folder would go")
    r = ferkit("analyze", blanks, blanks / "a.png", "--no-detect", "--json", "--annotate", out)
    assert r.returncode == 1
    statuses = [(Path(o["file"]).name, o["status"]) for o in json.loads(r.stdout)]
    assert statuses == [("a.png", "ok"), ("b.JPG", "ok"), ("c.webp", "error"), ("notes.txt", "skipped"), ("a.png", "ok")]
    assert r.stderr.startswith(f"ferkit: {blanks / 'sub' / 'c.webp'}: cannot write {out / 'sub' / 'c_annotated.png'} ("), r.stderr
    assert r.stderr.splitlines()[1:] == [f"ferkit: {blanks / 'notes.txt'}: skipped, not an image file name "
                                         "(.jpg .jpeg .jfif .png .webp .bmp .gif .tif .tiff)"]
    assert sorted(p.name for p in out.iterdir()) == ["a_annotated-2.png", "a_annotated.png", "b_annotated.png", "sub"]


@pytest.mark.parametrize("flags, code, message", [
    (["--annotate", "{tmp}/x.xyz"], 2, "--annotate {tmp}/x.xyz: unknown image extension '.xyz'"),
    (["{photo}", "--explain", "{tmp}/x.png"], 2, "--explain {tmp}/x.png: 2 images need a folder, not a file name"),
    (["--annotate", "{photo}/sub"], 1, "--annotate {photo}/sub: cannot create the folder {photo}/sub"),
])
def test_output_options_are_checked_before_anything_runs(blanks, tmp_path, flags, code, message):
    photo = blanks / "a.png"
    fill = {"tmp": tmp_path, "photo": photo}
    r = ferkit("analyze", photo, *[f.format(**fill) for f in flags])
    assert r.returncode == code and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"ferkit: {message.format(**fill)}"), r.stderr


def test_a_closed_pipe_ends_quietly(blanks):
    """`ferkit analyze DIR | head -1`: the reader goes away; no BrokenPipeError traceback, exit 141 as for C tools."""
    p = subprocess.Popen([sys.executable, "-m", "ferkit", "analyze", blanks, blanks, blanks], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdout.close()   # before the first line is written
    err = p.stderr.read()
    assert p.wait(timeout=300) == 141 and err == "", err


def test_analyze_help_documents_each_exit_status():
    from ferkit import cli

    text = ferkit("analyze", "--help").stdout
    for code, meaning in [(cli.EXIT_OK, "every image had at least one face"), (cli.EXIT_ERROR, "could not be read"),
                          (cli.EXIT_NO_FACE, "no image had a face"), (cli.EXIT_SOME_NO_FACE, "some images had faces")]:
        assert re.search(rf"^  {code}  .*{meaning}", text, re.M), (code, text)
    assert len({cli.EXIT_OK, cli.EXIT_ERROR, cli.EXIT_USAGE, cli.EXIT_NO_FACE, cli.EXIT_SOME_NO_FACE}) == 5


def test_unknown_model_lists_valid_ones(tmp_path):
    """Bad usage (exit 2), as for --detector nope (issue 28)."""
    r = ferkit("analyze", "--model", "nope", tmp_path / "x.png")
    assert r.returncode == 2 and "valid: " in r.stderr and "fer2013" in r.stderr


def test_data_command_and_errors(tmp_path):
    p = tmp_path / "fer.csv"
    p.write_text("emotion,pixels,Usage\n" + "3," + " ".join(["1"] * 2304) + ",Training\n" + "9," + " ".join(["1"] * 2304) + ",Training\n")
    r = ferkit("data", p)
    assert r.returncode == 1 and "row 3: unknown label '9'" in r.stderr
    p.write_text("emotion,pixels,Usage\n" + "3," + " ".join(["1"] * 2304) + ",Training\n")
    r = ferkit("data", p, "--chart", tmp_path / "dist.png")
    assert r.returncode == 0 and "Training" in r.stdout and (tmp_path / "dist.png").stat().st_size > 1000


def test_version_and_help():
    assert ferkit("--version").stdout.startswith("ferkit ")
    r = ferkit("--help")
    for cmd in ("analyze", "models", "train", "evaluate", "export", "quantize", "data", "serve", "video", "live",
                "recommend", "music", "batch"):
        assert re.search(rf"^    {cmd}\b", r.stdout, re.M), cmd
    for research_only in ("ensemble", "offsets", "members"):  # research/ holds these, not the product CLI
        assert not re.search(rf"^    {research_only}\b", r.stdout, re.M), research_only
    assert "analyse folders, manifests and videos into a results file" in " ".join(r.stdout.split())


def test_every_music_action_the_help_names_exists(capsys):
    """`ferkit --help` lists the music actions in parentheses; each one parses (it once named a `list` that did not)."""
    from ferkit.cli import build_parser

    build_parser().print_help()
    listed = re.search(r" music music feedback \(([^)]*)\)", " ".join(capsys.readouterr().out.split()))
    actions = listed.group(1).split(", ")
    assert len(actions) >= 4
    for action in actions:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(["music", action, "--help"])
        assert e.value.code == 0, action


def _broken_data_files(d):
    import gzip
    import io

    px = " ".join(["7"] * 2304)
    good = gzip.compress(f"emotion,pixels,Usage\n3,{px},Training\n".encode(), mtime=0)
    flipped = bytearray(good)
    flipped[20] ^= 0xFF
    buf = io.BytesIO()
    np.savez_compressed(buf, pixels=np.zeros((2, 48, 48), np.uint8), emotion=np.zeros(2, np.uint8),
                        usage=np.array([0, 9], np.uint8))
    files = {"deflate.csv.gz": bytes(flipped), "big.csv": f"emotion,pixels,Usage\n3,99999999999{px[1:]},Training\n".encode(),
             "usage9.npz": buf.getvalue(), "cut.npz": buf.getvalue()[:100]}
    for name, data in files.items():
        (d / name).write_bytes(data)
    return [d / name for name in files]


def test_data_errors_are_one_line_naming_the_file(tmp_path, capsys):
    from ferkit.cli import main

    for path in _broken_data_files(tmp_path):
        with pytest.raises(SystemExit) as e:
            main(["data", str(path)])
        out, err = capsys.readouterr()
        assert e.value.code == 1 and out == "" and err.startswith(f"ferkit: {path}") and err.count("\n") == 1, err
        assert "expected" in err
    good = tmp_path / "excel.csv"
    good.write_bytes(b"\xef\xbb\xbfemotion,pixels,Usage\n3," + " ".join(["7"] * 2304).encode() + b",Training\n")
    with pytest.raises(SystemExit) as e:
        main(["data", str(good)])
    assert e.value.code == 0 and "Training" in capsys.readouterr().out


def test_a_retired_model_name_still_runs_and_says_so(tmp_path):
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((96, 96), 128, np.uint8))
    r = ferkit("analyze", img, "--no-detect", "--model", "ferplus-accurate")
    assert r.returncode == 0 and "contempt" in r.stdout   # ferplus's 8 classes
    assert r.stderr.startswith("ferkit: warning: model 'ferplus-accurate' is retired: 'ferplus'"), r.stderr


def test_models_lists_each_shipped_model_with_its_published_figures():
    """Each shipped model with its agreement with people (FER+ majority), its FER-2013 figure and its speed, from
    its metrics file; the default marked."""
    from ferkit import available_models
    from ferkit.recognizer import DEFAULT_MODEL, WEIGHTS_DIR

    r = ferkit("models")
    assert r.returncode == 0
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[1:] if line.split()[0] in available_models()}
    assert set(lines) == set(available_models())
    assert f"{DEFAULT_MODEL} *" in r.stdout and "retired: ferplus-accurate (loads ferplus)" in r.stdout
    for name, line in lines.items():
        published = json.loads((WEIGHTS_DIR / f"{name}.metrics.json").read_text())
        assert f"{published['agreement']['accuracy']:.2%}" in line, line
        assert f"{published['fer2013_labels']['accuracy']:.2%}" in line, line
        assert f"{published['speed']['ms_per_face']:.2f}" in line, line
    data = json.loads(ferkit("models", "--json").stdout)
    acc = {m["name"]: m for m in data["models"]}["fer2013-accurate"]
    assert acc["networks"] > 1 and len(acc["labels"]) == 7 and data["retired"] == {"ferplus-accurate": "ferplus"}


def test_only_ferkits_own_warnings_are_shown_as_its_messages(capsys):
    from ferkit import cli

    seen = []
    show = cli._show_warning(lambda *a: seen.append(a[2]))
    show(FutureWarning("retired"), FutureWarning, cli.__file__, 1)
    show(DeprecationWarning("old api"), DeprecationWarning, "/usr/lib/python3/dist-packages/other.py", 1)
    assert capsys.readouterr().err == "ferkit: warning: retired\n"
    assert seen == ["/usr/lib/python3/dist-packages/other.py"]   # left in its usual form


def test_train_help_explains_each_flag_from_the_config_comments():
    """`ferkit train --help` shows each config field's comment and default, so the comments are the one doc."""
    from ferkit.config import ModelConfig, TrainConfig, field_help

    docs = field_help(TrainConfig)
    assert docs["erase_prob"] == "random erasing: one rectangle of 2-20 % of the face"
    assert "model" not in docs and "depths" in field_help(ModelConfig)
    # every option the CLI offers is explained (the nested `model` is flattened into ModelConfig's flags)
    assert set(docs) == {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    r = ferkit("train", "--help")
    text = " ".join(r.stdout.split())   # argparse wraps lines
    assert r.returncode == 0
    assert "--erase-prob ERASE_PROB random erasing: one rectangle of 2-20 % of the face (default: 0.5)" in text
    assert "--channels N [N ...] width of each stage; 48 -> 24 -> 12 -> 6 pixels (default: 32 64 128 256)" in text


def test_evaluate_needs_data_from_an_argument_or_the_environment(tmp_path):
    """No default path into a development tree: without --data or $FERKIT_DATA the error names both."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "FERKIT_DATA"}
    r = subprocess.run([sys.executable, "-m", "ferkit", "evaluate", "--out", str(tmp_path)], capture_output=True,
                       text=True, timeout=120, env=env, cwd=tmp_path)
    assert r.returncode == 1 and "--data" in r.stderr and "FERKIT_DATA" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and not any(tmp_path.iterdir())


def test_shared_flags_are_declared_once():
    """--model and --detector read the same on every command that takes them."""
    from ferkit.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    flag = {(name, dest): next(a for a in p._actions if a.dest == dest) for name, p in sub.items()
            for dest in ("model", "detector") if any(a.dest == dest for a in p._actions)}
    assert {name for name, dest in flag if dest == "detector"} >= {"analyze", "recommend", "batch", "video", "live", "serve"}
    shown = {name: (a.default, a.choices and tuple(a.choices), a.metavar, a.help) for (name, dest), a in flag.items()
             if dest == "detector"}
    assert shown["analyze"] == shown["recommend"] == shown["batch"]
    assert shown["video"] == shown["live"] and "none" not in shown["live"][1] and "none:" not in shown["live"][3]
    assert shown["serve"][:3] == (None, None, "NAME")   # the server's setting; checked with the other settings
    assert all(a.default is None and a.metavar is None for (name, dest), a in flag.items() if dest == "model")


def test_every_command_ends_through_the_one_error_path():
    """Only ferkit.cli (and its errors.py) prints `ferkit: ...` and exits: commands raise CommandError or let the library's errors
    reach main() (issue 21), `python -m ferkit.batch` included."""
    src = Path(__file__).parents[1] / "src" / "ferkit"
    for path in src.rglob("*.py"):
        if path.parent.name == "research" or path in (src / "cli" / "__init__.py", src / "cli" / "errors.py"):
            continue
        text = path.read_text()
        assert not re.search(r"""["']ferkit: """, text.replace('"""ferkit: facial', "")), path
        assert "sys.exit(" not in text, path


def test_one_image_suffix_list_for_every_command(tmp_path):
    """analyze's folder walk, batch's and adapt's folder mode take the same names, from the decoder's own formats:
    a TIFF is read everywhere (adapt's folder mode included), a .pgm (which the decoder refuses) nowhere."""
    from ferkit.adapt import read_labelled
    from ferkit.batch.inputs import expand_inputs
    from ferkit.images import IMAGE_SUFFIXES, READ_FORMATS, load_image

    assert {".jpg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"} <= set(IMAGE_SUFFIXES) and ".pgm" not in IMAGE_SUFFIXES
    assert "TIFF" in READ_FORMATS
    happy = tmp_path / "happy"
    happy.mkdir()
    image = np.full((64, 64, 3), 120, np.uint8)
    for name in ("a.tif", "b.TIFF", "c.png"):
        assert cv2.imwrite(str(happy / name), image)
    assert cv2.imwrite(str(happy / "d.pgm"), image[:, :, 0])
    assert load_image(happy / "a.tif").shape[:2] == (64, 64)
    with pytest.raises(ValueError):
        load_image(happy / "d.pgm")
    taken = {"a.tif", "b.TIFF", "c.png"}
    assert {Path(p).name for p in expand_inputs([tmp_path])} == taken
    assert {Path(p).name for p in read_labelled(tmp_path).images} == taken
    r = ferkit("analyze", happy, "--json")
    listed = {Path(d["file"]).name: d["status"] for d in json.loads(r.stdout)}
    assert {k for k, v in listed.items() if v != "skipped"} == taken and listed["d.pgm"] == "skipped", r.stdout


def test_video_and_live_name_the_trackers_search_size_apart_from_yunets_working_size(capsys):
    """--search-side is the tracker's downscaled copy in video and live; --detect-side (yunet's working size in
    analyze, batch, serve and adapt) still sets it there, with a note, until 0.3."""
    from ferkit.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["live"]).search_side == 320 and parser.parse_args(["video", "x.mp4"]).search_side is None
    assert parser.parse_args(["video", "x.mp4", "--search-side", "480"]).search_side == 480
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["live", "--detect-side", "640"]).search_side == 640
    assert "--detect-side is now --search-side" in capsys.readouterr().err
    assert parser.parse_args(["batch", "x.jpg", "--out", "r.csv", "--detect-side", "1280"]).detect_side == 1280
    assert capsys.readouterr().err == ""
