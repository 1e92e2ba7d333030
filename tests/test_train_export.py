"""Training, resume and ONNX export on a tiny random model and generated data (needs torch: the [train] extra)."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ferkit import load_recognizer  # noqa: E402
from ferkit.export import check_against_torch, export_onnx  # noqa: E402
from ferkit.labels import EMOTIONS  # noqa: E402
from ferkit.model import ModelConfig, build_model  # noqa: E402
from ferkit.train import (OnnxTeacher, TrainConfig, augment, auxiliary_targets, bf16_runs_natively,  # noqa: E402
                          class_weights, corrupt_batch, distill_loss, load_checkpoint, save_atomic,
                          soft_cross_entropy, train)
import torch.nn.functional as F  # noqa: E402

TINY = ModelConfig(channels=(8, 16), depths=(1, 1), dropout=0.0)


@pytest.fixture
def tiny_data(tmp_path):
    """An .npz in the compact layout: two easy classes (bright vs dark faces) per split."""
    rng = np.random.default_rng(0)
    n = 96
    labels = np.tile([3, 4], n // 2).astype(np.uint8)  # happy, sad
    pixels = np.where(labels[:, None, None] == 3, 200, 50) + rng.integers(-30, 30, (n, 48, 48))
    usage = np.array([0] * 64 + [1] * 16 + [2] * 16, np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez(path, pixels=pixels.clip(0, 255).astype(np.uint8), emotion=labels, usage=usage)
    return path


def tiny_config(data, out, **kw):
    return TrainConfig(data=str(data), out=str(out), model=TINY, epochs=2, batch_size=16, lr=0.05, warmup_epochs=0.5,
                       ema_decay=0.5, bf16=False, erase_prob=0.5, **kw)


def test_train_writes_outputs_and_learns(tiny_data, tmp_path):
    out = tmp_path / "run"
    logs = []
    result = train(tiny_config(tiny_data, out, patience=5), log=logs.append, progress=False)
    epochs = [line for line in logs if line.startswith("epoch")]
    assert "min left" in epochs[0] and "min left" not in epochs[-1]  # an estimate while epochs remain
    for name in ("best.pt", "last.pt", "history.json", "curves.png"):
        assert (out / name).is_file(), name
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["history"]) == 2 and hist["config"]["epochs"] == 2
    assert result["best_val_accuracy"] >= 0.9  # bright vs dark is easy
    model, ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["labels"][3] == "happy" and ckpt["preprocess"]["image_size"] == 48
    assert ckpt["selected_on"] == "PublicTest"


def test_resume_continues_from_last_epoch(tiny_data, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(tiny_data, out), progress=False)
    logs = []
    cfg = tiny_config(tiny_data, out, resume=str(out / "last.pt"))
    cfg.epochs = 3
    train(cfg, log=logs.append, progress=False)
    assert any("resumed" in line and "epoch 2" in line for line in logs)
    hist = json.loads((out / "history.json").read_text())["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]


def test_a_checkpoint_save_that_fails_midway_leaves_the_previous_one_whole(tmp_path):
    """A save interrupted while writing (here: an object pickle cannot write, after part of the file is out) must
    not cost the checkpoint already on disk: `--resume` reads it after a killed run."""
    path = tmp_path / "last.pt"
    save_atomic({"epoch": 7, "weights": torch.ones(1000)}, path)
    with pytest.raises(Exception):
        save_atomic({"epoch": 8, "weights": torch.zeros(1000), "broken": lambda: None}, path)
    kept = torch.load(path, weights_only=False)
    assert kept["epoch"] == 7 and torch.equal(kept["weights"], torch.ones(1000))
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_class_weights_use_training_counts():
    labels = np.array([0] * 90 + [1] * 10)
    w = class_weights(labels, 2, 0.5).numpy()
    assert w[1] / w[0] == pytest.approx(3.0)  # (90/10) ** 0.5
    assert (w[labels]).mean() == pytest.approx(1.0)
    assert np.allclose(class_weights(labels, 2, 0.0).numpy(), 1.0)


def test_augment_keeps_shape_and_range():
    x = torch.rand(16, 1, 48, 48) * 2 - 1
    y = augment(x, TrainConfig(), torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert not torch.allclose(x, y)


def test_corruptions_damage_only_chosen_images_and_off_by_default():
    x = torch.rand(64, 1, 48, 48) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(corrupt_batch(x, TrainConfig(), gen), x)  # all probabilities default to 0
    for kind in ("gamma", "blur", "noise", "jpeg"):
        y = corrupt_batch(x, TrainConfig(**{f"{kind}_prob": 0.5}), torch.Generator().manual_seed(1))
        changed = (y - x).abs().amax(dim=(1, 2, 3)) > 1e-3
        assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1, kind
        assert 10 < changed.sum() < 54, f"{kind}: {int(changed.sum())} of 64 changed at p=0.5"
    # blur smooths: neighbouring pixels of a noise image grow alike
    y = corrupt_batch(x, TrainConfig(blur_prob=1.0), gen)
    assert (y[..., 1:] - y[..., :-1]).abs().mean() < 0.5 * (x[..., 1:] - x[..., :-1]).abs().mean()


def test_training_damage_is_the_evaluations_corruption():
    """One implementation: at a fixed strength (JPEG quality 75 drawn from [75, 75]) a training batch is damaged
    exactly as `ferkit evaluate --robustness` damages the same faces."""
    from ferkit.corruptions import corrupt

    faces = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    x = torch.from_numpy(faces).float()[:, None] / 127.5 - 1
    y = corrupt_batch(x, TrainConfig(jpeg_prob=1.0, jpeg_min=75), torch.Generator().manual_seed(0))
    assert np.array_equal(((y[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy(), corrupt(faces, "jpeg", 75))


def test_distill_loss_is_zero_only_when_student_matches_teacher():
    t = torch.randn(8, 7)
    assert distill_loss(t, t, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distill_loss(torch.zeros(8, 7), t, 2.0).item() > 0.01
    # two teachers: the target is their mean softened probability
    a, b = torch.randn(8, 7), torch.randn(8, 7)
    mean = ((a / 2).softmax(1) + (b / 2).softmax(1)) / 2
    student = torch.log(mean) * 2  # softmax(student / 2) == mean
    assert distill_loss(student, torch.stack([a, b]), 2.0).item() == pytest.approx(0.0, abs=1e-5)
    assert distill_loss(a, torch.stack([a, b]), 2.0).item() > 0.01


def test_soft_cross_entropy_is_cross_entropy_for_one_hot_and_smoothed_targets():
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 3, 6, 2, 2])
    one_hot = F.one_hot(y, 7).float()
    assert torch.allclose(soft_cross_entropy(logits, one_hot).mean(), F.cross_entropy(logits, y))
    smoothed = one_hot * 0.9 + 0.1 / 7
    assert torch.allclose(soft_cross_entropy(logits, smoothed).mean(), F.cross_entropy(logits, y, label_smoothing=0.1))


def test_training_with_a_teacher_and_corruptions(tiny_data, tmp_path):
    train(tiny_config(tiny_data, tmp_path / "teacher"), progress=False)
    logs = []
    teacher = str(tmp_path / "teacher" / "best.pt")
    cfg = tiny_config(tiny_data, tmp_path / "student", teacher=f"{teacher},{teacher}", distill_weight=0.7,
                      gamma_prob=0.3, blur_prob=0.3, noise_prob=0.3, jpeg_prob=0.3)
    result = train(cfg, log=logs.append, progress=False)
    assert any("distilling from" in line for line in logs)
    assert result["best_val_accuracy"] >= 0.9
    _, ckpt = load_checkpoint(tmp_path / "student" / "best.pt")
    assert ckpt["train_config"]["teacher"].endswith("best.pt") and ckpt["train_config"]["jpeg_prob"] == 0.3


def test_an_exported_model_teaches_as_its_checkpoint_does(tiny_data, tmp_path):
    """An .onnx teacher gives the distillation target its torch network gives, though the file holds softmax(z / T)
    with a fitted T: the loss must not depend on which of the two the teacher was read from."""
    train(tiny_config(tiny_data, tmp_path / "teacher"), progress=False)
    net, _ = load_checkpoint(tmp_path / "teacher" / "best.pt")
    export_onnx(net, tmp_path / "t.onnx", name="t", labels=EMOTIONS, temperature=1.7)
    x = torch.rand(16, 1, 48, 48) * 2 - 1
    with torch.no_grad():
        z = net(x)
    onnx_logits = OnnxTeacher(str(tmp_path / "t.onnx"))(x)
    assert onnx_logits.shape == (16, 7)
    torch.testing.assert_close(onnx_logits.softmax(1), z.softmax(1), atol=1e-4, rtol=0)
    student = torch.randn(16, 7)
    for t in (1.0, 2.0):
        torch.testing.assert_close(distill_loss(student, onnx_logits, t), distill_loss(student, z, t), atol=1e-4, rtol=0)


def test_a_shipped_ensemble_teaches_with_every_member(stored_accurate):
    """`fer2013-accurate` stored once runs two of its members from the shipped `fer2013` and `fer2013-robust` files:
    as a teacher its target is the whole ensemble's, the probabilities classify gives."""
    from ferkit.preprocess import to_model_input

    faces = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    teacher = OnnxTeacher(str(stored_accurate))
    assert len(teacher.rec._added) == 2
    got = teacher(torch.from_numpy(to_model_input(faces))).softmax(1).numpy()
    np.testing.assert_allclose(got, load_recognizer(stored_accurate, detector="none").classify(faces), atol=1e-5)


