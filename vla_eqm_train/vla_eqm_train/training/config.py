"""Training configuration: one frozen dataclass, loaded from YAML, every field validated.

The architecture comes from a core preset (``vla_eqm_ros.config.PRESETS``) with optional
overrides; everything the dataset fixes (cameras, state and action sizes and names, contract,
control period) is filled in from the cache, so a config cannot disagree with its data.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def check_keys(cls: type, data: dict[str, Any], what: str) -> None:
    """A YAML mapping's keys must be fields of ``cls``; the error names the closest one."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        hint = difflib.get_close_matches(str(unknown[0]), names, n=1)
        extra = f"; did you mean '{hint[0]}'?" if hint else ""
        raise ValueError(f"unknown {what} key '{unknown[0]}'{extra}")


@dataclass(frozen=True)
class TrainConfig:
    """What ``vla-eqm train`` does; paths are relative to the working directory."""

    dataset: str  # cache directory built by `vla-eqm dataset build`
    out: str  # checkpoint directory (model.safetensors + config.yaml) written at the end
    run_dir: str = ""  # resumable state, logs, loss curves; default runs/<out name>
    preset: str = "default"  # core architecture preset (debug | default | default_fm)
    decoder: str = "eqm"  # eqm | fm (same backbone, same data: a matched-budget baseline)
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides (e.g. horizon)
    policy: dict[str, Any] = field(default_factory=dict)  # PolicyConfig overrides (solver, ...)
    steps: int = 3000  # optimizer steps
    batch_size: int = 64  # observations per step: the global batch (torchrun ranks split it)
    repeats: int = 4  # (noise, gamma/t) draws per observation against one prefix encoding
    lr: float = 3e-4  # AdamW peak learning rate
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas
    warmup_steps: int = 200  # linear warm-up, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.05  # floor of the cosine schedule, as a share of lr
    grad_clip: float = 1.0  # max global gradient norm (0 disables)
    ema_decay: float = 0.999  # EMA of the weights; the checkpoint stores the EMA weights
    shift_pad: int = 4  # random-shift augmentation: pad by this many px, crop back (0 = off)
    val_every: int = 250  # steps between validation passes (and log lines)
    val_batches: int = 4  # validation batches per pass
    ckpt_every: int = 500  # steps between resumable-state saves (and interim checkpoints)
    seed: int = 0  # seeds sampling, noise, augmentation and initialization
    threads: int = 0  # torch CPU threads (0 = torch's default)
    device: str = "auto"  # auto (cuda when present) | cpu | cuda
    time_limit_min: float = 0.0  # stop early (and save) after this much wall time; 0 = none

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        _check(bool(self.dataset), "dataset must name a cache directory")
        _check(bool(self.out), "out must name a checkpoint directory")
        _check(self.decoder in ("eqm", "fm"),
               f"decoder must be 'eqm' or 'fm', got {self.decoder!r}")
        for key in ("steps", "batch_size", "repeats", "val_every", "val_batches", "ckpt_every"):
            _check(int(getattr(self, key)) >= 1, f"{key} must be >= 1, got {getattr(self, key)}")
        _check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        _check(math.isfinite(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(0.0 <= self.min_lr_ratio <= 1.0, f"min_lr_ratio must be in [0, 1], got "
                                                f"{self.min_lr_ratio}")
        _check(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}")
        _check(0.0 <= self.ema_decay < 1.0, f"ema_decay must be in [0, 1), got {self.ema_decay}")
        _check(self.shift_pad >= 0, f"shift_pad must be >= 0, got {self.shift_pad}")
        _check(self.device in ("auto", "cpu", "cuda"), f"device must be auto|cpu|cuda, got "
                                                       f"{self.device!r}")
        _check(self.threads >= 0, f"threads must be >= 0, got {self.threads}")

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path("runs") / Path(self.out).name

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        check_keys(cls, data, "training config")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(data)
