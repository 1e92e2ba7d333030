"""The experiment machinery outside the package (research/): the one selection rule, paired tests, ensembles and
class offsets. Cheap checks on generated data; one check on real data each for the paired report and the fit."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from research.select import ROUND11, Rule, judge, mcnemar

ROOT = Path(__file__).resolve().parents[1]
OLD = {"clean": 0.8765, "mean_corrupted": 0.7927}
RULE = Rule(clean_margin=0.001, robust_margin=-0.005, max_p=None)


def verdict(new_clean, new_corrupted, gained, lost, p, max_p=None, role="the default"):
    rule = Rule(clean_margin=0.001, robust_margin=-0.005, max_p=max_p)
    return judge(OLD, {"clean": new_clean, "mean_corrupted": new_corrupted}, gained, lost, p, rule, role)[1]


def research(*args):
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


# ---------------------------------------------------------------- the rule
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
    assert verdict(0.8800, 0.7900, 150, 100, 0.002, 0.05, "fer2013-accurate").endswith("-> NEW becomes fer2013-accurate")
    assert verdict(0.8700, 0.7900, 150, 100, 0.002, 0.05, "fer2013-accurate").endswith("-> OLD stays fer2013-accurate")


@pytest.mark.parametrize("clean, corrupted, failing", [(0.8770, 0.7900, "clean"), (0.8800, 0.7870, "corrupted mean")])
def test_each_margin_can_fail_the_new_model_on_its_own(clean, corrupted, failing):
    line = verdict(clean, corrupted, 150, 100, 0.002, max_p=0.05)
    assert line.endswith("-> OLD stays the default")
    failed = [part.split(":")[0] for part in line.split(" -> ")[0].split("; ") if part.endswith("fails")]
    assert failed == [failing]


def test_round11s_rule_adds_macro_f1_and_names_each_condition():
    """The offsets' verdict is the same rule with round 11's thresholds: each figure can fail it alone."""
    old = {"clean": 0.70, "mean_corrupted": 0.60, "macro_f1": 0.68}
    new = {"clean": 0.705, "mean_corrupted": 0.598, "macro_f1": 0.675}
    ok, line = judge(old, new, 60, 30, 0.002, ROUND11, "m")
    assert ok and line.endswith("NEW becomes m") and line.count(" ok") == 4
    for changed, name in (({"clean": 0.701}, "clean"), ({"mean_corrupted": 0.59}, "corrupted mean"),
                          ({"macro_f1": 0.66}, "macro F1")):
        ok, line = judge(old, {**new, **changed}, 60, 30, 0.002, ROUND11, "m")
        assert not ok and [part.split(":")[0] for part in line.split(" -> ")[0].split("; ")
                           if part.endswith("fails")] == [name]
    assert not judge(old, new, 60, 30, 0.2, ROUND11, "m")[0]


def test_mcnemar_counts_only_the_faces_the_models_disagree_on():
    old = np.array([True] * 50 + [False] * 50)
    assert mcnemar(old, old) == (0, 0, 1.0)
    new = old.copy()
    new[50:60] = True                                     # 10 faces only NEW gets right, none the other way
    gained, lost, p = mcnemar(old, new)
    assert (gained, lost) == (10, 0) and p == pytest.approx(2 / 2 ** 10)
    new[:5] = False                                       # 10 against 5: far from significant
    gained, lost, p = mcnemar(old, new)
    assert (gained, lost) == (10, 5) and p == pytest.approx(2 * sum(math.comb(15, i) for i in range(6)) / 2 ** 15)
    assert 0.2 < p < 0.4


# ---------------------------------------------------------------- the command lines
def test_round_script_refuses_bad_arguments_with_usage(tmp_path):
    for args in ([], ["candidate", "run"], ["judge", "old"], ["ensemble", "name", "one"], ["ship", "fer2013"]):
        r = subprocess.run(["bash", str(ROOT / "research/round.sh"), *args], capture_output=True, text=True,
                           cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "FERKIT_DATA": str(tmp_path)})
        assert r.returncode == 2 and "usage:" in r.stderr, (args, r.stderr)
    assert not list(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.data
def test_paired_report_counts_agree_with_the_two_accuracies(private_test):
    """On real PrivateTest faces: the accuracy gap is exactly (won - lost) / faces."""
    from ferkit import load_recognizer
    from ferkit.evaluate import EvalSet
    from research.select import paired

    s = EvalSet("FER-2013 PrivateTest", private_test.pixels[:600], private_test.labels[:600], private_test.classes)
    r = paired(load_recognizer("fer2013-robust", detector="none"), load_recognizer("fer2013", detector="none"), s)
    assert abs((r["new"] - r["old"]) - (r["gained"] - r["lost"]) / 600) < 1e-9
    assert r["gained"] + r["lost"] > 0 and 0 <= r["p"] <= 1


def test_select_reports_privatetest_without_a_verdict(tmp_path):
    """`--split PrivateTest` prints accuracies and the paired test, never a verdict (a report after the choices);
    each line names its file (candidate ensembles share one stored name). Tiny data: the command, not the models."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 60).astype(np.uint8)
    np.savez(tmp_path / "tiny.npz", pixels=rng.integers(0, 256, (60, 48, 48), dtype=np.uint8), emotion=labels,
             usage=np.array([0] * 20 + [1] * 20 + [2] * 20, np.uint8))
    r = research("research.select", "fer2013-robust", "fer2013", "--split", "PrivateTest", "--data", tmp_path / "tiny.npz")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^old fer2013-robust .*\(20 faces\) accuracy [\d.]+  \[.*fer2013-robust\.onnx\]$", r.stdout, re.M)
    assert re.search(r"only NEW gets right, \d+ only OLD; McNemar p = [\d.]+", r.stdout)
    assert "becomes" not in r.stdout and "stays" not in r.stdout


