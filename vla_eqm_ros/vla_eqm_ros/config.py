"""Policy configuration: frozen dataclasses, named presets and their YAML form.

Every number that shapes the model, the decoder or the deployment lives here, validated once, so the
rest of the core can trust its inputs. Paper symbols (pi0-EqM, arXiv:2605.23128) are quoted on the
fields they correspond to. ``PolicyConfig.to_dict``/``from_dict`` is the YAML form stored in
checkpoints (``config.yaml``); unknown keys are rejected so that a typo never silently falls back to
a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DECODERS = ("eqm", "fm")
ENERGIES = ("none", "dot", "l2")
BACKBONES = ("small", "paligemma")
WARM_START_MODES = ("none", "copy", "shifted", "frozen")
WARM_START_TAILS = ("noise", "hold")
RL_METHODS = ("none", "residual", "steer")
NORMALIZATION_MODES = ("zscore", "quantile", "identity")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        hint = difflib.get_close_matches(str(value), options, n=1)
        extra = f"; did you mean '{hint[0]}'?" if hint else ""
        raise ValueError(f"{name} must be one of {options}, got {value!r}{extra}")


@dataclass(frozen=True)
class CameraConfig:
    """One camera as the robot publishes it; the model resizes to ``ModelConfig.image_size``."""

    name: str  # camera name, as in /camera/<name>/image_raw
    height: int  # px, height of the published image (>0)
    width: int  # px, width of the published image (>0)

    def __post_init__(self) -> None:
        _check(bool(self.name) and "/" not in self.name, f"camera name is invalid: {self.name!r}")
        _check(self.height > 0 and self.width > 0,
               f"camera '{self.name}' size must be positive, got {self.height}x{self.width}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: prefix encoder (vision, language, state) and the action expert."""

    cameras: tuple[CameraConfig, ...] = (CameraConfig("corner", 96, 96),)
    image_size: int = 96  # px, square size every camera is resized to before the conv encoder
    state_dim: int = 4  # proprioceptive state size (contract order)
    action_dim: int = 4  # d, action size per step
    horizon: int = 16  # H, actions per chunk
    width: int = 128  # expert and prefix token width
    depth: int = 3  # action-expert blocks (self-attn over H tokens + cross-attn to prefix + MLP)
    heads: int = 4  # attention heads (width % heads == 0)
    mlp_ratio: float = 2.0  # MLP hidden = mlp_ratio * width (2: the expert pass is latency-bound)
    prefix_depth: int = 1  # self-attention blocks mixing prefix tokens (vision x language x state)
    vision_channels: tuple[int, ...] = (32, 64, 96, 128)  # conv stages, each halves the resolution
    vision_grid: int = 4  # spatial tokens per camera = vision_grid**2
    language_dim: int = 384  # MiniLM-L6 sentence embedding size
    language_tokens: int = 2  # prefix tokens the goal embedding is projected to
    backbone: str = "small"  # "small" (conv + MiniLM) or "paligemma" (transformers VLM)
    backbone_path: str = ""  # local directory of the PaliGemma weights when backbone == "paligemma"
    freeze_backbone: bool = True  # PaliGemma weights frozen (and then not stored in checkpoints)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(
            c if isinstance(c, CameraConfig) else CameraConfig(**c) for c in self.cameras))
        object.__setattr__(self, "vision_channels", tuple(int(c) for c in self.vision_channels))
        _check(len(self.cameras) >= 1, "model needs at least one camera")
        names = [c.name for c in self.cameras]
        _check(len(set(names)) == len(names), f"camera names must be unique, got {names}")
        for key in ("image_size", "action_dim", "horizon", "width", "depth", "heads",
                    "vision_grid", "language_dim", "language_tokens"):
            _check(getattr(self, key) > 0, f"model.{key} must be > 0, got {getattr(self, key)}")
        _check(self.state_dim >= 0, f"model.state_dim must be >= 0, got {self.state_dim}")
        _check(self.prefix_depth >= 0, f"model.prefix_depth must be >= 0, got {self.prefix_depth}")
        _check(self.width % self.heads == 0,
               f"model.width ({self.width}) must be divisible by model.heads ({self.heads})")
        _check(self.mlp_ratio > 0, f"model.mlp_ratio must be > 0, got {self.mlp_ratio}")
        _check(len(self.vision_channels) >= 1 and all(c > 0 for c in self.vision_channels),
               f"model.vision_channels must be positive, got {self.vision_channels}")
        _check(self.image_size >= 2 ** len(self.vision_channels) * 1,
               f"model.image_size {self.image_size} too small for {len(self.vision_channels)} "
               "stride-2 stages")
        _choice("model.backbone", self.backbone, BACKBONES)
        _check(self.backbone != "paligemma" or bool(self.backbone_path),
               "model.backbone_path must name a local directory when backbone is 'paligemma'")


