"""What a new user waits for and downloads, in one run: the wheel's size, `import ferkit; load_recognizer()` and
`ferkit analyze` on the sample photo, each a fresh process (median of --repeat).

    python benchmarks/startup.py [--repeat 5]

Targets (issue 21): load under 1 s, analyze under 1.5 s wall, the wheel under 15 MB.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall(cmd: list[str], repeat: int) -> float:
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)  # warm the file cache
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    print(f"{cpu}, {os.cpu_count()} cores; median of {args.repeat} fresh processes")
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", d, str(ROOT)],
                       check=True, capture_output=True)
        wheel = next(Path(d).glob("ferkit-*.whl"))
        print(f"wheel {wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB")
        with zipfile.ZipFile(wheel) as z:  # what the build's store_once step saved (setup.py)
            stored = z.getinfo("ferkit/weights/fer2013-accurate.onnx").file_size
        tree = (ROOT / "src/ferkit/weights/fer2013-accurate.onnx").stat().st_size
        print(f"  fer2013-accurate.onnx in the wheel: {stored / 1e6:.1f} MB ({tree / 1e6:.1f} MB in git; the wheel's runs "
              f"its members fer2013 and fer2013-robust from their own files)")
    load = wall([sys.executable, "-c", "import ferkit; ferkit.load_recognizer()"], args.repeat)
    print(f"python -c 'import ferkit; ferkit.load_recognizer()': {load:.2f} s")
    bare = wall([sys.executable, "-c", "pass"], args.repeat)
    print(f"  (python -c pass: {bare:.2f} s)")
    analyze = wall([sys.executable, "-m", "ferkit", "analyze", "examples/astronaut.png"], args.repeat)
    print(f"ferkit analyze examples/astronaut.png: {analyze:.2f} s")
    onnx = subprocess.run([sys.executable, "-c", "import sys, ferkit; ferkit.load_recognizer(); print('onnx' in sys.modules, "
                           "'matplotlib' in sys.modules, 'torch' in sys.modules)"], capture_output=True, text=True).stdout.split()
    print(f"imported by load_recognizer: onnx {onnx[0]}, matplotlib {onnx[1]}, torch {onnx[2]}")


if __name__ == "__main__":
    main()
