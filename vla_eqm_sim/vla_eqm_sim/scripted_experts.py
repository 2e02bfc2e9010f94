"""Meta-World's scripted expert policies behind one small, ROS-free surface.

The experts read the privileged state vector (object poses, goal), which a real robot does not
have; that is why they live apart from the bridge and publish commands like a teleoperator would.
"""

from __future__ import annotations

import warnings

import numpy as np
from metaworld.policies import ENV_POLICY_MAP


def expert_tasks() -> list[str]:
    """Tasks with a scripted expert."""
    return sorted(ENV_POLICY_MAP)


class ScriptedExpert:
    """The Meta-World scripted policy of one task: ``act(state) -> (4,)`` action in [-1, 1]."""

    def __init__(self, task: str) -> None:
        if task not in ENV_POLICY_MAP:
            raise ValueError(f"no scripted expert for task {task!r}")
        self.task = task
        self._policy = ENV_POLICY_MAP[task]()

    def act(self, state: np.ndarray) -> np.ndarray:
        """One action for the Meta-World state observation ``state`` (39,)."""
        with warnings.catch_warnings():
            # The policies warn when their P-gains saturate; the env clips anyway.
            warnings.simplefilter("ignore")
            action = self._policy.get_action(np.asarray(state, dtype=np.float64))
        return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
