"""The README's first example is what `ferkit analyze` prints today for the photo scripts/demo_photo.py writes."""
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def readme_example() -> list[str]:
    """The analyze output block under "Two commands": the header line, the column line and the face rows."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```\n(photo\.jpg: .*?)```", text, re.S)
    assert block, "the README lost its `ferkit analyze photo.jpg` example"
    return block.group(1).rstrip("\n").splitlines()


def test_the_readme_example_is_what_the_shipped_model_prints(fer_dir, tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts/demo_photo.py"), "photo.jpg", "--data", str(fer_dir.resolve())],
                   cwd=tmp_path, check=True)
    r = subprocess.run([sys.executable, "-m", "ferkit", "analyze", "photo.jpg"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    shown, printed = readme_example(), r.stdout.rstrip("\n").splitlines()
    assert shown[:2] == printed[:2] and len(shown) == len(printed)
    for want, got in zip(shown[2:], printed[2:]):
        # box and emotion to the letter; each probability within half a point (INT8 kernels differ a little
        # between CPUs), so the README is updated when a new model changes the answer, not for rounding
        assert want.split()[:3] == got.split()[:3], (want, got)
        w_pct = [float(p) for p in re.findall(r"([0-9.]+)%", want)]
        g_pct = [float(p) for p in re.findall(r"([0-9.]+)%", got)]
        assert w_pct == pytest.approx(g_pct, abs=0.5), (want, got)
