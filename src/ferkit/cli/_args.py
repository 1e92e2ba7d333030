"""Arguments several commands share, declared once: --model, --detector, --detect-side, --data, and one flag per config
field."""
from __future__ import annotations

import argparse
import dataclasses

from ..detect import DEFAULT_DETECTOR, available_detectors, detector_help


def add_model(p, help: str = "shipped model name or path to an .onnx file (default: ferplus)") -> None:
    """--model; None (the default) is the library's default model, or the server's setting for `serve`. An unknown
    name is bad usage (exit 2, as for --detector); a missing .onnx file is an input that cannot be read (exit 1)."""
    p.add_argument("--model", default=None, type=_model_name, help=help)


def _model_name(value: str) -> str:
    from ..recognizer import RETIRED_MODELS, available_models

    if value.endswith(".onnx") or value in available_models() or value in RETIRED_MODELS:
        return value
    raise argparse.ArgumentTypeError(f"unknown model {value!r}; valid: {', '.join(available_models())}, "
                                     "or a path to an .onnx file")


def add_detector(p, help: str | None = None, *, default: str | None = DEFAULT_DETECTOR, exclude: tuple[str, ...] = (),
                 check: bool = True) -> None:
    """--detector: one of available_detectors() less `exclude` (live and video leave out "none", which suits cropped
    photos, not frames), its help saying when each detector helps. check=False takes any name and leaves it to the
    command's own check, as `serve` does: its settings may also come from $FERKIT_DETECTOR and are checked together,
    so a bad name reads the same from either; `default` None there means the server's setting."""
    names = [d for d in available_detectors() if d not in exclude]
    if help is None:
        help = "face detector (default: %(default)s). " + detector_help(exclude=exclude)
    p.add_argument("--detector", default=default, choices=names if check else None, metavar="NAME", help=help)


def add_detect_side(p) -> None:
    """--detect-side PX, yunet's working size (load_recognizer's detect_side): analyze, batch and serve, each
    checking it with detect.check_detect_side (MIN_DETECT_SIDE..MAX_DETECT_SIDE) as bad usage (exit 2)."""
    p.add_argument("--detect-side", type=int, default=None, metavar="PX",
                   help="yunet's working size: the longer side, in pixels, an image is scaled to before detection "
                        "(default 640: faces from about a thirtieth of the longer side). 1280 finds the small faces of "
                        "large photos at about 5x the detector's time; 320 takes about a third of it and needs faces "
                        "of a fifteenth")


def add_features(p, default: tuple[str, ...] = (), help: str | None = None) -> None:
    """--features, the face features beside the emotion (load_recognizer's features): every analysing command.
    args.features holds the names (mesh.parse_features), args.mesh_column whether `mesh` was named (records.mesh_named:
    tables carry the mesh only then, not with `all`)."""
    from ..mesh import FEATURES

    p.add_argument("--features", action=_Features, default=default, metavar="LIST",
                   help=help or f"face features to read too, comma-separated: {', '.join(FEATURES)}, or all (default: "
                                "none). mesh: 478 3-D points (in tables only when named: `all` leaves them out); "
                                "blendshapes: 52 expression coefficients and the action-unit (AU) estimates read from "
                                "them; pose: yaw, pitch, roll in degrees")
    p.set_defaults(mesh_column=False)


class _Features(argparse.Action):
    def __call__(self, parser, namespace, text, option_string=None):
        from ..mesh import parse_features
        from ..records import mesh_named

        try:
            names = parse_features(text)
        except ValueError as e:
            parser.error(f"argument --features: {e}")
        setattr(namespace, self.dest, names)
        namespace.mesh_column = mesh_named(text)


def add_search_side(p, default: int | None) -> None:
    """--search-side PX (video, live): the longest side of the downscaled copy the face tracker searches, not yunet's
    working size (--detect-side elsewhere). --detect-side, its name before, still works with a note, until 0.3."""
    shown = "the detector's own scaling" if default is None else default
    p.add_argument("--search-side", type=int, default=default, metavar="PX",
                   help=f"longest side of the downscaled copy of the frame the tracker searches for faces (default: "
                        f"{shown}); smaller is faster and misses small faces")
    p.add_argument("--detect-side", dest="search_side", type=int, action=_DeprecatedSearchSide, help=argparse.SUPPRESS)


class _DeprecatedSearchSide(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        from .errors import print_error

        print_error(f"{parser.prog}: --detect-side is now --search-side (the tracker's search size, not yunet's working "
                    f"size); the old name goes in 0.3")
        setattr(namespace, self.dest, value)


def add_adapter(p) -> None:
    """--adapter HEAD (load_recognizer's adapter): analyze, batch, video, live and serve."""
    p.add_argument("--adapter", default=None, metavar="HEAD",
                   help="a head file written by `ferkit adapt`: labels over its classes, for the model it was fitted on")


def add_data(p, help: str = "FER-2013: fer2013.csv(.gz), its compact copy, or the folder holding them "
                            "(default: $FERKIT_DATA)") -> None:
    p.add_argument("--data", default=None, help=help)


def add_dataclass_flags(p, cls, skip=()) -> None:
    """One flag per dataclass field: --field-name, typed from the default, explained by the field's comment."""
    from ..config import field_help

    docs = field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        # argparse %-formats help strings: a literal % in a comment must be doubled
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else repr(default) if default == "" else default
        text = docs.get(f.name, "").replace("%", "%%")
        text = f"{text} (default: {shown})" if text else f"default: {shown}"
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif isinstance(default, tuple):
            p.add_argument(flag, type=int, nargs="+", default=list(default), metavar="N", help=text)
        else:
            p.add_argument(flag, type=type(default), default=default, metavar=f.name.upper(), help=text)
