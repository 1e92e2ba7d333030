import numpy as np
import pytest

from ferkit.detect import (DEFAULT_DETECTOR, DETECTOR_NOTES, FRAMED_OVERLAP, Detections, available_detectors,
                           create_detector, distinct_boxes, find_faces, roll_degrees)
from ferkit.scenes import background, place_face
from tests.conftest import ROOT, pad_face

SAMPLE = ROOT / "examples" / "astronaut.png"


def test_detector_names():
    assert available_detectors()[0] == DEFAULT_DETECTOR == "yunet"
    assert {"yunet", "haar", "haar-alt2", "blazeface", "none"} <= set(available_detectors())
    assert set(DETECTOR_NOTES) == set(available_detectors())  # the help says when each one helps
    with pytest.raises(ValueError, match="unknown detector 'x'; valid: yunet, haar"):
        create_detector("x")


def test_yunet_decodes_boxes_and_landmarks_onto_a_real_face():
    """The sample photo (public domain, one smiling face): one box on the face, the eyes above the nose above the
    mouth, the subject's right eye on the image's left, every landmark inside the box."""
    import cv2
    photo = cv2.imread(str(SAMPLE))
    found = create_detector("yunet").detect_faces(photo)
    assert len(found) == 1 and found.sources == ("yunet",) and found.scores[0] > 0.8
    x, y, w, h = found.boxes[0]
    assert 150 < x + w / 2 < 260 and 80 < y + h / 2 < 150 and 90 < w < 140  # measured by eye: the face is near (225, 115)
    (rex, rey), (lex, ley), (nx, ny), (rmx, rmy), (lmx, lmy) = found.landmarks[0]
    assert rex < nx < lex and rmx < lmx and max(rey, ley) < ny < min(rmy, lmy)
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in found.landmarks[0])
    assert abs(roll_degrees(found.landmarks)[0]) < 5


@pytest.mark.data
def test_yunet_finds_fer_faces_in_scenes_and_measures_their_roll(private_test):
    det = create_detector("yunet")
    rng = np.random.default_rng(0)
    found, rolls = 0, []
    for i in range(20):
        frame = place_face(background(480, 640, rng), private_test.pixels[i], 150, (320, 240), roll=20)
        d = det.detect_faces(frame)
        if len(d) == 1 and abs(d.boxes[0][0] + d.boxes[0][2] / 2 - 320) < 40:
            found += 1
            rolls.append(roll_degrees(d.landmarks)[0])
    assert found >= 15
    assert 10 < np.median(rolls) < 30  # turned clockwise by 20 degrees, as place_face and roll_degrees both count


def test_yunet_is_empty_on_face_free_images_and_handles_odd_shapes():
    det = create_detector("yunet", fallback=None)
    rng = np.random.default_rng(1)
    for image in [background(480, 640, rng) for _ in range(5)] + [np.full((480, 640, 3), 90, np.uint8)]:
        d = det.detect_faces(image)
        assert d.boxes.shape == (0, 4) and d.scores.shape == (0,) and d.landmarks.shape == (0, 5, 2)
    for shape in [(1, 2000, 3), (1300, 1), (1, 65535), (5, 5, 3), (3000, 4000, 3), (480, 640, 4), (48, 48)]:
        boxes, scores = create_detector("yunet").detect(np.zeros(shape, np.uint8))
        assert boxes.shape == (0, 4) and scores.shape == (0,), shape


def test_a_close_up_is_found_with_a_margin_and_the_fallback_says_who_found_it():
    """A face that fills the image: YuNet alone misses it, YuNet again inside a margin finds it, boxes and landmarks
    in the close-up's own pixels. Where YuNet finds nothing at all, the fallback's name is reported."""
    import cv2
    photo = cv2.imread(str(SAMPLE))
    closeup = cv2.resize(photo[90:160, 190:260], (330, 360))  # eyes to mouth fill the image
    det = create_detector("yunet", fallback=None)
    assert len(det.raw(closeup)) == 0
    found = det.detect_faces(closeup)
    assert len(found) == 1 and found.sources == ("yunet",)
    x, y, w, h = found.boxes[0]
    assert x >= 0 and y >= 0 and x + w <= 330 and y + h <= 360 and w > 150
    assert all(0 <= px <= 330 and 0 <= py <= 360 for px, py in found.landmarks[0])
    blank = np.full((200, 200, 3), 90, np.uint8)
    assert create_detector("yunet", fallback="none").detect_faces(blank).sources == ("none",)


