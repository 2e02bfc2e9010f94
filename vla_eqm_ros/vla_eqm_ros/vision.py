"""Per-camera image encoder: a few stride-2 conv stages pooled to a small grid of spatial tokens.

This is the CPU-sized stand-in for pi0's SigLIP tower: it keeps the *shape* of the interface (an
image becomes a handful of spatial tokens the action expert attends to) at a cost of a few tens of
MFLOPs per 96 px frame. Image preprocessing (uint8 HWC -> float CHW at the model's square size)
happens inside the model, so that training and serving cannot disagree on it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def images_to_tensor(images: Tensor | np.ndarray, size: int) -> Tensor:
    """(B, h, w, 3) uint8 RGB -> (B, 3, size, size) float in [0, 1], area-resampled.

    Bilinear with antialiasing: downscaling a 480x640 camera to 96 px without it aliases edges,
    and the same call runs in training, so the model never sees a different resampler.
    """
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (B, h, w, 3), got {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, h, w)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False).clamp_(0.0, 1.0)
    return x


class ConvEncoder(nn.Module):
    """(B, 3, S, S) in [0, 1] -> (B, grid*grid, width) spatial tokens with learned positions.

    One 3x3 stride-2 conv per stage (about 25 MMAC for a 96 px frame with the default channels):
    the image encoder dominates training cost on CPU, the expert dominates serving cost.
    """

    def __init__(self, channels: tuple[int, ...], grid: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, kernel_size=3, stride=2, padding=1),
                       nn.GroupNorm(min(8, c), c), nn.GELU()]
            c_in = c
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.proj = nn.Linear(c_in, width)
        self.pos = nn.Parameter(torch.randn(grid * grid, width) * 0.02)

    def forward(self, images: Tensor) -> Tensor:
        x = self.stages((images - 0.5) / 0.25)  # (B, C, s, s)
        x = self.pool(x).flatten(2).transpose(1, 2)  # (B, grid*grid, C)
        return self.proj(x) + self.pos
