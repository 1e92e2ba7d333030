"""The round scripts (scripts/round*.sh): argument checks and the ship step that needs no training run."""
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.parametrize("args", [[], ["ship", "fer2013"], ["ship", "fer2013", "v2", "4"], ["candidates", "affectnet"]])
@pytest.mark.parametrize("script", ["round3.sh", "round4.sh", "round5.sh", "round6.sh", "round7.sh", "round8.sh",
                                    "round9.sh"])
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


def test_run_of_maps_each_candidate_to_its_round_and_refuses_unknown_ones(tmp_path):
    def run_of(candidate, set_="ferplus"):
        return subprocess.run(["bash", "-c", f". {SCRIPTS / 'rounds.sh'} && run_of {set_} {candidate}"], cwd=tmp_path,
                              capture_output=True, text=True)

    assert [run_of(f"v{i}").stdout.strip() for i in range(1, 6)] == [
        "runs/ferplus", "runs/ferplus-student", "runs/ferplus-distilled", "runs/ferplus-multi", "runs/ferplus-distilled50"]
    assert run_of("v5", "fer2013").stdout.strip() == "runs/fer2013-multi-w1"  # each set's round 5/6 run differs
    assert run_of("v6", "fer2013").stdout.strip() == "runs/fer2013-multi80"
    assert run_of("v6").returncode == 2  # FER+ has no sixth candidate
    assert run_of("v7", "fer2013").stdout.strip() == "runs/fer2013-distilled80"
    assert run_of("v7").returncode == 2
    assert run_of("v8", "fer2013").stdout.strip() == "runs/fer2013-wide80"
    r = run_of("v9")
    assert r.returncode == 2 and "no training run is known for candidate v9" in r.stderr


def test_challenge_exports_the_new_candidate_and_only_the_missing_earlier_ones(tmp_path):
    """challenge's own steps, with the heavy commands replaced by shell functions that log their arguments."""
    (tmp_path / "runs/candidates").mkdir(parents=True)
    for present in ("fer2013-v1", "fer2013-v3", "fer2013-v4"):  # v4 exists but is the candidate: exported afresh
        (tmp_path / f"runs/candidates/{present}.onnx").write_bytes(b"")
    script = (f". {SCRIPTS / 'rounds.sh'}; export_pair() {{ echo \"export $*\" >> log; }}; "
              "python() { echo \"select $*\" >> log; echo verdict; }; ferkit() { echo \"$1 $*\" >> log; echo fit; }; "
              "challenge fer2013 4 v1 v4")
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, capture_output=True)
    log = (tmp_path / "log").read_text().splitlines()
    assert log[:2] == ["export runs/fer2013-student fer2013-v2 runs/candidates",
                       "export runs/fer2013-multi fer2013-v4 runs/candidates"]
    assert log[2].startswith("select benchmarks/select_default.py runs/candidates/fer2013-v1.onnx "
                             "runs/candidates/fer2013-v4.onnx")
    assert log[3].startswith("ensemble ensemble " + " ".join(f"runs/candidates/fer2013-v{i}.onnx" for i in range(1, 5)))
    assert (tmp_path / "docs/eval/selection/verdict4_fer2013.txt").read_text() == "verdict\n"
    assert (tmp_path / "docs/eval/selection/ensemble4_fer2013.txt").read_text() == "fit\n"


def test_challenge_passes_a_rounds_extra_rule_to_select_default(tmp_path):
    (tmp_path / "runs/candidates").mkdir(parents=True)
    for i in range(1, 6):
        (tmp_path / f"runs/candidates/ferplus-v{i}.onnx").write_bytes(b"")
    script = (f". {SCRIPTS / 'rounds.sh'}; export_pair() {{ :; }}; python() {{ echo \"select $*\" >> log; }}; "
              "ferkit() { :; }; challenge ferplus 6 v3 v5 --max-p 0.05")
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "log").read_text().strip().endswith(
        "runs/candidates/ferplus-v3.onnx runs/candidates/ferplus-v5.onnx --clean-margin 0.001 --robust-margin -0.005 "
        "--max-p 0.05")


@pytest.mark.parametrize("args, ok", [("candidates", True), ("ship keep 5", True), ("ship v5 keep", True),
                                      ("ship v5 5", True), ("ship keep keep", False), ("ship v4 5", False),
                                      ("candidates ferplus", False)])
def test_round_args_takes_a_one_set_rounds_commands(tmp_path, args, ok):
    r = subprocess.run(["bash", "-c", f". {SCRIPTS / 'rounds.sh'} && round_args v5 5 {args} && echo taken"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert (r.returncode, r.stdout.strip()) == ((0, "taken") if ok else (2, ""))
    assert list(tmp_path.iterdir()) == []  # sourcing rounds.sh and checking write nothing


def test_ensemble_cost_times_only_an_ensemble_that_was_fitted_and_shows_no_accuracy(tmp_path):
    (tmp_path / "runs/candidates").mkdir(parents=True)
    (tmp_path / "docs/eval/selection").mkdir(parents=True)
    script = (f". {SCRIPTS / 'rounds.sh'}; python() {{ echo \"$*\" >> log; echo timed; }}; "
              "ensemble_cost fer2013 7 6; touch runs/candidates/fer2013-accurate6.onnx; ensemble_cost fer2013 7 6")
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "log").read_text().splitlines() == [
        "benchmarks/core.py --model runs/candidates/fer2013-accurate6.onnx --latency-only"]  # once: after the touch
    assert (tmp_path / "docs/eval/selection/cost7_fer2013.txt").read_text() == "timed\n"


def test_a_one_set_rounds_candidates_step_uses_the_paired_rule_and_times_the_ensemble(tmp_path):
    script = (f". {SCRIPTS / 'rounds.sh'}; challenge() {{ echo \"challenge $*\" >> log; }}; "
              "ensemble_cost() { echo \"cost $*\" >> log; }; one_set_round fer2013 7 v4 v6 candidates")
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "log").read_text().splitlines() == ["challenge fer2013 7 v4 v6 --max-p 0.05", "cost fer2013 7 6"]