def test_training_with_exported_teachers(tiny_data, tmp_path):
    """--teacher takes .onnx files (here an ensemble of two) beside best.pt files: the run needs no checkpoint."""
    from research.ensemble import ensemble_onnx

    train(tiny_config(tiny_data, tmp_path / "teacher"), progress=False)
    net, _ = load_checkpoint(tmp_path / "teacher" / "best.pt")
    export_onnx(net, tmp_path / "a.onnx", name="a", labels=EMOTIONS, temperature=1.3)
    ensemble_onnx([tmp_path / "a.onnx", tmp_path / "a.onnx"], tmp_path / "ens.onnx", weights=[0.3, 0.7])
    logs = []
    teachers = f"{tmp_path / 'ens.onnx'},{tmp_path / 'teacher' / 'best.pt'}"
    result = train(tiny_config(tiny_data, tmp_path / "student", teacher=teachers), log=logs.append, progress=False)
    assert any(line.startswith("distilling from") and "ens.onnx" in line for line in logs)
    assert result["best_val_accuracy"] >= 0.9


@pytest.mark.parametrize("teacher, message", [
    ("missing.onnx", "missing.onnx: no such model file"),
    ("no-such-model", "unknown model 'no-such-model'"),
])
def test_a_teacher_that_cannot_be_found_is_named(tiny_data, tmp_path, teacher, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        train(tiny_config(tiny_data, tmp_path / "student", teacher=teacher), progress=False)


def test_an_exported_teacher_with_other_labels_is_refused(tiny_data, tmp_path):
    export_onnx(build_model(TINY).eval(), tmp_path / "other.onnx", name="other", labels=EMOTIONS[::-1])
    with pytest.raises(ValueError, match="teacher .*other.onnx has labels"):
        train(tiny_config(tiny_data, tmp_path / "student", teacher=str(tmp_path / "other.onnx")), progress=False)


def test_bf16_is_used_only_where_the_hardware_computes_in_it(tiny_data, tmp_path):
    """On a CPU without AMX or AVX512-BF16, autocast emulates bfloat16 at a dozen times float32's cost: --bf16 (the
    default) then trains in float32, says so, and history.json records which one ran."""
    cfg = tiny_config(tiny_data, tmp_path / "run")
    cfg.bf16, cfg.epochs = True, 1
    logs = []
    train(cfg, log=logs.append, progress=False)
    native = bf16_runs_natively(torch.device("cpu"))
    assert json.loads((tmp_path / "run" / "history.json").read_text())["bf16"] is native
    assert any("training in float32" in line for line in logs) is (not native)
    assert bf16_runs_natively(torch.device("meta")) is False


def test_a_teacher_with_other_labels_is_refused(tiny_data, tmp_path):
    model = build_model(ModelConfig(num_classes=8, channels=(8, 16), depths=(1, 1)))
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), "labels": list("abcdefgh")},
               tmp_path / "other.pt")
    with pytest.raises(ValueError, match="teacher .*other.pt has labels"):
        train(tiny_config(tiny_data, tmp_path / "student", teacher=str(tmp_path / "other.pt")), progress=False)


