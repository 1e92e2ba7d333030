"""The training loop: train on Training, select on PublicTest, never look at PrivateTest.

Reads top to bottom: config -> data -> augmentation -> model/optimiser -> epochs (train, evaluate,
checkpoint, early stop) -> history and curves. Needs torch (the [train] extra).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .version import __version__
from .data import FaceDataset, ferplus_targets, load_dataset, read_ferplus_votes, with_ferplus
from .config import ModelConfig, TrainConfig, data_path
from .labels import EMOTIONS
from .model import FERNet, build_model
from .preprocess import PREPROCESS_SPEC, to_model_input


# ---------------------------------------------------------------- data
def load_training_data(cfg: TrainConfig, base: FaceDataset | None = None) -> FaceDataset:
    """The faces with cfg.labels; `base` is the already-read cfg.data (FER-2013 labels), to save a second read."""
    ds = base if base is not None else load_dataset(data_path(cfg.data))
    if cfg.labels == "fer2013":
        return ds
    if cfg.labels in ("ferplus-majority", "ferplus-soft"):
        if not cfg.ferplus:
            raise ValueError("FER+ labels need --ferplus PATH/fer2013new.csv")
        votes = read_ferplus_votes(cfg.ferplus, len(ds))
        return with_ferplus(ds, votes, cfg.labels.split("-")[1])
    raise ValueError(f"unknown label set {cfg.labels!r}; valid: fer2013, ferplus-majority, ferplus-soft")


AUX_LABELS = ("fer2013", "ferplus-soft")


def auxiliary_targets(cfg: TrainConfig, base: FaceDataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The second label set for the faces at source rows `rows` (FaceDataset.index): (N, K_aux) float32 target
    distributions and an (N,) bool mask of the faces that label set keeps (FER+ drops non-faces and faces whose
    votes are mostly `unknown`; FER-2013 labels every face). `base` is cfg.data with its FER-2013 labels."""
    if cfg.aux_labels not in AUX_LABELS:
        raise ValueError(f"unknown auxiliary label set {cfg.aux_labels!r}; valid: {', '.join(AUX_LABELS)}")
    if cfg.aux_labels.split("-")[0] == cfg.labels.split("-")[0]:
        raise ValueError(f"the auxiliary label set {cfg.aux_labels!r} must be the other family than --labels {cfg.labels!r}")
    if cfg.aux_labels == "fer2013":
        if tuple(base.classes) != EMOTIONS:
            raise ValueError(f"auxiliary fer2013 labels need FER-2013 data; {cfg.data} has classes {base.classes}")
        k = len(EMOTIONS)  # one-hot with the main loss's label smoothing
        target = np.full((len(rows), k), cfg.label_smoothing / k, np.float32)
        target[np.arange(len(rows)), base.labels[rows]] += 1 - cfg.label_smoothing
        return target, np.ones(len(rows), bool)
    if not cfg.ferplus:
        raise ValueError("auxiliary FER+ labels need --ferplus PATH/fer2013new.csv")
    keep, _, soft = ferplus_targets(read_ferplus_votes(cfg.ferplus, len(base)), "soft")
    return soft[rows], keep[rows]


def class_weights(labels: np.ndarray, k: int, power: float) -> torch.Tensor:
    """(k,) loss weights from Training counts only; mean weight over training samples is 1."""
    counts = np.bincount(labels, minlength=k).astype(np.float64).clip(min=1)
    w = (counts / counts.mean()) ** -power
    w /= (w[labels]).mean()
    return torch.tensor(w, dtype=torch.float32)