@dataclass(frozen=True)
class EqMConfig:
    """EqM schedule w(gamma) = lam * min(1, (1 - gamma) / (1 - a)) (EqM reference code), and the
    training distribution of gamma: uniform (the paper), or Beta(alpha, beta), which can put more
    of the training signal where the solver spends its iterations (near the data, gamma -> 1)."""

    lam: float = 4.0  # lambda, gradient magnitude scale (>0)
    a: float = 0.8  # a in [0, 1): gamma beyond which the target decays linearly to 0 at gamma = 1
    gamma_dist: str = "uniform"  # uniform | beta
    gamma_alpha: float = 1.0  # Beta parameters (gamma_dist: beta); (1, 1) is uniform
    gamma_beta: float = 1.0
    # EqM-E: the field as the gradient of a learned scalar energy g (EqM reference code):
    # none (the expert's output is the field) | dot: g = <A, f(A)> | l2: g = -||f(A)||^2 / 2.
    energy: str = "none"

    def __post_init__(self) -> None:
        _check(self.lam > 0, f"eqm.lam must be > 0, got {self.lam}")
        _check(0.0 <= self.a < 1.0, f"eqm.a must be in [0, 1), got {self.a}")
        _check(self.gamma_dist in ("uniform", "beta"),
               f"eqm.gamma_dist must be uniform or beta, got {self.gamma_dist!r}")
        _check(self.energy in ENERGIES,
               f"eqm.energy must be one of {ENERGIES}, got {self.energy!r}")
        _check(self.gamma_alpha > 0 and self.gamma_beta > 0,
               f"eqm gamma Beta parameters must be > 0, got ({self.gamma_alpha}, "
               f"{self.gamma_beta})")


@dataclass(frozen=True)
class FMConfig:
    """Flow-matching baseline as openpi/pi0: t ~ Beta(alpha, beta) toward noise (t = 1), Euler."""

    beta_alpha: float = 1.5  # Beta distribution first parameter (openpi: 1.5)
    beta_beta: float = 1.0  # Beta distribution second parameter (openpi: 1.0)
    steps: int = 10  # N, Euler steps at inference (openpi: 10)

    def __post_init__(self) -> None:
        _check(self.beta_alpha > 0 and self.beta_beta > 0,
               f"fm Beta parameters must be > 0, got ({self.beta_alpha}, {self.beta_beta})")
        _check(self.steps >= 1, f"fm.steps must be >= 1, got {self.steps}")


def parse_tau_by_goal(entries: Sequence[str]) -> dict[str, float]:
    """``["0.05=pick up the puck", ...]`` -> {goal: tau}; ValueError names the bad entry."""
    out: dict[str, float] = {}
    for entry in entries:
        tau_text, sep, goal = str(entry).partition("=")
        try:
            tau = float(tau_text)
        except ValueError:
            tau = math.nan
        _check(bool(sep) and bool(goal.strip()) and math.isfinite(tau) and tau >= 0,
               f"solver.tau_by_goal entries are 'TAU=GOAL' with TAU >= 0, got {entry!r}")
        _check(goal.strip() not in out, f"solver.tau_by_goal lists {goal.strip()!r} twice")
        out[goal.strip()] = tau
    return out


@dataclass(frozen=True)
class SolverConfig:
    """EqM Nesterov solver (paper Eqs. 2-4); tunable at run time."""

    tau: float = 0.1  # tau, stop when r_k = ||f(A~_k)||_2 / sqrt(H d) <= tau (>= 0)
    k_max: int = 100  # K_max, most field evaluations per solve (>= 1)
    step_size: float = 0.05  # eta, A_{k+1} = A~_k - eta f(A~_k) (> 0); (1 - a) / lam lands exactly
    momentum: float = 0.3  # mu in [0, 1), A~_k = A_k + mu (A_k - A_{k-1})
    deadline_ms: float = 0.0  # ms wall clock per solve; 0 disables the deadline (anytime decoding)
    # a tau per language goal, "TAU=GOAL" entries (the node's string-array parameter, as is):
    # the paper's optimum is task-dependent; goals not listed use ``tau``
    tau_by_goal: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(math.isfinite(self.tau) and self.tau >= 0,
               f"solver.tau must be >= 0, got {self.tau}")
        object.__setattr__(self, "tau_by_goal", tuple(self.tau_by_goal or ()))
        parse_tau_by_goal(self.tau_by_goal)  # validates
        _check(int(self.k_max) == self.k_max and self.k_max >= 1,
               f"solver.k_max must be an integer >= 1, got {self.k_max}")
        _check(math.isfinite(self.step_size) and self.step_size > 0,
               f"solver.step_size must be > 0, got {self.step_size}")
        _check(0.0 <= self.momentum < 1.0,
               f"solver.momentum must be in [0, 1), got {self.momentum}")
        _check(math.isfinite(self.deadline_ms) and self.deadline_ms >= 0,
               f"solver.deadline_ms must be >= 0 (0 = none), got {self.deadline_ms}")

    def tau_for(self, goal: str | None) -> float:
        """The stop threshold for ``goal``: its ``tau_by_goal`` entry, else ``tau``."""
        if not self.tau_by_goal:
            return self.tau
        return parse_tau_by_goal(self.tau_by_goal).get((goal or "").strip(), self.tau)