def test_the_second_look_keeps_its_own_threshold(private_test):
    """A FER-2013 face alone in its image, which YuNet scores low even inside the margin: the second look keeps
    what scores `margin_threshold`, the first look its stricter `score_threshold`."""
    import cv2
    det = create_detector("yunet", fallback=None)
    assert det.margin_threshold < det.score_threshold
    strict = create_detector("yunet", fallback=None, margin_threshold=det.score_threshold)
    closeups = [cv2.cvtColor(cv2.resize(f, (200, 200)), cv2.COLOR_GRAY2BGR) for f in private_test.pixels[:60]]
    scores = [max(det.raw_with_margin(c).scores, default=0.0) for c in closeups]
    between = [c for c, s in zip(closeups, scores) if det.margin_threshold <= s < det.score_threshold]
    assert between, "no close-up scored between the two thresholds"
    for c in between[:3]:
        assert len(det.raw(c)) == 0 and len(det.detect_faces(c)) == 1 and len(strict.detect_faces(c)) == 0
    with pytest.raises(ValueError, match="margin_threshold"):
        create_detector("yunet", margin_threshold=1.5)


def test_the_default_finds_no_face_in_face_free_images():
    """YuNet, its margin and the BlazeFace fallback together (BlazeFace at its own 0.5 saw faces in backdrops)."""
    rng = np.random.default_rng(3)
    det = create_detector()
    for image in [background(480, 640, rng) for _ in range(8)] + [np.full((300, 300, 3), 128, np.uint8)]:
        assert len(det.detect_faces(image)) == 0


@pytest.mark.parametrize("name", ["haar", "haar-alt2", "blazeface"])
def test_every_detector_survives_extreme_aspects(name):
    det = create_detector(name)
    for shape in [(1, 2000, 3), (1300, 1), (1, 65535)]:
        assert det.detect(np.zeros(shape, np.uint8))[0].shape == (0, 4)
        assert find_faces(det, np.zeros(shape, np.uint8)).sources == ()


def test_detections_scale_with_their_landmarks():
    d = Detections(np.array([[10, 20, 30, 40]], np.int32), np.ones(1, np.float32), np.ones((1, 5, 2), np.float32), ("yunet",))
    s = d.scaled(2)
    assert s.boxes.tolist() == [[20, 40, 60, 80]] and s.landmarks.max() == 2 and s.sources == ("yunet",)


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


def test_a_close_up_at_any_scale_and_crop_is_one_face():
    """Close-ups of the sample photo's face (half the face to twice it, shifted, wide and tall, at three
    magnifications): exactly one face each. The second look (inside a margin) finds the face and, in some crops, a
    low-score giant box around it; both are nearly the whole image once framed and clamped, so they are one face."""
    import cv2
    photo = cv2.imread(str(SAMPLE))
    cx, cy, side = 225, 119, 108  # the face's framed box in the photo (test above: near (225, 115), 90-140 px)
    det = create_detector("yunet")
    counts = {}
    for f in (0.5, 0.55, 0.8, 1.2, 2.0):
        for dx in (-0.1, 0.0, 0.1):
            for dy in (-0.1, 0.1):
                for aspect in (1.0, 0.75):
                    w, h = int(side * f), int(side * f * aspect)
                    x0, y0 = int(cx + dx * side - w / 2), int(cy + dy * side - h / 2)
                    crop = photo[max(0, y0):y0 + h, max(0, x0):x0 + w]
                    for k in (1, 3):
                        image = cv2.resize(crop, None, fx=k, fy=k) if k > 1 else crop
                        counts[(f, dx, dy, aspect, k)] = len(det.detect_faces(image))
    assert {key: n for key, n in counts.items() if n != 1} == {}


def test_duplicate_framed_boxes_keep_the_best_score():
    boxes = np.array([[0, 0, 100, 100], [2, 0, 98, 100], [200, 0, 50, 50], [150, 0, 80, 80]])
    scores = np.array([0.4, 0.7, 0.9, 0.3])
    # box 1 beats box 0 (IoU 0.98); box 3 overlaps box 2 by 0.2 only: two faces side by side
    assert distinct_boxes(boxes, scores, FRAMED_OVERLAP).tolist() == [1, 2, 3]
    assert distinct_boxes(np.zeros((0, 4)), np.zeros(0), FRAMED_OVERLAP).tolist() == []
