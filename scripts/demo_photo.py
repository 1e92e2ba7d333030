"""Write the README's example photo: one FER-2013 PrivateTest face placed in a 640x480 frame.

    python scripts/demo_photo.py photo.jpg [--index 9] [--data ../shared/data/fer2013]
    ferkit analyze photo.jpg --annotate photo_annotated.png

Face 9 is labelled happy; the frame continues the enlarged face's border pixels (ferkit.scenes), so no content is
invented. tests/test_readme.py checks that the README shows what `ferkit analyze` prints for it today.
"""
from __future__ import annotations

import argparse

import cv2

from ferkit.data import fer2013_file, load_dataset
from ferkit.evaluate import fer2013_set
from ferkit.scenes import scene


def demo_photo(data=None, index: int = 9):
    """(480, 640) grey frame holding PrivateTest face `index`, enlarged to 168 px."""
    faces = fer2013_set(load_dataset(fer2013_file(data)), "PrivateTest").pixels
    return scene(faces[index], 640, 480, face_size=168)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the image to write (.jpg, .png)")
    ap.add_argument("--index", type=int, default=9, help="which PrivateTest face (0-3588)")
    ap.add_argument("--data", default=None, help="the FER-2013 folder (default: $FERKIT_DATA or ../shared/data/fer2013)")
    args = ap.parse_args()
    if not cv2.imwrite(args.out, demo_photo(args.data, args.index)):
        raise SystemExit(f"could not write {args.out}: unknown image extension or unwritable folder")
