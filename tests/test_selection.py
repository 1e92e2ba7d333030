"""benchmarks/select_default.py's verdict (the rule of docs/quality.md, a pure function of the figures) and
benchmarks/paired.py's report."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
_spec = importlib.util.spec_from_file_location("select_default", BENCHMARKS / "select_default.py")
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


def test_role_names_what_is_at_stake_in_the_verdict():
    """Round 9 judged a candidate for `fer2013-accurate`, not for the default."""
    args = (OLD, {"clean": 0.8800, "mean_corrupted": 0.7900}, 150, 100, 0.002, 0.001, -0.005, 0.05)
    assert select_default.judge(*args, role="fer2013-accurate").endswith("-> NEW becomes fer2013-accurate")
    assert select_default.judge(*args[:1], {"clean": 0.8700, "mean_corrupted": 0.7900}, *args[2:],
                                role="fer2013-accurate").endswith("-> OLD stays fer2013-accurate")


@pytest.mark.parametrize("clean, corrupted, failing", [(0.8770, 0.7900, "clean"), (0.8800, 0.7870, "corrupted mean")])
def test_each_margin_can_fail_the_new_model_on_its_own(clean, corrupted, failing):
    line = verdict(clean, corrupted, 150, 100, 0.002, max_p=0.05)
    assert line.endswith("-> OLD stays the default")
    failed = [part.split(":")[0] for part in line.split(" -> ")[0].split("; ") if part.endswith("fails")]
    assert failed == [failing]


def test_paired_report_counts_agree_with_the_two_accuracies(fer_dir):
    """benchmarks/paired.py on real FER+ PrivateTest faces: the accuracy gap is exactly (won - lost) / faces."""
    out = subprocess.run([sys.executable, str(BENCHMARKS / "paired.py"),
                          "ferplus-robust", "ferplus", "--data", str(fer_dir)], capture_output=True, text=True,
                         check=True).stdout
    (n_old, acc_old), (n_new, acc_new) = [(int(n), float(a)) for n, a in
                                          re.findall(r"PrivateTest .*\((\d+) faces\) accuracy ([\d.]+)", out)]
    gained, lost, p = re.search(r"paired: (\d+) faces only NEW gets right, (\d+) only OLD; McNemar p = ([\d.]+)",
                                out).groups()
    assert n_old == n_new == 3153  # FER+ PrivateTest, majority-filtered
    assert "weights/ferplus.onnx]" in out  # each line names its file: candidate ensembles share one stored name
    assert abs((acc_new - acc_old) - (int(gained) - int(lost)) / n_new) < 1e-4
    assert int(gained) + int(lost) > 0 and 0 <= float(p) <= 1


def test_paired_report_refuses_models_with_different_labels(fer_dir):
    r = subprocess.run([sys.executable, str(BENCHMARKS / "paired.py"),
                        "fer2013", "ferplus", "--data", str(fer_dir)], capture_output=True, text=True)
    assert r.returncode == 1 and "have different labels" in r.stderr