@pytest.fixture
def tiny_votes(tiny_data, tmp_path):
    """FER+ votes row-aligned with tiny_data: happy faces voted happiness, sad ones sadness; every 8th face is
    voted not-a-face (NF), which FER+ drops."""
    labels = np.load(tiny_data)["emotion"]
    rows = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"]
    for i, y in enumerate(labels):
        v = [0] * 10
        v[9 if i % 8 == 0 else (1 if y == 3 else 3)] = 8
        v[0] += 2  # two neutral votes beside the majority
        rows.append(f"Training,x{i}.png," + ",".join(map(str, v)))
    path = tmp_path / "fer2013new.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_auxiliary_targets_align_rows_and_mask_faces_the_other_set_drops(tiny_data, tiny_votes):
    from ferkit.data import load_dataset

    base = load_dataset(tiny_data)
    rows = np.array([0, 1, 2, 9])  # row 0 is an NF face; row 1 is sad, row 2 happy
    cfg = TrainConfig(data=str(tiny_data), aux_labels="ferplus-soft", ferplus=str(tiny_votes))
    target, mask = auxiliary_targets(cfg, base, rows)
    assert target.shape == (4, 8) and mask.tolist() == [False, True, True, True]
    assert target[1].argmax() == 3 and target[2].argmax() == 1 and target[1, 0] == pytest.approx(0.2)  # votes 8:2
    cfg = TrainConfig(data=str(tiny_data), labels="ferplus-soft", ferplus=str(tiny_votes), aux_labels="fer2013",
                      label_smoothing=0.1)
    target, mask = auxiliary_targets(cfg, base, rows)
    assert mask.all() and target.shape == (4, 7) and np.allclose(target.sum(1), 1)
    assert target.argmax(1).tolist() == base.labels[rows].tolist() and target.max() == pytest.approx(0.9 + 0.1 / 7)