@dataclass(frozen=True)
class WarmStartConfig:
    """How a solve starts from the previous chunk (paper Eq. 5, and our time-aligned shift)."""

    mode: str = "shifted"  # none | copy (paper: the previous chunk's first rows) | shifted | frozen
    fraction: float = 0.5  # share of H reused from the previous chunk, in [0, 1] (paper: 0.5)
    tail: str = "hold"  # rest of the chunk: noise (paper) | hold (last reused action repeated)
    # frozen: ``shifted``, with the first frozen_rows reused rows held fixed during the solve (the
    # actions that execute before the new chunk arrives: real-time chunking, no gradient pass)
    frozen_rows: int = 1

    def __post_init__(self) -> None:
        _choice("warm_start.mode", self.mode, WARM_START_MODES)
        _choice("warm_start.tail", self.tail, WARM_START_TAILS)
        _check(0.0 <= self.fraction <= 1.0,
               f"warm_start.fraction must be in [0, 1], got {self.fraction}")
        _check(int(self.frozen_rows) == self.frozen_rows and self.frozen_rows >= 0,
               f"warm_start.frozen_rows must be an integer >= 0, got {self.frozen_rows}")


@dataclass(frozen=True)
class NormalizationConfig:
    """How actions and state are normalized; the statistics themselves live in the weights file."""

    action: str = "zscore"  # zscore | quantile (q01/q99 -> [-1, 1], openpi) | identity
    state: str = "zscore"  # zscore | quantile | identity

    def __post_init__(self) -> None:
        _choice("normalization.action", self.action, NORMALIZATION_MODES)
        _choice("normalization.state", self.state, NORMALIZATION_MODES)


@dataclass(frozen=True)
class RLConfig:
    """A small head fine-tuned with online RL (``vla-eqm rl``, docs/rl.md) over a frozen decoder.

    Its weights live in ``model.safetensors`` under ``rl_head.``; this section says how they act.
    ``residual``: a correction of the first ``rows`` rows of the solved chunk (the rows that
    execute before the next solve), so the solver, its tau stop and the warm start (which reuses
    the solver's own output) are untouched. ``steer``: an offset of the solver's initial iterate
    over all H rows (noise-space steering, as DSRL does for diffusion). Deployment uses the
    head's mean; the standard deviation is only drawn from during RL rollouts.

    ``goals``: the instructions the head acts on; on any other goal the policy decodes exactly
    as its parent. ``vla-eqm rl`` sets them to its tasks' instructions: a head trained on one
    task's observations extrapolates on the others, and on MT50 a shelf-place head took
    drawer-open from 10/10 to 0/10 (docs/rl.md). Empty = every goal.
    """

    method: str = "none"  # none | residual | steer
    rows: int = 0  # chunk rows it acts on (residual: the execute_steps of its training; steer: H)
    hidden: int = 128  # width of the actor's and the critic's two hidden layers
    scale: float = 1.0  # |mean| <= scale (tanh), in normalized action units
    init_std: float = 0.3  # exploration standard deviation at the start of RL
    goals: tuple[str, ...] = ()  # instructions it acts on (vla-eqm rl: its tasks'); () = every goal

    def __post_init__(self) -> None:
        object.__setattr__(self, "goals", tuple(str(g).strip() for g in self.goals or ()))
        _choice("rl.method", self.method, RL_METHODS)
        _check(self.rows >= 0, f"rl.rows must be >= 0, got {self.rows}")
        _check(self.hidden > 0, f"rl.hidden must be > 0, got {self.hidden}")
        _check(math.isfinite(self.scale) and self.scale > 0,
               f"rl.scale must be > 0, got {self.scale}")
        _check(math.isfinite(self.init_std) and self.init_std > 0,
               f"rl.init_std must be > 0, got {self.init_std}")

    def acts_on(self, goal: str | None) -> bool:
        """Whether the head applies to an observation with this goal (see ``goals``)."""
        return self.method != "none" and (not self.goals or (goal or "").strip() in self.goals)


