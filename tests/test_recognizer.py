import io

import cv2
import numpy as np
import pytest

import ferkit
from ferkit import EMOTIONS, UnreadableImageError, load_recognizer
from tests.conftest import pad_face


def test_front_door_and_errors():
    assert "fer2013" in ferkit.available_models()
    with pytest.raises(ValueError, match="unknown model 'nope'; valid: .*fer2013"):
        load_recognizer("nope")
    with pytest.raises(ValueError, match="unknown detector 'yolo'; valid: yunet, haar"):
        load_recognizer(detector="yolo")
    with pytest.raises(ValueError, match="unknown tta"):
        load_recognizer(tta="rotate")
    with pytest.raises(FileNotFoundError):
        load_recognizer("missing.onnx")


def test_a_retired_name_loads_its_replacement_with_a_warning():
    """`ferplus-accurate` was retired (`ferplus` beats it on both splits): old code keeps working, and is told."""
    from ferkit.recognizer import RETIRED_MODELS

    assert "ferplus-accurate" not in ferkit.available_models()
    with pytest.warns(FutureWarning, match="'ferplus-accurate' is retired: 'ferplus'.* is loaded instead"):
        rec = load_recognizer("ferplus-accurate", detector="none")
    assert rec.model_path == load_recognizer("ferplus", detector="none").model_path
    assert all(new in ferkit.available_models() for new in RETIRED_MODELS.values())


def test_labels_and_classify(recognizer):
    from tests.conftest import default_labels

    assert recognizer.labels == default_labels() and set(EMOTIONS) <= set(recognizer.labels)
    k = len(recognizer.labels)
    faces = [np.zeros((30, 30), np.uint8), np.full((100, 120, 3), 128, np.uint8)]
    p = recognizer.classify(faces)
    assert p.shape == (2, k) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert recognizer.classify(np.zeros((0, 48, 48), np.uint8)).shape == (0, k)
    stacked = recognizer.classify(np.zeros((3, 60, 60), np.uint8))
    assert stacked.shape == (3, k)


@pytest.mark.parametrize("tta", ["flip", "crops"])
def test_tta_changes_little_and_keeps_shape(tta):
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    plain = load_recognizer(detector="none").classify(faces)
    aug = load_recognizer(detector="none", tta=tta).classify(faces)
    assert aug.shape == plain.shape and np.allclose(aug.sum(1), 1, atol=1e-5)


@pytest.mark.data
def test_analyze_every_input_kind(recognizer, detectable_faces, tmp_path):
    from PIL import Image

    face = pad_face(detectable_faces[0][0])                      # grey
    bgr = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), bgr)
    results = {
        "path": recognizer.analyze(path),
        "str": recognizer.analyze(str(path)),
        "bytes": recognizer.analyze(path.read_bytes()),
        "grey": recognizer.analyze(face),
        "bgr": recognizer.analyze(bgr),
        "rgb": recognizer.analyze(bgr[:, :, ::-1].copy(), color="rgb"),
        "pil": recognizer.analyze(Image.fromarray(face)),
    }
    first = results["path"]
    assert len(first) == 1
    for kind, faces in results.items():
        assert len(faces) == 1, kind
        f = faces[0]
        assert f.box == first[0].box, kind
        assert abs(sum(f.probabilities.values()) - 1) < 1e-4
        assert f.emotion == max(f.probabilities, key=f.probabilities.get)
        assert 0 <= f.detector_score <= 1 and f.detector == "yunet" and len(f.landmarks) == 5
        assert np.allclose(list(f.probabilities.values()), list(first[0].probabilities.values()), atol=1e-3), kind
    d = first[0].to_dict()
    assert set(d) == {"box", "emotion", "probabilities", "detector", "detector_score", "detector_confidence", "landmarks"}


def test_no_face_gives_empty_list(recognizer):
    assert recognizer.analyze(np.full((240, 320, 3), 127, np.uint8)) == []


def test_detect_false_uses_whole_image(recognizer):
    faces = recognizer.analyze(np.full((60, 50), 127, np.uint8), detect=False, explain=True)
    assert len(faces) == 1 and faces[0].box == (0, 0, 50, 60)
    assert faces[0].cam.shape == (48, 48) and 0 <= faces[0].cam.min() and faces[0].cam.max() <= 1


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"%PDF-1.4 not an image", r'not an image.*\(starts with "%PDF-1.4"'),
])
def test_unreadable_bytes(recognizer, data, message):
    with pytest.raises(UnreadableImageError, match=message):
        recognizer.analyze(data)


def test_truncated_image(recognizer):
    ok, buf = cv2.imencode(".png", np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8))
    with pytest.raises(UnreadableImageError, match="corrupt or truncated|not an image"):
        recognizer.analyze(buf.tobytes()[:500])


def test_decompression_bomb_is_refused():
    from PIL import Image

    from ferkit.images import ImageTooLargeError, decode_image

    buf = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buf, format="PNG")  # compresses to a few KB
    with pytest.raises(ImageTooLargeError, match="25,000,000 pixels, over the limit of 1,000,000"):
        decode_image(buf.getvalue(), "bomb.png", max_pixels=1_000_000)


