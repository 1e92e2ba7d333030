"""Typed configuration for the model and its training: plain dataclasses, no torch import.

The CLI maps its flags one-to-one onto these fields (`ferkit train --help`), and reading them must not cost a
torch import on every `ferkit` command. The defaults are the recipe of the shipped `fer2013` model.
"""
from __future__ import annotations

import inspect
import io
import tokenize
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class ModelConfig:
    num_classes: int = 7                            # set by training from the label set (7, or 8 with contempt)
    channels: tuple[int, ...] = (32, 64, 128, 256)  # width of each stage; 48 -> 24 -> 12 -> 6 pixels
    depths: tuple[int, ...] = (2, 2, 3, 3)          # 3x3 conv + BN + ReLU layers per stage
    dropout: float = 0.3                            # dropout before the linear head

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
    data: str = ""                            # FER-2013 file or folder (any layout data.load_dataset reads); "": $FERKIT_DATA
    out: str = "runs/fer2013"                 # checkpoints, history.json, curves.png
    labels: str = "fer2013"                   # fer2013 | ferplus-majority | ferplus-soft
    ferplus: str = ""                         # fer2013new.csv, for the ferplus label sets
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 50                          # length of the schedule (cosine reaches 0 here)
    batch_size: int = 128                     # faces per SGD step
    lr: float = 0.1                           # peak SGD learning rate (Nesterov momentum 0.9)
    weight_decay: float = 5e-4                # L2 on the weights
    warmup_epochs: float = 2.0                # linear warm-up over this many epochs, then --schedule
    schedule: str = "cosine"                  # cosine (to 0 at --epochs) | plateau (x0.5 after 5 flat epochs)
    label_smoothing: float = 0.1              # hard labels only; soft FER+ votes are used as they are
    class_weight_power: float = 0.3           # loss weight per class = (count / mean count) ** -power; 0 = off
    ema_decay: float = 0.999                  # weights averaged over steps; the EMA model is evaluated and saved
    patience: int = 15                        # early stop after this many epochs without a better PublicTest accuracy
    seed: int = 0                             # weights, data order and augmentation draws
    device: str = "auto"                      # auto | cpu | cuda
    bf16: bool = True                         # bfloat16 autocast where the hardware computes in it (GPUs; CPUs with AMX or AVX512-BF16); float32 elsewhere
    threads: int = 0                          # torch CPU threads; 0 = torch's default
    # augmentation (training batches only, after the split)
    rotate_deg: float = 15.0                  # rotate by up to this many degrees either way
    scale: float = 0.15                       # zoom in or out by up to this fraction (0.15 = 15 %)
    shear_deg: float = 8.0                    # shear by up to this many degrees
    shift: float = 0.1                        # translate by up to this fraction of the image size
    flip: bool = True                         # mirror half the faces
    brightness: float = 0.25                  # shift brightness by up to this, in [-1, 1] units
    contrast: float = 0.25                    # scale contrast by up to 1 +- this
    erase_prob: float = 0.5                   # random erasing: one rectangle of 2-20 % of the face
    # corruptions the camera and the network add (student only when distilling; each drawn independently)
    gamma_prob: float = 0.0                   # gamma in [1/2.5, 2.5], log-uniform (dark or over-exposed)
    noise_prob: float = 0.0                   # Gaussian noise, sigma uniform in [0, noise_max] grey levels
    noise_max: float = 20.0                   # largest noise sigma, grey levels
    blur_prob: float = 0.0                    # Gaussian blur, sigma uniform in [0.3, blur_max] pixels
    blur_max: float = 2.0                     # largest blur sigma, pixels
    jpeg_prob: float = 0.0                    # JPEG re-encoding at a quality uniform in [jpeg_min, 75]
    jpeg_min: int = 10                        # lowest JPEG quality drawn
    # distillation from trained models (same label set), evaluated online on the uncorrupted batch
    teacher: str = ""                         # a best.pt, an exported .onnx or a shipped model name (fer2013-accurate); several comma-separated = their mean; empty = none
    distill_weight: float = 0.5               # loss = (1 - w) * label loss + w * T^2 * KL(teacher || student)
    distill_temperature: float = 2.0          # T: softens both distributions
    # a second label set for the same faces, learnt by a throw-away head on the shared features (multi-task):
    # FER-2013 and FER+ label the same 35,887 images, so each can regularise the other. Not exported.
    aux_labels: str = ""                      # "" = none | fer2013 | ferplus-soft (needs --ferplus)
    aux_weight: float = 0.5                   # loss = main loss + aux_weight * auxiliary loss
    resume: str = ""                          # path to a last.pt to continue from


def field_help(cls) -> dict[str, str]:
    """{field name: its trailing comment} for a config dataclass, read from this file's source.

    The comments beside the fields are the one place the options are explained; `ferkit train --help` shows them
    through this, so they cannot drift from a second copy. Fields without a comment are simply absent.
    """
    names = {f.name for f in fields(cls)}
    docs, line_field = {}, {}
    for tok in tokenize.generate_tokens(io.StringIO(inspect.getsource(cls)).readline):
        row = tok.start[0]
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in names and row not in line_field:
            line_field[row] = tok.string      # a field is a name at the class body's indent opening its line
        elif tok.type == tokenize.COMMENT and row in line_field:
            docs[line_field[row]] = tok.string.lstrip("# ").strip()
    return docs


def data_path(value: str | Path | None) -> Path:
    """The FER-2013 data to read: `value` (a file, or a folder holding one), else $FERKIT_DATA. A folder gives its
    fastest copy (data.fer2013_file). FileNotFoundError naming both sources when neither is given."""
    import os

    from .data import fer2013_file

    source = value or os.environ.get("FERKIT_DATA")
    if not source:
        raise FileNotFoundError("no FER-2013 data given: pass --data PATH (fer2013.csv.gz or the folder holding it) "
                                "or set $FERKIT_DATA to that folder")
    path = Path(source)
    return fer2013_file(path) if path.is_dir() else path