# ---------------------------------------------------------------- augmentation
def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """(B, 1, H, W) in [-1, 1] -> the same shape: random affine, flip, photometric jitter, erasing."""
    b, _, h, w = x.shape
    dev = x.device

    def u(lo, hi, *shape):  # uniform samples on the generator's device, moved to x's
        return (torch.rand(*(shape or (b,)), generator=gen) * (hi - lo) + lo).to(dev)

    angle = u(-1, 1) * math.radians(cfg.rotate_deg)
    scale = 1 + u(-1, 1) * cfg.scale
    shear = u(-1, 1) * math.radians(cfg.shear_deg)
    flip = torch.where(u(0, 1) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(b, device=dev)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # inverse map (output -> input coords) for affine_grid: rotation @ shear, divided by zoom, x flipped
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = cos / scale * flip
    theta[:, 0, 1] = (-sin + cos * torch.tan(shear)) / scale
    theta[:, 1, 0] = sin / scale * flip
    theta[:, 1, 1] = (cos + sin * torch.tan(shear)) / scale
    theta[:, :, 2] = u(-1, 1, b, 2) * cfg.shift * 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # photometric: contrast around the image mean, then brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + u(-1, 1)[:, None, None, None] * cfg.contrast) + mean
    x = x + u(-1, 1)[:, None, None, None] * cfg.brightness
    if cfg.erase_prob > 0:  # one random rectangle per chosen image, filled with noise
        area = u(0.02, 0.2) * h * w
        aspect = torch.exp(u(math.log(0.3), math.log(3.3)))
        eh = (area * aspect).sqrt().clamp(1, h).long()
        ew = (area / aspect).sqrt().clamp(1, w).long()
        y0 = (u(0, 1) * (h - eh + 1)).long()
        x0 = (u(0, 1) * (w - ew + 1)).long()
        rows = torch.arange(h, device=dev)[None, :, None]
        cols = torch.arange(w, device=dev)[None, None, :]
        mask = (rows >= y0[:, None, None]) & (rows < (y0 + eh)[:, None, None]) & \
               (cols >= x0[:, None, None]) & (cols < (x0 + ew)[:, None, None]) & \
               (u(0, 1) < cfg.erase_prob)[:, None, None]
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(dev)
        x = torch.where(mask[:, None], noise, x)
    return x.clamp(-1, 1)


def corrupt_batch(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """(B, 1, H, W) in [-1, 1] -> the same, with camera and network damage on random images: gamma, blur,
    Gaussian noise, JPEG, each at a strength drawn per image. These are the families where the plain recipe lost
    most (`ferkit evaluate --robustness`), applied by the same code (corruptions.corrupt_faces) on the same uint8
    faces; the strongest test levels (noise 32, blur 2.5, JPEG 8) stay outside the ranges drawn here."""
    from .corruptions import corrupt_faces

    b = x.shape[0]

    def u(lo, hi):  # (B,) uniform draws from the run's generator
        return (torch.rand(b, generator=gen, dtype=torch.float64) * (hi - lo) + lo).numpy()

    kinds = [(kind, prob, draw) for kind, prob, draw in (
        ("gamma", cfg.gamma_prob, lambda: np.exp(u(-math.log(2.5), math.log(2.5)))),
        ("blur", cfg.blur_prob, lambda: u(0.3, cfg.blur_max)),
        ("noise", cfg.noise_prob, lambda: u(0, cfg.noise_max)),
        ("jpeg", cfg.jpeg_prob, lambda: torch.randint(cfg.jpeg_min, 76, (b,), generator=gen).numpy()),
    ) if prob > 0]
    if not kinds:
        return x
    faces = ((x[:, 0].detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()  # (B, H, W)
    rng = np.random.default_rng(int(torch.randint(2 ** 31, (1,), generator=gen)))
    damaged = np.zeros(b, bool)
    for kind, prob, draw in kinds:
        chosen, levels = (torch.rand(b, generator=gen) < prob).numpy(), draw()
        if chosen.any():
            faces[chosen] = corrupt_faces(faces[chosen], kind, levels[chosen], rng)
            damaged |= chosen
    if not damaged.any():
        return x
    x = x.clone()
    x[torch.from_numpy(damaged).to(x.device), 0] = torch.from_numpy(faces[damaged]).to(x.device, x.dtype) / 127.5 - 1
    return x


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, K) logits and (B, K) target distributions -> (B,) cross-entropy per face."""
    return -(target * logits.log_softmax(1)).sum(1)


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at a temperature, scaled by T^2 so its gradients match the label loss's.

    student (B, K) logits; teacher (B, K) logits, or (M, B, K) for an ensemble of M teachers, whose target is
    the mean of their softened probabilities."""
    t = temperature
    target = teacher.div(t).log_softmax(-1)
    if target.ndim == 3:  # log of the mean probability over the members
        target = target.logsumexp(0) - math.log(target.shape[0])
    return F.kl_div(student.div(t).log_softmax(1), target, log_target=True, reduction="batchmean") * t * t


# ---------------------------------------------------------------- evaluation helper
@torch.no_grad()
def predict_logits(model: FERNet, pixels: np.ndarray, device: torch.device, batch: int = 512) -> np.ndarray:
    """(N, 48, 48) uint8 -> (N, K) logits, fp32, eval mode."""
    model.eval()
    out = []
    for i in range(0, len(pixels), batch):
        x = torch.from_numpy(to_model_input(pixels[i:i + batch])).to(device)
        out.append(model(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_classes), np.float32)


def predict_proba(model: FERNet, pixels: np.ndarray, device: torch.device, batch: int = 512) -> np.ndarray:
    """(N, 48, 48) uint8 -> (N, K) probabilities, fp32, eval mode."""
    return torch.from_numpy(predict_logits(model, pixels, device, batch)).softmax(1).numpy()


# ---------------------------------------------------------------- checkpoints
def checkpoint_payload(model: FERNet, classes, cfg: TrainConfig, extra: dict) -> dict:
    """Self-describing: the config, weights, label order and preprocessing travel together."""
    return {
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "labels": list(classes),
        "preprocess": PREPROCESS_SPEC,
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "ferkit_version": __version__,
        **extra,
    }


class OnnxTeacher:
    """An exported model (a shipped name such as `fer2013-accurate`, or an .onnx file) as a frozen teacher, run by ONNX
    Runtime through the Recognizer: distillation then needs no training checkpoint, so it reruns from a clean clone
    (the runs/ behind the shipped models stay on the machine that trained them). Called like a torch teacher:
    (B, 1, 48, 48) in [-1, 1] -> (B, K) logits, T * log p for the exported softmax(z / T) (one network: its own logits
    up to a constant per face; an ensemble: the log of its weighted mean probability)."""

    def __init__(self, model: str, threads: int = 0):
        from .recognizer import load_recognizer

        # the teacher runs between the student's steps, on the same threads
        self.rec = load_recognizer(model, detector="none", threads=threads or None)
        self.labels, self.temperature = list(self.rec.labels), float(self.rec.metadata.get("temperature", 1.0))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        probs, _ = self.rec._run(x.float().cpu().numpy())  # the whole model, an ensemble's shipped members too
        return torch.from_numpy(np.log(probs.clip(1e-12)) * self.temperature).to(x.device)


def load_teacher(spec: str, classes, device: torch.device, threads: int = 0):
    """One --teacher entry: a best.pt (a torch network) or an exported model (OnnxTeacher); frozen, eval mode, and
    it must speak the data's label set."""
    if Path(spec).suffix == ".pt":
        teacher, ck = load_checkpoint(spec)
        teacher, labels = teacher.to(device).to(memory_format=torch.channels_last), ck["labels"]
    else:
        teacher = OnnxTeacher(spec, threads)
        labels = teacher.labels
    if list(labels) != list(classes):
        raise ValueError(f"teacher {spec} has labels {list(labels)}, the data has {list(classes)}")
    return teacher


def load_checkpoint(path: str | Path) -> tuple[FERNet, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ModelConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt


# ---------------------------------------------------------------- the loop
def train(cfg: TrainConfig, log: Callable[[str], None] = lambda s: None, progress: bool = True) -> dict:
    """Train, selecting on PublicTest; returns the history. Writes into cfg.out:
    best.pt (EMA weights with the best PublicTest accuracy), last.pt (resumable), history.json, curves.png.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))

    base = load_dataset(data_path(cfg.data))
    ds = load_training_data(cfg, base)
    log(ds.summary())
    train_set, val_set = ds.split("Training"), ds.split("PublicTest")  # PrivateTest is never touched here
    k = len(ds.classes)
    if cfg.model.num_classes != k:
        cfg.model.num_classes = k
    weights = class_weights(train_set.labels, k, cfg.class_weight_power).to(device)
    x_train = torch.from_numpy(to_model_input(train_set.pixels))      # (N, 1, 48, 48) in [-1, 1]
    y_train = torch.from_numpy(train_set.labels)
    soft_train = None if train_set.soft is None or cfg.labels != "ferplus-soft" else torch.from_numpy(train_set.soft)
    aux_train = aux_mask = None
    if cfg.aux_labels:  # (N, K_aux) targets and (N,) mask, row-aligned with x_train
        aux_np, mask_np = auxiliary_targets(cfg, base, train_set.index)
        aux_train, aux_mask = torch.from_numpy(aux_np), torch.from_numpy(mask_np).float()
        log(f"auxiliary label set {cfg.aux_labels} (weight {cfg.aux_weight}) on {int(mask_np.sum())} of "
            f"{len(mask_np)} training faces")
    del base

    model = build_model(cfg.model).to(device).to(memory_format=torch.channels_last)
    # the auxiliary head lives only here (and in last.pt): best.pt and the export hold the plain network
    aux_head = None if aux_train is None else torch.nn.Linear(model.head.in_features, aux_train.shape[1]).to(device)
    teachers = [load_teacher(t, ds.classes, device, cfg.threads) for t in filter(None, cfg.teacher.split(","))]
    if teachers:
        log(f"distilling from {cfg.teacher} (weight {cfg.distill_weight}, temperature {cfg.distill_temperature})")
    ema = build_model(cfg.model).to(device)
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    decay, no_decay = [], []
    extra_params = [] if aux_head is None else list(aux_head.parameters())
    for p in [*model.parameters(), *extra_params]:
        (no_decay if p.ndim == 1 else decay).append(p)  # no weight decay on BN and biases
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0}],
                          lr=cfg.lr, momentum=0.9, nesterov=True)
    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)

    history: list[dict] = []
    start_epoch, best_acc, best_epoch, plateau_scale, step = 0, -1.0, -1, 1.0, 0
    wall_before = 0.0
    if cfg.resume:
        ck = torch.load(cfg.resume, map_location="cpu", weights_only=False)
        if (aux_head is None) != ("aux_head" not in ck):
            raise ValueError(f"{cfg.resume} was trained {'with' if 'aux_head' in ck else 'without'} an auxiliary head; "
                             f"{'give the same --aux-labels' if 'aux_head' in ck else 'drop --aux-labels'} to resume it")
        if aux_head is not None:
            aux_head.load_state_dict(ck["aux_head"])
        model.load_state_dict(ck["model"]); ema.load_state_dict(ck["ema"]); opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"]); history = ck["history"]
        start_epoch, best_acc, best_epoch, plateau_scale = ck["epoch"] + 1, ck["best_acc"], ck["best_epoch"], ck["plateau_scale"]
        step, wall_before = start_epoch * steps_per_epoch, ck["wall_s"]
        log(f"resumed from {cfg.resume} at epoch {start_epoch}")

    def lr_at(s: int) -> float:
        if s < warmup_steps:
            return cfg.lr * (s + 1) / warmup_steps
        if cfg.schedule == "cosine":
            return cfg.lr * 0.5 * (1 + math.cos(math.pi * (s - warmup_steps) / max(1, total_steps - warmup_steps)))
        return cfg.lr * plateau_scale

    bf16 = cfg.bf16 and bf16_runs_natively(device)
    if cfg.bf16 and not bf16:
        log(f"training in float32: this {device.type} has no native bfloat16, where autocast would be several times slower")
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)
    from .evaluate import machine_description

    run_facts = {"config": asdict(cfg), "device": str(device), "torch": torch.__version__,
                 "machine": machine_description(), "threads": torch.get_num_threads(), "bf16": bf16}  # history.json's header
    t0 = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        seen, loss_sum, correct = 0, 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        for i in bar:
            idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            clean = augment(x_train[idx].to(device), cfg, gen)      # geometry, lighting, erasing
            x = corrupt_batch(clean, cfg, gen).contiguous(memory_format=torch.channels_last)
            y = y_train[idx].to(device)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast(**amp):
                f = model.dropout(model.embed(x))  # (B, C): model(x) spelt out, so a second head shares the pass
                logits = model.head(f)
                aux_logits = None if aux_head is None else aux_head(f)
                if teachers:  # the teachers see the undamaged face: the student learns to ignore damage
                    with torch.no_grad():
                        c = clean.contiguous(memory_format=torch.channels_last)
                        t_logits = torch.stack([t(c).float() for t in teachers])   # (M, B, K)
            logits = logits.float()
            if soft_train is not None:  # soft targets: cross-entropy with the vote distribution
                t = soft_train[idx].to(device)
                loss = soft_cross_entropy(logits, t).mul(weights[y]).mean()
            else:
                loss = F.cross_entropy(logits, y, weight=weights, label_smoothing=cfg.label_smoothing)
            if teachers:
                loss = (1 - cfg.distill_weight) * loss + \
                    cfg.distill_weight * distill_loss(logits, t_logits, cfg.distill_temperature)
            if aux_logits is not None:  # averaged over the faces the auxiliary set labels
                m = aux_mask[idx].to(device)
                aux_ce = soft_cross_entropy(aux_logits.float(), aux_train[idx].to(device))
                loss = loss + cfg.aux_weight * (aux_ce * m).sum() / m.sum().clamp(min=1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            with torch.no_grad():  # EMA over parameters and BN statistics
                for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
                    if e.dtype.is_floating_point:
                        e.mul_(cfg.ema_decay).add_(m.detach(), alpha=1 - cfg.ema_decay)
                    else:
                        e.copy_(m)
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            if i % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", lr=f"{lr_at(step):.4f}")

        probs = predict_proba(ema, val_set.pixels, device)
        val_loss = float(-np.log(probs[np.arange(len(probs)), val_set.labels].clip(1e-12)).mean())
        val_acc = float((probs.argmax(1) == val_set.labels).mean())
        wall = wall_before + time.time() - t0
        history.append({"epoch": epoch + 1, "lr": lr_at(step - 1), "train_loss": loss_sum / seen,
                        "train_accuracy": correct / seen, "val_loss": val_loss, "val_accuracy": val_acc, "wall_s": wall})
        improved = val_acc > best_acc
        if improved:
            best_acc, best_epoch = val_acc, epoch + 1
            save_atomic(checkpoint_payload(ema, ds.classes, cfg, {"epoch": epoch + 1, "val_accuracy": val_acc,
                                                                    "selected_on": "PublicTest"}), out / "best.pt")
        elif cfg.schedule == "plateau" and len(history) > 5 and \
                max(h["val_accuracy"] for h in history[-5:]) <= max(h["val_accuracy"] for h in history[:-5]):
            plateau_scale *= 0.5
        # the time left, from this process's epochs so far (a resumed run or a shared machine changes the pace)
        left = (time.time() - t0) / (epoch + 1 - start_epoch) * (cfg.epochs - epoch - 1)
        log(f"epoch {epoch + 1:3d}/{cfg.epochs}  train loss {loss_sum / seen:.4f} acc {correct / seen:.4f}  "
            f"PublicTest loss {val_loss:.4f} acc {val_acc:.4f}{' *' if improved else ''}  lr {lr_at(step - 1):.4f}  "
            f"{wall / 60:.1f} min" + (f", at most {left / 60:.0f} min left" if epoch + 1 < cfg.epochs else ""))
        save_atomic({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                     "generator": gen.get_state(), "history": history, "epoch": epoch, "best_acc": best_acc,
                     "best_epoch": best_epoch, "plateau_scale": plateau_scale, "wall_s": wall,
                     **({} if aux_head is None else {"aux_head": aux_head.state_dict()})}, out / "last.pt")
        write_history(out, run_facts, history)
        if epoch + 1 - best_epoch >= cfg.patience:
            log(f"early stop: no better PublicTest accuracy for {cfg.patience} epochs")
            break
    log(f"best PublicTest accuracy {best_acc:.4f} at epoch {best_epoch}; checkpoint {out / 'best.pt'}")
    return {"history": history, "best_val_accuracy": best_acc, "best_epoch": best_epoch}


def bf16_runs_natively(device: torch.device) -> bool:
    """Whether bfloat16 autocast pays on `device`: CUDA GPUs that support it, and CPUs with AMX or AVX512-BF16.
    Elsewhere (AVX2-only CPUs) torch emulates it: one step of the default network, batch 128, 2 threads, took 19.8 s
    under autocast against 1.4 s in float32 on an AVX2 EPYC (benchmarks/train_step.py), so `--bf16` (the default) falls back to float32 there."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's own probes (CPUID)
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def save_atomic(obj, path: Path) -> None:
    """torch.save into a temporary file beside `path`, then rename it over `path`: a run killed mid-save (a session's
    end, a full disk) leaves the previous checkpoint whole, so `--resume` still works and nothing done is lost."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_history(out: Path, run_facts: dict, history: list[dict]) -> None:
    """history.json (the run's config, hardware and every epoch so far) and curves.png, rewritten each epoch."""
    (out / "history.json").write_text(json.dumps({**run_facts, "history": history}, indent=1))
    from .plots import plot_curves

    plot_curves(history, out / "curves.png")


def training_run_facts(history: dict) -> dict:
    """From a run's history.json (write_history): the `ferkit train` command equivalent to its config, hardware and
    wall time; what `ferkit export` records in the model file."""
    cfg, default = history["config"], asdict(TrainConfig())
    skip = ("model", "resume", "data", "out")  # where the run read and wrote: not part of the recipe
    flags = [f"--{k.replace('_', '-')} {v}" for k, v in cfg.items() if k not in skip and v != default.get(k)]
    for k, v in cfg["model"].items():
        if k == "num_classes":  # set by the label set, not a choice
            continue
        if (list(v) if isinstance(v, (list, tuple)) else v) != (list(default["model"][k]) if isinstance(v, (list, tuple)) else default["model"][k]):
            flags.append(f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}")
    runs = history["history"]
    return {"command": " ".join(["ferkit train", *flags]), "hardware": f"{history.get('machine')} ({history.get('device')}, "
            f"{history.get('threads')} threads, torch {history.get('torch')})", "epochs_run": len(runs),
            "wall_minutes": round(runs[-1]["wall_s"] / 60, 1) if runs else None,
            "resumed_from": cfg.get("resume") or None}
