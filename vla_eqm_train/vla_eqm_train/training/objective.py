"""The training objective with padding masks, as one ``nn.Module`` so DDP can wrap it.

The core's ``PI0EqMModel.forward`` averages over every row of a chunk; near an episode end some
rows are padding (``dataset.ChunkDataset``), and regressing them would teach the policy to stop
moving at random moments. This module computes the same EqM / FM losses from the core's own
objective functions (``vla_eqm_ros.objectives``: interpolant, target, time sampling) with the
padded rows masked out. With an all-true mask it equals the core's loss for the same noise.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vla_eqm_ros.model import PI0EqMModel, Prefix
from vla_eqm_ros.objectives import (
    eqm_interpolant,
    eqm_target,
    fm_interpolant,
    fm_sample_time,
    fm_target,
)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean of (pred - target)^2 over valid rows only; pred/target (B, H, d), mask (B, H)."""
    weight = mask.to(pred.dtype).unsqueeze(-1)  # (B, H, 1)
    denom = (weight.sum() * pred.shape[-1]).clamp_min(1.0)
    return (((pred - target) ** 2) * weight).sum() / denom


class MaskedObjective(nn.Module):
    """loss(batch) for the wrapped model's decoder; ``forward`` is what DDP synchronizes."""

    def __init__(self, model: PI0EqMModel, repeats: int = 1) -> None:
        super().__init__()
        self.model = model
        self.repeats = int(repeats)

    def forward(self, batch: dict[str, Any], mask: Tensor,
                generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
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
        # Noise is drawn on the CPU generator and moved, so a run is reproducible on any device.
        noise = torch.randn(actions.shape, generator=generator).to(dev)
        cfg = model.config
        if cfg.decoder == "eqm":
            gamma = torch.rand((actions.shape[0],), generator=generator).to(dev)
            pred = model.field(eqm_interpolant(actions, noise, gamma), prefix)
            target = eqm_target(actions, noise, gamma, cfg.eqm)
        else:
            t = fm_sample_time(actions.shape[0], cfg.fm, generator=generator).to(dev)
            pred = model.field(fm_interpolant(actions, noise, t), prefix, t)
            target = fm_target(actions, noise)
        loss = masked_mse(pred, target, mask)
        return loss, {"loss": float(loss.detach()), "valid_rows": float(mask.float().mean())}