def test_wrong_input_type(recognizer):
    with pytest.raises(TypeError, match="expected a path, bytes"):
        recognizer.analyze(12345)
    with pytest.raises(UnreadableImageError, match="no such file"):
        recognizer.analyze("/nonexistent/photo.jpg")


def test_available_models_are_classifiers_only():
    names = ferkit.available_models()
    assert {"fer2013", "fer2013-accurate", "ferplus"} <= set(names) and not [n for n in names if n.endswith("-fp32")]
    assert not [n for n in names if "blazeface" in n]
    for name in names:
        assert load_recognizer(name, detector="none").labels  # every listed name loads as a classifier


@pytest.mark.parametrize("name", ["fer2013", "fer2013-accurate"])
def test_int8_weights_as_uint8_are_the_same_numbers(name):
    """On x86 CPUs without VNNI, ONNX Runtime's uint8 x int8 convolutions saturate (the shipped `fer2013` lost a
    point on PublicTest there), so the Recognizer stores the weights as uint8 for its exact u8u8 kernels: every
    dequantized weight must stay what it was, and nothing but those weights may change."""
    import onnx
    from onnx import numpy_helper

    from ferkit.recognizer import WEIGHTS_DIR, uint8_weights

    def dequantized(model):
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        out = {}
        for node in model.graph.node:
            if node.op_type == "DequantizeLinear" and node.input[0] in inits:
                w, scale = inits[node.input[0]], inits[node.input[1]]
                zp = inits[node.input[2]] if len(node.input) > 2 else np.zeros_like(scale, w.dtype)
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                shape = [1] * w.ndim
                shape[axis] = -1
                if scale.ndim:
                    scale, zp = scale.reshape(shape), zp.reshape(shape)
                out[node.input[0]] = (w.dtype, (w.astype(np.int32) - zp.astype(np.int32)) * scale)
        return out

    path = WEIGHTS_DIR / f"{name}.onnx"
    before, after = onnx.load(str(path)), onnx.ModelProto.FromString(uint8_weights(path))
    old, new = dequantized(before), dequantized(after)
    assert old.keys() == new.keys() and any(dtype == np.int8 for dtype, _ in old.values())
    for key, (dtype, values) in old.items():
        assert new[key][0] == (np.uint8 if dtype == np.int8 else dtype), key
        np.testing.assert_array_equal(new[key][1], values, err_msg=key)
    assert [n.op_type for n in after.graph.node] == [n.op_type for n in before.graph.node]
    assert uint8_weights(WEIGHTS_DIR / "detectors" / "yunet_2023mar_s.onnx") is None  # float32 models are left alone


def test_every_network_of_an_ensemble_runs_the_exact_int8_weights(stored_accurate):
    """`fer2013-accurate` stored once runs its own file and the shipped `fer2013` and `fer2013-robust` it adds: where
    ONNX Runtime's int8 kernels saturate, every one of those sessions must get the uint8 weights, not only the first."""
    import onnxruntime as ort

    from ferkit.preprocess import to_model_input
    from ferkit.recognizer import int8_saturates, shipped_member_files, uint8_weights

    rec = load_recognizer(stored_accurate, detector="none")
    files = [rec.model_path] + [p for p, _ in shipped_member_files(rec.model_path, rec.metadata)]
    sessions = [rec._session] + [s for s, _ in rec._added]
    assert [p.name for p in files] == ["fer2013-accurate.onnx", "fer2013-robust.onnx", "fer2013.onnx"]
    assert len(sessions) == len(files)
    feed = {"input": to_model_input(np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8))}
    for session, path in zip(sessions, files):
        exact = uint8_weights(path) if int8_saturates() else None
        assert not int8_saturates() or exact is not None, path  # int8 QDQ: the rewrite applies
        want = ort.InferenceSession(exact or str(path), providers=["CPUExecutionProvider"]).run(None, feed)
        for got, w in zip(session.run(None, feed), want):
            np.testing.assert_allclose(got, w, atol=1e-6, rtol=0, err_msg=path.name)


def test_an_ensemble_names_the_shipped_model_file_it_misses(tmp_path, stored_accurate):
    """`fer2013-accurate` stored once runs `fer2013` and `fer2013-robust` from their files beside it: without one,
    loading says which file and which model; with another model under that name it refuses rather than answer with
    other weights."""
    import shutil

    from ferkit.recognizer import WEIGHTS_DIR

    for name in ("fer2013-accurate", "fer2013-robust"):
        shutil.copy(stored_accurate.parent / f"{name}.onnx", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"runs the shipped model 'fer2013' \(its member fer2013-v7, weight 0.2\) "
                                                r"from .*fer2013\.onnx, which is missing"):
        load_recognizer(tmp_path / "fer2013-accurate.onnx", detector="none")
    shutil.copy(WEIGHTS_DIR / "ferplus.onnx", tmp_path / "fer2013.onnx")
    with pytest.raises(ValueError, match=r"fer2013\.onnx, but that file is not the one it was built with"):
        load_recognizer(tmp_path / "fer2013-accurate.onnx", detector="none")


