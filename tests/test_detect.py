import numpy as np
import pytest

from ferkit.detect import available_detectors, create_detector
from tests.conftest import pad_face


def test_detector_names():
    assert available_detectors()[0] == "haar"
    assert {"haar", "haar-alt2", "blazeface", "none"} <= set(available_detectors())
    with pytest.raises(ValueError, match="unknown detector 'x'; valid: haar"):
        create_detector("x")


@pytest.mark.parametrize("name", ["haar", "haar-alt2", "blazeface"])
def test_no_face_gives_empty_arrays(name):
    boxes, scores = create_detector(name).detect(np.full((480, 640, 3), 90, np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_whole_image_detector():
    boxes, scores = create_detector("none").detect(np.zeros((30, 40), np.uint8))
    assert boxes.tolist() == [[0, 0, 40, 30]] and scores.tolist() == [1.0]


@pytest.mark.data
@pytest.mark.parametrize("name", ["haar", "blazeface"])
def test_finds_real_faces_with_fer_framing(name, private_test):
    """Faces placed in a 640x480 frame are found, and the box matches the FER-2013 crop the classifier expects."""
    det = create_detector(name)
    found, errors = 0, []
    for face in private_test.pixels[:40]:
        padded = pad_face(face, size=180, pad=0.4)
        frame = np.full((480, 640, 3), 100, np.uint8)
        y, x = 20, 100
        frame[y:y + padded.shape[0], x:x + padded.shape[1]] = padded[:, :, None]
        truth = np.array([x + 72, y + 72, 180, 180])  # the face inside its 72 px border
        boxes, scores = det.detect(frame)
        if len(boxes) == 1:
            found += 1
            assert 0 <= scores[0] <= 1
            errors.append(np.abs(boxes[0] - truth) / 180)
    assert found >= 20, f"{name} found {found} of 40 faces"
    assert np.median(errors, axis=0).max() < 0.25  # corners and size within a quarter of the face


def test_detectors_accept_grey_and_large_images():
    for name in ("haar", "blazeface"):
        det = create_detector(name)
        assert det.detect(np.zeros((2000, 3000), np.uint8))[0].shape == (0, 4)