@dataclass(frozen=True)
class PolicyConfig:
    """Everything a checkpoint needs to rebuild and serve the policy."""

    model: ModelConfig = field(default_factory=ModelConfig)
    decoder: str = "eqm"  # eqm | fm
    eqm: EqMConfig = field(default_factory=EqMConfig)
    fm: FMConfig = field(default_factory=FMConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    rl: RLConfig = field(default_factory=RLConfig)  # an RL-fine-tuned head, if any (docs/rl.md)
    execute_steps: int = 4  # actions executed from each chunk before replanning (1..H)
    control_period: float = 0.05  # s between two executed actions (>0)
    action_names: tuple[str, ...] = ()  # names of the d action dims (empty = unnamed)
    state_names: tuple[str, ...] = ()  # names of the state dims (empty = unnamed)
    contract: dict[str, Any] = field(default_factory=dict)  # opaque; owned by contract.py
    provenance: dict[str, Any] = field(default_factory=dict)  # dataset, training run, git, ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "action_names", tuple(self.action_names))
        object.__setattr__(self, "state_names", tuple(self.state_names))
        _choice("decoder", self.decoder, DECODERS)
        _check(1 <= self.execute_steps <= self.model.horizon,
               f"execute_steps must be in [1, H={self.model.horizon}], got {self.execute_steps}")
        _check(self.control_period > 0, f"control_period must be > 0, got {self.control_period}")
        _check(self.rl.method == "none" or 1 <= self.rl.rows <= self.model.horizon,
               f"rl.rows must be in [1, H={self.model.horizon}] with an RL head, "
               f"got {self.rl.rows}")
        _check(not self.action_names or len(self.action_names) == self.model.action_dim,
               f"{len(self.action_names)} action_names for action_dim {self.model.action_dim}")
        _check(not self.state_names or len(self.state_names) == self.model.state_dim,
               f"{len(self.state_names)} state_names for state_dim {self.model.state_dim}")

    def replace(self, **changes: Any) -> PolicyConfig:
        """A validated copy with top-level fields changed (sub-configs via their own replace)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-safe mapping (tuples become lists)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyConfig:
        """Inverse of ``to_dict``; rejects unknown keys naming the closest known one."""
        return _build(cls, data, "")

    def save_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load_yaml(cls, path: str | Path) -> PolicyConfig:
        data = yaml.safe_load(Path(path).read_text())
        if not isinstance(data, Mapping):
            raise ValueError(
                f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return cls.from_dict(data)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_NESTED: dict[str, type] = {
    "model": ModelConfig, "eqm": EqMConfig, "fm": FMConfig, "solver": SolverConfig,
    "warm_start": WarmStartConfig, "normalization": NormalizationConfig, "rl": RLConfig,
}


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            hint = difflib.get_close_matches(str(key), names, n=1)
            extra = f"; did you mean '{hint[0]}'?" if hint else ""
            raise ValueError(f"unknown config key '{where}{key}'{extra}")
        if cls is PolicyConfig and key in _NESTED:
            value = _build(_NESTED[key], value, f"{key}.")
        elif cls is ModelConfig and key == "cameras":
            value = tuple(_build(CameraConfig, c, "model.cameras.") for c in value)
        kwargs[key] = value
    return cls(**kwargs)


def _debug() -> PolicyConfig:
    """Tiny: runs anywhere in milliseconds; for tests."""
    return PolicyConfig(
        model=ModelConfig(cameras=(CameraConfig("corner", 32, 32),), image_size=32, state_dim=4,
                          action_dim=4, horizon=8, width=32, depth=1, heads=2, mlp_ratio=2.0,
                          prefix_depth=1, vision_channels=(8, 16), vision_grid=2,
                          language_tokens=1),
        solver=SolverConfig(k_max=50), execute_steps=2,
    )


def _default() -> PolicyConfig:
    """The shipped architecture: trains on 2 CPU cores, ~1 ms per solver iteration."""
    return PolicyConfig()


def _default_fm() -> PolicyConfig:
    """The flow-matching baseline on the default architecture (matched-budget comparisons)."""
    return PolicyConfig(decoder="fm")


PRESETS: dict[str, Callable[[], PolicyConfig]] = {
    "debug": _debug,
    "default": _default,
    "default_fm": _default_fm,
}


def get_preset(name: str) -> PolicyConfig:
    """A named preset; a typo raises with the closest preset name."""
    if name not in PRESETS:
        hint = difflib.get_close_matches(name, list(PRESETS), n=1)
        extra = f"; did you mean '{hint[0]}'?" if hint else ""
        raise KeyError(f"unknown preset '{name}' (known: {sorted(PRESETS)}){extra}")
    return PRESETS[name]()