def test_an_ensembles_size_counts_the_shipped_models_it_runs(stored_accurate, monkeypatch):
    """`ferkit models`' MB for a `fer2013-accurate` stored once is all it runs (its file, `fer2013` and
    `fer2013-robust`), and it still counts four networks."""
    from ferkit import recognizer

    monkeypatch.setattr(recognizer, "WEIGHTS_DIR", stored_accurate.parent)
    WEIGHTS_DIR = stored_accurate.parent

    row = {r["name"]: r for r in ferkit.describe_models()}["fer2013-accurate"]
    size = sum((WEIGHTS_DIR / f"{n}.onnx").stat().st_size for n in ("fer2013-accurate", "fer2013", "fer2013-robust"))
    assert row["size_mb"] == round(size / 1e6, 1) and row["networks"] == 4


def test_int8_saturation_is_judged_from_the_cpu():
    """The check the Recognizer runs: x86 without VNNI saturates; whatever this machine is, the answer must agree
    with its CPU flags where Linux lists them."""
    import platform
    from pathlib import Path

    from ferkit.recognizer import int8_saturates

    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").is_file() else None
    if flags is None or platform.machine() != "x86_64":
        pytest.skip("needs Linux on x86_64 to read the CPU flags")
    assert int8_saturates() is not bool(flags & {"avx_vnni", "avx512_vnni", "amx_int8"})


def test_alignment_turns_a_tilted_face_upright():
    """The sample photo turned 20 degrees about the face, its landmarks turned with it: the aligned crop matches the
    upright photo's crop as the classifier sees it (48x48), far closer than the crop without alignment does."""
    from ferkit.preprocess import resize_face
    from tests.conftest import ROOT

    photo = cv2.imread(str(ROOT / "examples" / "astronaut.png"))
    aligned, plain = ferkit.load_recognizer(align=True), ferkit.load_recognizer(align=False)
    d = aligned.detect(photo)
    box, marks = d.boxes[0], d.landmarks[0]
    upright = resize_face(aligned.crop(photo, box, marks)).astype(float)
    assert abs(resize_face(plain.crop(photo, box, marks)).astype(float) - upright).mean() < 1  # nothing to turn
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), -20, 1.0)  # 20 degrees clockwise on screen
    turned = cv2.warpAffine(photo, m, (512, 512), borderMode=cv2.BORDER_REFLECT)
    turned_marks = marks @ m[:, :2].T + m[:, 2]
    error_aligned = abs(resize_face(aligned.crop(turned, box, turned_marks)).astype(float) - upright).mean()
    error_plain = abs(resize_face(plain.crop(turned, box, turned_marks)).astype(float) - upright).mean()
    assert error_aligned < 6 and error_aligned < error_plain / 3, (error_aligned, error_plain)


def test_yunet_sees_the_turn_of_a_tilted_face():
    """YuNet's landmarks see a turned face's roll with the right sign, though short of the full angle (about a third
    on this photo: docs/benchmarks/front_end.txt measures what alignment then does to accuracy)."""
    from ferkit.detect import roll_degrees
    from tests.conftest import ROOT

    photo = cv2.imread(str(ROOT / "examples" / "astronaut.png"))
    rec = ferkit.load_recognizer()
    for angle in (-30, 30):
        turned = cv2.warpAffine(photo, cv2.getRotationMatrix2D((224.0, 110.0), angle, 1.0), (512, 512),
                                borderMode=cv2.BORDER_REFLECT)
        roll = roll_degrees(rec.detect(turned).landmarks)[0]
        assert np.sign(roll) == -np.sign(angle) and 3 < abs(roll) <= 35, (angle, roll)
    assert rec.analyze(turned)[0].emotion == "happy"


def test_annotations_mark_the_landmarks():
    from ferkit.annotate import draw_faces
    from tests.conftest import ROOT

    photo = cv2.imread(str(ROOT / "examples" / "astronaut.png"))
    face = load_recognizer().analyze(photo)[0]
    drawn = draw_faces(photo, [face])
    for x, y in face.landmarks:  # a white dot at each point, where the photo was not white
        assert drawn[int(round(y)), int(round(x))].tolist() == [255, 255, 255] != photo[int(round(y)), int(round(x))].tolist()


def test_detect_side_is_yunets_working_size(tmp_path):
    """load_recognizer(detect_side=1280) finds the 16-px face of a 1280x960 photo that the default 640 misses; the
    setting is refused with other detectors and under 32 px."""
    from tests.conftest import small_face_photo

    small_face_photo(tmp_path / "group.png")
    assert load_recognizer().analyze(tmp_path / "group.png") == []
    assert len(load_recognizer(detect_side=1280).analyze(tmp_path / "group.png")) == 1
    with pytest.raises(ValueError, match="detect_side sets yunet's working size; the haar detector has none"):
        load_recognizer(detector="haar", detect_side=1280)
    with pytest.raises(ValueError, match="at least 32 pixels, got 16"):
        load_recognizer(detect_side=16)
