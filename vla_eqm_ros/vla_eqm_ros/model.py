"""``PI0EqMModel``: prefix encoder + action expert + normalizers, one ``nn.Module``.

The split mirrors pi0/openpi: ``encode_prefix`` runs the expensive part once per observation and
returns a ``Prefix`` holding the expert's per-layer K/V cache; ``field`` is one action-expert pass
over H tokens against that cache (the EqM field f(A; c), or the FM velocity v(x, t; c)). Solvers
only ever see ``field``. ``forward`` is the training loss.

Batch keys (tensors, batch-first):
  images: {camera: (B, h, w, 3) uint8}   state: (B, state_dim) physical units
  goal_embedding: (B, 384) (small backbone) | goal_tokens, goal_mask: (B, L) (PaliGemma)
  actions: (B, H, d) physical units (training only)
Actions live in the normalized space inside the model (noise, solver, tau); the policy maps them
back with ``action_normalizer.unnormalize``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vla_eqm_ros.action_expert import ActionExpert, PrefixKV
from vla_eqm_ros.backbone import build_prefix_encoder
from vla_eqm_ros.config import PolicyConfig
from vla_eqm_ros.normalization import Normalizer
from vla_eqm_ros.objectives import eqm_loss, fm_loss
from vla_eqm_ros.rl_head import RLHead


@dataclass
class Prefix:
    """One observation batch, encoded: the expert's K/V cache plus the raw prefix tokens."""

    kv: PrefixKV
    tokens: Tensor  # (B, P, W)

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])


class PI0EqMModel(nn.Module):
    """pi0-shaped VLA whose action expert is an EqM field (or the FM baseline's velocity)."""

    def __init__(self, config: PolicyConfig, **backbone_kwargs: Any) -> None:
        super().__init__()
        self.config = config
        m = config.model
        self.prefix_encoder = build_prefix_encoder(m, **backbone_kwargs)
        self.expert = ActionExpert(m, timed=config.decoder == "fm")
        self.action_normalizer = Normalizer(m.action_dim, config.normalization.action)
        self.state_normalizer = Normalizer(m.state_dim, config.normalization.state)
        # an RL-fine-tuned head (config.rl, docs/rl.md); absent in supervised checkpoints
        self.rl_head = RLHead(config) if config.rl.method != "none" else None

    # ------------------------------------------------------------------------------- inference

    def goal_features(self, goals: list[str]) -> dict[str, Tensor]:
        """Goal strings -> the batch entries the prefix encoder needs (cached MiniLM / tokens)."""
        return self.prefix_encoder.goal_features(goals)

    def encode_prefix(self, batch: dict[str, Any]) -> Prefix:
        """Encode images, goal and state once; the result serves every solver iteration."""
        state = torch.as_tensor(batch["state"], dtype=torch.float32).to(self._device)
        feats = {**batch, "state": self.state_normalizer.normalize(state)}
        tokens, mask = self.prefix_encoder(feats)  # (B, P, W), (B, P) | None
        return Prefix(kv=self.expert.cache_prefix(tokens, mask), tokens=tokens)

    def field(self, actions: Tensor, prefix: Prefix, time: Tensor | None = None) -> Tensor:
        """f(A; c) for EqM (time must be None) or v(x, t; c) for FM; (B, H, d) -> (B, H, d).
        EqM-E (``eqm.energy``): the gradient of the learned energy instead."""
        if self.config.decoder == "eqm" and self.config.eqm.energy != "none":
            return self._energy_gradient(actions, prefix)
        return self.expert(actions, prefix.kv, time)

    def _energy_gradient(self, actions: Tensor, prefix: Prefix) -> Tensor:
        """grad_A g(A; c), g = <A, f(A)> (dot) or -||f(A)||^2 / 2 (l2). Needs autograd even when
        decoding (never under inference_mode), and double backward when training, which
        torch's CPU flash-attention kernel lacks: the math kernel runs here."""
        from torch.nn.attention import SDPBackend, sdpa_kernel

        training = torch.is_grad_enabled()  # the loss backpropagates through the gradient
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
            a = actions if actions.requires_grad else actions.detach().requires_grad_(True)
            f = self.expert(a, prefix.kv, None)
            if self.config.eqm.energy == "dot":
                energy = (a * f).flatten(1).sum(1)
            else:
                energy = -0.5 * (f * f).flatten(1).sum(1)
            (grad,) = torch.autograd.grad(energy.sum(), a, create_graph=training)
        return grad

    @property
    def _device(self) -> torch.device:
        return self.expert.pos.device

    # -------------------------------------------------------------------------------- training

    def forward(
        self, batch: dict[str, Any], generator: torch.Generator | None = None, repeats: int = 1,
    ) -> tuple[Tensor, dict[str, float]]:
        """Training loss on physical-unit actions: EqM (Eq. 1, corrected sign) or FM (openpi).

        ``repeats`` > 1 draws that many (noise, gamma/t) pairs per observation against one prefix
        encoding: on CPU the image encoder dominates a step, the expert is cheap, so this buys
        many more field samples per second at the same prefix cost.
        """
        actions = self.action_normalizer.normalize(
            torch.as_tensor(batch["actions"], dtype=torch.float32).to(self._device))
        prefix = self.encode_prefix(batch)
        if repeats > 1:
            index = torch.arange(actions.shape[0], device=actions.device).repeat_interleave(repeats)
            actions = actions[index]  # (B * repeats, H, d)
            prefix = Prefix(kv=prefix.kv.select(index), tokens=prefix.tokens[index])
        if self.config.decoder == "eqm":
            return eqm_loss(lambda a: self.field(a, prefix), actions, self.config.eqm,
                            generator=generator)
        return fm_loss(lambda x, t: self.field(x, prefix, t), actions, self.config.fm,
                       generator=generator)

    # ------------------------------------------------------------------------------ checkpoint

    def persistent_state_dict(self) -> dict[str, Tensor]:
        """The state dict a checkpoint stores: everything except frozen external weights
        (a frozen PaliGemma is reloaded from ``backbone_path``; MiniLM is never a submodule)."""
        skip = tuple(f"prefix_encoder.{p}" for p in self.prefix_encoder.frozen_prefixes())
        return {k: v for k, v in self.state_dict().items() if not k.startswith(skip)}