def test_models_with_different_labels_are_refused():
    r = research("research.select", "fer2013", "ferplus", "--data", ROOT / "missing")
    assert r.returncode == 1 and "have different labels" in r.stderr


def test_members_lists_and_writes_the_networks_inside_the_shipped_ensemble(tmp_path):
    """`members fer2013-accurate --out DIR`: the four networks with their weights and stages, each written as a model
    of its own; the one that also ships alone as `fer2013` (v7) answers exactly as `fer2013` does."""
    from ferkit import load_recognizer

    r = research("research.ensemble", "members", "fer2013-accurate", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith("fer2013-v")]
    assert [(row[0], row[2]) for row in rows] == [("fer2013-v1", "0.1"), ("fer2013-v2", "0.2"), ("fer2013-v7", "0.2"),
                                                  ("fer2013-v8", "0.5")]
    assert "48x96x192x384" in rows[3] and "ferkit train" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"fer2013-v{i}.onnx" for i in (1, 2, 7, 8)]
    faces = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    v7 = load_recognizer(tmp_path / "fer2013-v7.onnx", detector="none")
    np.testing.assert_allclose(v7.classify(faces), load_recognizer("fer2013", detector="none").classify(faces), atol=1e-6)
    r = research("research.ensemble", "members", "fer2013")
    assert r.returncode == 1 and "fer2013: not an ensemble" in r.stderr


