"""ferkit: facial emotion recognition on ONNX Runtime.

    import ferkit
    rec = ferkit.load_recognizer()          # the shipped FER-2013 model, the YuNet face detector
    for face in rec.analyze("photo.jpg"):
        print(face.box, face.emotion, face.probabilities)
"""
from .version import __version__
from .detect import available_detectors, create_detector  # noqa: E402
from .images import ImageTooLargeError, UnreadableImageError, load_image  # noqa: E402
from .labels import EMOTIONS, FERPLUS_EMOTIONS  # noqa: E402
from .face import Face  # noqa: E402
from .mesh import ACTION_UNITS, BLENDSHAPES, FEATURES  # noqa: E402
from .recognizer import Recognizer, load_recognizer  # noqa: E402
from .registry import available_models, describe_models  # noqa: E402

__all__ = ["EMOTIONS", "FERPLUS_EMOTIONS", "Face", "Recognizer", "load_recognizer", "available_models", "describe_models",
           "available_detectors", "create_detector", "load_image", "UnreadableImageError", "ImageTooLargeError",
           "FEATURES", "BLENDSHAPES", "ACTION_UNITS", "__version__"]


def __getattr__(name):  # read_results needs pandas (ferkit[results]): imported on first use, not by `import ferkit`
    if name == "read_results":
        from .results import read_results
        return read_results
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
