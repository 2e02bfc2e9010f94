"""The RL head: a Gaussian actor and a value critic over the frozen policy's prefix features.

Online RL (``vla-eqm rl``, docs/rl.md) trains only this module; the VLA and its decoder stay as
trained. The actor's output is an offset in the model's normalized action space: a correction of
the solved chunk's first rows (``residual``) or of the solver's initial iterate (``steer``); see
``config.RLConfig``. The actor's last layer starts at zero, so before any update the deployed
policy (the actor's mean) is exactly its parent.

Features are the mean of the prefix tokens (what the VLA made of images, goal and state) and, for
``residual``, the solved rows it corrects: the critic and the actor see the observation as the
policy does, at no extra encoder cost.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from vla_eqm_ros.config import PolicyConfig, RLConfig


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, out))


class RLHead(nn.Module):
    """Actor mean ``scale * tanh(mlp(x))``, a learned per-dimension log std, and a critic."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        rl, m = config.rl, config.model
        self.method = rl.method
        self.rows = rl.rows
        self.action_dim = m.action_dim
        self.scale = float(rl.scale)
        self.out_dim = rl.rows * m.action_dim
        self.in_dim = m.width + (self.out_dim if rl.method == "residual" else 0)
        self.actor = _mlp(self.in_dim, rl.hidden, self.out_dim)
        last = self.actor[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.log_std = nn.Parameter(torch.full((self.out_dim,), math.log(rl.init_std)))
        self.critic = _mlp(self.in_dim, rl.hidden, 1)

    def features(self, tokens: Tensor, solved: Tensor | None = None) -> Tensor:
        """(B, in_dim): pooled prefix tokens (B, P, W), plus the solved rows for ``residual``."""
        pooled = tokens.float().mean(dim=1)
        if self.method != "residual":
            return pooled
        if solved is None:
            raise ValueError("the residual head needs the solved chunk")
        return torch.cat([pooled, solved[:, :self.rows].float().flatten(1)], dim=1)

    def mean(self, features: Tensor) -> Tensor:
        return self.scale * torch.tanh(self.actor(features))

    def log_prob(self, features: Tensor, action: Tensor) -> Tensor:
        """Log density of flat actions (B, out_dim) under the Gaussian; (B,)."""
        std = self.log_std.exp()
        z = (action - self.mean(features)) / std
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2 * math.pi)).sum(dim=1)

    def entropy(self) -> Tensor:
        return (self.log_std + 0.5 * math.log(2 * math.pi * math.e)).sum()

    def value(self, features: Tensor) -> Tensor:
        return self.critic(features).squeeze(-1)

    def act(self, features: Tensor, generator: torch.Generator | None = None
            ) -> tuple[Tensor, Tensor, Tensor]:
        """(flat action, its log prob, value): the mean without ``generator`` (deployment), a
        draw from the Gaussian with it (rollouts)."""
        mean = self.mean(features)
        if generator is None:
            action = mean
        else:
            noise = torch.randn(mean.shape, generator=generator).to(mean.device)
            action = mean + self.log_std.exp() * noise
        return action, self.log_prob(features, action), self.value(features)

    def offset(self, flat: Tensor, horizon: int) -> Tensor:
        """Flat actions (B, rows * d) -> a (B, H, d) offset, zero past ``rows``."""
        b = flat.shape[0]
        out = torch.zeros((b, horizon, self.action_dim), dtype=flat.dtype, device=flat.device)
        out[:, :self.rows] = flat.reshape(b, self.rows, self.action_dim)
        return out


def attach_rl_head(model: Any, rl: RLConfig) -> Any:
    """Give a supervised model a fresh RL head (``config.rl`` = ``rl``), in place: the start of
    ``vla-eqm rl``. Its actor starts at zero, so the model still decodes exactly as before."""
    if rl.method == "none":
        raise ValueError("attach_rl_head needs rl.method residual or steer")
    model.config = model.config.replace(rl=rl)
    model.rl_head = RLHead(model.config).to(next(model.parameters()).device)
    return model