# ---------------------------------------------------------------- ensembles and offsets
def test_the_weight_fit_keeps_to_a_latency_budget():
    """A costly member that the free fit relies on is left out when the members may add up to 2 ms only."""
    from research.ensemble import _grid_fit, fit_ensemble_weights

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)

    def member(p_right):  # one-hot guesses, right with probability p_right
        guess = np.where(rng.random(600) < p_right, labels, rng.integers(0, 3, 600))
        return np.eye(3)[guess]

    probs = np.stack([member(0.6), member(0.6), member(0.9)])
    free, free_acc = _grid_fit(probs, labels, 0.1)
    assert free[2] > 0
    costs = np.array([1.0, 1.0, 3.0])
    w, acc = _grid_fit(probs, labels, 0.1, costs, 2.0)
    assert w[2] == 0 and w.sum() == pytest.approx(1.0) and acc <= free_acc
    assert costs[w > 0].sum() <= 2.0
    with pytest.raises(ValueError, match="no member fits the budget of 0.5 ms"):  # before any data is read
        fit_ensemble_weights(["a.onnx", "b.onnx", "c.onnx"], "missing.csv", costs_ms=costs, budget_ms=0.5)
    with pytest.raises(ValueError, match="2 member costs for 3 members"):
        fit_ensemble_weights(["a.onnx", "b.onnx", "c.onnx"], "missing.csv", costs_ms=[1, 1], budget_ms=5)
    with pytest.raises(ValueError, match="0 member costs for 3 members"):
        fit_ensemble_weights(["a.onnx", "b.onnx", "c.onnx"], "missing.csv", budget_ms=5)


def test_class_offsets_recover_a_known_prior_shift():
    """Labels drawn from softmax(z + b) while the model says softmax(z): the fit must find b (up to a common
    shift), and the fitted offsets must zero the log-likelihood's gradient."""
    from ferkit.metrics import softmax
    from research.ensemble import apply_offsets, fit_class_offsets

    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (40000, 7))
    b_true = np.array([0.5, -1.5, 0.2, 0.8, 0.0, -0.3, 0.3])
    q = softmax(z + b_true)
    labels = (q.cumsum(1) > rng.uniform(size=(len(q), 1))).argmax(1)
    b = fit_class_offsets(softmax(z), labels)
    np.testing.assert_allclose(b, b_true - b_true.mean(), atol=0.06)
    assert abs(b.sum()) < 1e-9
    np.testing.assert_allclose(apply_offsets(softmax(z), b).mean(0), np.eye(7)[labels].mean(0), atol=1e-8)




# ---------------------------------------------------------------- ONNX files (need torch to make the members)
torch = pytest.importorskip("torch")
from ferkit import load_recognizer  # noqa: E402
from ferkit.export import export_onnx  # noqa: E402
from ferkit.labels import EMOTIONS  # noqa: E402
from ferkit.model import ModelConfig, build_model  # noqa: E402
from ferkit.train import load_checkpoint, train  # noqa: E402
from tests.test_train_export import TINY, tiny_config, tiny_data  # noqa: E402,F401  (tiny_data: a fixture)


def test_ensemble_is_the_weighted_mean_of_its_members(tmp_path):
    from research.ensemble import ensemble_onnx

    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"m{seed}.onnx")
        export_onnx(build_model(TINY).eval(), paths[-1], name=f"m{seed}", labels=EMOTIONS)
    meta = ensemble_onnx(paths, tmp_path / "ens.onnx", weights=[1, 3])
    assert [m["weight"] for m in meta["ensemble"]] == [0.25, 0.75] and meta["name"] == "ens"
    faces = np.random.default_rng(0).integers(0, 256, (10, 48, 48), dtype=np.uint8)
    (p0, c0), (p1, c1) = (load_recognizer(p, detector="none")._classify_with_cams(faces) for p in paths)
    ens = load_recognizer(tmp_path / "ens.onnx", detector="none")
    pe, ce = ens._classify_with_cams(faces)
    assert np.allclose(pe, 0.25 * p0 + 0.75 * p1, atol=1e-6) and np.allclose(ce, 0.25 * c0 + 0.75 * c1, atol=1e-5)
    assert ens.labels == EMOTIONS and ens.metadata["ensemble"][1]["name"] == "m1"


