"""Shared fixtures: real FER-2013 faces from ../shared/data (or $FERKIT_DATA), small generated data otherwise."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "fer2013"


def data_dir() -> Path | None:
    """Where FER-2013 lives: $FERKIT_DATA, else ../shared/data/fer2013 beside the repo."""
    for cand in (os.environ.get("FERKIT_DATA"), SHARED):
        if cand and (Path(cand) / "fer2013.csv.gz").is_file():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def fer_dir() -> Path:
    d = data_dir()
    if d is None:
        pytest.skip("FER-2013 not found: set FERKIT_DATA or put fer2013.csv.gz in ../shared/data/fer2013")
    return d


@pytest.fixture(scope="session")
def fer_dataset(fer_dir):
    """The whole FER-2013 (35,887 faces), read once per session from the compact copy (fast) or the CSV."""
    from ferkit.data import load_dataset

    compact = fer_dir / "fer2013-compact.npz.xz"
    return load_dataset(compact if compact.is_file() else fer_dir / "fer2013.csv.gz")


@pytest.fixture(scope="session")
def private_test(fer_dataset):
    return fer_dataset.split("PrivateTest")


def pad_face(face48: np.ndarray, size: int = 144, pad: float = 0.4) -> np.ndarray:
    """A 48x48 FER face enlarged to `size` with replicated borders: the Haar cascade needs context around a face."""
    f = cv2.resize(face48, (size, size), interpolation=cv2.INTER_CUBIC)
    p = int(size * pad)
    return cv2.copyMakeBorder(f, p, p, p, p, cv2.BORDER_REPLICATE)


@pytest.fixture(scope="session")
def detectable_faces(private_test):
    """(faces (N, 48, 48), labels (N,)) of PrivateTest faces the Haar cascade finds once padded: for scene tests."""
    from ferkit.detect import create_detector

    det = create_detector("haar")
    keep = [i for i in range(300) if len(det.detect(pad_face(private_test.pixels[i]))[0]) == 1]
    return private_test.pixels[keep], private_test.labels[keep]


@pytest.fixture(scope="session")
def recognizer():
    import ferkit

    return ferkit.load_recognizer()
