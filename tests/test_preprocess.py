import numpy as np
import pytest

from ferkit.labels import EMOTIONS, check_emotion
from ferkit.preprocess import IMAGE_SIZE, to_grey, to_model_input


def test_emotions_tuple_is_fer2013_order():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert check_emotion(" Happy ") == "happy"
    with pytest.raises(ValueError, match="valid: angry, disgust"):
        check_emotion("grumpy")


def test_model_input_shape_and_range():
    faces = [np.zeros((100, 80), np.uint8), np.full((20, 30, 3), 255, np.uint8), np.full((48, 48, 4), 128, np.uint8)]
    x = to_model_input(faces)
    assert x.shape == (3, 1, IMAGE_SIZE, IMAGE_SIZE) and x.dtype == np.float32
    assert x[0].max() == -1.0 and x[1].min() == 1.0 and abs(x[2].mean()) < 0.01


def test_fast_path_equals_general_path():
    batch = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    assert np.array_equal(to_model_input(batch), to_model_input(list(batch)))
    assert to_model_input([]).shape == (0, 1, 48, 48)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="wrap a single face"):
        to_model_input(np.zeros((48, 48), np.uint8))
    with pytest.raises(ValueError, match="expected an"):
        to_grey(np.zeros((4, 4, 2), np.uint8))
    assert to_grey(np.full((2, 2), 0.5, np.float32)).tolist() == [[127, 127], [127, 127]]