def test_ensemble_keeps_each_members_architecture(tmp_path):
    """Members may differ in width (round 9's v8 beside the 32-channel networks): each keeps its own config and
    the top level claims none, so the model card can state each member's stages."""
    from research.ensemble import ensemble_onnx

    wide = ModelConfig(channels=(12, 24), depths=(1, 1), dropout=0.0)
    paths = [tmp_path / "narrow.onnx", tmp_path / "wide.onnx"]
    for cfg, path in zip((TINY, wide), paths):
        export_onnx(build_model(cfg).eval(), path, name=path.stem, labels=EMOTIONS)
    ensemble_onnx(paths, tmp_path / "ens.onnx")
    meta = load_recognizer(tmp_path / "ens.onnx", detector="none").metadata
    assert [m["config"]["channels"] for m in meta["ensemble"]] == [[8, 16], [12, 24]]
    assert "config" not in meta


def test_an_ensemble_splits_back_into_its_members(tmp_path):
    """`ferkit members --out`: each member comes back as the model it was (same outputs, same facts), the weighting
    left out, so a round can use the networks inside a shipped ensemble without the files it was made from."""
    from research.ensemble import ensemble_onnx, split_ensemble
    from ferkit.recognizer import read_metadata

    wide = ModelConfig(channels=(12, 24), depths=(1, 1), dropout=0.0)
    paths = [tmp_path / "narrow.onnx", tmp_path / "wide.onnx"]
    for cfg, path, t in zip((TINY, wide), paths, (1.0, 1.6)):
        export_onnx(build_model(cfg).eval(), path, name=path.stem, labels=EMOTIONS, temperature=t)
    ensemble_onnx(paths, tmp_path / "ens.onnx", weights=[0.3, 0.7])
    written = split_ensemble(tmp_path / "ens.onnx", tmp_path / "out")
    assert [p.name for p in written] == ["narrow.onnx", "wide.onnx"]
    faces = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    for original, split in zip(paths, written):
        a, b = load_recognizer(original, detector="none"), load_recognizer(split, detector="none")
        for x, y in zip(a._classify_with_cams(faces), b._classify_with_cams(faces)):
            np.testing.assert_allclose(y, x, atol=1e-6)
        before, after = read_metadata(original), read_metadata(split)
        for key in ("name", "labels", "preprocess", "config", "temperature"):
            assert after[key] == before[key], key
        assert after["split_from"] == {"file": "ens.onnx", "weight": {"narrow": 0.3, "wide": 0.7}[before["name"]]}
    with pytest.raises(ValueError, match="narrow.onnx: not an ensemble"):
        split_ensemble(paths[0], tmp_path / "none")


