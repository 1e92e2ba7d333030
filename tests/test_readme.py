"""The README's first example is what `ferkit analyze` prints today for the photo that ships in examples/."""
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def readme_example() -> tuple[str, list[str]]:
    """The first command under "Two commands" and the output block after it (header, columns, face rows)."""
    text = (ROOT / "README.md").read_text()
    command = re.search(r"\n(ferkit analyze examples/\S+)", text)
    block = re.search(r"```\n(examples/\S+: .*?)```", text, re.S)
    assert command and block, "the README lost its `ferkit analyze examples/...` example"
    return command.group(1), block.group(1).rstrip("\n").splitlines()


def test_the_readme_example_is_what_the_shipped_model_prints():
    command, shown = readme_example()
    r = subprocess.run([sys.executable, "-m", "ferkit", *command.split()[1:]], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    printed = r.stdout.rstrip("\n").splitlines()
    assert shown[:2] == printed[:2] and len(shown) == len(printed)
    for want, got in zip(shown[2:], printed[2:]):
        # box and emotion to the letter; each probability within half a point (INT8 kernels differ a little
        # between CPUs), so the README is updated when a new model changes the answer, not for rounding
        assert want.split()[:3] == got.split()[:3], (want, got)
        w_pct = [float(p) for p in re.findall(r"([0-9.]+)%", want)]
        g_pct = [float(p) for p in re.findall(r"([0-9.]+)%", got)]
        assert w_pct == pytest.approx(g_pct, abs=0.5), (want, got)
