"""Face tracking: overlap matching, stable ids, smoothing, and detection every few frames on real FER-2013 faces."""
from __future__ import annotations

import numpy as np
import pytest
from tests._videos import pick_faces, render

from ferkit import load_recognizer
from ferkit.detect import detector_input
from ferkit.track import FaceTracker, IoUTracker, TrackedFace, iou, match_boxes

HAPPY, SURPRISE = 3, 5


def test_iou_values():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0  # touching edges do not overlap


def test_match_boxes_is_one_to_one_and_prefers_the_largest_overlap():
    old = [(0, 0, 10, 10), (100, 0, 10, 10)]
    new = [(101, 0, 10, 10), (1, 0, 10, 10), (300, 300, 10, 10)]
    assert sorted(match_boxes(old, new, 0.3)) == [(0, 1), (1, 0)]
    # two new boxes over one old one: only the better one continues it
    assert match_boxes([(0, 0, 10, 10)], [(3, 0, 10, 10), (1, 0, 10, 10)], 0.3) == [(0, 1)]


def test_ids_follow_moving_boxes_and_are_never_reused():
    t = IoUTracker(iou_threshold=0.3, max_missed=1)
    a, b = t.update([(0, 0, 50, 50), (200, 0, 50, 50)])
    assert (a.id, b.id) == (1, 2)
    for step in range(1, 10):  # both move 8 px per frame; order of detections swapped on purpose
        tracks = t.update([(200 - 8 * step, 0, 50, 50), (8 * step, 0, 50, 50)])
        assert [tr.id for tr in tracks] == [2, 1]
    assert [tr.id for tr in t.update([(72, 0, 50, 50)])] == [1]  # face 2 missed once: kept
    assert {tr.id for tr in t.tracks} == {1, 2}
    t.update([(72, 0, 50, 50)])                                    # missed twice: dropped
    assert {tr.id for tr in t.tracks} == {1}
    assert [tr.id for tr in t.update([(72, 0, 50, 50), (200, 0, 50, 50)])] == [1, 3]  # a new face: new id


def test_smoothing_blends_with_the_past_and_zero_turns_it_off():
    t = IoUTracker(smoothing=0.75)
    track = t.update([(0, 0, 10, 10)])[0]
    first = t.smooth(track, np.array([1.0, 0.0]))
    np.testing.assert_allclose(first, [1.0, 0.0])
    np.testing.assert_allclose(t.smooth(track, np.array([0.0, 1.0])), [0.75, 0.25])
    off = IoUTracker(smoothing=0.0)
    track = off.update([(0, 0, 10, 10)])[0]
    off.smooth(track, np.array([1.0, 0.0]))
    np.testing.assert_allclose(off.smooth(track, np.array([0.0, 1.0])), [0.0, 1.0])


@pytest.mark.parametrize("kwargs", [{"iou_threshold": 0}, {"max_missed": -1}, {"smoothing": 1.0}, {"smoothing": -0.1}])
def test_bad_tracker_options_raise(kwargs):
    with pytest.raises(ValueError):
        IoUTracker(**kwargs)


def test_bad_face_tracker_options_raise(recognizer):
    with pytest.raises(ValueError, match="detect_every"):
        FaceTracker(recognizer, detect_every=0)
    with pytest.raises(ValueError, match="detect_side"):
        FaceTracker(recognizer, detect_side=10)


class FixedDetector:
    """Returns the same boxes for every image; records what it was given (its shape says colour or grey)."""

    name = "fixed"

    def __init__(self, boxes, scores, needs_color=None):
        self.boxes, self.scores, self.seen = np.array(boxes, np.int32), np.array(scores, np.float32), []
        if needs_color is not None:
            self.needs_color = needs_color

    def detect(self, image):
        self.seen.append(image.shape)
        return self.boxes.copy(), self.scores.copy()


