"""One RL episode: the simulator without DDS, the policy node's executor, piRL's sparse reward.

The loop is the evaluation client's, minus the topics: ``RecedingHorizon.step`` decides when to
decode (every ``execute_steps`` ticks), guards every action and holds when nothing is executable,
exactly as in the node. Each decode is one RL decision (a semi-MDP step over the ticks until the
next decode); its reward is 1 if the task succeeded during those ticks (piRL: sparse success,
the episode ends on success), else 0. An episode that runs out of steps ends without reward and
is treated as terminal: the critic is not asked to bootstrap across the time limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla_eqm_ros.execution import RecedingHorizon, guard_for
from vla_eqm_ros.policy import Policy
from vla_eqm_sim.direct import DirectSim


@dataclass
class EpisodeTrace:
    """An episode's decisions (one row per decode) and its outcome."""

    task: str
    variation: int
    seed: int
    success: bool = False
    steps: int = 0
    iterations: list[int] = field(default_factory=list)  # solver iterations per decode
    features: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    decode_errors: int = 0  # failed decodes (non-finite chunk): the tick held, as in the node

    def summary(self) -> dict[str, object]:
        """The JSON-able outcome (no arrays): what progress bars and curves read."""
        return {"task": self.task, "variation": self.variation, "seed": self.seed,
                "success": self.success, "steps": self.steps, "decisions": len(self.rewards),
                "decode_errors": self.decode_errors,
                "iterations_mean": float(np.mean(self.iterations)) if self.iterations else None}


def run_episode(sim: DirectSim, policy: Policy, task: str, variation: int, seed: int
                ) -> EpisodeTrace:
    """Play one episode to success or the backend's step limit. The caller sets
    ``policy.exploration`` (a seeded generator for training rollouts, None for evaluation)."""
    trace = EpisodeTrace(task, int(variation), int(seed))
    policy.reset()
    horizon = RecedingHorizon(guard_for(sim.contract), policy.config.execute_steps)

    def decode(obs, steps_executed: int):
        chunk, record = policy.predict_action_chunk(obs, steps_executed=steps_executed)
        trace.iterations.append(int(record.iterations))
        rl = policy.last_rl
        if rl is not None:
            trace.features.append(rl.features)
            trace.actions.append(rl.action)
            trace.log_probs.append(rl.log_prob)
            trace.values.append(rl.value)
        trace.rewards.append(0.0)
        return chunk, record

    obs = sim.reset(task, variation, seed)
    while True:
        try:
            step = horizon.step(obs, decode)
            action = step.action.action if step.action is not None else horizon.hold()
        except RuntimeError:  # a non-finite chunk: the node holds and logs; so does this loop
            trace.decode_errors += 1
            action = horizon.hold()
        out = sim.step(action)
        trace.steps = sim.backend.step_count
        if out.result.success and not trace.success:
            trace.success = True
            if trace.rewards:
                trace.rewards[-1] += 1.0
        if out.result.done or out.observation is None:
            return trace
        obs = out.observation
