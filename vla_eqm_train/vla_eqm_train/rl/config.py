"""``vla-eqm rl`` settings: one frozen dataclass, from YAML or flags, every field validated."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vla_eqm_ros.config import RL_METHODS
from vla_eqm_train.training.config import check_keys

TRAIN_VARIATION_SEED = 2000  # rollouts: neither the demos' seed 0 nor eval-sim's held-out 1000
EVAL_VARIATION_SEED = 1000  # eval-sim's held-out set: the curve and the final table use it


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True)
class RLTrainConfig:
    """What one RL run does. Episode counts are per task; an iteration is one rollout batch
    followed by one PPO update."""

    tasks: tuple[str, ...] = ()  # Meta-World tasks to fine-tune on (default: the checkpoint's)
    method: str = "residual"  # residual | steer (config.RLConfig)
    iterations: int = 60
    episodes_per_iteration: int = 16  # per task
    max_steps: int = 200  # episode step limit of rollouts and evaluations
    hidden: int = 128
    scale: float = 1.0  # |mean offset| bound, normalized action units
    init_std: float = 0.3
    lr: float = 3e-4
    gamma: float = 0.99  # per decision (execute_steps ticks)
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 8
    minibatch: int = 256
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    target_kl: float = 0.05
    max_grad_norm: float = 0.5
    eval_every: int = 5  # iterations between held-out evaluations (0: only at the end)
    eval_episodes: int = 20  # per task
    train_seed: int = TRAIN_VARIATION_SEED
    eval_seed: int = EVAL_VARIATION_SEED
    seed: int = 0  # policy noise, exploration and minibatch order
    workers: int = 2
    time_limit_min: float = 0.0  # stop (resumably) after this much wall time in all; 0: none
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept in the report

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        _check(self.method in RL_METHODS and self.method != "none",
               f"method must be residual or steer, got {self.method!r}")
        for name in ("iterations", "episodes_per_iteration", "max_steps", "hidden", "epochs",
                     "minibatch", "eval_episodes", "workers"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("scale", "init_std", "lr", "clip", "max_grad_norm"):
            _check(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        _check(0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1,
               f"gamma in (0, 1] and gae_lambda in [0, 1], got {self.gamma}, {self.gae_lambda}")
        _check(self.eval_every >= 0 and self.time_limit_min >= 0,
               "eval_every and time_limit_min must be >= 0")
        _check(self.train_seed != self.eval_seed,
               f"train_seed and eval_seed must differ (both {self.train_seed}): evaluation "
               "must use held-out variations")

    def replace(self, **changes: Any) -> RLTrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RLTrainConfig:
        check_keys(cls, data, "rl config")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> RLTrainConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping")
        return cls.from_dict(data)