def test_members_that_ship_alone_are_stored_once(tmp_path):
    """`dedupe`: a member that also ships as a model of its own leaves the ensemble's file and runs from that file
    beside it (how `fer2013-accurate` stores `fer2013` and `fer2013-robust`): the same outputs, plain and with TTA, a
    smaller file, the member list and the other weights as they were; splitting gives every member back; a file that
    is not the member's network, or a member that does not exist, is refused."""
    import shutil

    from research.ensemble import ensemble_onnx, split_ensemble, store_without_shipped

    paths = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"m{seed}.onnx")
        export_onnx(build_model(TINY).eval(), paths[-1], name=f"m{seed}", labels=EMOTIONS)
    ensemble_onnx(paths, tmp_path / "ens.onnx", weights=[0.2, 0.3, 0.5])
    ship = tmp_path / "ship"
    ship.mkdir()
    shutil.copy(paths[1], ship / "alone.onnx")
    meta = store_without_shipped(tmp_path / "ens.onnx", ship / "ens.onnx", {"m1": "alone"})
    assert [(m["name"], m["weight"]) for m in meta["ensemble"]] == [("m0", 0.2), ("m1", 0.3), ("m2", 0.5)]
    assert [(e["name"], e["member"], e["weight"]) for e in meta["shipped_members"]] == [("alone", "m1", 0.3)]
    assert (ship / "ens.onnx").stat().st_size < (tmp_path / "ens.onnx").stat().st_size
    faces = np.random.default_rng(0).integers(0, 256, (10, 48, 48), dtype=np.uint8)
    for tta in ("none", "flip"):
        whole, stored = (load_recognizer(p, detector="none", tta=tta) for p in (tmp_path / "ens.onnx", ship / "ens.onnx"))
        assert len(stored._added) == 1 and not whole._added
        for x, y in zip(whole._classify_with_cams(faces), stored._classify_with_cams(faces)):
            np.testing.assert_allclose(y, x, atol=1e-6)
    written = split_ensemble(ship / "ens.onnx", tmp_path / "out")
    assert [p.name for p in written] == ["m0.onnx", "m1.onnx", "m2.onnx"]
    a, b = load_recognizer(paths[1], detector="none"), load_recognizer(written[1], detector="none")
    np.testing.assert_allclose(b.classify(faces), a.classify(faces), atol=1e-6)
    with pytest.raises(ValueError, match="m1.onnx is not member m0 of"):
        store_without_shipped(tmp_path / "ens.onnx", tmp_path / "x.onnx", {"m0": "m1"})
    with pytest.raises(ValueError, match="no member named m9"):
        store_without_shipped(tmp_path / "ens.onnx", tmp_path / "x.onnx", {"m9": "m1"})
    # offsets act on the summed probabilities, which the Recognizer completes after the graph: refused both ways
    from research.ensemble import add_class_offsets
    add_class_offsets(tmp_path / "ens.onnx", ship / "off.onnx", [0.1, 0, 0, 0, 0, 0, -0.1])
    with pytest.raises(ValueError, match="has class offsets"):
        store_without_shipped(ship / "off.onnx", ship / "x.onnx", {"m1": "alone"})
    meta = add_class_offsets(ship / "ens.onnx", ship / "off2.onnx", [0.1, 0, 0, 0, 0, 0, -0.1])
    assert "shipped_members" not in meta  # the offsets tool puts the shipped members back in first
    from ferkit.modelfile import proto_metadata, save_with_metadata
    from research.ensemble import _load_onnx
    proto = _load_onnx(ship / "ens.onnx")
    save_with_metadata(proto, {**proto_metadata(proto, ship / "ens.onnx"), "class_offsets": {"values": [0.0] * 7}},
                        ship / "both.onnx")
    with pytest.raises(ValueError, match="cannot also carry class offsets"):
        load_recognizer(ship / "both.onnx", detector="none")


