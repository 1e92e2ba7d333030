"""Typed configuration for the model and its training: plain dataclasses, no torch import.

The CLI maps its flags one-to-one onto these fields (`ferkit train --help`), and reading them must not cost a
torch import on every `ferkit` command. The defaults are the recipe of the shipped `fer2013` model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ModelConfig:
    num_classes: int = 7
    channels: tuple[int, ...] = (32, 64, 128, 256)  # width of each stage; 48 -> 24 -> 12 -> 6 pixels
    depths: tuple[int, ...] = (2, 2, 3, 3)          # 3x3 conv + BN + ReLU layers per stage
    dropout: float = 0.3                            # before the linear head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        for key in ("channels", "depths"):
            d[key] = tuple(d[key])
        return cls(**d)


@dataclass
class TrainConfig:
    data: str = "../shared/data/fer2013/fer2013.csv.gz"  # any layout data.load_dataset reads
    out: str = "runs/fer2013"                 # checkpoints, history.json, curves.png
    labels: str = "fer2013"                   # fer2013 | ferplus-majority | ferplus-soft
    ferplus: str = ""                         # fer2013new.csv, for the ferplus label sets
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 50
    batch_size: int = 128
    lr: float = 0.1                           # peak SGD learning rate (Nesterov momentum 0.9)
    weight_decay: float = 5e-4
    warmup_epochs: float = 2.0                # linear warm-up, then the schedule below
    schedule: str = "cosine"                  # cosine (to 0 at `epochs`) | plateau (x0.5 after 5 flat epochs)
    label_smoothing: float = 0.1
    class_weight_power: float = 0.3           # loss weight per class = (count / mean count) ** -power; 0 = off
    ema_decay: float = 0.999                  # weights averaged over steps; the EMA model is evaluated and saved
    patience: int = 15                        # early stop after this many epochs without a better PublicTest accuracy
    seed: int = 0
    device: str = "auto"                      # auto | cpu | cuda
    bf16: bool = True                         # bfloat16 autocast (AMX on recent Xeons, tensor cores on GPUs)
    threads: int = 0                          # torch CPU threads; 0 = torch's default
    # augmentation (training batches only, after the split)
    rotate_deg: float = 15.0
    scale: float = 0.15                       # zoom in or out by up to 15 %
    shear_deg: float = 8.0
    shift: float = 0.1                        # fraction of the image size
    flip: bool = True
    brightness: float = 0.25                  # in [-1, 1] units
    contrast: float = 0.25
    erase_prob: float = 0.5                   # random erasing: one rectangle of 2-20 % of the face
    # corruptions the camera and the network add (student only when distilling; each drawn independently)
    gamma_prob: float = 0.0                   # gamma in [1/2.5, 2.5], log-uniform (dark or over-exposed)
    noise_prob: float = 0.0                   # Gaussian noise, sigma uniform in [0, noise_max] grey levels
    noise_max: float = 20.0
    blur_prob: float = 0.0                    # Gaussian blur, sigma uniform in [0.3, blur_max] pixels
    blur_max: float = 2.0
    jpeg_prob: float = 0.0                    # JPEG re-encoding at a quality uniform in [jpeg_min, 75]
    jpeg_min: int = 10
    # distillation from a trained checkpoint (same label set), evaluated online on the uncorrupted batch
    teacher: str = ""                         # a best.pt, or several comma-separated (an ensemble); empty = none
    distill_weight: float = 0.5               # loss = (1 - w) * label loss + w * T^2 * KL(teacher || student)
    distill_temperature: float = 2.0
    # a second label set for the same faces, learnt by a throw-away head on the shared features (multi-task):
    # FER-2013 and FER+ label the same 35,887 images, so each can regularise the other. Not exported.
    aux_labels: str = ""                      # "" = none | fer2013 | ferplus-soft (needs --ferplus)
    aux_weight: float = 0.5                   # loss = main loss + aux_weight * auxiliary loss
    resume: str = ""                          # path to a last.pt to continue from