@pytest.mark.parametrize("kw, message", [
    (dict(aux_labels="ferplus-majority"), "unknown auxiliary label set"),
    (dict(aux_labels="fer2013"), "must be the other family"),
    (dict(aux_labels="ferplus-soft"), "need --ferplus"),
])
def test_bad_auxiliary_settings_are_named(tiny_data, tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        train(tiny_config(tiny_data, tmp_path / "run", **kw), progress=False)


def test_multitask_training_keeps_the_exported_network_plain_and_resumes(tiny_data, tiny_votes, tmp_path):
    out = tmp_path / "multi"
    logs = []
    cfg = tiny_config(tiny_data, out, aux_labels="ferplus-soft", ferplus=str(tiny_votes), aux_weight=1.0)
    assert train(cfg, log=logs.append, progress=False)["best_val_accuracy"] >= 0.9
    assert any("auxiliary label set ferplus-soft (weight 1.0) on 56 of 64 training faces" in line for line in logs)
    model, ckpt = load_checkpoint(out / "best.pt")  # a plain FERNet: no auxiliary weights in the shipped file
    assert not any(k.startswith("aux") for k in ckpt["state_dict"]) and ckpt["train_config"]["aux_labels"] == "ferplus-soft"
    last = torch.load(out / "last.pt", weights_only=False)
    assert last["aux_head"]["weight"].shape == (8, 16)
    cfg.resume, cfg.epochs = str(out / "last.pt"), 3
    train(cfg, progress=False)
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())["history"]] == [1, 2, 3]
    plain = tmp_path / "plain"
    train(tiny_config(tiny_data, plain), progress=False)
    with pytest.raises(ValueError, match="drop --aux-labels"):
        train(tiny_config(tiny_data, plain, resume=str(plain / "last.pt"), aux_labels="ferplus-soft",
                          ferplus=str(tiny_votes)), progress=False)


