"""The public API pinned: a rename or a dropped parameter fails here before a release breaks users' code.

Changing what is below is allowed, but on purpose: update this file in the same commit and say so in its message.
"""
import dataclasses
import inspect
import warnings

import pytest

import ferkit

PUBLIC = {"EMOTIONS", "FERPLUS_EMOTIONS", "Face", "Recognizer", "load_recognizer", "available_models",
          "describe_models", "available_detectors", "create_detector", "load_image", "UnreadableImageError",
          "ImageTooLargeError", "FEATURES", "BLENDSHAPES", "ACTION_UNITS", "__version__"}


def params(fn) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


def test_the_public_names():
    assert set(ferkit.__all__) == PUBLIC
    assert all(hasattr(ferkit, name) for name in PUBLIC)
    assert ferkit.EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert ferkit.FERPLUS_EMOTIONS == ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")


def test_the_signatures_users_call():
    assert params(ferkit.load_recognizer) == ["model", "detector", "threads", "tta", "margin", "align", "providers",
                                               "detect_side", "features", "adapter"]
    assert params(ferkit.Recognizer.analyze_many) == ["images", "detect", "explain", "color"]
    assert params(ferkit.Recognizer.analyze) == ["image", "detect", "explain", "color"]
    assert params(ferkit.Recognizer.classify) == ["faces"]
    assert params(ferkit.load_image) == ["source", "color", "max_pixels"]
    assert params(ferkit.create_detector) == ["name", "options"]
    assert [f.name for f in dataclasses.fields(ferkit.Face)] == ["box", "probabilities", "emotion", "detector_score", "cam",
                                                                "landmarks", "detector", "mesh", "blendshapes",
                                                                "action_units", "head_pose", "base_probabilities",
                                                                "adapter", "mesh_embedding"]
    assert {"score", "to_dict", "to_row", "confidence"} <= set(dir(ferkit.Face))  # confidence: deprecated, goes in 0.3
    assert ferkit.FEATURES == ("mesh", "blendshapes", "pose") and len(ferkit.BLENDSHAPES) == 52


def test_the_recognizers_public_methods():
    """What users call on a Recognizer. The plumbing the package's own modules share (_classify_with_cams, _faces,
    _make_face, _run) is underscored: it may change without notice."""
    assert {n for n in dir(ferkit.Recognizer) if not n.startswith("_")} == {
        "analyze", "analyze_many", "analyze_boxes", "classify", "crop", "detect", "faces_for", "add_features"}
    assert params(ferkit.Recognizer.analyze_boxes) == ["image", "boxes", "scores", "explain", "landmarks", "detector"]
    assert params(ferkit.Recognizer.faces_for) == ["image", "detections", "explain", "features"]
    assert params(ferkit.Recognizer.add_features) == ["image", "faces"]


def test_face_still_takes_the_old_confidence_keyword():
    """`Face(..., confidence=x)`, the keyword before the field was named `detector_score`: accepted with a
    DeprecationWarning until 0.3, and the Face is the one the new name builds (fields, equality, repr, to_dict)."""
    kw = {"box": (1, 2, 3, 4), "probabilities": {"happy": 0.75, "sad": 0.25}, "emotion": "happy"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns about nothing
        new = ferkit.Face(**kw, detector_score=0.9)
    with pytest.warns(DeprecationWarning, match=r"Face\(confidence=\.\.\.\) is the detector's score: use "
                                                 r"Face\(detector_score=\.\.\.\)"):
        old = ferkit.Face(**kw, confidence=0.9)
    assert old == new and repr(old) == repr(new) and old.to_dict() == new.to_dict()
    assert dataclasses.asdict(old) == dataclasses.asdict(new) and old.detector_score == 0.9
    with pytest.warns(DeprecationWarning):
        assert ferkit.Face((1, 2, 3, 4), kw["probabilities"], "happy", confidence=0.9, detector="yunet") == \
            dataclasses.replace(new, detector="yunet")
    with pytest.raises(TypeError, match="both detector_score and confidence"):  # before any warning
        ferkit.Face(**kw, detector_score=0.9, confidence=0.8)
    with pytest.raises(TypeError):
        ferkit.Face(**kw)  # detector_score is still required
    assert params(ferkit.Face) == [f.name for f in dataclasses.fields(ferkit.Face)]  # the signature shown stays


def test_every_shipped_model_is_described_by_the_same_keys():
    keys = {"name", "default", "labels", "size_mb", "networks", "test_set", "test_accuracy", "robustness_mean",
            "agreement", "fer2013_accuracy", "ms_per_face"}
    rows = ferkit.describe_models()
    assert [r["name"] for r in rows] == ferkit.available_models()
    assert all(set(r) == keys for r in rows) and sum(r["default"] for r in rows) == 1
