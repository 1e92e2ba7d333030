"""benchmarks/select_default.py's verdict: the rule of docs/quality.md, as a pure function of the figures."""
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "select_default", Path(__file__).resolve().parents[1] / "benchmarks" / "select_default.py")
select_default = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(select_default)

OLD = {"clean": 0.8765, "mean_corrupted": 0.7927}


def verdict(new_clean, new_corrupted, gained, lost, p, max_p=None):
    return select_default.judge(OLD, {"clean": new_clean, "mean_corrupted": new_corrupted}, gained, lost, p,
                                clean_margin=0.001, robust_margin=-0.005, max_p=max_p)


def test_without_max_p_the_paired_test_is_not_part_of_the_rule():
    line = verdict(0.8800, 0.7900, 120, 109, 0.51)
    assert line.endswith("-> NEW becomes the default")
    assert "paired" not in line


@pytest.mark.parametrize("gained, lost, p, wins", [
    (150, 100, 0.002, True),    # a clear win
    (130, 110, 0.22, False),    # ahead, but within chance
    (100, 150, 0.002, False),   # a clear split the wrong way is no reason to switch
])
def test_max_p_asks_new_to_win_the_paired_split(gained, lost, p, wins):
    line = verdict(0.8800, 0.7900, gained, lost, p, max_p=0.05)
    assert line.endswith("-> NEW becomes the default" if wins else "-> OLD stays the default")
    assert f"paired: {gained}/{lost}, p = {p:.3f} (needs more won, p < 0.05) {'ok' if wins else 'fails'}" in line


@pytest.mark.parametrize("clean, corrupted, failing", [(0.8770, 0.7900, "clean"), (0.8800, 0.7870, "corrupted mean")])
def test_each_margin_can_fail_the_new_model_on_its_own(clean, corrupted, failing):
    line = verdict(clean, corrupted, 150, 100, 0.002, max_p=0.05)
    assert line.endswith("-> OLD stays the default")
    failed = [part.split(":")[0] for part in line.split(" -> ")[0].split("; ") if part.endswith("fails")]
    assert failed == [failing]
