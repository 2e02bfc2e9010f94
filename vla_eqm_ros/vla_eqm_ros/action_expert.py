"""The action expert: a transformer over H action tokens that cross-attends a cached prefix.

pi0 runs its action expert on the suffix tokens while the prefix (VLM) keys and values come from a
KV cache computed once per observation; we do the same with an explicit per-layer cache
(``PrefixKV``), so an EqM solver iteration costs exactly one pass over H tokens. Blocks are pre-LN:
self-attention over the actions (bidirectional, as pi0's action block), cross-attention to the
prefix, MLP. EqM has no time input; the FM baseline mixes a sinusoidal time embedding into each
action token through an MLP, as pi0's ``action_time_mlp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vla_eqm_ros.config import ModelConfig


@dataclass
class PrefixKV:
    """Per-layer cross-attention keys/values of one observation batch, reused by every iteration."""

    kv: list[tuple[Tensor, Tensor]]  # per block: k, v each (B, heads, P, width/heads)
    mask: Tensor | None  # (B, 1, 1, P) bool, True = attend; None = every prefix token is valid

    def select(self, index: Tensor) -> PrefixKV:
        """The cache of a subset of the batch (e.g. the samples still being solved)."""
        mask = None if self.mask is None else self.mask[index]
        return PrefixKV([(k[index], v[index]) for k, v in self.kv], mask)


def sincos_time_embedding(t: Tensor, dim: int, min_period: float = 4e-3,
                          max_period: float = 4.0) -> Tensor:
    """(B,) in [0, 1] -> (B, dim): pi0's ``posemb_sincos`` (periods geometric in [min, max])."""
    fraction = torch.linspace(0.0, 1.0, dim // 2, device=t.device, dtype=torch.float32)
    period = min_period * (max_period / min_period) ** fraction
    angle = t.float()[:, None] * (2.0 * math.pi / period)[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


class ExpertBlock(nn.Module):
    """x + SelfAttn(LN x); x + CrossAttn(LN x, prefix K/V); x + MLP(LN x)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.cross_proj = nn.Linear(width, width)
        self.norm3 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, width))

    def prefix_kv(self, prefix: Tensor) -> tuple[Tensor, Tensor]:
        """(B, P, W) normalized prefix -> k, v (B, heads, P, W/heads); once per observation."""
        b, p, w = prefix.shape
        kv = self.kv(prefix).view(b, p, 2, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        return kv[0], kv[1]

    def forward(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        """Functional ops on the submodules' tensors, not Module calls: a solver iteration is
        about 60 small ops, and a Module ``__call__`` costs about as much as its op
        (bench/expert_pass.py: 9 % of an iteration; the numbers are identical)."""
        b, h, w = x.shape
        hd = w // self.heads
        n1, n2, n3 = self.norm1, self.norm2, self.norm3
        fc1, fc2 = cast(nn.Linear, self.mlp[0]), cast(nn.Linear, self.mlp[2])
        y = F.layer_norm(x, (w,), n1.weight, n1.bias, n1.eps)
        qkv = F.linear(y, self.qkv.weight, self.qkv.bias).view(b, h, 3, self.heads, hd)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + F.linear(y.transpose(1, 2).reshape(b, h, w), self.proj.weight, self.proj.bias)
        y = F.layer_norm(x, (w,), n2.weight, n2.bias, n2.eps)
        q = F.linear(y, self.q.weight, self.q.bias).view(b, h, self.heads, hd).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + F.linear(y.transpose(1, 2).reshape(b, h, w), self.cross_proj.weight,
                         self.cross_proj.bias)
        y = F.layer_norm(x, (w,), n3.weight, n3.bias, n3.eps)
        y = F.gelu(F.linear(y, fc1.weight, fc1.bias), approximate="tanh")
        return x + F.linear(y, fc2.weight, fc2.bias)


class ActionExpert(nn.Module):
    """(B, H, d) action chunk (+ time for FM) and a cached prefix -> (B, H, d) field value."""

    def __init__(self, cfg: ModelConfig, timed: bool) -> None:
        super().__init__()
        w = cfg.width
        self.timed = timed
        self.action_in = nn.Linear(cfg.action_dim, w)
        self.pos = nn.Parameter(torch.randn(cfg.horizon, w) * 0.02)
        self.time_mlp = (
            nn.Sequential(nn.Linear(2 * w, w), nn.SiLU(), nn.Linear(w, w)) if timed else None
        )
        self.prefix_norm = nn.LayerNorm(w)
        self.blocks: list[ExpertBlock] = nn.ModuleList(  # type: ignore[assignment]
            ExpertBlock(w, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(w)
        self.action_out = nn.Linear(w, cfg.action_dim)

    def cache_prefix(self, tokens: Tensor, mask: Tensor | None = None) -> PrefixKV:
        """Project the prefix tokens (B, P, W) into every block's K/V once.

        mask: (B, P) bool, True for valid prefix tokens (PaliGemma text padding), or None.
        """
        normed = self.prefix_norm(tokens)
        attn_mask = None if mask is None else mask[:, None, None, :]
        return PrefixKV([blk.prefix_kv(normed) for blk in self.blocks], attn_mask)

    def forward(self, actions: Tensor, prefix: PrefixKV, time: Tensor | None = None) -> Tensor:
        x = F.linear(actions, self.action_in.weight, self.action_in.bias) + self.pos  # (B, H, W)
        if self.time_mlp is not None:
            if time is None:
                raise ValueError("the FM expert needs a time input")
            temb = sincos_time_embedding(time, x.shape[-1]).to(x.dtype)  # (B, W)
            x = self.time_mlp(torch.cat([x, temb[:, None, :].expand_as(x)], dim=-1))
        for blk, (k, v) in zip(self.blocks, prefix.kv, strict=True):
            x = blk.forward(x, k, v, prefix.mask)  # no Module __call__ (see ExpertBlock)
        n = self.norm_out
        x = F.layer_norm(x, (x.shape[-1],), n.weight, n.bias, n.eps)
        return F.linear(x, self.action_out.weight, self.action_out.bias)
