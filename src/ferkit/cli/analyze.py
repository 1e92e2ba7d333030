"""`ferkit analyze`: photos or folders of them -> faces and emotions, as a table or JSON."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from ..detect import check_detect_side, detector_help
from ..images import IMAGE_SUFFIXES
from .errors import EXIT_ERROR, EXIT_NO_FACE, EXIT_OK, EXIT_SOME_NO_FACE, EXIT_USAGE, CommandError, print_error
from ._args import add_adapter, add_detect_side, add_detector, add_features, add_model

# What a folder given to `ferkit analyze` is searched for (recursively; hidden files and folders left out): the
# decoder's own list, the same for every command.
PHOTO_SUFFIXES = IMAGE_SUFFIXES

ANALYZE_EPILOG = f"""\
A folder is searched recursively for images ({' '.join(PHOTO_SUFFIXES)}; hidden files left out); each other
file in it is named on stderr as skipped (a "skipped" row in --json). One unreadable or broken image is reported
on stderr and the others are still analysed. A photo over 40 megapixels (a 50-100 MP camera's) is read reduced
by 2, 4 ... to within 40 MP; boxes are given in the file's own pixels.

--json prints one JSON array with an object per image, also for a single image:
  {{"file": ..., "status": "ok" | "no_face", "faces": [...]}} or {{"file": ..., "status": "error", "error": ...}}
  or {{"file": ..., "status": "skipped", "reason": ...}} (a folder's file that is not an image)

exit status:
  {EXIT_OK}  every image had at least one face
  {EXIT_ERROR}  at least one input could not be read or analysed (the others still were)
  {EXIT_USAGE}  bad usage (an unknown option, an output file with an unknown image extension ...)
  {EXIT_NO_FACE}  no image had a face
  {EXIT_SOME_NO_FACE}  some images had faces, others none
"""


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="recognise emotions in photos", description="Find faces in photos and recognise each one's emotion.",
                       epilog=ANALYZE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="+", help="image files (JPEG, PNG, WebP, BMP, GIF, TIFF) or folders of them")
    add_model(p)
    add_detector(p)
    add_detect_side(p)
    add_features(p)
    add_adapter(p)
    p.add_argument("--no-detect", action="store_true", help="treat each image as one pre-cropped face")
    p.add_argument("--tta", action="store_true", help="average each face with its mirror image")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--annotate", metavar="OUT", help="write the image with boxes and labels (a file for one photo, "
                                                     "else a folder, created if missing)")
    p.add_argument("--explain", metavar="OUT", help="write the image with class activation heatmaps (a file for one "
                                                    "photo, else a folder, created if missing)")
    p.set_defaults(run=run)


@dataclasses.dataclass
class _Input:
    path: Path               # the image file, or the argument that yielded none
    rel: Path | None = None  # its place under a folder argument, mirrored in output folders
    error: str | None = None  # why it cannot be analysed, known before reading it
    skipped: str | None = None  # a folder's file that is not an image: why it is left out


def _expand_photos(args: list[str]) -> list[_Input]:
    """Files as given; a folder becomes the images under it (sorted, recursive, symbolic links not followed)."""
    out = []
    for arg in map(Path, args):
        if not arg.is_dir():
            out.append(_Input(arg))
            continue
        found, skipped = [], []
        for folder, dirs, files in os.walk(arg):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in sorted(files):
                if not f.startswith("."):
                    (found if f.lower().endswith(PHOTO_SUFFIXES) else skipped).append(Path(folder) / f)
        out += [_Input(f, f.relative_to(arg)) for f in found]
        out += [_Input(f, f.relative_to(arg), skipped=f"{f}: skipped, not an image file name "
                                                      f"({' '.join(PHOTO_SUFFIXES)})") for f in skipped]
        if not found:
            out.append(_Input(arg, error=f"{arg}: a folder with no images in it (looked for {', '.join(PHOTO_SUFFIXES)})"))
    return out


class _Outputs:
    """Where --annotate / --explain images go: OUT itself for one photo when OUT has an image extension, else
    OUT/<name>_<suffix>.png (mirroring the sub-folders of a folder argument), never the same file twice."""

    def __init__(self, flag: str, out: str, n_photos: int, suffix: str):
        import cv2

        self.out, self.suffix, self.used = Path(out), suffix, set()
        self.is_file = not self.out.is_dir() and bool(self.out.suffix)
        if self.is_file and n_photos > 1:
            raise CommandError(f"{flag} {out}: {n_photos} images need a folder, not a file name", EXIT_USAGE)
        if self.is_file and not cv2.haveImageWriter(str(self.out)):
            raise CommandError(f"{flag} {out}: unknown image extension {self.out.suffix!r}; "
                               "use .png, .jpg, .webp, .bmp or .tif", EXIT_USAGE)
        folder = self.out.parent if self.is_file else self.out
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CommandError(f"{flag} {out}: cannot create the folder {folder} ({e.strerror or e})") from e

    def write(self, item: _Input, image) -> None:
        import cv2

        if self.is_file:
            path = self.out
        else:
            base = self.out / (item.rel.parent if item.rel else Path()) / f"{item.path.stem}_{self.suffix}"
            path, k = base.with_name(base.name + ".png"), 1
            while path in self.used:  # two photos with the same name from different folders
                k += 1
                path = base.with_name(f"{base.name}-{k}.png")
        self.used.add(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            written = cv2.imwrite(str(path), image)
        except (OSError, cv2.error) as e:
            reason = e.strerror if isinstance(e, OSError) else e.err
            raise OSError(f"{item.path}: cannot write {path} ({reason or e})") from e
        if not written:
            raise OSError(f"{item.path}: cannot write {path}")


def _describe_failure(photo: Path, e: Exception) -> str:
    """One line starting with the photo's name."""
    import cv2

    from .. import UnreadableImageError

    if isinstance(e, (CommandError, UnreadableImageError)) or (isinstance(e, OSError) and e.filename is None):
        return str(e)  # names the file already
    if isinstance(e, OSError):
        return f"{photo}: {e.strerror or e}"
    if isinstance(e, cv2.error):  # its own text spans several lines
        return f"{photo}: could not be analysed (OpenCV {e.func}: {e.err})"
    return f"{photo}: could not be analysed ({type(e).__name__}: {e})"


def run(args) -> int:
    from .. import load_recognizer
    from ..annotate import draw_faces
    from ..explain import overlay
    from ..images import read_photo

    inputs = _expand_photos(args.photos)
    n_photos = sum(i.error is None and i.skipped is None for i in inputs)
    annotate = _Outputs("--annotate", args.annotate, n_photos, "annotated") if args.annotate else None
    explain = _Outputs("--explain", args.explain, n_photos, "explained") if args.explain else None
    detector = "none" if args.no_detect else args.detector
    try:
        check_detect_side(detector, args.detect_side)
    except ValueError as e:
        raise CommandError(f"--detect-side {args.detect_side}: {e}", EXIT_USAGE) from None
    rec = load_recognizer(args.model, detector=detector, tta=args.tta, detect_side=args.detect_side,
                          features=args.features, adapter=args.adapter)
    results, failed, faceless, with_faces = [], 0, 0, 0
    for item in inputs:
        name = str(item.path)
        if item.skipped:
            print_error(item.skipped)
            results.append({"file": name, "status": "skipped", "reason": item.skipped})
            continue
        try:
            if item.error:
                raise CommandError(item.error)
            image, scale = read_photo(item.path)  # a big photo comes reduced by `scale`
            faces = rec.analyze(image, explain=bool(args.explain))
            if annotate and faces:
                annotate.write(item, draw_faces(image, faces))
            if explain and faces:
                explain.write(item, draw_faces(overlay(image, faces), faces))
            faces = [f.scaled(scale) for f in faces]  # in the file's own pixels
        except Exception as e:  # one bad file never costs the others: reported here, counted in the exit status
            message = _describe_failure(item.path, e)
            print_error(message)
            results.append({"file": name, "status": "error", "error": message})
            failed += 1
            continue
        faceless += not faces
        with_faces += bool(faces)
        results.append({"file": name, "status": "ok" if faces else "no_face", "faces": [f.to_dict() for f in faces]})
        if not args.json:
            _print_table(name, faces, rec.labels)
    if args.json:
        print(json.dumps(results, indent=2))
    if faceless and not args.no_detect:
        print_error(f"no face found in {faceless} image{'s' if faceless > 1 else ''} with the {rec.detector.name} "
                    f"detector. Other detectors (--detector NAME): {detector_help(exclude=(rec.detector.name,))}")
    if failed:
        return EXIT_ERROR
    return EXIT_NO_FACE if not with_faces else EXIT_SOME_NO_FACE if faceless else EXIT_OK


def _print_table(name: str, faces, labels) -> None:
    if not faces:
        print(f"{name}: no face found")
        return
    adapter = f" (adapter {faces[0].adapter})" if getattr(faces[0], "adapter", None) else ""
    print(f"{name}: {len(faces)} face{'s' if len(faces) > 1 else ''}{adapter}")
    short = [label[:8] for label in labels]
    print(f"  {'#':>2} {'box (x,y,w,h)':<20} {'emotion':<9}" + "".join(f"{s:>9}" for s in short))
    for i, f in enumerate(faces, 1):
        box = ",".join(map(str, f.box))
        print(f"  {i:>2} {box:<20} {f.emotion:<9}" + "".join(f"{f.probabilities[label]:>9.1%}" for label in labels))
        if f.head_pose is not None:
            print(f"     head pose: yaw {f.head_pose['yaw']:+.0f}, pitch {f.head_pose['pitch']:+.0f}, "
                  f"roll {f.head_pose['roll']:+.0f} degrees")
        if f.action_units is not None:
            top = sorted(f.action_units.items(), key=lambda kv: -kv[1])[:5]
            print("     strongest AU estimates: " + ", ".join(f"{au} {v:.2f}" for au, v in top))
