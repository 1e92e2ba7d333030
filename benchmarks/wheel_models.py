"""The wheel's models answer as the files in git do, over every FER-2013 test face.

    python benchmarks/wheel_models.py [--data DIR]

Builds the wheel from this tree (pip wheel; setup.py stores each network once, store_once.py), unpacks its model
files and runs every shipped model, from the wheel and from src/ferkit/weights, on all 7,178 PublicTest
and PrivateTest faces, plain and with flip TTA: the largest differences in probabilities and top-class maps, and
how many predictions change. Needs the data (../shared/data or $FERKIT_DATA) and onnx (the [dev] extra).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _in_chunks(recognizer, faces, chunk: int = 256):
    """Probabilities (N, C) and the top class's maps (N, 48, 48), a chunk of faces at a time (one batch of all 7,178
    through a four-network ensemble takes some 20 GB)."""
    probs, maps = [], []
    for i in range(0, len(faces), chunk):
        p, m = recognizer._classify_with_cams(faces[i:i + chunk])
        probs.append(p)
        maps.append(m[np.arange(len(p)), p.argmax(1)])
    return np.concatenate(probs), np.concatenate(maps)


def _ms_per_face(recognizer, faces, n: int) -> list[float]:
    import time

    for face in faces[:10]:
        recognizer.classify(face[None])
    out = []
    for face in faces[:n]:
        t = time.perf_counter()
        recognizer.classify(face[None])
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="FER-2013 folder (default: ../shared/data/fer2013 or $FERKIT_DATA)")
    ap.add_argument("--latency-only", action="store_true", help="only the ms per face of each file that differs")
    ap.add_argument("--repeat", type=int, default=300, help="faces timed one at a time, per file (median)")
    args = ap.parse_args()
    from ferkit import load_recognizer
    from ferkit.data import load_dataset
    from _data import fer2013  # --data, $FERKIT_DATA or ../shared/data/fer2013 (benchmarks/_data.py)
    from ferkit.recognizer import WEIGHTS_DIR

    data = load_dataset(fer2013(args.data))
    faces = np.concatenate([data.split("PublicTest").pixels, data.split("PrivateTest").pixels])
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", d,
                        str(ROOT)], check=True, capture_output=True)
        wheel = next(Path(d).glob("ferkit-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            z.extractall(d, [n for n in z.namelist() if n.startswith("ferkit/weights/")])
        print(f"{wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB; {len(faces)} test faces (PublicTest + PrivateTest)")
        print(f"\nms per face, one face a call (median of {args.repeat}, ONNX Runtime's default threads), files that differ:")
        for path in sorted(WEIGHTS_DIR.glob("*.onnx")):
            shipped = Path(d) / "ferkit" / "weights" / path.name
            if shipped.read_bytes() != path.read_bytes():
                tree, wheel_rec = (load_recognizer(p, detector="none") for p in (path, shipped))
                ms = {}
                for _ in range(2):  # alternated, so both see the same machine
                    for label, rec in (("git", tree), ("wheel", wheel_rec)):
                        ms.setdefault(label, []).extend(_ms_per_face(rec, faces, args.repeat // 2))
                print(f"  {path.stem}: in git {np.median(ms['git']):.2f} ms, in the wheel {np.median(ms['wheel']):.2f} ms "
                      f"(its own graph and {len(wheel_rec._added)} shipped files)")
        if args.latency_only:
            return
        print()
        print(f"{'model':<20}{'in git':>9}{'in wheel':>10}  {'tta':<5}{'max |dp|':>10}{'max |dmap|':>12}{'changed':>9}")
        for path in sorted(WEIGHTS_DIR.glob("*.onnx")):
            shipped = Path(d) / "ferkit" / "weights" / path.name
            for tta in ("none", "flip"):
                tree, wheel_rec = (load_recognizer(p, detector="none", tta=tta) for p in (path, shipped))
                (p0, m0), (p1, m1) = (_in_chunks(r, faces) for r in (tree, wheel_rec))
                top = p0.argmax(1)
                print(f"{path.stem:<20}{path.stat().st_size / 1e6:>7.1f}MB{shipped.stat().st_size / 1e6:>8.1f}MB  "
                      f"{tta:<5}{np.abs(p1 - p0).max():>10.1e}{np.abs(m1 - m0).max():>12.1e}"
                      f"{int((p1.argmax(1) != top).sum()):>9}")


if __name__ == "__main__":
    main()
