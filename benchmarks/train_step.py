"""One training step of a ferkit network on this machine, in float32 and under bfloat16 autocast.

    python benchmarks/train_step.py [--threads 2] [--channels 32 64 128 256] [--steps 4]

Random faces, batch 128, SGD with momentum, channels-last as `ferkit train` runs them; no teacher, no augmentation.
Prints the median seconds per step and the minutes an epoch of FER-2013 Training (28,709 faces, 225 steps) would
take, and whether `ferkit train --bf16` (the default) would use bfloat16 here (train.bf16_runs_natively). On CPUs
without AMX or AVX512-BF16 torch emulates bfloat16, which is why the flag falls back to float32 there.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from ferkit.config import ModelConfig
from ferkit.evaluate import machine_description
from ferkit.model import build_model
from ferkit.train import bf16_runs_natively

TRAINING_FACES, BATCH = 28709, 128


def step_seconds(channels, bf16: bool, steps: int) -> float:
    model = build_model(ModelConfig(channels=tuple(channels))).train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(BATCH, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (BATCH,))
    times = []
    for i in range(steps + 2):  # two warm-up steps
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    print(f"{machine_description()}; torch {torch.__version__}, {args.threads} threads, channels {args.channels}; "
          f"ferkit train --bf16 would use {'bfloat16' if bf16_runs_natively(cpu) else 'float32'} here")
    steps_per_epoch = math.ceil(TRAINING_FACES / BATCH)
    for bf16 in (False, True):
        s = step_seconds(args.channels, bf16, args.steps)
        print(f"{'bfloat16 autocast' if bf16 else 'float32':<18} {s:6.2f} s per step, "
              f"{s * steps_per_epoch / 60:5.1f} min per epoch ({steps_per_epoch} steps)", flush=True)


if __name__ == "__main__":
    main()
