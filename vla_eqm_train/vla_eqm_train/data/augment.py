"""Image augmentation for training: random shift (DrQ, Kostrikov et al. 2020).

Pad each image by ``pad`` pixels (edge replicate) and crop a random window of the original size:
small translations that make a conv encoder robust to the few-pixel jitter between a demo and a
closed-loop rollout, at almost no cost. Works on the uint8 (B, H, W, 3) images the model takes,
so the model's own preprocessing stays the one serving uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def shift_offsets(batch: int, pad: int, generator: torch.Generator | None = None
                  ) -> tuple[Tensor, Tensor]:
    """(dy, dx) window offsets in [0, 2 * pad] for ``batch`` samples."""
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    return dy, dx


def random_shift(images: Tensor, pad: int, generator: torch.Generator | None = None,
                 offsets: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """(B, H, W, 3) uint8 -> same shape, each sample shifted by up to ``pad`` px in x and y.
    ``offsets``: the (dy, dx) of ``shift_offsets`` (default: drawn here from ``generator``)."""
    if pad <= 0:
        return images
    b, h, w, _ = images.shape
    x = images.permute(0, 3, 1, 2).float()  # (B, 3, H, W)
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")  # (B, 3, H + 2p, W + 2p)
    dy, dx = offsets if offsets is not None else shift_offsets(b, pad, generator)
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)  # (B, H)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # (B, H, W, 3)
    return out.round().clamp(0, 255).to(torch.uint8)
