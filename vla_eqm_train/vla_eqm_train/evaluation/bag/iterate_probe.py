"""Does the lowest residual execute best? Per-iterate errors of a few decodes, offline.

The paper's stationarity-executability question: the EqM solver drives the residual
r_k = ||f(A~_k)|| / sqrt(H d) down, but what the robot cares about is how close the chunk is to
what it should do. For a few ticks of an episode this probe runs one cold solve with tau = 0 (so it
always runs K_max iterations) and records, for every iterate k, the residual r_k *and* the error of
that iterate against the recorded actions. Plotting both against k shows whether the iterate with
the smallest residual is also the one with the smallest error.

The iterates are captured by wrapping the field callable: ``eqm_solve`` evaluates the field at the
lookahead point A~_k, which is exactly the chunk it would return if it stopped at k with residual
r_k. One solve per probed tick, no change to ``solvers.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vla_eqm_ros.observation import Observation
from vla_eqm_ros.policy import Policy
from vla_eqm_ros.solvers import eqm_solve
from vla_eqm_train.evaluation.bag.metrics import chunk_error, first_action_error


def probe_ticks(length: int, count: int) -> list[int]:
    """``count`` ticks spread over an episode of ``length`` ticks (first, ..., last)."""
    if count <= 0 or length <= 0:
        return []
    return sorted({int(t) for t in np.linspace(0, length - 1, count).round()})


@torch.inference_mode()
def probe_iterates(policy: Policy, obs: Observation, recorded: np.ndarray, tick: int,
                   k_max: int, seed: int) -> dict[str, Any]:
    """Residual and error of every iterate of one cold, tau = 0 solve at ``tick``."""
    model, cfg = policy.model, policy.config
    m, s = cfg.model, cfg.solver
    prefix = model.encode_prefix(policy.observation_batch([obs]))
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn((1, m.horizon, m.action_dim), generator=generator)
    iterates: list[torch.Tensor] = []

    def field(a: torch.Tensor) -> torch.Tensor:
        iterates.append(a.detach().clone())  # A~_k: the chunk returned if the solve stopped here
        return model.field(a, prefix)

    res = eqm_solve(field, x0.to(next(model.parameters()).device), step_size=s.step_size,
                    momentum=s.momentum, tau=0.0, k_max=k_max)
    residual = [float(r) for r in res.trace[0]]
    first_l2, chunk_l1, chunk_l2 = [], [], []
    for a in iterates:
        chunk = model.action_normalizer.unnormalize(a)[0].cpu().numpy()
        first_l2.append(first_action_error(chunk, recorded[tick])["l2"])
        err = chunk_error(chunk, recorded, tick)
        chunk_l1.append(err["l1"])
        chunk_l2.append(err["l2"])
    return {
        "tick": tick, "seed": seed, "k_max": k_max, "residual": residual,
        "first_l2": first_l2, "chunk_l1": chunk_l1, "chunk_l2": chunk_l2,
        "argmin_residual": int(np.argmin(residual)) + 1,  # iterations (1-based) at the minima
        "argmin_first_l2": int(np.argmin(first_l2)) + 1,
        "argmin_chunk_l2": int(np.argmin(chunk_l2)) + 1,
    }
