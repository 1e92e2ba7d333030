"""Shared fixtures: real FER-2013 faces from ../shared/data (or $FERKIT_DATA), small generated data otherwise."""
from __future__ import annotations

from pathlib import Path

import pytest

from ferkit.scenes import pad_face  # noqa: F401  (re-exported: the tests import it from here)

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    """Where FER-2013 lives: $FERKIT_DATA, else ../shared/data/fer2013 beside the repo (ferkit.data.default_data_dir)."""
    from ferkit.data import default_data_dir

    d = default_data_dir()
    return d if (d / "fer2013.csv.gz").is_file() else None


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


@pytest.fixture(scope="session")
def recognizer():
    import ferkit

    return ferkit.load_recognizer()
