"""Offline bag replay: a recorded episode decoded tick by tick as the node would, deterministically.

The episode comes from ``bags.read_episodes``, i.e. through the shared decode path
(``vla_eqm_ros.decode.ObservationAssembler``) on the contract's control-period grid, with the
recorded command as the label. Replay then runs the policy node's receding-horizon executor
(``vla_eqm_ros.execution.RecedingHorizon``): decode at tick 0, execute ``execute_steps`` actions,
decode again with ``steps_executed`` = ticks since the last decode (what the ``shifted`` warm
start advances by), and so on to the end of the episode.

Offline the observations do not depend on the actions, so replay measures the decoder alone:
errors against the demonstration, iterations, residuals, latency and chunk continuity.

Determinism and fairness: every (episode, setting) gets a fresh ``Policy`` (so warm start can
never cross an episode boundary) whose noise generator is seeded from the bag's name and the
decoder only. All settings of a scan therefore draw the *same* noise on the same episode (a paired
comparison): with warm start ``none``, decode k of an episode starts from the same point under
every tau, so a larger tau can only stop earlier on the same solver path.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_ros.config import PolicyConfig
from vla_eqm_ros.contract import Contract
from vla_eqm_ros.execution import RecedingHorizon, guard_for_config
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_ros.observation import Observation
from vla_eqm_ros.policy import Policy
from vla_eqm_train.data.bags import BagError, Episode, read_episodes
from vla_eqm_train.evaluation.bag.metrics import chunk_error, first_action_error

PERIOD_TOLERANCE = 1e-6  # s: recorded vs contract control period


@dataclass(frozen=True)
class ReplaySetting:
    """One point of the scan grid: decoder, tau and warm start (EqM) or Euler steps (FM)."""

    decoder: str  # eqm | fm
    execute_steps: int  # actions executed per decode (receding horizon)
    tau: float | None = None  # EqM stop threshold (None for FM)
    warm_start: str = "none"  # none | copy | shifted (EqM; FM never warm-starts)
    fm_steps: int | None = None  # FM Euler steps (None for EqM)

    @property
    def name(self) -> str:
        if self.decoder == "fm":
            return f"fm steps={self.fm_steps}"
        return f"tau={self.tau:g} ws={self.warm_start}"

    def solver_changes(self) -> dict[str, Any]:
        """Keyword arguments for ``Policy.update_solver``."""
        if self.decoder == "fm":
            return {"fm_steps": self.fm_steps, "execute_steps": self.execute_steps}
        return {"tau": self.tau, "warm_start": self.warm_start,
                "execute_steps": self.execute_steps}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


def settings_grid(decoder: str, taus: list[float], warm_starts: list[str],
                  fm_steps: list[int], execute_steps: int) -> list[ReplaySetting]:
    """The product tau x warm start (EqM, warm start outer) or one setting per FM step count."""
    if decoder == "fm":
        return [ReplaySetting("fm", execute_steps, fm_steps=n) for n in fm_steps]
    return [ReplaySetting("eqm", execute_steps, tau=t, warm_start=w)
            for w in warm_starts for t in taus]


# ------------------------------------------------------------------------------ contract, bags

def load_episodes(bag: Path, contract: Contract) -> list[Episode]:
    """``read_episodes`` plus the checks replay needs: not empty, recorded at the contract's
    rate."""
    bag = Path(bag)
    if not (bag / "metadata.yaml").is_file():
        raise BagError(bag, "-", "not a rosbag2 directory (no metadata.yaml)")
    _check_not_empty(bag)
    episodes = read_episodes(bag, contract)
    recorded = episodes[0].info.get("control_period_s")
    if recorded is not None and abs(float(recorded) - contract.control_period) > PERIOD_TOLERANCE:
        raise BagError(bag, "-", f"contract mismatch: recorded at {float(recorded):g} s per step, "
                                 f"the contract's control period is {contract.control_period:g} s")
    return episodes


def _check_not_empty(bag: Path) -> None:
    from rosbags.rosbag2 import Reader

    try:
        with Reader(bag) as reader:
            count = reader.message_count
    except Exception:  # unreadable: read_episodes names the problem
        return
    if count == 0:
        raise BagError(bag, "-", "empty bag (no messages)")


def episode_observations(episode: Episode, period: float) -> list[Observation]:
    """Per-tick ``Observation``s rebuilt from the episode arrays (same content as decoded)."""
    return [Observation(images={cam: frames[t] for cam, frames in episode.images.items()},
                        state=episode.state[t], goal=episode.goal, stamp=t * period)
            for t in range(episode.length)]


def episode_seed(bag: str | Path, decoder: str) -> int:
    """Noise seed of an episode: stable across runs and machines, shared by all settings."""
    return zlib.crc32(f"{Path(bag).name}|{decoder}".encode())


def make_policy(model: PI0EqMModel, base: PolicyConfig, setting: ReplaySetting | None,
                seed: int) -> Policy:
    """A fresh policy (empty warm start, seeded noise) on the shared model, set to ``setting``.

    ``update_solver`` changes only this policy's copy of the config (``settings.apply``), so a
    setting never inherits the previous one's values; ``base`` is the checkpoint's config.
    """
    policy = Policy(model, device=next(model.parameters()).device, seed=seed)
    if policy.config != base:
        raise ValueError("the shared model's config is not the checkpoint's")
    if setting is not None:
        policy.update_solver(**setting.solver_changes())
    return policy


# ------------------------------------------------------------------------------ the replay

@dataclass
class CycleRecord:
    """One decode of the replay: what the decoder did and how its chunk compares."""

    tick: int
    steps_executed: int
    iterations: int
    residual: float
    stop_reason: str
    warm_start_used: bool
    prefix_ms: float
    solve_ms: float
    decode_ms: float  # wall clock of predict_action_chunk (batching, normalization included)
    first: dict[str, Any]
    chunk: dict[str, Any]
    jump: float | None
    residual_trace: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["residual_trace"] = [float(f"{r:.5g}") for r in self.residual_trace]
        return out


@dataclass
class EpisodeReplay:
    """Every decode of one episode under one setting."""

    bag: str
    setting: ReplaySetting
    seed: int
    length: int  # ticks with an observation and a recorded command
    cycles: list[CycleRecord]


def replay_episode(model: PI0EqMModel, base: PolicyConfig, episode: Episode,
                   setting: ReplaySetting, period: float) -> EpisodeReplay:
    """Decode the episode every ``execute_steps`` ticks and measure each decode.

    Raises whatever the policy raises (ValueError on a bad observation, RuntimeError on
    non-finite actions); the caller reports the (episode, setting) as failed.
    """
    seed = episode_seed(episode.name, setting.decoder)
    policy = make_policy(model, base, setting, seed)
    policy.reset()
    observations = episode_observations(episode, period)
    recorded = episode.actions
    cycles: list[CycleRecord] = []
    # the node's executor: decode when due, steps_executed = ticks since the plan was produced
    horizon = RecedingHorizon(guard_for_config(base), setting.execute_steps)
    for t in range(episode.length):
        def solve(obs: Observation, steps: int, t: int = t) -> tuple[np.ndarray, Any]:
            t0 = time.perf_counter()
            chunk, rec = policy.predict_action_chunk(obs, steps_executed=steps)
            decode_ms = (time.perf_counter() - t0) * 1e3
            cycles.append(CycleRecord(
                tick=t, steps_executed=steps, iterations=rec.iterations, residual=rec.residual,
                stop_reason=rec.stop_reason, warm_start_used=rec.warm_start_used,
                prefix_ms=rec.prefix_ms, solve_ms=rec.solve_ms, decode_ms=decode_ms,
                first=first_action_error(chunk, recorded[t]),
                chunk=chunk_error(chunk, recorded, t), jump=None,
                residual_trace=rec.residual_trace))
            return chunk, rec

        step = horizon.step(observations[t], solve)
        if step.installed is not None:
            cycles[-1].jump = step.jump
    return EpisodeReplay(bag=episode.bag, setting=setting, seed=seed, length=episode.length,
                         cycles=cycles)
