"""``Policy``: the LeRobot-style surface over model + solver + warm start, in physical units.

Nodes, evaluation and benchmarks call only this: ``predict_action_chunk`` (one decode, with its
``DecodeRecord``), ``select_action`` (one tick of the shared receding-horizon executor),
``reset``, ``update_solver`` (validated; takes effect on the next call) and ``model_forward`` (the
training loss). The policy is not an ``nn.Module``: it owns deployment state (the warm-start chunk,
the action queue, the noise generator, the solver settings) that must never end up in a checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_eqm_ros import settings
from vla_eqm_ros.checkpoint import load_checkpoint
from vla_eqm_ros.config import PolicyConfig
from vla_eqm_ros.execution import RecedingHorizon, guard_for_config
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_ros.observation import Observation
from vla_eqm_ros.solvers import SolveResult, eqm_solve, fm_integrate
from vla_eqm_ros.warm_start import WarmStartState, frozen_rows, init_chunk

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "default_eqm"


@dataclass
class RLStep:
    """What the RL head did in one decode (``config.rl``): its input features, the flat action
    it took, that action's log probability and the critic's value; RL rollouts collect these."""

    features: np.ndarray
    action: np.ndarray
    log_prob: float
    value: float


@dataclass
class DecodeRecord:
    """What one decode did; mirrors vla_eqm_msgs/DecoderStatus field for field."""

    decoder: str
    tau: float
    k_max: int
    step_size: float
    momentum: float
    deadline_ms: float
    fm_steps: int
    iterations: int
    residual: float
    residual_trace: list[float] = field(default_factory=list)
    stop_reason: str = ""
    warm_start: str = "none"
    warm_start_fraction: float = 0.0
    warm_start_tail: str = "noise"
    warm_start_used: bool = False
    prefix_ms: float = 0.0
    solve_ms: float = 0.0


def _record(cfg: PolicyConfig, res: SolveResult, i: int, used: bool, prefix_ms: float,
            solve_ms: float, tau: float) -> DecodeRecord:
    trace = res.trace[i]
    return DecodeRecord(
        decoder=cfg.decoder, tau=tau, k_max=cfg.solver.k_max,
        step_size=cfg.solver.step_size, momentum=cfg.solver.momentum,
        deadline_ms=cfg.solver.deadline_ms, fm_steps=cfg.fm.steps,
        iterations=int(res.iterations[i]), residual=float(res.residual[i]),
        residual_trace=[float(r) for r in trace[~torch.isnan(trace)]],
        stop_reason=res.stop_reason[i], warm_start=cfg.warm_start.mode,
        warm_start_fraction=cfg.warm_start.fraction, warm_start_tail=cfg.warm_start.tail,
        warm_start_used=used, prefix_ms=prefix_ms, solve_ms=solve_ms,
    )


class Policy:
    """A deployable policy: decode chunks from ``Observation``s, keep warm-start state, retune."""

    def __init__(self, model: PI0EqMModel, *, device: str | torch.device = "cpu",
                 seed: int | None = None) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self._config: PolicyConfig = model.config
        self._generator = torch.Generator()
        self._seed = seed
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(seed)
        self.warm_start = WarmStartState()
        self._horizon: RecedingHorizon | None = None  # select_action's executor, on first use
        self._goal: str | None = None
        self.last_record: DecodeRecord | None = None
        # RL rollouts set a generator: the head then draws around its mean (deployment: None)
        self.exploration: torch.Generator | None = None
        self.last_rl: RLStep | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "cpu",
                        *, seed: int | None = None) -> Policy:
        """Load a checkpoint directory; None resolves the shipped default checkpoint."""
        if path is None:
            path = DEFAULT_CHECKPOINT
            if not (path / "config.yaml").is_file():
                raise FileNotFoundError(
                    f"no shipped default checkpoint at {path}; retrain it with "
                    "`vla-eqm train --config vla_eqm_train/config/default_eqm.yaml` after "
                    "recording and building its dataset (docs/training.md), or pass an explicit "
                    "checkpoint directory")
        _, model = load_checkpoint(path, device=device)
        return cls(model, device=device, seed=seed)

    @property
    def config(self) -> PolicyConfig:
        """The settings in force (architecture, decoder, solver, warm start, contract, ...)."""
        return self._config

    # ---------------------------------------------------------------------------------- inputs

    def observation_batch(self, observations: list[Observation]) -> dict[str, Any]:
        """Observations -> model batch (raises ValueError naming a missing camera / bad state)."""
        m = self._config.model
        images: dict[str, torch.Tensor] = {}
        for cam in m.cameras:
            frames = []
            for obs in observations:
                if cam.name not in obs.images:
                    raise ValueError(f"observation has no image for camera '{cam.name}' "
                                     f"(has {sorted(obs.images)})")
                frames.append(torch.from_numpy(np.ascontiguousarray(obs.images[cam.name])))
            sizes = {tuple(f.shape) for f in frames}
            if len(sizes) > 1:
                raise ValueError(f"camera '{cam.name}' frames differ in size in one batch: {sizes}")
            images[cam.name] = torch.stack(frames)
        states = []
        for obs in observations:
            if obs.state.shape != (m.state_dim,):
                raise ValueError(f"state must have {m.state_dim} values, got {obs.state.shape[0]}")
            states.append(torch.from_numpy(obs.state))
        batch: dict[str, Any] = {"images": images, "state": torch.stack(states)}
        batch.update(self.model.goal_features([obs.goal for obs in observations]))
        return batch

    # ---------------------------------------------------------------------------------- decode

    def _decode(self, batch: dict[str, Any], cfg: PolicyConfig, x0: torch.Tensor | None,
                warm: bool, steps_executed: int | None, tau: float | torch.Tensor,
                goals: list[str]) -> tuple[torch.Tensor, SolveResult, bool, float, RLStep | None]:
        # inference_mode, the fastest, except for EqM-E: its field is an autograd gradient.
        energy = cfg.decoder == "eqm" and cfg.eqm.energy != "none"
        with torch.inference_mode(not energy), torch.no_grad():
            return self._decode_inner(batch, cfg, x0, warm, steps_executed, tau, goals)

    def _decode_inner(self, batch: dict[str, Any], cfg: PolicyConfig, x0: torch.Tensor | None,
                      warm: bool, steps_executed: int | None, tau: float | torch.Tensor,
                      goals: list[str]
                      ) -> tuple[torch.Tensor, SolveResult, bool, float, RLStep | None]:
        t0 = time.perf_counter()
        prefix = self.model.encode_prefix(batch)
        prefix_ms = (time.perf_counter() - t0) * 1e3
        m = cfg.model
        if x0 is None:
            x0 = torch.randn((prefix.batch_size, m.horizon, m.action_dim),
                             generator=self._generator)
        x0 = x0.to(self.device)
        used, frozen = False, 0
        if cfg.decoder == "eqm" and warm:
            x0, used = init_chunk(self.warm_start, cfg.warm_start, x0, steps_executed)
            steps = self.warm_start.steps_since if steps_executed is None else steps_executed
            frozen = frozen_rows(cfg.warm_start, m.horizon, steps, used)
        head, rl, gate = self.model.rl_head, None, None
        if head is not None:  # rl.goals: the head acts only on the goals it was trained on
            on = [cfg.rl.acts_on(g) for g in goals]
            if not any(on):
                head = None
            elif not all(on):
                gate = torch.tensor(on, dtype=x0.dtype, device=x0.device).view(-1, 1, 1)
        if head is not None and head.method == "steer":  # the initial iterate, warm or cold
            offset, rl = self._rl_act(head.features(prefix.tokens), m.horizon, gate)
            x0 = x0 + offset
        if cfg.decoder == "eqm":
            s = cfg.solver
            res = eqm_solve(lambda a: self.model.field(a, prefix), x0, step_size=s.step_size,
                            momentum=s.momentum, tau=tau, k_max=s.k_max,
                            deadline_s=s.deadline_ms / 1e3 if s.deadline_ms > 0 else None,
                            frozen_rows=frozen)
        else:
            res = fm_integrate(lambda x, t: self.model.field(x, prefix, t), x0, cfg.fm.steps)
        solved = res.actions  # what the warm start reuses: the solver's own output
        if head is not None and head.method == "residual":
            offset, rl = self._rl_act(head.features(prefix.tokens, solved), m.horizon, gate)
            solved = solved + offset
        actions = self.model.action_normalizer.unnormalize(solved)
        return actions, res, used, prefix_ms, rl

    def _rl_act(self, features: torch.Tensor, horizon: int, gate: torch.Tensor | None
                ) -> tuple[torch.Tensor, RLStep]:
        """The head's (B, H, d) offset, zero for the samples ``gate`` (B, 1, 1) turns off."""
        head = self.model.rl_head
        assert head is not None
        flat, log_prob, value = head.act(features, self.exploration)
        step = RLStep(features=features[0].cpu().numpy().copy(),
                      action=flat[0].cpu().numpy().copy(), log_prob=float(log_prob[0]),
                      value=float(value[0]))
        offset = head.offset(flat, horizon)
        return (offset if gate is None else offset * gate), step

    def predict_action_chunk(self, obs: Observation, steps_executed: int | None = None
                             ) -> tuple[np.ndarray, DecodeRecord]:
        """Decode one chunk (H, d) float32 in physical units, warm-started per the config.

        ``steps_executed``: actions of the previous chunk executed since it was produced (the
        ``shifted`` warm start advances by it); None uses the count kept by ``select_action``.
        A new goal string resets the warm start. Raises ValueError on bad input and
        RuntimeError if the decoder produced non-finite actions (the warm start is then reset).
        """
        cfg = self._config  # one snapshot per call: update_solver applies from the next call
        if obs.goal != self._goal:
            self.warm_start.reset()
            self._goal = obs.goal
        batch = self.observation_batch([obs])
        tau = cfg.solver.tau_for(obs.goal)
        actions, res, used, prefix_ms, self.last_rl = self._decode(batch, cfg, None, True,
                                                                   steps_executed, tau, [obs.goal])
        if not bool(torch.isfinite(actions).all()):
            self.warm_start.reset()
            raise RuntimeError(f"decoder produced non-finite actions ({res.stop_reason[0]}, "
                               f"{int(res.iterations[0])} iterations)")
        self.warm_start.update(res.actions)
        rec = _record(cfg, res, 0, used, prefix_ms, res.solve_ms, tau)
        self.last_record = rec
        return actions[0].cpu().numpy().astype(np.float32), rec

    def predict_batch(self, observations: list[Observation], noise: torch.Tensor | None = None
                      ) -> tuple[np.ndarray, list[DecodeRecord]]:
        """Cold-start decode of many observations at once (evaluation); (B, H, d) physical.

        Does not read or touch the warm-start state; each sample stops on its own residual.
        """
        cfg = self._config
        batch = self.observation_batch(observations)
        taus = [cfg.solver.tau_for(obs.goal) for obs in observations]
        tau: float | torch.Tensor = (taus[0] if len(set(taus)) == 1
                                     else torch.tensor(taus, dtype=torch.float32))
        actions, res, _, prefix_ms, _ = self._decode(batch, cfg, noise, False, None, tau,
                                                     [obs.goal for obs in observations])
        recs = [_record(cfg, res, i, False, prefix_ms, res.solve_ms, taus[i])
                for i in range(len(observations))]
        return actions.cpu().numpy().astype(np.float32), recs

    def select_action(self, obs: Observation) -> np.ndarray:
        """The next action (d,), one control tick of the node's receding-horizon executor
        (``execution.RecedingHorizon``: decode every ``execute_steps`` ticks, guard each action
        against the contract's limits, hold when nothing executable is left)."""
        if self._horizon is None:
            self._horizon = RecedingHorizon(guard_for_config(self._config),
                                            self._config.execute_steps)
        if obs.goal != self._goal:
            self._horizon.reset()
        self._horizon.execute_steps = self._config.execute_steps
        step = self._horizon.step(
            obs, lambda o, steps: self.predict_action_chunk(o, steps_executed=steps))
        self.warm_start.advance(1)  # the count predict_action_chunk(steps_executed=None) uses
        return (step.action.action if step.action is not None
                else self._horizon.hold()).astype(np.float32)

    def reset(self) -> None:
        """New goal or episode: clear the action queue and the warm-start state, and (for a
        seeded policy) restart the noise stream at the seed. An episode's decodes then never
        depend on how many decodes earlier episodes made: the node answers an episode's final
        frame (it cannot know it is final), an evaluation client does not, and both must still
        draw the same noise in the next episode."""
        if self._seed is not None:
            self._generator.manual_seed(self._seed)
        if self._horizon is not None:
            self._horizon.reset()
        self.warm_start.reset()
        self._goal = None

    # ---------------------------------------------------------------------------------- tuning

    def update_solver(self, **changes: Any) -> PolicyConfig:
        """Change tunable settings (``settings.FIELDS``: tau, k_max, step_size, momentum,
        deadline_ms, warm_start[_fraction|_tail], fm_steps, execute_steps); validated by the
        config dataclasses (ValueError quotes the bad value), swapped in atomically, used from the
        next call. The model's own config is never touched: policies sharing a model (bag replay
        scans) cannot leak settings into each other."""
        cfg = self._config
        new = settings.apply(cfg, changes)
        if new.warm_start != cfg.warm_start:
            self.warm_start.reset()
        self._config = new
        return new

    # -------------------------------------------------------------------------------- training

    def model_forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss on a model batch (physical units), as ``PI0EqMModel.forward``."""
        return self.model(batch)
