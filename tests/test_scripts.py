"""The round scripts (scripts/round*.sh): argument checks and the ship step that needs no training run."""
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.parametrize("args", [[], ["ship", "fer2013"], ["ship", "fer2013", "v2", "4"], ["candidates", "affectnet"]])
@pytest.mark.parametrize("script", ["round3.sh", "round4.sh", "round5.sh"])
def test_round_scripts_refuse_bad_arguments_with_usage(tmp_path, script, args):
    r = subprocess.run(["bash", str(SCRIPTS / script), *args], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("usage:")
    assert not (tmp_path / "runs").exists()  # refused before touching anything


def test_ship_accurate_replaces_the_ensemble_and_drops_its_old_figures(tmp_path):
    weights = tmp_path / "src/ferkit/weights"
    weights.mkdir(parents=True)
    (weights / "fer2013-accurate.onnx").write_bytes(b"old")
    (weights / "fer2013-accurate.metrics.json").write_text("{}")
    (weights / "fer2013.metrics.json").write_text("{}")  # another model's figures stay
    (tmp_path / "new.onnx").write_bytes(b"new")
    subprocess.run(["bash", "-c", f". {SCRIPTS / 'rounds.sh'} && ship_accurate new.onnx fer2013"], cwd=tmp_path,
                   check=True)
    assert (weights / "fer2013-accurate.onnx").read_bytes() == b"new"
    assert not (weights / "fer2013-accurate.metrics.json").exists()
    assert (weights / "fer2013.metrics.json").exists()
