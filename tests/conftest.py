"""Shared fixtures: real FER-2013 faces from ../shared/data (or $FERKIT_DATA), small generated data otherwise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ferkit.scenes import pad_face  # noqa: F401  (re-exported: the tests import it from here)

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    """Where FER-2013 lives: $FERKIT_DATA, else ../shared/data/fer2013 beside the repository (the layout ferkit is
    developed in; the package itself never assumes it)."""
    import os

    d = Path(os.environ.get("FERKIT_DATA") or ROOT.parent / "shared" / "data" / "fer2013")
    return d if (d / "fer2013.csv.gz").is_file() else None


def mediapipe_bundle() -> Path | None:
    """MediaPipe's Face Landmarker bundle, for checking the shipped face models against its TFLite files live:
    $FERKIT_MEDIAPIPE, else ../shared/models/mediapipe/face_landmarker.task; None where absent (the tests then
    compare with the TFLite outputs stored in tests/data, so nothing skips on a bare clone)."""
    import os

    p = Path(os.environ.get("FERKIT_MEDIAPIPE") or ROOT.parent / "shared" / "models" / "mediapipe" / "face_landmarker.task")
    return p if p.is_file() else None


@pytest.fixture(scope="session")
def fer_dir() -> Path:
    d = data_dir()
    if d is None:
        pytest.skip("FER-2013 not found: set FERKIT_DATA or put fer2013.csv.gz in ../shared/data/fer2013")
    return d


@pytest.fixture(scope="session")
def fer_dataset(fer_dir):
    """The whole FER-2013 (35,887 faces), read once per session from the compact copy (fast) or the CSV."""
    from ferkit.data import fer2013_file, load_dataset

    return load_dataset(fer2013_file(fer_dir))


@pytest.fixture(scope="session")
def private_test(fer_dataset):
    return fer_dataset.split("PrivateTest")




@pytest.fixture(scope="session")
def detectable_faces(private_test):
    """(faces (N, 48, 48), labels (N,)) of PrivateTest faces the default detector finds in the test videos' frames,
    at full size and on the 320-pixel copy live mode searches: for scene and video tests."""
    from ferkit.detect import create_detector
    from tests._videos import render

    det = create_detector()
    keep = []
    for i in range(300):
        face = private_test.pixels[i]
        one = render([face], 0.5)[0]
        rows = [render([face, face], t)[0] for t in (0.0, 0.5, 1.0)]  # in the top and bottom rows, edges and centre
        if len(det.detect_faces(one)) == 1 and len(det.detect_faces(one, long_side=320)) == 1 and \
                all(len(det.detect_faces(f, long_side=320)) == 2 for f in rows):
            keep.append(i)
    return private_test.pixels[keep], private_test.labels[keep]


def small_face_photo(path: Path) -> int:
    """A 1280x960 photo with the sample photo's face at about 16 px, its left edge at x = 600 (8 px at yunet's
    default working side, below what it finds; found at 1280) -> the width of the pasted photo."""
    import cv2

    photo = cv2.imread(str(ROOT / "examples" / "astronaut.png"))
    small = cv2.resize(photo, None, fx=0.16, fy=0.16, interpolation=cv2.INTER_AREA)
    canvas = np.full((960, 1280, 3), 100, np.uint8)
    canvas[400:400 + small.shape[0], 600:600 + small.shape[1]] = small
    cv2.imwrite(str(path), canvas)
    return small.shape[1]


@pytest.fixture(scope="session")
def wheel_weights(tmp_path_factory) -> Path:
    """The model files as the wheel ships them: the wheel built from this tree (pip wheel, setup.py's hook storing
    each network once, store_once.py) and its ferkit/weights folder unpacked."""
    import subprocess
    import sys
    import zipfile

    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(out.glob("ferkit-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(out / "unpacked", [n for n in z.namelist() if n.startswith("ferkit/weights/")])
    return out / "unpacked" / "ferkit" / "weights"


@pytest.fixture(scope="session")
def stored_accurate(wheel_weights) -> Path:
    """`fer2013-accurate` as the wheel ships it: without the two members that also ship alone (`fer2013`,
    `fer2013-robust`), which it runs from their files beside it. The file in git stays whole: weights in git change
    only when a model ships."""
    return wheel_weights / "fer2013-accurate.onnx"


def default_labels() -> tuple[str, ...]:
    """The default model's classes, read from its file: what every run without --model labels faces with (the
    default is chosen by docs/quality.md's rule; tests of outputs follow it rather than name its classes)."""
    from ferkit.recognizer import DEFAULT_MODEL, read_metadata, resolve_model

    return tuple(read_metadata(resolve_model(DEFAULT_MODEL))["labels"])


@pytest.fixture(scope="session")
def recognizer():
    import ferkit

    return ferkit.load_recognizer()
