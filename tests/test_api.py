"""The public API pinned: a rename or a dropped parameter fails here before a release breaks users' code.

Changing what is below is allowed, but on purpose: update this file in the same commit and say so in its message.
"""
import dataclasses
import inspect

import ferkit

PUBLIC = {"EMOTIONS", "FERPLUS_EMOTIONS", "Face", "Recognizer", "load_recognizer", "available_models",
          "describe_models", "available_detectors", "create_detector", "load_image", "UnreadableImageError",
          "ImageTooLargeError", "__version__"}


def params(fn) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


def test_the_public_names():
    assert set(ferkit.__all__) == PUBLIC
    assert all(hasattr(ferkit, name) for name in PUBLIC)
    assert ferkit.EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert ferkit.FERPLUS_EMOTIONS == ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")


def test_the_signatures_users_call():
    assert params(ferkit.load_recognizer) == ["model", "detector", "threads", "tta", "margin", "align", "providers"]
    assert params(ferkit.Recognizer.analyze_many) == ["images", "detect", "explain", "color"]
    assert params(ferkit.Recognizer.analyze) == ["image", "detect", "explain", "color"]
    assert params(ferkit.Recognizer.classify) == ["faces"]
    assert params(ferkit.load_image) == ["source", "color", "max_pixels"]
    assert params(ferkit.create_detector) == ["name", "options"]
    assert [f.name for f in dataclasses.fields(ferkit.Face)] == ["box", "probabilities", "emotion", "detector_score", "cam",
                                                                "landmarks", "detector"]
    assert {"score", "to_dict", "confidence"} <= set(dir(ferkit.Face))  # confidence: deprecated alias, goes in 0.3


def test_every_shipped_model_is_described_by_the_same_keys():
    keys = {"name", "default", "labels", "size_mb", "networks", "test_set", "test_accuracy", "robustness_mean"}
    rows = ferkit.describe_models()
    assert [r["name"] for r in rows] == ferkit.available_models()
    assert all(set(r) == keys for r in rows) and sum(r["default"] for r in rows) == 1