def test_class_offsets_in_the_graph_are_the_offsets_on_the_probabilities(tiny_data, tmp_path, capsys):
    """`python -m research.ensemble offsets`: the file it writes outputs softmax(log p + b) for the b it printed,
    keeps the class maps, records how b was fitted, and a second set of offsets on the same file is refused."""
    from research.ensemble import add_class_offsets, apply_offsets

    train(tiny_config(tiny_data, tmp_path / "run"), progress=False)
    net, _ = load_checkpoint(tmp_path / "run" / "best.pt")
    export_onnx(net, tmp_path / "m.onnx", name="m", labels=EMOTIONS)
    from research.ensemble import main

    main(["offsets", str(tmp_path / "m.onnx"), "--fit", str(tiny_data), "--out", str(tmp_path / "m-off.onnx"),
          "--report", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "two-fold" in out and "McNemar" in out and ("NEW becomes m" in out or "OLD stays m" in out)
    report = json.loads((tmp_path / "r.json").read_text())
    before, after = load_recognizer(tmp_path / "m.onnx", detector="none"), load_recognizer(tmp_path / "m-off.onnx", detector="none")
    faces = np.random.default_rng(0).integers(0, 256, (12, 48, 48), dtype=np.uint8)
    (p0, c0), (p1, c1) = before._classify_with_cams(faces), after._classify_with_cams(faces)
    np.testing.assert_allclose(p1, apply_offsets(p0, report["offsets"]), atol=1e-5)
    np.testing.assert_allclose(c1, c0, atol=1e-6)
    assert after.name == "m" and after.metadata["class_offsets"]["fitted_on"] == "PublicTest"
    assert after.metadata["class_offsets"]["values"] == pytest.approx(report["offsets"], abs=1e-5)
    with pytest.raises(ValueError, match="already has class offsets"):
        add_class_offsets(tmp_path / "m-off.onnx", tmp_path / "twice.onnx", report["offsets"])
    with pytest.raises(ValueError, match="need one offset per class"):
        add_class_offsets(tmp_path / "m.onnx", tmp_path / "short.onnx", [0.1, -0.1])


def test_ensemble_refuses_members_with_other_labels(tmp_path):
    from research.ensemble import ensemble_onnx

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    export_onnx(build_model(TINY).eval(), a, name="a", labels=EMOTIONS)
    export_onnx(build_model(ModelConfig(num_classes=8, channels=(8, 16), depths=(1, 1))).eval(), b, name="b",
                labels=EMOTIONS + ("contempt",))
    with pytest.raises(ValueError, match="b.onnx: its labels"):
        ensemble_onnx([a, b], tmp_path / "ens.onnx")
    with pytest.raises(ValueError, match="at least 2"):
        ensemble_onnx([a], tmp_path / "ens.onnx")


def test_ensemble_weights_are_fitted_on_publictest_and_beat_each_member(tiny_data, tmp_path):
    """The fit end to end on tiny data: a model that learnt the task and a confident guesser; the weights lean on
    the first, the fitted accuracy is at least the better member's, and the two-fold estimate is honest."""
    from ferkit.evaluate import evaluate, selection_set
    from research.ensemble import fit_ensemble_weights

    train(tiny_config(tiny_data, tmp_path / "run"), progress=False)
    good, _ = load_checkpoint(tmp_path / "run" / "best.pt")
    export_onnx(good, tmp_path / "good.onnx", name="good", labels=EMOTIONS)
    torch.manual_seed(0)
    raw = build_model(TINY).eval()
    with torch.no_grad():  # untrained and made certain: a confident guess per face, which only adds noise
        raw.head.weight.mul_(1000.0)
    export_onnx(raw, tmp_path / "raw.onnx", name="raw", labels=EMOTIONS)
    members = [tmp_path / "good.onnx", tmp_path / "raw.onnx"]
    weights, acc, held_out = fit_ensemble_weights(members, tiny_data, step=0.25)
    assert len(weights) == 2 and sum(weights) == pytest.approx(1.0) and weights[0] > weights[1]
    public = selection_set(tiny_data, EMOTIONS)
    singles = [evaluate(load_recognizer(m, detector="none"), public)["accuracy"] for m in members]
    assert acc >= max(singles) - 1e-9 and held_out <= acc + 1e-9


def test_calibration_shift_runs_and_keeps_the_splits_apart(tmp_path):
    """research.calibration_shift on tiny data: the command and its JSON, not the figures. The temperature is fitted
    on Training faces only (shifted: each under one corruption), reported on both test splits."""
    import json

    from research.calibration_shift import shifted_training, subset
    from ferkit.evaluate import EvalSet

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 90).astype(np.uint8)
    pixels = rng.integers(0, 256, (90, 48, 48), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", pixels=pixels, emotion=labels, usage=np.array([0] * 30 + [1] * 30 + [2] * 30, np.uint8))
    training = EvalSet("Training", pixels[:30], labels[:30], ())
    shifted, plain = shifted_training(training, 20), subset(training, 20, seed=0)
    assert np.array_equal(shifted.labels, plain.labels)
    assert (shifted.pixels != plain.pixels).any(axis=(1, 2)).mean() > 0.5   # most faces changed by a corruption
    out = tmp_path / "cal.json"
    r = research("research.calibration_shift", "--data", tmp_path / "tiny.npz", "--models", "fer2013-robust",
                 "--per-corruption", "10", "--train", "20", "--scenes", "0", "--out", out)
    assert r.returncode == 0, r.stderr
    [row] = json.loads(out.read_text())
    assert row["model"] == "fer2013-robust" and row["PrivateTest"]["n_clean"] == 30
    assert row["PublicTest"]["n_per_corruption"] == 10 and isinstance(row["choose_fitted"], bool)
