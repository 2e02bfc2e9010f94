"""Action and state normalization whose statistics travel inside the model's weights.

The solver's residual threshold tau and the noise scale only mean something in a normalized space,
so the statistics must be those the model was trained with: they are registered buffers, saved in
``model.safetensors`` next to the weights, and the mode is recorded in ``config.yaml``. Normalize
and unnormalize are exact mirrors (openpi's Normalize/Unnormalize pair).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from vla_eqm_ros.config import NORMALIZATION_MODES

_EPS = 1e-6


class Normalizer(nn.Module):
    """z-score ((x - mean) / std) or quantile ([q01, q99] -> [-1, 1], openpi) over the last axis."""

    mean: Tensor
    std: Tensor
    q01: Tensor
    q99: Tensor

    def __init__(self, dim: int, mode: str = "zscore") -> None:
        super().__init__()
        if mode not in NORMALIZATION_MODES:
            raise ValueError(
                f"normalization mode must be one of {NORMALIZATION_MODES}, got {mode!r}")
        self.mode = mode
        self.dim = dim
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("q01", -torch.ones(dim))
        self.register_buffer("q99", torch.ones(dim))

    @torch.no_grad()
    def fit(self, data: np.ndarray | Tensor) -> Normalizer:
        """Set all statistics from samples (N, dim) (or (..., dim)); returns self for chaining."""
        x = torch.as_tensor(np.asarray(data), dtype=torch.float64).reshape(-1, self.dim)
        if x.shape[0] == 0 or not torch.isfinite(x).all():
            raise ValueError(f"normalizer needs finite samples, got {x.shape[0]} rows")
        self.mean.copy_(x.mean(0).float())
        self.std.copy_(x.std(0, unbiased=False).float())
        self.q01.copy_(torch.quantile(x, 0.01, dim=0).float())
        self.q99.copy_(torch.quantile(x, 0.99, dim=0).float())
        return self

    def _scale_offset(self) -> tuple[Tensor, Tensor]:
        """normalized = (x - offset) / scale, for every mode."""
        if self.mode == "zscore":
            return self.std.clamp_min(_EPS), self.mean
        if self.mode == "quantile":
            return ((self.q99 - self.q01) / 2.0).clamp_min(_EPS), (self.q99 + self.q01) / 2.0
        return torch.ones_like(self.mean), torch.zeros_like(self.mean)

    def normalize(self, x: Tensor) -> Tensor:
        scale, offset = self._scale_offset()
        return (x - offset.to(x.dtype)) / scale.to(x.dtype)

    def unnormalize(self, x: Tensor) -> Tensor:
        scale, offset = self._scale_offset()
        return x * scale.to(x.dtype) + offset.to(x.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, mode={self.mode}"
