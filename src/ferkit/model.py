"""The network: a VGG-style CNN for 48x48 grey faces with a global-average-pool + linear head.

The GAP + linear head makes class activation maps exact and free: logits = mean_hw(W @ f_hw) + b,
so the exported model returns the per-class maps (W @ f) beside the probabilities.
Needs torch (the [train] extra); inference uses the exported ONNX file instead.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .config import ModelConfig

__all__ = ["FERNet", "ModelConfig", "build_model"]


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class FERNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if len(config.channels) != len(config.depths):
            raise ValueError("channels and depths must have one entry per stage")
        self.config = config
        layers: list[nn.Module] = []
        c_in = 1
        for stage, (width, depth) in enumerate(zip(config.channels, config.depths)):
            if stage > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(depth):
                layers.append(conv_bn_relu(c_in, width))
                c_in = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(c_in, config.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) in [-1, 1] -> (N, C) pooled features, before dropout and the head."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) in [-1, 1] -> (N, num_classes) logits."""
        return self.head(self.dropout(self.embed(x)))

    def forward_with_cams(self, x: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1, H, W) -> probabilities softmax(logits / temperature) (N, K) and class activation maps
        (N, K, h, w), h = H / 8.

        The maps are the head applied at each position, so their spatial mean plus the bias is
        exactly the logits: what the export ships (with the temperature fitted at export).
        """
        f = self.features(x)                                                  # (N, C, h, w)
        cams = F.conv2d(f, self.head.weight[:, :, None, None])                # (N, K, h, w)
        logits = cams.mean(dim=(2, 3)) + self.head.bias
        return (logits / temperature).softmax(dim=1), cams


def build_model(config: ModelConfig | None = None) -> FERNet:
    return FERNet(config or ModelConfig())
