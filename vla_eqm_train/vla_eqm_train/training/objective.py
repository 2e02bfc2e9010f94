"""The training objective with padding masks, as one ``nn.Module`` so DDP can wrap it.

The core's ``PI0EqMModel.forward`` averages over every row of a chunk; near an episode end some
rows are padding (``dataset.ChunkDataset``), and regressing them would teach the policy to stop
moving at random moments. This module computes the same EqM / FM losses from the core's own
objective functions (``vla_eqm_ros.objectives``: interpolant, target, time sampling) with the
padded rows masked out. With an all-true mask it equals the core's loss for the same noise.

Multi-process training slices one global batch: every rank draws the random numbers of the whole
batch (``draw_noise``, the same generator state on every rank) and keeps its rows, and the loss is
normalized by the global count of valid rows (``denom``). So N ranks at batch B/N compute the
gradient one process computes at batch B, up to float32 summation order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vla_eqm_ros.model import PI0EqMModel, Prefix
from vla_eqm_ros.objectives import (
    eqm_interpolant,
    eqm_sample_gamma,
    eqm_target,
    fm_interpolant,
    fm_sample_time,
    fm_target,
)


def masked_weight(mask: Tensor, action_dim: int) -> Tensor:
    """The number of regressed values: valid rows times the action dimension."""
    return mask.to(torch.float32).sum() * action_dim


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor, denom: Tensor | None = None
               ) -> Tensor:
    """Mean of (pred - target)^2 over valid rows only; pred/target (B, H, d), mask (B, H).
    ``denom``: divide by this count instead of the local one (a slice of a global batch)."""
    weight = mask.to(pred.dtype).unsqueeze(-1)  # (B, H, 1)
    if denom is None:
        denom = weight.sum() * pred.shape[-1]
    return (((pred - target) ** 2) * weight).sum() / denom.clamp_min(1.0)


@dataclass(frozen=True)
class NoiseDraws:
    """The noise and the noise level (gamma for EqM, t for FM) of every row of a batch, in the
    order the rows are built: sample i owns rows i * repeats ... (i + 1) * repeats - 1."""

    noise: Tensor  # (B * repeats, H, d)
    level: Tensor  # (B * repeats,)

    def samples(self, start: int, stop: int, repeats: int) -> NoiseDraws:
        """The draws of samples start..stop-1 (a rank's share of a global batch)."""
        return NoiseDraws(self.noise[start * repeats:stop * repeats],
                          self.level[start * repeats:stop * repeats])


def draw_noise(rows: int, horizon: int, action_dim: int, config: Any,
               generator: torch.Generator | None = None) -> NoiseDraws:
    """Noise then level, on the CPU generator (a run is reproducible on any device)."""
    noise = torch.randn((rows, horizon, action_dim), generator=generator)
    if config.decoder == "eqm":
        level = eqm_sample_gamma(rows, config.eqm, generator)
    else:
        level = fm_sample_time(rows, config.fm, generator=generator)
    return NoiseDraws(noise, level)


class MaskedObjective(nn.Module):
    """loss(batch) for the wrapped model's decoder; ``forward`` is what DDP synchronizes."""

    def __init__(self, model: PI0EqMModel, repeats: int = 1) -> None:
        super().__init__()
        self.model = model
        self.repeats = int(repeats)

    def forward(self, batch: dict[str, Any], mask: Tensor,
                generator: torch.Generator | None = None, draws: NoiseDraws | None = None,
                denom: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """``draws``: this batch's noise (default: drawn from ``generator``); ``denom``: the
        global count of regressed values when this batch is one rank's slice."""
        model = self.model
        dev = model.expert.pos.device
        actions = model.action_normalizer.normalize(
            torch.as_tensor(batch["actions"], dtype=torch.float32).to(dev))  # (B, H, d)
        mask = mask.to(dev)
        prefix = model.encode_prefix(batch)
        if self.repeats > 1:
            index = torch.arange(actions.shape[0], device=dev).repeat_interleave(self.repeats)
            actions, mask = actions[index], mask[index]  # (B * repeats, H, d), (B * repeats, H)
            prefix = Prefix(kv=prefix.kv.select(index), tokens=prefix.tokens[index])
        cfg = model.config
        if draws is None:
            draws = draw_noise(actions.shape[0], actions.shape[1], actions.shape[2], cfg,
                               generator)
        noise, level = draws.noise.to(dev), draws.level.to(dev)
        if cfg.decoder == "eqm":
            pred = model.field(eqm_interpolant(actions, noise, level), prefix)
            target = eqm_target(actions, noise, level, cfg.eqm)
        else:
            pred = model.field(fm_interpolant(actions, noise, level), prefix, level)
            target = fm_target(actions, noise)
        loss = masked_mse(pred, target, mask, None if denom is None else denom.to(dev))
        return loss, {"loss": float(loss.detach()), "valid_rows": float(mask.float().mean())}
