"""Prefix encoders: turn (images, goal, state) into the token sequence the action expert attends to.

Two interchangeable implementations with one interface (``goal_features`` + ``forward``):

- ``SmallPrefixEncoder`` (default): a conv encoder per camera (a few spatial tokens each), the goal
  embedded by the frozen MiniLM-L6 (``language.py``) and projected to a couple of tokens, and a
  state token; a light self-attention stack lets the tokens mix, as the VLM does in pi0.
- ``PaliGemmaPrefix``: a ``transformers`` PaliGemma loaded from a local directory (pi0's backbone);
  its last hidden states over [image tokens ; goal tokens] are projected to the expert width, and a
  state token is appended, as pi0 does.

The state is normalized by the model before it gets here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vla_eqm_ros.config import ModelConfig
from vla_eqm_ros.language import GoalEncoder
from vla_eqm_ros.vision import ConvEncoder, images_to_tensor


class PrefixEncoder(nn.Module):
    """The interface the model relies on; see the two implementations below."""

    def goal_features(self, goals: list[str]) -> dict[str, Tensor]:
        """Goal strings -> the batch entries ``forward`` reads (embeddings or token ids)."""
        raise NotImplementedError

    def frozen_prefixes(self) -> tuple[str, ...]:
        """State-dict key prefixes that are not ours to store (reloaded from elsewhere)."""
        return ()

    def forward(self, batch: dict) -> tuple[Tensor, Tensor | None]:
        """Batch -> prefix tokens (B, P, W) and their validity mask (B, P) or None."""
        raise NotImplementedError


class SmallPrefixEncoder(PrefixEncoder):
    """Conv tokens per camera + MiniLM goal tokens + a state token, mixed by ``prefix_depth``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.cameras = [c.name for c in cfg.cameras]
        self.vision = nn.ModuleDict(
            {name: ConvEncoder(cfg.vision_channels, cfg.vision_grid, w) for name in self.cameras})
        self.camera_embed = nn.Parameter(torch.randn(len(self.cameras), w) * 0.02)
        self.language_proj = nn.Linear(cfg.language_dim, cfg.language_tokens * w)
        self.language_embed = nn.Parameter(torch.randn(cfg.language_tokens, w) * 0.02)
        self.state_proj = nn.Linear(max(cfg.state_dim, 1), w)
        self.mixer = nn.ModuleList(
            nn.TransformerEncoderLayer(w, cfg.heads, int(w * cfg.mlp_ratio), dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(cfg.prefix_depth))
        self._goal_encoder: GoalEncoder | None = None  # not a submodule: never in the checkpoint

    @property
    def goal_encoder(self) -> GoalEncoder:
        if self._goal_encoder is None:
            self._goal_encoder = GoalEncoder()
        return self._goal_encoder

    def goal_features(self, goals: list[str]) -> dict[str, Tensor]:
        """Goal strings -> {"goal_embedding": (B, 384)} from the frozen, cached MiniLM."""
        return {"goal_embedding": self.goal_encoder.encode(goals)}

    def forward(self, batch: dict) -> tuple[Tensor, Tensor | None]:
        """batch: images {cam: (B, h, w, 3) uint8}, state (B, S) normalized, goal_embedding
        (B, 384).

        Returns prefix tokens (B, P, W) with P = cams * grid^2 + language_tokens + 1, and no mask.
        """
        tokens = []
        for i, name in enumerate(self.cameras):
            img = images_to_tensor(batch["images"][name], self.cfg.image_size)
            img = img.to(self.camera_embed.device)
            tokens.append(self.vision[name](img) + self.camera_embed[i])  # (B, g*g, W)
        goal = torch.as_tensor(batch["goal_embedding"]).to(self.camera_embed.device,
                                                          self.camera_embed.dtype)
        b = goal.shape[0]
        lang = self.language_proj(goal).view(b, self.cfg.language_tokens, -1)
        tokens.append(lang + self.language_embed)
        state = batch["state"].to(goal.dtype)
        if state.shape[-1] == 0:
            state = torch.zeros(b, 1, dtype=goal.dtype, device=goal.device)
        tokens.append(self.state_proj(state)[:, None, :])  # (B, 1, W)
        x = torch.cat(tokens, dim=1)
        for layer in self.mixer:
            x = layer(x)
        return x, None


class PaliGemmaPrefix(PrefixEncoder):
    """pi0's backbone: PaliGemma hidden states over [images ; goal tokens] + a state token.

    The VLM loads from a local directory only (``local_files_only=True``). The goal tokenizer is
    the one saved in that directory, if any; otherwise pass ``tokenizer`` (a callable from a list
    of strings to ``(ids (B, L) long, mask (B, L) bool)``), which is what the tiny random test
    model does. The prefix attends bidirectionally (token_type_ids = 0), as in pi0.
    """

    def __init__(self, cfg: ModelConfig,
                 tokenizer: Callable[[list[str]], tuple[Tensor, Tensor]] | None = None) -> None:
        super().__init__()
        from transformers import PaliGemmaForConditionalGeneration

        self.cfg = cfg
        path = Path(cfg.backbone_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"PaliGemma backbone: no config.json in {path}")
        vlm = PaliGemmaForConditionalGeneration.from_pretrained(str(path), local_files_only=True)
        self.vlm = vlm.model  # PaliGemmaModel: vision tower + projector + Gemma, no LM head
        if cfg.freeze_backbone:
            self.vlm.eval()
            self.vlm.requires_grad_(False)
        vcfg: Any = vlm.config.vision_config
        self.image_size = int(vcfg.image_size)
        self.tokens_per_image = (vcfg.image_size // vcfg.patch_size) ** 2
        self.image_token_id = int(vlm.config.image_token_id)
        tcfg: Any = vlm.config.text_config
        hidden = int(tcfg.hidden_size)
        self.cameras = [c.name for c in cfg.cameras]
        self.out_proj = nn.Linear(hidden, cfg.width)
        self.state_proj = nn.Linear(max(cfg.state_dim, 1), cfg.width)
        self._tokenizer = tokenizer if tokenizer is not None else self._load_tokenizer(path)

    @staticmethod
    def _load_tokenizer(path: Path) -> Callable[[list[str]], tuple[Tensor, Tensor]]:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:
            raise FileNotFoundError(
                f"PaliGemma backbone: no usable tokenizer in {path} ({exc}); pass tokenizer="
            ) from exc

        def tokenize(goals: list[str]) -> tuple[Tensor, Tensor]:
            out = tok(goals, padding=True, return_tensors="pt")
            return out["input_ids"], out["attention_mask"].bool()

        return tokenize

    def frozen_prefixes(self) -> tuple[str, ...]:
        """A frozen VLM is reloaded from ``backbone_path``, so checkpoints leave it out."""
        return ("vlm.",) if self.cfg.freeze_backbone else ()

    def train(self, mode: bool = True) -> PaliGemmaPrefix:
        super().train(mode)
        if self.cfg.freeze_backbone:
            self.vlm.eval()
        return self

    def goal_features(self, goals: list[str]) -> dict[str, Tensor]:
        ids, mask = self._tokenizer(goals)
        return {"goal_tokens": ids.long(), "goal_mask": mask.bool()}

    def forward(self, batch: dict) -> tuple[Tensor, Tensor | None]:
        """batch: images {cam: (B, h, w, 3) uint8}, state (B, S), goal_tokens/goal_mask (B, L).

        Returns (B, cams * N_img + L + 1, W) tokens and their validity mask (B, P).
        """
        ids = batch["goal_tokens"]
        text_mask = batch["goal_mask"]
        b = ids.shape[0]
        dev = self.out_proj.weight.device
        pixels = torch.stack(
            [images_to_tensor(batch["images"][n], self.image_size) for n in self.cameras], dim=1)
        pixels = (pixels * 2.0 - 1.0).flatten(0, 1).to(dev)  # (B*cams, 3, S, S), SigLIP [-1, 1]
        n_img = len(self.cameras) * self.tokens_per_image
        img_ids = torch.full((b, n_img), self.image_token_id, dtype=torch.long)
        input_ids = torch.cat([img_ids, ids.cpu()], dim=1).to(dev)
        attn = torch.cat([torch.ones(b, n_img, dtype=torch.bool), text_mask.cpu()], dim=1).to(dev)
        out = self.vlm(input_ids=input_ids, pixel_values=pixels.to(self.out_proj.weight.dtype),
                       attention_mask=attn.long(), token_type_ids=torch.zeros_like(input_ids))
        tokens = self.out_proj(out.last_hidden_state.to(self.out_proj.weight.dtype))
        state = batch["state"].to(tokens.dtype)
        if state.shape[-1] == 0:
            state = torch.zeros(b, 1, dtype=tokens.dtype, device=tokens.device)
        tokens = torch.cat([tokens, self.state_proj(state)[:, None, :]], dim=1)
        mask = torch.cat([attn, torch.ones(b, 1, dtype=torch.bool, device=dev)], dim=1)
        return tokens, mask


def build_prefix_encoder(cfg: ModelConfig, **kwargs: Any) -> PrefixEncoder:
    """The configured prefix encoder (``kwargs`` go to PaliGemmaPrefix, e.g. ``tokenizer``)."""
    if cfg.backbone == "paligemma":
        return PaliGemmaPrefix(cfg, **kwargs)
    return SmallPrefixEncoder(cfg)