@pytest.mark.parametrize("choice, shipped", [("keep", b"old"), ("v8", b"v8"), ("8", b"ensemble")])
def test_round9_ships_v8_alone_or_the_ensemble_as_the_accurate_model(tmp_path, choice, shipped):
    """Round 9 judges a network too slow to be a default: what it ships is only ever `fer2013-accurate`."""
    weights, candidates = tmp_path / "src/ferkit/weights", tmp_path / "runs/candidates"
    weights.mkdir(parents=True)
    candidates.mkdir(parents=True)
    for name, data in [("fer2013-accurate", b"old"), ("fer2013", b"default")]:
        (weights / f"{name}.onnx").write_bytes(data)
        (weights / f"{name}.metrics.json").write_text("{}")
    (candidates / "fer2013-v8.onnx").write_bytes(b"v8")
    (candidates / "fer2013-accurate8.onnx").write_bytes(b"ensemble")
    subprocess.run(["bash", str(SCRIPTS / "round9.sh"), "ship", choice], cwd=tmp_path, check=True)
    assert (weights / "fer2013-accurate.onnx").read_bytes() == shipped
    assert (weights / "fer2013-accurate.metrics.json").exists() == (choice == "keep")
    assert (weights / "fer2013.onnx").read_bytes() == b"default"  # the default is not at stake
    assert (weights / "fer2013.metrics.json").exists()


def test_round9_judges_v8_against_the_shipped_accurate_model_then_fits_v1_to_v8(tmp_path):
    (tmp_path / "runs/candidates").mkdir(parents=True)
    for i in range(1, 8):
        (tmp_path / f"runs/candidates/fer2013-v{i}.onnx").write_bytes(b"")
    # the heavy commands as shell functions that log their arguments (round9.sh runs in a child bash: exported)
    script = ("python() { echo \"python $*\" >> log; }; ferkit() { echo \"ferkit $*\" >> log; }; "
              f"export -f python ferkit; bash {SCRIPTS / 'round9.sh'} candidates")
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, capture_output=True)
    log = (tmp_path / "log").read_text().splitlines()
    # only the new candidate is exported (v1-v7 are here), from round 9's run
    assert log[0].startswith("ferkit export runs/fer2013-wide80/best.pt runs/candidates/fer2013-v8-fp32.onnx ")
    assert log[1].startswith("ferkit quantize runs/candidates/fer2013-v8-fp32.onnx runs/candidates/fer2013-v8.onnx ")
    assert log[2].startswith("python benchmarks/select_default.py fer2013-accurate runs/candidates/fer2013-v8.onnx ")
    assert log[2].endswith("--max-p 0.05 --role fer2013-accurate")
    assert log[3] == "python benchmarks/core.py --model runs/candidates/fer2013-v8.onnx --latency-only"
    assert log[4].startswith("ferkit ensemble " + " ".join(f"runs/candidates/fer2013-v{i}.onnx" for i in range(1, 9))
                             + " --out runs/candidates/fer2013-accurate8.onnx ")
    assert log[4].endswith(" --budget-ms 5")
    assert len(log) == 5  # the fit was faked, so no ensemble file exists to time


@pytest.mark.parametrize("args", [[], ["ship"], ["ship", "ferplus"], ["candidates", "fer2013"], ["keep"]])
def test_round11_refuses_bad_arguments_with_usage(tmp_path, args):
    r = subprocess.run(["bash", str(SCRIPTS / "round11.sh"), *args], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("usage:"), r.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "docs").exists()


def test_round11_fits_each_model_at_stake_and_ships_only_the_named_ones(tmp_path):
    script = ("ferkit() { echo \"ferkit $*\" >> log; }; export -f ferkit; "
              f"bash {SCRIPTS / 'round11.sh'} candidates")
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, capture_output=True)
    log = (tmp_path / "log").read_text().splitlines()
    assert [line.split()[:3] for line in log] == [["ferkit", "offsets", m] for m in
                                                   ("fer2013", "fer2013-fp32", "fer2013-accurate")]
    assert all("--out runs/candidates/" in line and "--fit " in line for line in log)
    weights, candidates = tmp_path / "src/ferkit/weights", tmp_path / "runs/candidates"
    weights.mkdir(parents=True)
    for m in ("fer2013", "fer2013-fp32", "fer2013-accurate"):
        (weights / f"{m}.onnx").write_bytes(b"old")
        (weights / f"{m}.metrics.json").write_text("{}")
        (candidates / f"{m}-offsets.onnx").write_bytes(b"new")
    subprocess.run(["bash", str(SCRIPTS / "round11.sh"), "ship", "fer2013-accurate"], cwd=tmp_path, check=True)
    assert (weights / "fer2013-accurate.onnx").read_bytes() == b"new"
    assert not (weights / "fer2013-accurate.metrics.json").exists()
    assert (weights / "fer2013.onnx").read_bytes() == b"old" and (weights / "fer2013.metrics.json").exists()