def test_export_matches_torch_and_is_self_describing(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(channels=(8, 16, 16, 32), depths=(1, 1, 1, 1))).eval()
    path = tmp_path / "m.onnx"
    meta = export_onnx(model, path, name="tiny", labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))
    assert meta["max_abs_diff"] < 1e-4
    assert check_against_torch(model, path) < 1e-4
    rec = load_recognizer(path, detector="none")
    assert rec.name == "tiny" and rec.labels[0] == "angry"
    faces = np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    with torch.no_grad():
        from ferkit.preprocess import to_model_input
        expected = model(torch.from_numpy(to_model_input(faces))).softmax(1).numpy()
    assert np.abs(rec.classify(faces) - expected).max() < 1e-4


def test_export_detects_a_mismatch(tmp_path):
    model = build_model(ModelConfig(channels=(8, 16), depths=(1, 1))).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, path, name="tiny", labels=tuple("abcdefg"))
    with torch.no_grad():
        model.head.bias.add_(5 * torch.arange(7.0))  # the file no longer matches these weights
    with pytest.raises(RuntimeError, match="disagree"):
        check_against_torch(model, path)


def test_fitted_temperature_recovers_the_one_that_made_the_labels():
    from ferkit.export import fit_temperature
    from ferkit.metrics import softmax

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 7))
    labels = [rng.choice(7, p=p) for p in softmax(logits / 2.5)]  # a model over-confident by T = 2.5
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)


def test_temperature_scaling_keeps_predictions_and_fixes_confidence(tmp_path):
    from ferkit.export import fit_temperature
    from ferkit.preprocess import to_model_input

    torch.manual_seed(0)
    model = build_model(ModelConfig(channels=(8, 16), depths=(1, 1))).eval()
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (200, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 200)  # random labels: the best calibrated model is close to uniform
    with torch.no_grad():
        model.head.weight.mul_(50)  # make the random model very over-confident
    with torch.no_grad():
        t = fit_temperature(model(torch.from_numpy(to_model_input(faces))).numpy(), labels)
    assert t > 2
    path = tmp_path / "cal.onnx"
    meta = export_onnx(model, path, name="cal", labels=tuple("abcdefg"), temperature=t)
    assert meta["temperature"] == t and meta["max_abs_diff"] < 1e-4
    rec = load_recognizer(path, detector="none")
    with torch.no_grad():
        raw = model(torch.from_numpy(to_model_input(faces))).softmax(1).numpy()
    shipped = rec.classify(faces)
    assert (shipped.argmax(1) == raw.argmax(1)).all()
    assert shipped.max(1).mean() < raw.max(1).mean()