def _noise_frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def test_tracked_faces_come_from_the_recognizers_own_crop_and_classify(monkeypatch):
    """The tracker reads faces through the Recognizer's public faces_for, as analyze does: with a margin and flip
    TTA (both the Recognizer's business), a tracked face equals analyze_boxes' face."""
    rec = load_recognizer(margin=0.2, tta="flip")
    boxes, scores = [(20, 30, 80, 80), (180, 60, 100, 100)], [0.9, 0.61]
    calls = []
    faces_for = rec.faces_for

    def spy(image, detections, **kw):
        calls.append((image.ndim, [tuple(int(v) for v in box) for box in detections.boxes]))
        return faces_for(image, detections, **kw)

    monkeypatch.setattr(rec, "faces_for", spy)
    frame = _noise_frame()
    tracked = FaceTracker(rec, detect_every=1, detect_side=None, detector=FixedDetector(boxes, scores)).process(frame)
    assert calls == [(3, boxes)]   # one call per frame, on the colour frame (the face features need colour)
    expected = rec.analyze_boxes(frame, boxes, scores)
    assert [type(f) for f in tracked] == [TrackedFace, TrackedFace]
    for t, e in zip(tracked, expected):
        assert (t.box, t.probabilities, t.emotion, t.detector_score, t.cam) == (e.box, e.probabilities, e.emotion, e.detector_score, None)
    assert [(t.id, t.detected) for t in tracked] == [(1, True), (2, True)]


@pytest.mark.parametrize("needs_color, ndim", [(False, 2), (True, 3), (None, 3)])  # None: a detector that does not say
def test_tracker_and_recognizer_give_the_detector_the_same_copy(recognizer, needs_color, ndim):
    frame = _noise_frame()
    grey = frame[:, :, 0].copy()
    det = FixedDetector([(20, 30, 80, 80)], [0.9], needs_color)
    assert detector_input(det, frame, grey) is (grey if ndim == 2 else frame)
    FaceTracker(recognizer, detect_side=None, detector=det).process(frame)
    real = recognizer.detector
    recognizer.detector = det
    try:
        recognizer.analyze(frame)
    finally:
        recognizer.detector = real
    assert [len(shape) for shape in det.seen] == [ndim, ndim]


class CountingDetector:
    """The real Haar detector, counting its calls (to check the every-N strategy really skips detections)."""

    def __init__(self, inner):
        self.inner, self.name, self.calls, self.sizes = inner, inner.name, 0, []

    def detect(self, image):
        self.calls += 1
        self.sizes.append(image.shape[:2])
        return self.inner.detect(image)


@pytest.mark.data
@pytest.mark.parametrize("detect_every", [1, 4])
def test_face_tracker_keeps_ids_on_moving_real_faces(recognizer, detectable_faces, detect_every):
    faces = pick_faces(detectable_faces, [HAPPY, SURPRISE])
    counting = CountingDetector(recognizer.detector)
    real = recognizer.detector
    recognizer.detector = counting
    try:
        tracker = FaceTracker(recognizer, detect_every=detect_every, detect_side=320)
        n = 24
        seen = []
        for i in range(n):
            frame, truth = render(faces, i / (n - 1))
            out = tracker.process(frame)
            seen.append(out)
            for f in out:  # every reported box lies on one of the pasted faces
                err = min(abs(f.box[0] - b[0]) + abs(f.box[1] - b[1]) for b in truth)
                assert err < 40, (i, f.box, truth)
                assert abs(sum(f.probabilities.values()) - 1) < 1e-4
    finally:
        recognizer.detector = real
    ids = {f.id for out in seen for f in out}
    assert len(ids) == 2, f"ids {ids}: a face lost its id"
    assert sum(len(out) == 2 for out in seen) >= n - 2
    top = {f.id for out in seen for f in out if f.box[1] < 200}
    assert len(top) == 1  # the face in the top row kept one id all the way across
    assert counting.calls <= -(-n // detect_every) + 2
    assert all(max(s) <= 320 for s in counting.sizes)  # the detector saw the downscaled copy only
    assert sum(f.detected for out in seen for f in out) < sum(len(out) for out in seen) or detect_every == 1


@pytest.mark.data
def test_smoothing_in_the_face_tracker_damps_changes(recognizer, detectable_faces):
    happy, surprise = pick_faces(detectable_faces, [HAPPY, SURPRISE])
    frame_a, _ = render([happy], 0.5)
    frame_b, _ = render([surprise], 0.5)   # the same place, another face: a sudden change of expression
    # (another person, which the tracker would start a new track for: its identity check is off here)
    raw = FaceTracker(recognizer, detect_every=1, identity_threshold=None)
    smooth = FaceTracker(recognizer, detect_every=1, smoothing=0.8, identity_threshold=None)
    first = [t.process(frame_a)[0] for t in (raw, smooth)]
    a, b = raw.process(frame_b)[0], smooth.process(frame_b)[0]
    assert a.id == b.id == 1
    still_a = recognizer.analyze_boxes(frame_a, [first[1].box], landmarks=[first[1].landmarks])[0].probabilities
    still_b = recognizer.analyze_boxes(frame_b, [b.box], landmarks=[b.landmarks])[0].probabilities
    for label in recognizer.labels:  # smoothed = 0.8 * before + 0.2 * now (same boxes: the detector is deterministic)
        assert b.probabilities[label] == pytest.approx(0.8 * still_a[label] + 0.2 * still_b[label], abs=0.02)
    assert a.probabilities == pytest.approx(still_b, abs=1e-4)


def test_a_face_that_moved_past_overlap_keeps_its_id():
    """Between analysed frames (video --every N) a face can move further than IoU allows: 44 px for an 83 px box
    overlaps by 0.3 or less. Its centre is still within a face's side, so it keeps its id; a far box does not."""
    t = IoUTracker(iou_threshold=0.3)
    first = t.update([(449, 52, 83, 83), (50, 334, 100, 100)])
    moved = t.update([(493, 54, 83, 83), (10, 334, 100, 100)])
    assert [x.id for x in moved] == [x.id for x in first] == [1, 2]
    assert t.update([(300, 52, 83, 83)])[0].id == 3  # 190 px away: a new face


def _encoded(frames, tmp_path, name: str) -> list[np.ndarray]:
    """The frames written to an mp4v clip and decoded back: the codec's noise, as in any real video."""
    import cv2

    path = tmp_path / name
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, frames[0].shape[1::-1])
    for f in frames:
        writer.write(f)
    writer.release()
    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    assert len(out) == len(frames)
    return out


@pytest.mark.data
@pytest.mark.parametrize("detect_every", [3, 5])  # `ferkit video`'s default and `ferkit live`'s
def test_a_still_face_gives_a_flat_timeline(recognizer, detectable_faces, tmp_path, detect_every):
    """Four real faces, each still in a 2 s clip: between detections the face is followed, at detections the detector
    jitters by a pixel or two on the codec's noise; neither may move the box, so no probability changes by 0.04 or
    more from one frame to the next (the box jumping ~3 px every few frames moved some by 0.16)."""
    faces, _ = detectable_faces
    worst = {}
    for k, face in enumerate(faces[:4]):
        frames = _encoded([render([face], 0.5)[0]] * 30, tmp_path, f"still{k}.mp4")
        tracker = FaceTracker(recognizer, detect_every=detect_every, detect_side=None)
        out = [tracker.process(f) for f in frames]
        assert all(len(o) == 1 for o in out) and {o[0].id for o in out} == {1}
        p = np.array([[o[0].probabilities[label] for label in recognizer.labels] for o in out])
        worst[k] = float(np.abs(np.diff(p, axis=0)).max())
        assert sum(o[0].detected for o in out) == -(-len(frames) // detect_every)  # followed in between
    assert max(worst.values()) < 0.04, worst


@pytest.mark.data
@pytest.mark.parametrize("cut", [False, True])
def test_two_people_swapping_places_start_new_tracks_on_the_first_frame(recognizer, detectable_faces, tmp_path, cut):
    """Two people, one above the other, swap places on a frame between detections; with `cut` the background
    changes too (a cut in the film), without it only the faces do. Either way the first frame after the swap
    already gives both faces new ids, and every id is one person (one place) all along."""
    a, b = detectable_faces[0][:2]
    swap = 7  # not a detection frame at detect_every 3
    frames = []
    for i in range(15):
        frame = render([a, b] if i < swap else [b, a], 0.5)[0]
        frames.append(np.clip(frame.astype(np.int16) + (70 if cut and i >= swap else 0), 0, 255).astype(np.uint8))
    tracker = FaceTracker(recognizer, detect_every=3, detect_side=None)
    out = [tracker.process(f) for f in _encoded(frames, tmp_path, "swap.mp4")]
    assert all(len(o) == 2 for o in out)
    before = {f.id for o in out[:swap] for f in o}
    after = {f.id for o in out[swap:] for f in o}
    assert before == {1, 2} and len(after) == 2 and not before & after
    assert {f.id for f in out[swap]} == after
    places = {}
    for o in out:
        for f in o:
            places.setdefault(f.id, set()).add(f.box[1] < 240)  # top or bottom row
    assert all(len(p) == 1 for p in places.values()), places