def test_cli_train_export_evaluate_round_trip(tiny_data, tmp_path, monkeypatch, capsys):
    """The documented reproduce path end to end on tiny data: train -> export --calibrate -> evaluate --model-card
    (in this process: the CLI's own path, without paying for torch's import four times)."""
    from ferkit.cli import main

    monkeypatch.chdir(tmp_path)

    def ferkit(*args):
        with pytest.raises(SystemExit) as e:
            main([*map(str, args)])
        out, err = capsys.readouterr()
        assert e.value.code == 0, err[-2000:]
        return out

    out = ferkit("train", "--data", tiny_data, "--out", tmp_path / "run", "--epochs", 1, "--batch-size", 16,
                 "--channels", 8, 16, "--depths", 1, 1, "--no-bf16", "--warmup-epochs", 0.5)
    assert "PublicTest" in out and (tmp_path / "run" / "best.pt").is_file()
    model = tmp_path / "tiny.onnx"
    out = ferkit("export", tmp_path / "run" / "best.pt", model, "--calibrate", tiny_data)
    assert "temperature" in out and "max abs probability difference" in out
    out = ferkit("evaluate", "--model", model, "--data", tiny_data, "--tta", "flip", "--robustness",
                 "--out", tmp_path / "eval", "--model-card", tmp_path / "card.md")
    card = (tmp_path / "card.md").read_text()
    for text in ("FER-2013 PrivateTest", "| 16 | none |", "| 16 | flip |", "Calibration", "Robustness", "ferkit train --epochs 1",
                 "confusion_tiny_fer2013_private.png"):
        assert text in card, text
    metrics = json.loads((tmp_path / "eval" / "tiny.metrics.json").read_text())  # where --out says, not beside the model
    assert metrics["n"] == 16 and 0 <= metrics["test_accuracy"] <= 1
    assert (tmp_path / "eval" / "robustness_tiny.png").is_file()
    # the card again from the saved report, scoring nothing: the same text, figures included
    (tmp_path / "eval" / "tiny.metrics.json").unlink()
    ferkit("evaluate", "--model", model, "--from-report", tmp_path / "eval" / "report_tiny.json",
           "--out", tmp_path / "eval", "--model-card", tmp_path / "card.md")
    assert (tmp_path / "card.md").read_text() == card
    assert json.loads((tmp_path / "eval" / "tiny.metrics.json").read_text()) == metrics
    assert not (tmp_path / "tiny.metrics.json").exists()


def test_a_card_from_a_report_of_another_model_is_refused(tmp_path):
    import subprocess
    import sys

    export_onnx(build_model(TINY).eval(), tmp_path / "other.onnx", name="other", labels=EMOTIONS)
    report = tmp_path / "report_tiny.json"
    report.write_text(json.dumps({"command": "ferkit evaluate", "machine": "m", "main": "fer2013_private",
                                  "sets": {"fer2013_private": {"none": {"model": "tiny", "set": "FER-2013 PrivateTest"}}}}))
    for extra, message in (([], "the report scores tiny, not the model 'other'"),
                           (["--from-report", tmp_path / "missing.json"], "missing.json: not a readable ferkit evaluate report")):
        args = ["--from-report", report, *extra] if not extra else extra
        r = subprocess.run([sys.executable, "-m", "ferkit", "evaluate", "--model", tmp_path / "other.onnx",
                            "--model-card", tmp_path / "card.md", *map(str, args)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "card.md").exists()


def test_quantize_keeps_metadata_and_predictions(tiny_data, tmp_path):
    from ferkit.export import quantize_int8

    torch.manual_seed(0)
    model = build_model(ModelConfig(channels=(8, 16, 16, 32), depths=(1, 1, 1, 1))).eval()
    fp32 = tmp_path / "m.onnx"
    export_onnx(model, fp32, name="m", labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))
    faces = np.load(tiny_data)["pixels"]
    meta = quantize_int8(fp32, tmp_path / "m-int8.onnx", faces[:64])
    assert meta["name"] == "m-int8" and meta["quantized"]["calibration_faces"] == 64
    a = load_recognizer(fp32, detector="none").classify(faces)
    q = load_recognizer(tmp_path / "m-int8.onnx", detector="none")
    b = q.classify(faces)
    assert q.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert np.allclose(b.sum(1), 1, atol=1e-4) and np.abs(a - b).max() < 0.1
